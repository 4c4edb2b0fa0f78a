//! Calling the LLM for the tool loop: the [`ChatUpstream`] seam and its
//! reqwest implementation (pooled keep-alive, TCP_NODELAY, timeouts,
//! incremental SSE decoding). Transparent requests do not come here: pingora
//! proxies those itself.

use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use crate::error::ProxyError;
use crate::metrics::{Handled, UpstreamMetrics};
use crate::openai::chat::{ChatCompletion, Chunk};
use crate::retry;
use crate::settings::{RetryPolicy, Settings};
use crate::sse::SseDecoder;

/// Largest SSE event accepted from the upstream.
const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One item of an upstream stream.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    Chunk(Chunk),
    /// `data: [DONE]`
    Done,
}

pub type ChunkStream = Pin<Box<dyn Stream<Item = Result<StreamItem, ProxyError>> + Send>>;

/// What the upstream answered, once its response head has arrived.
pub enum UpstreamReply {
    Complete(ChatCompletion),
    Stream(ChunkStream),
    /// A non-2xx answer, passed to the client unchanged.
    Failed(UpstreamError),
}

/// An upstream's error answer, as it came: passed to the client unchanged
/// when nothing was sent yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub status: u16,
    pub retry_after: Option<String>,
    pub content_type: Option<String>,
    pub body: Bytes,
}

impl UpstreamError {
    /// Its message, for a client that can no longer get the answer itself (mid-stream).
    pub fn describe(&self) -> String {
        let message = serde_json::from_slice::<Value>(&self.body)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message").or_else(|| v.get("message")).and_then(Value::as_str).map(str::to_string)
            })
            .unwrap_or_else(|| String::from_utf8_lossy(&self.body).chars().take(300).collect());
        format!("the upstream answered {}: {message}", self.status)
    }
}

/// Who the request is made for: what decides the upstream's `Authorization`.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The client's own `Authorization` header, used when no upstream key is configured.
    pub authorization: Option<String>,
    pub request_id: String,
}

/// The seam between the tool loop and the network.
#[async_trait]
pub trait ChatUpstream: Send + Sync {
    /// Sends one chat-completions request with `body` and returns when the
    /// response head has arrived: a completion, a stream (when `body` asks
    /// for one), or the upstream's error answer. `Err` means no answer at all
    /// (unreachable, timed out, unreadable).
    async fn send(&self, body: &Value, caller: &Caller) -> Result<UpstreamReply, ProxyError>;
}

pub struct HttpUpstream {
    client: reqwest::Client,
    url: String,
    bearer: Option<String>,
    first_byte_timeout: Duration,
    idle_timeout: Duration,
    retry: RetryPolicy,
    metrics: UpstreamMetrics,
}

