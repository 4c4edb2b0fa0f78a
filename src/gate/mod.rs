//! The gate: pingora's `ProxyHttp` for the whole proxy.
//!
//! It classifies each request into a [`Route`], answers the local routes
//! itself, and hands every other `/v1/*` request to pingora's own proxying
//! (chunk by chunk, pooled upstream connections). It owns request ids, CORS,
//! the access log and the OpenAI-shaped errors; it holds no business logic.

mod chat;
mod chat_session;
mod console;
mod cors;
mod ctx;
mod drive;
mod guard;
mod mcp_serve;
mod messages;
mod respond;
mod responses;
mod routes;
mod upstream_target;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, Result};

use crate::auth::{self, AllowedTools};
use crate::error::ProxyError;
use crate::mcp::Hub;
use crate::metrics::{Handled, Metrics, RequestLabels, StatusClass, Surface};
use crate::openai::models::ModelList;
use crate::reload::Live;
use crate::retry;
use crate::sessions::SessionStore;
use crate::settings::keys::AllowList;
use crate::settings::{MetricsSettings, Settings};
use crate::tool_loop::{ModePolicy, ToolLoop, ToolRunner};
use crate::upstream::{ChatUpstream, HttpUpstream};
use ctx::InFlight;
pub use ctx::RequestCtx;
pub use routes::Route;
use upstream_target::UpstreamTarget;

/// The header that carries the request id both ways.
pub const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// The proxy as a pingora component: build it with [`Gate::new`] and mount it
/// in any pingora server (see `examples/embed.rs`).
pub struct Gate {
    settings: Arc<Settings>,
    hub: Arc<Hub>,
    sessions: Arc<dyn SessionStore>,
    chat_upstream: Arc<dyn ChatUpstream>,
    /// The tool mode of each request, and what `auto` learned of the upstream.
    modes: ModePolicy,
    upstream: UpstreamTarget,
    /// `/mcp`, unless `mcp_server.enabled` is off.
    mcp: Option<Arc<mcp_serve::McpService>>,
    in_flight: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    /// The client keys (a reload swaps them) and how the last reload went.
    live: Arc<Live>,
    /// Cancelled when shutdown begins: ends what would never finish on its own.
    draining: tokio_util::sync::CancellationToken,
    /// Whether the upstream answers, for the console (cached).
    probe: console::Probe,
}

impl Gate {
    pub fn new(settings: Arc<Settings>, hub: Arc<Hub>, sessions: Arc<dyn SessionStore>) -> Result<Self, ProxyError> {
        let (metrics, live) = Self::observed(&settings, &hub);
        let chat_upstream = Arc::new(HttpUpstream::new(&settings)?.with_metrics(metrics.upstream.clone()));
        Ok(Self::build(settings, hub, sessions, chat_upstream, metrics, live))
    }

    /// A gate whose tool loop calls `chat_upstream` (tests and embedders may
    /// give their own).
    pub fn with_chat_upstream(
        settings: Arc<Settings>,
        hub: Arc<Hub>,
        sessions: Arc<dyn SessionStore>,
        chat_upstream: Arc<dyn ChatUpstream>,
    ) -> Self {
        let (metrics, live) = Self::observed(&settings, &hub);
        Self::build(settings, hub, sessions, chat_upstream, metrics, live)
    }

    /// What a reload replaces, and the metrics that watch it and the hub.
    fn observed(settings: &Settings, hub: &Arc<Hub>) -> (Arc<Metrics>, Arc<Live>) {
        let live = Arc::new(Live::new(settings.keys.clone()));
        let collectors = vec![hub.server_collector(), live.collector()];
        (Arc::new(Metrics::new(hub.tool_metrics(), collectors)), live)
    }

    fn build(
        settings: Arc<Settings>,
        hub: Arc<Hub>,
        sessions: Arc<dyn SessionStore>,
        chat_upstream: Arc<dyn ChatUpstream>,
        metrics: Arc<Metrics>,
        live: Arc<Live>,
    ) -> Self {
        let upstream = UpstreamTarget::new(&settings);
        let u = &settings.upstream;
        let upstream_id = format!("{}://{}{}", if u.tls { "https" } else { "http" }, u.host_header(), u.path_prefix);
        let modes = ModePolicy::new(settings.tool.clone(), upstream_id);
        let mcp = mcp_serve::service(&settings);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let draining = tokio_util::sync::CancellationToken::new();
        let probe = console::Probe::default();
        Self { settings, hub, sessions, chat_upstream, modes, upstream, mcp, in_flight, metrics, live, draining, probe }
    }

