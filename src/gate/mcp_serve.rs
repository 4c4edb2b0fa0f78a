//! `/mcp` (its handler: [`crate::surfaces::mcp`]): the pingora session
//! bridged to rmcp's streamable HTTP server, a tower-style service over
//! `http::Request` → `http::Response`. The request head and body (capped as
//! on every route) become an `http::Request` carrying the caller's tools; the
//! answer's head is written with the request id and CORS headers, and its
//! body frames go to the client as rmcp yields them, so an SSE answer streams.
//!
//! Stateless: every request stands alone (rmcp's `NeverSessionManager`, no
//! `Mcp-Session-Id`). A session would be state one instance holds, which the
//! proxy avoids (several instances share nothing but `/chat` sessions), and
//! it would have to be bound to the key that opened it; with none, each
//! request is authorised by its own key and nothing else. The price: no
//! stream of a session's own, so `GET /mcp` is a 405; catalog changes reach
//! clients that ask with `subscriptions/listen` (MCP 2026-07-28), a POST
//! whose SSE answer streams through here.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, WWW_AUTHENTICATE};
use http_body::Body as _;
use http_body_util::{BodyExt, Full};
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};

use super::chat::read_body;
use super::respond::{self, Answer};
use super::{cors, routes, Gate, RequestCtx, REQUEST_ID};
use crate::error::ProxyError;
use crate::settings::Settings;
use crate::surfaces::mcp::{CallerTools, CatalogServer};

/// rmcp's server for `/mcp`, one per gate.
pub type McpService = StreamableHttpService<CatalogServer, NeverSessionManager>;

/// The service, or `None` when `mcp_server.enabled` is off.
pub fn service(settings: &Settings) -> Option<Arc<McpService>> {
    if !settings.mcp_server_enabled {
        return None;
    }
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        // One JSON answer per request where rmcp can: simplest for clients and proxies in between.
        .with_json_response(true)
        // rmcp's default admits loopback hosts only (a guard for desktop servers
        // against DNS rebinding); the proxy serves whatever host it is reached
        // by, under its own keys and CORS, as on every other route.
        .disable_allowed_hosts()
        .with_max_request_body_bytes(settings.max_body_bytes);
    let manager = Arc::new(NeverSessionManager::default());
    Some(Arc::new(StreamableHttpService::new(|| Ok(CatalogServer), manager, config)))
}

/// Any request to `/mcp`; always answered here (`Ok(true)`) unless a write fails.
pub async fn serve(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let Some(service) = gate.mcp.clone() else {
        let req = session.req_header();
        let err = routes::route_error(ctx.route, &req.method, req.uri.path());
        respond::send(session, ctx, &gate.settings, Answer::error(&err)).await?;
        return Ok(true);
    };
    let request = match read_request(gate, session, ctx).await {
        Ok(request) => request,
        Err(e) => {
            respond::send(session, ctx, &gate.settings, Answer::error(&e)).await?;
            return Ok(true);
        }
    };
    let answer = service.handle(request);
    tokio::pin!(answer);
    let mut watch_client = true;
    let response = loop {
        tokio::select! {
            response = &mut answer => break response,
            // A client that hangs up mid-call cancels it: dropping rmcp's
            // future cancels the handler, and with it the tool call.
            gone = session.read_body_or_idle(true), if watch_client => {
                if gone.is_err() {
                    tracing::info!(request_id = %ctx.request_id, "client went away; cancelling");
                    return Ok(true);
                }
                watch_client = false;
            }
        }
    };
    write_response(gate, session, ctx, response).await?;
    Ok(true)
}

/// The pingora request as an `http::Request` for rmcp, with the caller's tools.
async fn read_request(
    gate: &Gate,
    session: &mut Session,
    ctx: &RequestCtx,
) -> Result<http::Request<Full<Bytes>>, ProxyError> {
    let body = read_body(gate, session).await?;
    let head = session.req_header();
    let mut request = http::Request::builder()
        .method(head.method.clone())
        .uri(head.uri.clone())
        .version(head.version)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| ProxyError::bad_request(format!("unreadable request: {e}"), None))?;
    *request.headers_mut() = head.headers.clone();
    let caller = CallerTools { tools: gate.tools_for(ctx), hub: gate.hub.clone(), draining: gate.draining.clone() };
    request.extensions_mut().insert(caller);
    Ok(request)
}

/// Writes rmcp's answer: its head with ours added, then its body as it comes.
async fn write_response(
    gate: &Gate,
    session: &mut Session,
    ctx: &mut RequestCtx,
    response: http::Response<http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible>>,
) -> Result<()> {
    let (parts, mut body) = response.into_parts();
    let mut resp = ResponseHeader::build(parts.status, Some(parts.headers.len() + 4))?;
    for (name, value) in &parts.headers {
        resp.append_header(name.clone(), value.clone())?;
    }
    if let Some(len) = body.size_hint().exact().filter(|_| !parts.headers.contains_key(CONTENT_LENGTH)) {
        resp.insert_header(CONTENT_LENGTH, len.to_string())?;
    }
    resp.insert_header(REQUEST_ID, super::request_id_value(&ctx.request_id)?)?;
    cors::decorate(&mut resp, &gate.settings.cors, ctx.allow_origin.as_ref());
    let event_stream = parts.headers.get(CONTENT_TYPE).is_some_and(|c| c.as_bytes().starts_with(b"text/event-stream"));
    if event_stream {
        // Counted as an open stream while a subscription (or a streamed answer) lasts.
        ctx.stream = Some(gate.metrics.hold_stream());
    }
    ctx.wrote_head(parts.status.as_u16());
    session.write_response_header(Box::new(resp), false).await?;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(never) => match never {},
        };
        if let Ok(data) = frame.into_data() {
            if !data.is_empty() {
                session.write_response_body(Some(data), false).await?;
            }
        }
    }
    session.write_response_body(None, true).await
}

/// The 401 of a request without a valid key: OpenAI's shape, as on every
/// route, with the `WWW-Authenticate` that MCP clients (and RFC 9110) expect.
pub async fn unauthorized(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let err = ProxyError::InvalidApiKey;
    let body = err.openai_body();
    let mut resp = respond::json_header(err.status(), body.len())?;
    resp.insert_header(WWW_AUTHENTICATE, "Bearer")?;
    resp.insert_header(REQUEST_ID, super::request_id_value(&ctx.request_id)?)?;
    cors::decorate(&mut resp, &gate.settings.cors, ctx.allow_origin.as_ref());
    ctx.wrote_head(err.status());
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await?;
    Ok(true)
}