impl HttpUpstream {
    pub fn new(settings: &Settings) -> Result<Self, ProxyError> {
        let t = &settings.upstream_timeouts;
        // No client-wide read timeout: the wait for the head and the gaps
        // between body chunks have their own limits, applied around each read.
        let mut builder =
            reqwest::Client::builder().tcp_nodelay(true).connect_timeout(t.connect).pool_idle_timeout(t.pool_idle);
        if let Some(path) = &settings.upstream_ca_file {
            // The same trust as pingora's transparent path: only these CAs.
            let pem = std::fs::read(path).map_err(|e| ProxyError::Internal(format!("{}: {e}", path.display())))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| ProxyError::Internal(format!("{}: {e}", path.display())))?;
            builder = certs.into_iter().fold(builder.tls_built_in_root_certs(false), |b, c| b.add_root_certificate(c));
        }
        let client = builder.build().map_err(|e| ProxyError::Internal(format!("building the upstream client: {e}")))?;
        let u = &settings.upstream;
        let scheme = if u.tls { "https" } else { "http" };
        let host = if u.host.contains(':') { format!("[{}]", u.host) } else { u.host.clone() };
        Ok(Self {
            client,
            url: format!("{scheme}://{host}:{}{}/chat/completions", u.port, u.path_prefix),
            bearer: settings.openai_api_key.as_ref().map(|k| format!("Bearer {}", k.expose())),
            first_byte_timeout: t.first_byte,
            idle_timeout: t.idle,
            retry: settings.upstream_retry.clone(),
            metrics: UpstreamMetrics::default(),
        })
    }

    /// Counts every attempt and retry into `metrics` (the gate's).
    pub fn with_metrics(self, metrics: UpstreamMetrics) -> Self {
        Self { metrics, ..self }
    }

    fn request(&self, body: &Bytes, caller: &Caller) -> Result<reqwest::RequestBuilder, ProxyError> {
        let mut req = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-request-id", &caller.request_id)
            .body(body.clone());
        if let Some(auth) = self.bearer.as_ref().or(caller.authorization.as_ref()) {
            let mut value = http::HeaderValue::from_str(auth)
                .map_err(|_| ProxyError::bad_request("the Authorization header is not valid", None))?;
            value.set_sensitive(true);
            req = req.header("authorization", value);
        }
        Ok(req)
    }

    /// The upstream's answer once its head has arrived: the body read (or
    /// streamed) with at most the idle timeout between two chunks.
    async fn reply(&self, mut resp: reqwest::Response) -> Result<UpstreamReply, ProxyError> {
        let status = resp.status().as_u16();
        let header = |name: &str| resp.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let content_type = header("content-type");
        if !(200..300).contains(&status) {
            let retry_after = header("retry-after");
            let body = read_all(&mut resp, self.idle_timeout).await?;
            return Ok(UpstreamReply::Failed(UpstreamError { status, retry_after, content_type, body }));
        }
        if content_type.as_deref().is_some_and(|c| c.starts_with("text/event-stream")) {
            return Ok(UpstreamReply::Stream(decode_stream(resp, self.idle_timeout)));
        }
        let bytes = read_all(&mut resp, self.idle_timeout).await?;
        let completion = serde_json::from_slice(&bytes)
            .map_err(|e| ProxyError::UpstreamProtocol(format!("unreadable completion: {e}")))?;
        Ok(UpstreamReply::Complete(completion))
    }
}

#[async_trait]
impl ChatUpstream for HttpUpstream {
    /// One round's call, repeated (after a backoff) while it fails with no
    /// connection or a "not now" status and retries remain (see [`retry`]: a
    /// chat completion creates nothing upstream, so 502 and 504 are repeated
    /// too). Nothing has gone to the client yet, and the tool loop calls this
    /// once per round, so a retry never runs the tools of earlier rounds again.
    async fn send(&self, body: &Value, caller: &Caller) -> Result<UpstreamReply, ProxyError> {
        let body = Bytes::from(
            serde_json::to_vec(body).map_err(|e| ProxyError::Internal(format!("encoding the request: {e}")))?,
        );
        let mut retry = 0;
        loop {
            let sent = tokio::time::timeout(self.first_byte_timeout, self.request(&body, caller)?.send()).await;
            let status = sent.as_ref().ok().and_then(|r| r.as_ref().ok()).map_or(0, |r| r.status().as_u16());
            self.metrics.attempt(Handled::ToolLoop, status);
            let sent =
                sent.map_err(|_| ProxyError::UpstreamTimeout("no response within the first-byte timeout".into()))?;
            let can_retry = retry < self.retry.retries;
            // The status that failed (0: no connection) and the wait before the next try.
            let (status, wait) = match sent {
                // No connection, or a pooled one the upstream had closed as the
                // request went out (no answer came): nothing was done upstream.
                Err(e) if can_retry && (e.is_connect() || (e.is_request() && !e.is_timeout())) => {
                    (0, retry::delay(&self.retry, retry, None))
                }
                Err(e) => return Err(classify(e)),
                Ok(resp) if can_retry && retry::retryable_status(resp.status().as_u16(), true) => {
                    let after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok());
                    match retry::delay(&self.retry, retry, after) {
                        Some(wait) => (resp.status().as_u16(), Some(wait)),
                        // It asks for longer than we would wait: its answer is the client's now.
                        None => return self.reply(resp).await,
                    }
                }
                Ok(resp) => return self.reply(resp).await,
            };
            let wait = wait.unwrap_or(self.retry.max_delay);
            tracing::info!(
                request_id = %caller.request_id,
                retry = retry + 1,
                status,
                wait_ms = wait.as_millis() as u64,
                "upstream call failed; retrying"
            );
            tokio::time::sleep(wait).await;
            self.metrics.retry(Handled::ToolLoop);
            retry += 1;
        }
    }
}

