//! A scriptable OpenAI-compatible upstream on a loopback port.
//!
//! Tests push [`Reply`]s; each request takes the next scripted reply (or a
//! standing reply registered for its path) and is recorded with its method,
//! path, headers and body so tests can assert what the proxy sent. Replies
//! can be JSON, SSE streams with per-chunk delays and gates, bare statuses,
//! connections dropped mid-stream, or no answer at all.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, Notify};

type Body = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// One step of a reply body.
pub enum Step {
    Bytes(Bytes),
    Sleep(Duration),
    /// Wait until the test releases this gate.
    Gate(oneshot::Receiver<()>),
    /// Tell the test that everything before this step was written.
    Signal(oneshot::Sender<()>),
    /// Cut the connection here, without finishing the body.
    Drop,
    /// Write these bytes again and again until the client stops taking
    /// them; see [`MockUpstream::endless_sent`].
    Endless(Bytes),
}

/// A scripted answer.
pub struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    steps: Vec<Step>,
    /// Never answer (the request hangs until the client gives up).
    hang: bool,
    head_delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self { status, headers: vec![], steps: vec![], hang: false, head_delay: Duration::ZERO }
    }

    pub fn json(status: u16, value: Value) -> Self {
        Self::status(status).header("content-type", "application/json").bytes(value.to_string())
    }

    /// A chat completion whose message content is `content`.
    pub fn chat(content: &str) -> Self {
        Self::json(200, completion(content))
    }

    /// An SSE chat stream: a role chunk, one chunk per piece, a finish chunk,
    /// `[DONE]`; `gap` between pieces.
    pub fn chat_stream(pieces: &[&str], gap: Duration) -> Self {
        let mut r = Self::sse().event(chunk(json!({"role": "assistant", "content": ""}), None));
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 && !gap.is_zero() {
                r = r.sleep(gap);
            }
            r = r.event(chunk(json!({"content": piece}), None));
        }
        r.event(chunk(json!({}), Some("stop"))).done()
    }

    /// An empty SSE response to be filled with [`Reply::event`] and friends.
    pub fn sse() -> Self {
        Self::status(200).header("content-type", "text/event-stream").header("cache-control", "no-cache")
    }

    /// An OpenAI error body with `status`.
    pub fn error(status: u16, message: &str, kind: &str) -> Self {
        Self::json(status, json!({"error": {"message": message, "type": kind, "param": null, "code": null}}))
    }

    pub fn hang() -> Self {
        Self { hang: true, ..Self::status(200) }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn bytes(mut self, b: impl Into<Bytes>) -> Self {
        self.steps.push(Step::Bytes(b.into()));
        self
    }

    pub fn event(self, value: Value) -> Self {
        self.bytes(format!("data: {value}\n\n"))
    }

    pub fn done(self) -> Self {
        self.bytes("data: [DONE]\n\n")
    }

    pub fn sleep(mut self, d: Duration) -> Self {
        self.steps.push(Step::Sleep(d));
        self
    }

    pub fn gate(mut self, rx: oneshot::Receiver<()>) -> Self {
        self.steps.push(Step::Gate(rx));
        self
    }

    pub fn signal(mut self, tx: oneshot::Sender<()>) -> Self {
        self.steps.push(Step::Signal(tx));
        self
    }

    /// An SSE stream that never ends: one content chunk repeated until the
    /// write fails.
    pub fn endless_sse() -> Self {
        let piece = format!("data: {}\n\n", chunk(json!({"content": "x".repeat(1000)}), None));
        let mut r = Self::sse();
        r.steps.push(Step::Endless(Bytes::from(piece)));
        r
    }

    /// A stream that sends `text` as its first chunk, then breaks off
    /// without a final chunk or `[DONE]`.
    pub fn cut_stream(text: &str) -> Self {
        Self::sse()
            .event(chunk(json!({"role": "assistant", "content": text}), None))
            .sleep(Duration::from_millis(30))
            .drop_connection()
    }

    pub fn drop_connection(mut self) -> Self {
        self.steps.push(Step::Drop);
        self
    }

    pub fn head_delay(mut self, d: Duration) -> Self {
        self.head_delay = d;
        self
    }
}

/// A completion whose message asks for tool calls: `(id, name, arguments)`.
pub fn tool_calls_completion(calls: &[(&str, &str, Value)]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}))
        .collect();
    json!({
        "id": "chatcmpl-tools",
        "object": "chat.completion",
        "created": 1_700_000_001,
        "model": "mock-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": calls}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}
    })
}

