//! The legacy HTTP+SSE transport of protocol revision 2024-11-05, which rmcp 3.x no longer ships.
//!
//! - `GET /sse` opens a session: an SSE stream whose first event is `endpoint` with data
//!   `/messages?sessionId=<uuid>`; every reply and notification then arrives on it as
//!   `event: message` / `data: <json>`, with a comment line every 15 s to keep proxies awake.
//! - `POST /messages?sessionId=<uuid>` delivers one JSON-RPC message and is answered `202` at
//!   once; the answer to a request comes later on the stream. An unknown session is `404`.
//!
//! Each session runs its own `TestServer` behind a pair of in-memory channels (`ChannelTransport`).
//! Closing the stream ends the session: the guard in the stream removes the session's inbox,
//! the server sees its input end and stops.

use std::collections::HashMap;
use std::convert::Infallible;
use std::error::Error;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{future, stream, StreamExt};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode, Uri};
use rmcp::model::{ClientJsonRpcMessage, ServerJsonRpcMessage};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::{RoleServer, ServiceExt};
use tokio::sync::mpsc;
use tokio::time::{interval_at, Instant, Interval};

use crate::http::{bearer_allowed, bind_loopback, serve_http1, unauthorized};
use crate::server::{ServerSpec, TestServer};

const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Messages buffered per direction before a sender waits.
const CHANNEL_CAPACITY: usize = 64;

type SseBody = UnsyncBoxBody<Bytes, Infallible>;
type Inboxes = Arc<Mutex<HashMap<String, mpsc::Sender<ClientJsonRpcMessage>>>>;

pub async fn serve_legacy_sse(spec: ServerSpec, port: u16, bearer_file: Option<PathBuf>) -> Result<(), Box<dyn Error>> {
    let sessions = Sessions { spec, inboxes: Inboxes::default(), bearer_file: bearer_file.map(Arc::new) };
    let routes = service_fn(move |request: Request<Incoming>| {
        let sessions = sessions.clone();
        async move { Ok::<_, Infallible>(sessions.route(request).await) }
    });
    serve_http1(bind_loopback(port).await?, routes).await
}

/// The open sessions, by session id: where to deliver what the client POSTs.
#[derive(Clone)]
struct Sessions {
    spec: ServerSpec,
    inboxes: Inboxes,
    bearer_file: Option<Arc<PathBuf>>,
}

impl Sessions {
    async fn route(&self, request: Request<Incoming>) -> Response<SseBody> {
        if !bearer_allowed(request.headers(), self.bearer_file.as_deref().map(PathBuf::as_path)) {
            return unauthorized().map(BodyExt::boxed_unsync);
        }
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/sse") => self.open(),
            (&Method::POST, "/messages") => self.deliver(request).await,
            _ => plain(StatusCode::NOT_FOUND, "not found; the legacy SSE endpoint is GET /sse\n".into()),
        }
    }

    /// `GET /sse`: starts a server for a new session and streams its output.
    fn open(&self) -> Response<SseBody> {
        let id = uuid::Uuid::new_v4().to_string();
        let (inbox_tx, inbox_rx) = mpsc::channel(CHANNEL_CAPACITY);
        let (outbox_tx, outbox_rx) = mpsc::channel(CHANNEL_CAPACITY);
        lock(&self.inboxes).insert(id.clone(), inbox_tx);
        let transport = ChannelTransport { outbox: outbox_tx, inbox: inbox_rx };
        tokio::spawn(run_session(TestServer::new(self.spec.clone()), transport, id.clone()));

        let guard = SessionGuard { inboxes: self.inboxes.clone(), id: id.clone() };
        let mut response = Response::new(event_stream(format!("/messages?sessionId={id}"), outbox_rx, guard));
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        response
    }

    /// `POST /messages?sessionId=…`: hands one message to the session's server.
    async fn deliver(&self, request: Request<Incoming>) -> Response<SseBody> {
        let Some(id) = session_id(request.uri()) else {
            return plain(StatusCode::BAD_REQUEST, "missing sessionId query parameter\n".into());
        };
        let inbox = lock(&self.inboxes).get(&id).cloned();
        let Some(inbox) = inbox else {
            return plain(StatusCode::NOT_FOUND, format!("unknown session {id}\n"));
        };
        let body = match request.into_body().collect().await {
            Ok(body) => body.to_bytes(),
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("cannot read the body: {e}\n")),
        };
        let message: ClientJsonRpcMessage = match serde_json::from_slice(&body) {
            Ok(message) => message,
            Err(e) => return plain(StatusCode::BAD_REQUEST, format!("not a JSON-RPC message: {e}\n")),
        };
        if inbox.send(message).await.is_err() {
            return plain(StatusCode::NOT_FOUND, format!("session {id} has ended\n"));
        }
        plain(StatusCode::ACCEPTED, "Accepted\n".into())
    }
}

