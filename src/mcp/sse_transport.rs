//! The legacy HTTP+SSE MCP transport (protocol 2024-11-05), client side,
//! which rmcp 3.x no longer ships.
//!
//! `GET url` opens an event stream whose first `endpoint` event names the URL
//! to POST JSON-RPC messages to; replies and notifications come back on the
//! stream as `message` events. When the stream ends, `receive` returns `None`
//! and rmcp ends the session, so the hub reconnects.
//!
//! With OAuth, every request carries the server's bearer token; a 401 gets
//! one new token and one retry, as in the streamable-HTTP client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleClient;
use tokio::sync::mpsc;

use super::oauth::{TokenError, TokenSource};
use crate::sse::SseDecoder;

/// Largest event accepted on the stream (a large tool result fits).
const MAX_EVENT_BYTES: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum SseTransportError {
    #[error("HTTP error: {0}")]
    Http(#[from] reqwest::Error),
    #[error("the server answered {0}")]
    Status(u16),
    #[error("{0}")]
    Protocol(String),
    #[error(transparent)]
    Token(#[from] TokenError),
}

pub struct SseClientTransport {
    client: reqwest::Client,
    endpoint: url::Url,
    headers: HeaderMap,
    tokens: Option<Arc<TokenSource>>,
    rx: mpsc::Receiver<ServerJsonRpcMessage>,
    reader: tokio::task::JoinHandle<()>,
}

impl SseClientTransport {
    /// Opens the stream and waits (up to `timeout`) for the `endpoint` event.
    pub async fn connect(
        url: &str,
        headers: &BTreeMap<String, String>,
        tokens: Option<Arc<TokenSource>>,
        timeout: Duration,
    ) -> Result<Self, SseTransportError> {
        let base = url::Url::parse(url).map_err(|e| SseTransportError::Protocol(e.to_string()))?;
        let headers = header_map(headers)?;
        let client = reqwest::Client::builder().connect_timeout(Duration::from_secs(10)).tcp_nodelay(true).build()?;
        let open = client.get(base.clone()).headers(headers.clone()).header("accept", "text/event-stream");
        let resp = send_authorized(open, tokens.as_deref()).await?;
        if !resp.status().is_success() {
            return Err(SseTransportError::Status(resp.status().as_u16()));
        }
        let mut body = resp.bytes_stream();
        let mut decoder = SseDecoder::new(MAX_EVENT_BYTES);
        let endpoint = tokio::time::timeout(timeout, async {
            while let Some(chunk) = body.next().await {
                let events = decoder.feed(&chunk?).map_err(|e| SseTransportError::Protocol(e.to_string()))?;
                if let Some(ev) = events.into_iter().find(|e| e.event.as_deref() == Some("endpoint")) {
                    return Ok(ev.data);
                }
            }
            Err(SseTransportError::Protocol("the stream ended before the endpoint event".into()))
        })
        .await
        .map_err(|_| SseTransportError::Protocol("no endpoint event in time".into()))??;
        let endpoint = base.join(endpoint.trim()).map_err(|e| SseTransportError::Protocol(e.to_string()))?;
        if endpoint.origin() != base.origin() {
            // The configured headers (cookies, tokens) must not go elsewhere.
            return Err(SseTransportError::Protocol(format!("endpoint {endpoint} is not on the server's origin")));
        }
        let (tx, rx) = mpsc::channel(64);
        let reader = tokio::spawn(read_messages(body, decoder, tx));
        Ok(Self { client, endpoint, headers, tokens, rx, reader })
    }
}

/// Sends `request` with the current token, if the server has OAuth; on a
/// 401, once more with a new token. The request must be cloneable (a JSON
/// or empty body is).
async fn send_authorized(
    request: reqwest::RequestBuilder,
    tokens: Option<&TokenSource>,
) -> Result<reqwest::Response, SseTransportError> {
    let Some(tokens) = tokens else { return Ok(request.send().await?) };
    let retry = request.try_clone().ok_or_else(|| SseTransportError::Protocol("request cannot be retried".into()))?;
    let sent = tokens.token().await?;
    let resp = request.bearer_auth(sent.expose()).send().await?;
    if resp.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Ok(resp);
    }
    let fresh = tokens.rejected(&sent).await?;
    Ok(retry.bearer_auth(fresh.expose()).send().await?)
}

async fn read_messages(
    mut body: impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin,
    mut decoder: SseDecoder,
    tx: mpsc::Sender<ServerJsonRpcMessage>,
) {
    while let Some(Ok(chunk)) = body.next().await {
        let events = match decoder.feed(&chunk) {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!("MCP SSE stream: {e}");
                return;
            }
        };
        for ev in events {
            if !matches!(ev.event.as_deref(), None | Some("message")) {
                continue;
            }
            match serde_json::from_str::<ServerJsonRpcMessage>(&ev.data) {
                Ok(msg) => {
                    if tx.send(msg).await.is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!("MCP SSE stream: unreadable message ({e})"),
            }
        }
    }
}

fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, SseTransportError> {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| SseTransportError::Protocol(format!("bad header name {k:?}")))?;
        let mut value =
            HeaderValue::from_str(v).map_err(|_| SseTransportError::Protocol(format!("bad value for header {k}")))?;
        value.set_sensitive(true);
        map.insert(name, value);
    }
    Ok(map)
}

impl Transport<RoleClient> for SseClientTransport {
    type Error = SseTransportError;

    fn send(
        &mut self,
        item: ClientJsonRpcMessage,
    ) -> impl std::future::Future<Output = Result<(), Self::Error>> + Send + 'static {
        let request = self.client.post(self.endpoint.clone()).headers(self.headers.clone()).json(&item);
        let tokens = self.tokens.clone();
        async move {
            let resp = send_authorized(request.timeout(Duration::from_secs(30)), tokens.as_deref()).await?;
            if !resp.status().is_success() {
                return Err(SseTransportError::Status(resp.status().as_u16()));
            }
            Ok(())
        }
    }

    fn receive(&mut self) -> impl std::future::Future<Output = Option<ServerJsonRpcMessage>> + Send {
        self.rx.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reader.abort();
        Ok(())
    }
}

impl Drop for SseClientTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}