impl Reply {
    /// A non-streamed answer asking for tool calls.
    pub fn tool_calls(calls: &[(&str, &str, Value)]) -> Self {
        Self::json(200, tool_calls_completion(calls))
    }

    /// A streamed answer asking for tool calls, the arguments split in two
    /// pieces per call and the calls interleaved, as real servers do.
    pub fn tool_calls_stream(calls: &[(&str, &str, Value)]) -> Self {
        let mut r = Self::sse().event(chunk(json!({"role": "assistant", "content": null}), None));
        for (i, (id, name, _)) in calls.iter().enumerate() {
            r = r.event(chunk(
                json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
                None,
            ));
        }
        for half in 0..2 {
            for (i, (_, _, args)) in calls.iter().enumerate() {
                let text = args.to_string();
                let mid = text.len() / 2;
                let piece = if half == 0 { &text[..mid] } else { &text[mid..] };
                r = r.event(chunk(json!({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}), None));
            }
        }
        r.event(chunk(json!({}), Some("tool_calls"))).done()
    }
}

impl Reply {
    /// One model turn, streamed or not, for tests that run the same script
    /// both ways: `content` (may be empty), then `calls` (native tool calls),
    /// with usage. Streamed, the content comes in pieces of 3 characters, so
    /// anything the proxy holds back is held across chunk boundaries.
    pub fn turn(stream: bool, content: &str, calls: &[(&str, &str, Value)]) -> Self {
        let finish = if calls.is_empty() { "stop" } else { "tool_calls" };
        if !stream {
            let mut body = if calls.is_empty() { completion(content) } else { tool_calls_completion(calls) };
            body["choices"][0]["message"]["content"] = if content.is_empty() { Value::Null } else { json!(content) };
            return Self::json(200, body);
        }
        let mut r = Self::sse().event(chunk(json!({"role": "assistant", "content": ""}), None));
        let chars: Vec<char> = content.chars().collect();
        for piece in chars.chunks(3) {
            r = r.event(chunk(json!({"content": piece.iter().collect::<String>()}), None));
        }
        for (i, (id, name, args)) in calls.iter().enumerate() {
            let text = args.to_string();
            let mid = text.len() / 2;
            r = r.event(chunk(
                json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": &text[..mid]}}]}),
                None,
            ));
            r = r.event(chunk(json!({"tool_calls": [{"index": i, "function": {"arguments": &text[mid..]}}]}), None));
        }
        r.event(chunk(json!({}), Some(finish))).done()
    }
}

/// A chat completion object with `content`.
pub fn completion(content: &str) -> Value {
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "mock-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    })
}

/// A chat completion chunk with `delta`.
pub fn chunk(delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "mock-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
    })
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    standing: Mutex<Vec<(String, Value)>>,
    requests: Mutex<Vec<Recorded>>,
    arrived: Notify,
    /// Responses whose client went away before the body was finished.
    aborted: Mutex<usize>,
    aborted_notify: Notify,
    connections: Mutex<usize>,
    /// Bytes an endless body got out so far, and whether its write failed.
    endless_sent: Mutex<usize>,
    endless_ended: Mutex<bool>,
}

pub struct MockUpstream {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl MockUpstream {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    /// The same mock over TLS, for `https://localhost:PORT`; returns the mock
    /// and the PEM file of the CA that signed its certificate.
    pub async fn start_tls() -> (Self, super::scratch::ScratchFile) {
        let (acceptor, ca_pem) = super::tls::acceptor_for_localhost();
        let ca = super::scratch::ScratchFile::new("mock-ca.pem", &ca_pem);
        (Self::start_with(Some(acceptor)).await, ca)
    }

    /// The mock on a socket the test bound earlier: until now its port
    /// refused connections (a test of "the upstream came up late").
    pub async fn start_on(socket: tokio::net::TcpSocket) -> Self {
        Self::serve(socket.listen(64).unwrap_or_else(|e| panic!("listen: {e}")), None)
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind mock: {e}"));
        Self::serve(listener, tls)
    }

    fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let state = Arc::new(State::default());
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                *lock(&st.connections) += 1;
                let (st, tls) = (st.clone(), tls.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc).await;
                        }
                        Some(acceptor) => {
                            if let Ok(tls_stream) = acceptor.accept(stream).await {
                                let _ = http.serve_connection(hyper_util::rt::TokioIo::new(tls_stream), svc).await;
                            }
                        }
                    }
                });
            }
        });
        Self { addr, state }
    }

    /// `http://127.0.0.1:PORT/v1`, the value for `OPENAI_BASE_URL`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn push(&self, reply: Reply) {
        lock(&self.state.script).push_back(reply);
    }

    /// Forgets the scripted answers not given yet.
    pub fn clear(&self) {
        lock(&self.state.script).clear();
    }

    /// A JSON answer for every request to `path` (no query), not consumed.
    pub fn always(&self, path: &str, value: Value) {
        lock(&self.state.standing).push((path.to_string(), value));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state.requests).clone()
    }

    /// Waits until `n` requests have arrived (panics after 10 s).
    pub async fn wait_requests(&self, n: usize) -> Vec<Recorded> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let notified = self.state.arrived.notified();
            let got = self.requests();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("mock upstream: waited for {n} requests, got {}", self.requests().len());
            }
        }
    }

    /// How many TCP connections the mock has accepted.
    pub fn connections(&self) -> usize {
        *lock(&self.state.connections)
    }

    /// Bytes of an [`Reply::endless_sse`] body handed to the connection so far.
    pub fn endless_sent(&self) -> usize {
        *lock(&self.state.endless_sent)
    }

    /// Whether the client of an endless body went away (its write failed).
    pub fn endless_ended(&self) -> bool {
        *lock(&self.state.endless_ended)
    }

    /// How many responses lost their client before the body was finished.
    pub fn aborted(&self) -> usize {
        *lock(&self.state.aborted)
    }

    /// Waits until `n` responses were aborted by their client (panics after 10 s).
    pub async fn wait_aborted(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.aborted() < n {
            let notified = self.state.aborted_notify.notified();
            if self.aborted() >= n {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("mock upstream: no client hang-up seen");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn handle(st: Arc<State>, req: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path = parts.uri.path_and_query().map(|p| p.to_string()).unwrap_or_default();
    let recorded = Recorded { method: parts.method.to_string(), path: path.clone(), headers: parts.headers, body };
    lock(&st.requests).push(recorded);
    st.arrived.notify_waiters();

    let plain_path = parts.uri.path().to_string();
    let standing = lock(&st.standing).iter().find(|(p, _)| *p == plain_path).map(|(_, v)| v.clone());
    let reply = match standing {
        Some(v) => Reply::json(200, v),
        None => lock(&st.script).pop_front().unwrap_or_else(|| {
            Reply::error(599, &format!("mock upstream: no scripted reply for {path}"), "mock_error")
        }),
    };
    Ok(respond(st, reply).await)
}

async fn respond(st: Arc<State>, reply: Reply) -> Response<Body> {
    if reply.hang {
        std::future::pending::<()>().await;
    }
    if !reply.head_delay.is_zero() {
        tokio::time::sleep(reply.head_delay).await;
    }
    let mut builder = Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        builder = builder.header(k, v);
    }
    let simple = reply.steps.iter().all(|s| matches!(s, Step::Bytes(_)));
    let body: Body = if simple {
        let mut all = Vec::new();
        for s in &reply.steps {
            if let Step::Bytes(b) = s {
                all.extend_from_slice(b);
            }
        }
        Full::new(Bytes::from(all)).map_err(|never| match never {}).boxed()
    } else {
        streamed(st, reply.steps)
    };
    builder.body(body).unwrap_or_else(|e| panic!("mock response: {e}"))
}

/// A body written step by step by a task; a failed send means the client
/// went away, which is counted as an abort.
fn streamed(st: Arc<State>, steps: Vec<Step>) -> Body {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, std::io::Error>>(1);
    tokio::spawn(async move {
        for step in steps {
            match step {
                Step::Bytes(b) => {
                    if tx.send(Ok(Frame::data(b))).await.is_err() {
                        *lock(&st.aborted) += 1;
                        st.aborted_notify.notify_waiters();
                        return;
                    }
                }
                Step::Sleep(d) => {
                    tokio::select! {
                        _ = tokio::time::sleep(d) => {}
                        _ = tx.closed() => {
                            *lock(&st.aborted) += 1;
                            st.aborted_notify.notify_waiters();
                            return;
                        }
                    }
                }
                Step::Gate(rx) => {
                    let _ = rx.await;
                }
                Step::Signal(s) => {
                    let _ = s.send(());
                }
                Step::Drop => {
                    let _ = tx.send(Err(std::io::Error::other("mock: connection dropped"))).await;
                    return;
                }
                Step::Endless(b) => {
                    while tx.send(Ok(Frame::data(b.clone()))).await.is_ok() {
                        *lock(&st.endless_sent) += b.len();
                    }
                    *lock(&st.endless_ended) = true;
                    return;
                }
            }
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    StreamBody::new(stream).boxed()
}