    /// What a reload replaces (see [`crate::reload`]).
    pub fn live(&self) -> Arc<Live> {
        self.live.clone()
    }

    /// The gate's metrics (what `/metrics` renders, wherever it is served).
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The tools this request may see and call: the hub, narrowed to the
    /// client key's allow-list, then to the request's `x-mcp-allow` (which
    /// can only take tools away, never add one the key lacks).
    fn tools_for(&self, ctx: &RequestCtx) -> Arc<dyn ToolRunner> {
        let narrow = |inner: Arc<dyn ToolRunner>, allow: &AllowList, by| -> Arc<dyn ToolRunner> {
            Arc::new(AllowedTools { inner, allow: allow.clone(), metrics: self.hub.tool_metrics().clone(), by })
        };
        let mut tools: Arc<dyn ToolRunner> = self.hub.clone();
        if let Some(key) = ctx.client.as_ref().filter(|k| k.allow().is_restricted()) {
            tools = narrow(tools, key.allow(), "this API key");
        }
        if let Some(asked) = &ctx.narrowed {
            tools = narrow(tools, asked, "this request (x-mcp-allow)");
        }
        tools
    }

    /// The client's `Authorization`, for the upstream: only in
    /// bring-your-own-key mode (no client keys of ours, no upstream key).
    /// An Anthropic client's `x-api-key` is its key too, sent on as a bearer.
    fn forwardable_authorization(&self, session: &Session) -> Option<String> {
        if !self.live.keys().is_empty() {
            return None;
        }
        let headers = &session.req_header().headers;
        match headers.get("authorization").and_then(|v| v.to_str().ok()) {
            Some(authorization) => Some(authorization.to_string()),
            None => auth::x_api_key(headers).map(|key| format!("Bearer {key}")),
        }
    }

    /// The tool loop over `tools` (one request's view of the hub).
    fn tool_loop<'a>(&'a self, tools: &'a dyn ToolRunner) -> ToolLoop<'a> {
        ToolLoop { upstream: &*self.chat_upstream, tools, limits: &self.settings.tool.limits, modes: &self.modes }
    }

    /// Requests being served right now (for graceful shutdown).
    pub fn in_flight(&self) -> Arc<AtomicUsize> {
        self.in_flight.clone()
    }

    /// Cancel it when shutdown begins: requests that last until the client
    /// leaves (`/mcp` subscriptions) then end, so draining is not held up by them.
    pub fn draining(&self) -> tokio_util::sync::CancellationToken {
        self.draining.clone()
    }

    /// Reads `x-mcp-allow` into `ctx`; `Ok(true)` when it was refused (and answered).
    async fn refused_allow_header(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let e = match chat::allow_header(session) {
            Ok(narrowed) => {
                ctx.narrowed = narrowed;
                return Ok(false);
            }
            Err(e) => e,
        };
        if ctx.route.surface() == Surface::Messages {
            messages::refuse(self, session, ctx, &e).await?;
        } else {
            respond::send(session, ctx, &self.settings, respond::Answer::error(&e)).await?;
        }
        Ok(true)
    }

    fn fallback_models(&self) -> Bytes {
        ModelList::fallback(&self.settings.default_model).to_bytes()
    }
}