/// The whole body, with at most `idle` between two chunks.
async fn read_all(resp: &mut reqwest::Response, idle: Duration) -> Result<Bytes, ProxyError> {
    let mut all = bytes::BytesMut::new();
    loop {
        match tokio::time::timeout(idle, resp.chunk()).await {
            Err(_) => {
                return Err(ProxyError::UpstreamTimeout("the response body stalled past the idle timeout".into()))
            }
            Ok(Err(e)) => return Err(classify(e)),
            Ok(Ok(Some(piece))) => all.extend_from_slice(&piece),
            Ok(Ok(None)) => return Ok(all.freeze()),
        }
    }
}

fn classify(e: reqwest::Error) -> ProxyError {
    if e.is_timeout() {
        ProxyError::UpstreamTimeout("the upstream stopped answering".into())
    } else if e.is_connect() {
        ProxyError::UpstreamUnreachable("cannot connect".into())
    } else if e.is_body() || e.is_decode() {
        ProxyError::UpstreamUnreachable("the response was cut off".into())
    } else {
        ProxyError::UpstreamUnreachable(e.without_url().to_string())
    }
}

/// The response body as chunks, decoded as they arrive. A stream that ends
/// without `[DONE]` mid-event, that is cut, or that stays silent longer than
/// `idle` between two chunks, yields an error.
fn decode_stream(resp: reqwest::Response, idle: Duration) -> ChunkStream {
    struct State {
        body: Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>,
        idle: Duration,
        decoder: SseDecoder,
        pending: std::collections::VecDeque<Result<StreamItem, ProxyError>>,
        finished: bool,
    }
    let state = State {
        body: Box::pin(resp.bytes_stream()),
        idle,
        decoder: SseDecoder::new(MAX_EVENT_BYTES),
        pending: Default::default(),
        finished: false,
    };
    let stream = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.pending.pop_front() {
                return Some((item, st));
            }
            if st.finished {
                return None;
            }
            let Ok(next) = tokio::time::timeout(st.idle, st.body.next()).await else {
                st.finished = true;
                let e = ProxyError::UpstreamTimeout(format!("the stream stalled for {}s", st.idle.as_secs()));
                st.pending.push_back(Err(e));
                continue;
            };
            match next {
                Some(Ok(bytes)) => match st.decoder.feed(&bytes) {
                    Ok(events) => st.pending.extend(events.iter().filter_map(|ev| parse_event(&ev.data))),
                    Err(e) => {
                        st.finished = true;
                        st.pending.push_back(Err(ProxyError::UpstreamProtocol(e.to_string())));
                    }
                },
                Some(Err(e)) => {
                    st.finished = true;
                    st.pending.push_back(Err(classify(e)));
                }
                None => {
                    st.finished = true;
                    match st.decoder.finish() {
                        Ok(events) => st.pending.extend(events.iter().filter_map(|ev| parse_event(&ev.data))),
                        Err(e) => st.pending.push_back(Err(ProxyError::UpstreamUnreachable(e.to_string()))),
                    }
                }
            }
        }
    });
    Box::pin(stream)
}

fn parse_event(data: &str) -> Option<Result<StreamItem, ProxyError>> {
    let data = data.trim();
    if data.is_empty() {
        return None;
    }
    if data == "[DONE]" {
        return Some(Ok(StreamItem::Done));
    }
    let value: Value = match serde_json::from_str(data) {
        Ok(v) => v,
        Err(e) => return Some(Err(ProxyError::UpstreamProtocol(format!("unreadable stream event: {e}")))),
    };
    if let Some(err) = value.get("error") {
        let message = err.get("message").and_then(Value::as_str).unwrap_or("error event in the stream");
        return Some(Err(ProxyError::UpstreamProtocol(message.to_string())));
    }
    Some(
        serde_json::from_value(value)
            .map(StreamItem::Chunk)
            .map_err(|e| ProxyError::UpstreamProtocol(format!("unreadable chunk: {e}"))),
    )
}
