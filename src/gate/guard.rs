//! Request-level limits, checked before the proxy reads a body or routes:
//! in-flight count, head size, ambiguous body framing, body size.
//!
//! Each refusal is an OpenAI-shaped error and closes the connection: after
//! a request the proxy will not read, the connection's next bytes cannot be
//! trusted to start a request.

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use pingora::proxy::Session;
use pingora::{Error, ErrorType, Result};

use super::{cors, request_id_value, respond, RequestCtx, Route, REQUEST_ID};
use crate::error::ProxyError;
use crate::metrics::Surface;
use crate::settings::Settings;

/// The first limit this request breaks, if any. On the normal path it costs
/// a load, a length and two header lookups.
pub(super) fn check(settings: &Settings, session: &Session, route: Route, in_flight: usize) -> Option<ProxyError> {
    let limits = &settings.limits;
    // A health check must still answer when the proxy is full.
    if in_flight > limits.max_in_flight && route != Route::Health {
        return Some(ProxyError::Overloaded { retry_after_seconds: limits.retry_after_seconds });
    }
    if head_len(session) > limits.max_header_bytes {
        return Some(ProxyError::HeaderTooLarge { limit: limits.max_header_bytes });
    }
    let headers = &session.req_header().headers;
    let mut lengths = headers.get_all(CONTENT_LENGTH).into_iter();
    let (first, second) = (lengths.next(), lengths.next());
    if second.is_some() || first.is_some_and(|v| v.as_bytes().contains(&b',')) {
        // pingora accepts equal duplicates; a server behind us may not agree.
        return Some(smuggling("more than one Content-Length", "content-length"));
    }
    if headers.contains_key(TRANSFER_ENCODING) && raw_content_length(session) {
        // pingora drops the Content-Length and forwards: refuse instead.
        return Some(smuggling("both Content-Length and Transfer-Encoding", "transfer-encoding"));
    }
    let declared = first.and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > settings.max_body_bytes as u64) {
        return Some(ProxyError::PayloadTooLarge { limit: settings.max_body_bytes });
    }
    None
}

fn smuggling(what: &str, param: &str) -> ProxyError {
    ProxyError::bad_request(format!("the request has {what}: its body framing is ambiguous"), Some(param))
}

/// The request line and headers, as sent (HTTP/1) or as decoded (HTTP/2).
fn head_len(session: &Session) -> usize {
    if let Some(h1) = session.as_downstream().as_http1() {
        return h1.get_headers_raw_bytes().len();
    }
    let req = session.req_header();
    let fields: usize = req.headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    fields + req.uri.to_string().len() + req.method.as_str().len()
}

/// Whether the raw HTTP/1 head has a Content-Length line (pingora removes it
/// from the parsed headers when Transfer-Encoding is present).
fn raw_content_length(session: &Session) -> bool {
    let Some(h1) = session.as_downstream().as_http1() else {
        return false;
    };
    let raw = h1.get_headers_raw_bytes();
    raw.split(|&b| b == b'\n').any(|line| {
        let name = line.split(|&b| b == b':').next().unwrap_or_default();
        name.len() < line.len() && name.trim_ascii().eq_ignore_ascii_case(b"content-length")
    })
}

/// Sets the per-request timeouts on the client connection.
pub(super) fn set_timeouts(settings: &Settings, session: &mut Session) {
    // Per read of the body: a client that stops sending mid-body is cut.
    session.set_read_timeout(Some(settings.limits.body_timeout));
    // Per write: a client that stops reading (a stalled stream) is cut, and
    // with it the upstream, which pingora stops reading meanwhile.
    session.set_write_timeout(Some(settings.limits.write_timeout));
}

/// A chunk of a proxied request body: refuses the request as soon as the
/// body read so far passes the cap (chunked bodies carry no length to check).
pub(super) async fn body_chunk(settings: &Settings, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
    if session.body_bytes_read() <= settings.max_body_bytes {
        return Ok(());
    }
    if session.response_written().is_none() {
        refuse(session, ctx, settings, &ProxyError::PayloadTooLarge { limit: settings.max_body_bytes }).await?;
    }
    // Stops the proxying: the upstream's connection is dropped mid-body.
    Error::e_explain(ErrorType::HTTPStatus(413), "request body over the cap")
}

/// Answers with `err` and closes the connection after the answer.
pub(super) async fn refuse(
    session: &mut Session,
    ctx: &mut RequestCtx,
    settings: &Settings,
    err: &ProxyError,
) -> Result<()> {
    session.set_keepalive(None);
    // Anthropic clients parse only their own error shape.
    let body: Bytes = match ctx.route.surface() {
        Surface::Messages => err.anthropic_body(),
        _ => err.openai_body(),
    };
    let mut resp = respond::json_header(err.status(), body.len())?;
    resp.insert_header(REQUEST_ID, request_id_value(&ctx.request_id)?)?;
    if let Some(seconds) = err.retry_after() {
        resp.insert_header(http::header::RETRY_AFTER, seconds.to_string())?;
    }
    cors::decorate(&mut resp, &settings.cors, ctx.allow_origin.as_ref());
    ctx.wrote_head(err.status());
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}