async fn run_session(server: TestServer, transport: ChannelTransport, id: String) {
    match server.serve(transport).await {
        Ok(running) => {
            if let Err(e) = running.waiting().await {
                tracing::warn!(session = %id, "session task failed: {e}");
            }
        }
        Err(e) => tracing::debug!(session = %id, "session closed before it was initialized: {e}"),
    }
}

/// The SSE body of one session: the `endpoint` event, then the server's messages as they come.
fn event_stream(endpoint: String, outbox: mpsc::Receiver<ServerJsonRpcMessage>, guard: SessionGuard) -> SseBody {
    let first = sse_event("endpoint", &endpoint);
    let state = Outbox { outbox, keep_alive: interval_at(Instant::now() + KEEP_ALIVE, KEEP_ALIVE), _guard: guard };
    let rest = stream::unfold(state, |mut state| async move {
        let chunk = tokio::select! {
            // The server task has ended (its transport was dropped): end the stream too.
            message = state.outbox.recv() => encode(&message?),
            _ = state.keep_alive.tick() => Bytes::from_static(b": keep-alive\n\n"),
        };
        Some((chunk, state))
    });
    let frames = stream::once(future::ready(first)).chain(rest).map(|chunk| Ok(Frame::data(chunk)));
    StreamBody::new(frames).boxed_unsync()
}

struct Outbox {
    outbox: mpsc::Receiver<ServerJsonRpcMessage>,
    keep_alive: Interval,
    _guard: SessionGuard,
}

/// Forgets the session when its stream is dropped (client gone or server ended).
struct SessionGuard {
    inboxes: Inboxes,
    id: String,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        lock(&self.inboxes).remove(&self.id);
    }
}

fn encode(message: &ServerJsonRpcMessage) -> Bytes {
    match serde_json::to_string(message) {
        Ok(json) => sse_event("message", &json),
        Err(e) => {
            tracing::error!("cannot encode a server message: {e}");
            Bytes::from(format!(": cannot encode a server message: {e}\n\n"))
        }
    }
}

/// Compact JSON has no newlines, so `data` is always one line.
fn sse_event(event: &str, data: &str) -> Bytes {
    Bytes::from(format!("event: {event}\ndata: {data}\n\n"))
}

fn session_id(uri: &Uri) -> Option<String> {
    let query = uri.query()?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "sessionId")
        .map(|(_, value)| value.into_owned())
}

fn plain(status: StatusCode, text: String) -> Response<SseBody> {
    let mut response = Response::new(Full::new(Bytes::from(text)).boxed_unsync());
    *response.status_mut() = status;
    response
}

/// The map stays consistent even if a holder panicked (every update is one insert or remove).
fn lock(inboxes: &Inboxes) -> MutexGuard<'_, HashMap<String, mpsc::Sender<ClientJsonRpcMessage>>> {
    inboxes.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One session's side of the in-memory link: what the server sends goes to the SSE stream,
/// what it receives comes from the POSTs.
struct ChannelTransport {
    outbox: mpsc::Sender<ServerJsonRpcMessage>,
    inbox: mpsc::Receiver<ClientJsonRpcMessage>,
}

impl Transport<RoleServer> for ChannelTransport {
    type Error = mpsc::error::SendError<ServerJsonRpcMessage>;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        let outbox = self.outbox.clone();
        async move { outbox.send(item).await }
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleServer>>> + Send {
        self.inbox.recv()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.inbox.close();
        Ok(())
    }
}
