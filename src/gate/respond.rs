//! Responses the proxy writes itself, and the mapping from pingora's errors to
//! ours.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorSource, ErrorType, Result};
use serde_json::Value;

use super::{cors, RequestCtx, REQUEST_ID};
use crate::error::ProxyError;
use crate::settings::Settings;

/// A complete response decided by the proxy.
pub struct Answer {
    pub status: u16,
    content_type: &'static str,
    body: Bytes,
}

impl Answer {
    pub fn json(status: u16, value: Value) -> Self {
        Self::raw(status, "application/json", Bytes::from(value.to_string()))
    }

    pub fn error(err: &ProxyError) -> Self {
        Self::raw(err.status(), "application/json", err.openai_body())
    }

    pub fn raw(status: u16, content_type: &'static str, body: Bytes) -> Self {
        Self { status, content_type, body }
    }
}

/// A response header for a JSON body of `len` bytes. A client error that
/// sending again cannot mend (a bad body, a wrong key, an unknown route)
/// says `x-should-retry: false`, which the OpenAI and Anthropic SDKs and
/// Claude Code obey: Claude Code otherwise retries a 401 ten times over
/// two minutes before it tells its user the key is wrong.
pub fn json_header(status: u16, len: usize) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(status, Some(4))?;
    resp.insert_header("content-type", "application/json")?;
    resp.insert_header("content-length", len.to_string())?;
    if (400..500).contains(&status) && !matches!(status, 408 | 409 | 429) {
        resp.insert_header("x-should-retry", "false")?;
    }
    Ok(resp)
}

/// Writes `answer` with the request id and CORS headers.
pub async fn send(session: &mut Session, ctx: &mut RequestCtx, settings: &Settings, answer: Answer) -> Result<()> {
    let mut resp = json_header(answer.status, answer.body.len())?;
    resp.insert_header("content-type", answer.content_type)?;
    resp.insert_header(REQUEST_ID, super::request_id_value(&ctx.request_id)?)?;
    if let Some(id) = &ctx.session_id {
        resp.insert_header("x-session-id", id.as_str())?;
    }
    cors::decorate(&mut resp, &settings.cors, ctx.allow_origin.as_ref());
    ctx.wrote_head(answer.status);
    let head_only = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), head_only).await?;
    if !head_only {
        session.write_response_body(Some(answer.body), true).await?;
    }
    Ok(())
}

/// Answers a CORS preflight: 204 with the grants when the origin is allowed,
/// an OpenAI-shaped 403 when it is not.
pub async fn preflight(session: &mut Session, ctx: &mut RequestCtx, settings: &Settings) -> Result<bool> {
    let Some(allow) = ctx.allow_origin.clone() else {
        let origin =
            session.req_header().headers.get("origin").and_then(|o| o.to_str().ok()).unwrap_or("(none)").to_string();
        send(session, ctx, settings, Answer::error(&ProxyError::OriginNotAllowed { origin })).await?;
        return Ok(true);
    };
    let requested = session.req_header().headers.get("access-control-request-headers").cloned();
    let mut resp = ResponseHeader::build(204, Some(8))?;
    resp.insert_header(REQUEST_ID, super::request_id_value(&ctx.request_id)?)?;
    resp.insert_header("content-length", "0")?;
    cors::decorate(&mut resp, &settings.cors, Some(&allow));
    cors::preflight(&mut resp, requested.as_ref(), settings.cors_max_age_seconds);
    ctx.wrote_head(204);
    session.write_response_header(Box::new(resp), true).await?;
    Ok(true)
}

/// Our error for a pingora error, or `None` when the client is gone and
/// there is nobody to answer.
pub fn classify(e: &Error) -> Option<ProxyError> {
    use ErrorType::*;
    let why = e.context.as_ref().map(|c| c.as_str().to_string()).unwrap_or_else(|| e.etype().as_str().to_string());
    let err = match (e.esource(), e.etype()) {
        (_, HTTPStatus(code)) if (400..500).contains(code) => ProxyError::bad_request(why, None),
        (ErrorSource::Downstream, ReadError | WriteError | ConnectionClosed) => return None,
        (ErrorSource::Downstream, ReadTimedout | WriteTimedout) => return None,
        (ErrorSource::Downstream, _) => ProxyError::bad_request(format!("malformed request: {why}"), None),
        (_, ConnectTimedout) => ProxyError::UpstreamTimeout("no connection within the connect timeout".into()),
        (_, ReadTimedout) => ProxyError::UpstreamTimeout("no response within the read timeout".into()),
        (_, WriteTimedout) => ProxyError::UpstreamTimeout("the upstream stopped accepting the request".into()),
        (_, ConnectRefused) => ProxyError::UpstreamUnreachable("connection refused".into()),
        (_, ConnectNoRoute) => ProxyError::UpstreamUnreachable(why),
        (_, TLSHandshakeFailure | TLSHandshakeTimedout | InvalidCert | HandshakeError) => {
            ProxyError::UpstreamUnreachable(format!("TLS handshake failed: {why}"))
        }
        (ErrorSource::Upstream, InvalidHTTPHeader | H1Error | H2Error | InvalidH2) => ProxyError::UpstreamProtocol(why),
        (ErrorSource::Upstream, _) => ProxyError::UpstreamUnreachable(format!("{}: {why}", e.etype().as_str())),
        (ErrorSource::Internal | ErrorSource::Unset, _) => ProxyError::Internal(why),
    };
    Some(err)
}
