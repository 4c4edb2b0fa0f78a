//! The per-request state pingora keeps for the gate (its `CTX`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;

use super::Route;
use crate::metrics::{Handled, Held};
use crate::settings::keys::{AllowList, ClientKey};

/// Per-request state, created by pingora for every request.
pub struct RequestCtx {
    pub request_id: String,
    pub route: Route,
    pub(super) started: Instant,
    /// The `Access-Control-Allow-Origin` this request earns, if any.
    pub(super) allow_origin: Option<HeaderValue>,
    /// The upstream could not list models: answer with the fallback list instead.
    pub(super) models_fallback: bool,
    pub(super) upstream_status: Option<u16>,
    /// Status of a response the proxy wrote itself.
    pub(super) local_status: Option<u16>,
    /// `/chat`: the session this request belongs to, sent as `x-session-id`.
    pub(super) session_id: Option<String>,
    /// The client key the request presented (when keys are configured).
    pub(super) client: Option<ClientKey>,
    /// `x-mcp-allow`: the request offers only these of the key's tools.
    pub(super) narrowed: Option<AllowList>,
    /// Transparent path: attempts at the upstream so far.
    pub(super) upstream_tries: u32,
    /// Transparent path: a failed attempt will be repeated after this wait.
    pub(super) retry_wait: Option<Duration>,
    /// Transparent path: the attempt whose response head arrived.
    pub(super) head_try: u32,
    /// When the response head went out.
    pub(super) first_byte: Option<Duration>,
    /// The tool loop ran for this request.
    pub(super) tool_loop: bool,
    /// An open event stream, counted while it is open.
    pub(super) stream: Option<Held>,
    pub(super) _in_flight: InFlight,
    pub(super) _counted: Held,
}

impl RequestCtx {
    /// Notes a response head the proxy wrote itself.
    pub(crate) fn wrote_head(&mut self, status: u16) {
        self.local_status = Some(status);
        self.first_byte.get_or_insert_with(|| self.started.elapsed());
    }

    pub(super) fn handled(&self) -> Handled {
        match (self.tool_loop, self.upstream_tries) {
            (true, _) => Handled::ToolLoop,
            (false, 0) => Handled::Local,
            (false, _) => Handled::Passthrough,
        }
    }
}

/// Counts a request as in flight from its context's creation to its drop, so
/// shutdown can tell when the last request has finished.
pub(super) struct InFlight(pub(super) Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl RequestCtx {
    pub(super) fn new(in_flight: InFlight, counted: Held) -> Self {
        RequestCtx {
            request_id: String::new(),
            route: Route::NotFound,
            started: Instant::now(),
            allow_origin: None,
            models_fallback: false,
            upstream_status: None,
            local_status: None,
            session_id: None,
            client: None,
            narrowed: None,
            upstream_tries: 0,
            retry_wait: None,
            head_try: 0,
            first_byte: None,
            tool_loop: false,
            stream: None,
            _in_flight: in_flight,
            _counted: counted,
        }
    }
}