#[async_trait]
impl ProxyHttp for Gate {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestCtx::new(InFlight(self.in_flight.clone()), self.metrics.hold_request())
    }

    /// Runs first for every request: assigns the id, decides the route and
    /// answers every route the proxy owns. `Ok(true)` means "answered here".
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        ctx.request_id = routes::request_id(req.headers.get(&REQUEST_ID));
        ctx.route = Route::classify(&req.method, req.uri.path());
        ctx.allow_origin = cors::allow_origin(&self.settings.cors, req.headers.get("origin"));
        guard::set_timeouts(&self.settings, session);
        if let Some(err) = guard::check(&self.settings, session, ctx.route, self.in_flight.load(Ordering::Relaxed)) {
            guard::refuse(session, ctx, &self.settings, &err).await?;
            return Ok(true);
        }
        let req = session.req_header();

        let keys = self.live.keys();
        if !keys.is_empty() && !matches!(ctx.route, Route::Welcome | Route::Health | Route::Preflight | Route::Ui) {
            match auth::authenticate(&keys, auth::presented_key(&req.headers)) {
                Some(key) => ctx.client = Some(key.clone()),
                None if ctx.route == Route::Mcp => return mcp_serve::unauthorized(self, session, ctx).await,
                None if ctx.route.surface() == Surface::Messages => {
                    messages::refuse(self, session, ctx, &ProxyError::InvalidApiKey).await?;
                    return Ok(true);
                }
                None => {
                    respond::send(session, ctx, &self.settings, respond::Answer::error(&ProxyError::InvalidApiKey))
                        .await?;
                    return Ok(true);
                }
            }
        }
        if self.refused_allow_header(session, ctx).await? {
            return Ok(true);
        }
        let req = session.req_header();
        let answer = match ctx.route {
            Route::Proxy | Route::Models => return Ok(false),
            Route::Chat => return chat_session::post(self, session, ctx).await,
            Route::Responses => match responses::applies(self, session, ctx) {
                Ok(false) => return Ok(false),
                Ok(true) => return responses::post(self, session, ctx).await,
                Err(e) => respond::Answer::error(&e),
            },
            Route::ResponseItem => return responses::item(self, session, ctx).await,
            Route::Messages => return messages::post(self, session, ctx).await,
            Route::CountTokens => return messages::count_tokens(self, session, ctx).await,
            Route::ChatHistory => return chat_session::item(self, session, ctx).await,
            Route::Mcp => return mcp_serve::serve(self, session, ctx).await,
            Route::ChatCompletions => match chat::applies(self, session, ctx) {
                Ok(false) => return Ok(false),
                Ok(true) => return chat::handle(self, session, ctx).await,
                Err(e) => respond::Answer::error(&e),
            },
            Route::Preflight => return respond::preflight(session, ctx, &self.settings).await,
            Route::Welcome if console::wants_html(session) => return console::redirect(session, ctx, self).await,
            Route::Ui => return console::serve_asset(session, ctx, self).await,
            Route::UiStatus => respond::Answer::json(200, console::status(self, ctx).await),
            Route::Welcome => respond::Answer::json(
                200,
                routes::welcome(self.settings.metrics == MetricsSettings::OnMainPort, self.mcp.is_some()),
            ),
            Route::Health => respond::Answer::json(200, routes::health(&self.hub, &self.live.status())),
            Route::Metrics if self.settings.metrics == MetricsSettings::OnMainPort => {
                let accept = req.headers.get("accept").and_then(|v| v.to_str().ok());
                let (content_type, text) = self.metrics.render(accept);
                respond::Answer::raw(200, content_type, Bytes::from(text))
            }
            Route::Metrics => {
                respond::Answer::error(&routes::route_error(Route::NotFound, &req.method, req.uri.path()))
            }
            Route::NotFound | Route::MethodNotAllowed => {
                let err = routes::route_error(ctx.route, &req.method, req.uri.path());
                respond::Answer::error(&err)
            }
        };
        respond::send(session, ctx, &self.settings, answer).await?;
        Ok(true)
    }

    /// Each chunk of a proxied request body: the body cap for bodies without
    /// a Content-Length.
    async fn request_body_filter(
        &self,
        session: &mut Session,
        _body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        guard::body_chunk(&self.settings, session, ctx).await
    }

    /// Runs before every attempt; a retry first waits the backoff its
    /// failure asked for.
    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
        if let Some(wait) = ctx.retry_wait.take() {
            tokio::time::sleep(wait).await;
        }
        if ctx.upstream_tries > 0 {
            self.metrics.upstream.retry(Handled::Passthrough);
        }
        ctx.upstream_tries += 1;
        self.upstream.peer().await
    }

    /// No connection: nothing was sent, so any request may be repeated.
    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.metrics.upstream.attempt(Handled::Passthrough, 0);
        let policy = &self.settings.upstream_retry;
        let again = ctx.upstream_tries <= policy.retries;
        e.set_retry(again);
        if again {
            ctx.retry_wait = retry::delay(policy, ctx.upstream_tries - 1, None);
        }
        e
    }

    /// Errors while proxying: a "not now" status that `upstream_response_filter`
    /// turned into an error is repeated (the body is replayed from pingora's
    /// retry buffer); anything else follows pingora's own policy (idempotent
    /// requests on a reused connection only).
    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if ctx.head_try != ctx.upstream_tries {
            // This attempt ended before the upstream's head arrived.
            self.metrics.upstream.attempt(Handled::Passthrough, 0);
        }
        let replayable = !session.as_ref().retry_buffer_truncated();
        if ctx.retry_wait.is_some() && replayable {
            e.set_retry(true);
        } else if !session.req_header().method.is_idempotent() || !replayable {
            ctx.retry_wait = None;
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        self.upstream.rewrite(upstream_request, !self.live.keys().is_empty())?;
        upstream_request.insert_header(REQUEST_ID, request_id_value(&ctx.request_id)?)?;
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        ctx.upstream_status = Some(status);
        ctx.head_try = ctx.upstream_tries;
        self.metrics.upstream.attempt(Handled::Passthrough, status);
        // Nothing has gone to the client yet: a "not now" answer may still be
        // repeated, if tries remain, the request body can be replayed, the
        // request may be sent twice (see `retry`) and the upstream does not
        // ask for a longer wait than we would make.
        let policy = &self.settings.upstream_retry;
        let repeatable = || retry::repeatable(&session.req_header().method, session.req_header().uri.path());
        if retry::retryable_status(status, true)
            && retry::retryable_status(status, repeatable())
            && ctx.upstream_tries <= policy.retries
            && !session.as_ref().retry_buffer_truncated()
        {
            let after = upstream_response.headers.get("retry-after").and_then(|v| v.to_str().ok());
            if let Some(wait) = retry::delay(policy, ctx.upstream_tries - 1, after) {
                ctx.retry_wait = Some(wait);
                let mut e = Error::explain(pingora::ErrorType::HTTPStatus(status), "upstream asked to retry");
                e.set_retry(true);
                return Err(e);
            }
        }
        if ctx.route == Route::Models && self.settings.models_fallback && (status == 404 || status >= 500) {
            ctx.models_fallback = true;
            let body_len = self.fallback_models().len();
            *upstream_response = respond::json_header(200, body_len)?;
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header(REQUEST_ID, request_id_value(&ctx.request_id)?)?;
        cors::decorate(upstream_response, &self.settings.cors, ctx.allow_origin.as_ref());
        ctx.first_byte.get_or_insert_with(|| ctx.started.elapsed());
        let content_type = upstream_response.headers.get("content-type").map(|v| v.as_bytes());
        if content_type.is_some_and(|c| c.starts_with(b"text/event-stream")) {
            ctx.stream = Some(self.metrics.hold_stream());
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.models_fallback {
            *body = end_of_stream.then(|| self.fallback_models());
        }
        Ok(None)
    }

    /// A fatal error before or while proxying: answer with the OpenAI-shaped
    /// error if nothing was sent yet (or the model list for `/v1/models`).
    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut RequestCtx) -> FailToProxy {
        let Some(err) = respond::classify(e) else {
            // The client is gone: nobody to answer.
            return FailToProxy { error_code: 0, can_reuse_downstream: false };
        };
        if session.response_written().is_some() {
            // Mid-response: pingora ends the connection without the final
            // chunk, so the client sees a truncated body, not a complete one.
            return FailToProxy { error_code: err.status(), can_reuse_downstream: false };
        }
        let upstream_failed = matches!(err.status(), 502 | 504);
        let answer = if ctx.route == Route::Models && self.settings.models_fallback && upstream_failed {
            respond::Answer::raw(200, "application/json", self.fallback_models())
        } else {
            respond::Answer::error(&err)
        };
        let code = answer.status;
        // The connection is not reused after a failure (see below): say so,
        // or a client that reuses it loses its next request.
        session.set_keepalive(None);
        if let Err(write_err) = respond::send(session, ctx, &self.settings, answer).await {
            tracing::debug!(request_id = %ctx.request_id, "could not send the error response: {write_err}");
        }
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    /// The one access-log line per request. Never logs headers or query strings.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let req = session.req_header();
        let status = session.response_written().map(|r| r.status.as_u16()).or(ctx.local_status).unwrap_or(0);
        tracing::info!(
            target: "access",
            request_id = %ctx.request_id,
            method = %req.method,
            path = %req.uri.path(),
            route = ?ctx.route,
            status,
            upstream_status = ctx.upstream_status.unwrap_or(0),
            ms = %format!("{:.3}", ctx.started.elapsed().as_secs_f64() * 1000.0),
            bytes = session.body_bytes_sent(),
            error = e.map(|e| e.etype().as_str()).unwrap_or(""),
        );
        let labels = RequestLabels {
            route: ctx.route.name(),
            surface: ctx.route.surface(),
            handled: ctx.handled(),
            status: StatusClass(status),
        };
        self.metrics.request(&labels, ctx.started.elapsed(), ctx.first_byte);
        ctx.stream = None;
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _error: &Error) -> bool {
        // The access-log line above already records the error with the request id.
        true
    }
}

/// The request id as a header value (ids are checked tokens or uuids).
pub(crate) fn request_id_value(id: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(id).map_err(|e| Error::because(pingora::ErrorType::InternalError, "request id", e))
}
