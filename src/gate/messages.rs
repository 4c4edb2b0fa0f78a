//! `POST /v1/messages` (Anthropic's Messages API) over the tool loop and the
//! upstream's chat completions, and `POST /v1/messages/count_tokens`. Every
//! error on these routes is in Anthropic's shape, with the same status.

use bytes::Bytes;
use pingora::proxy::Session;
use pingora::Result;
use serde_json::{json, Value};

use super::chat::{mcp_headers, read_body};
use super::drive::{self, Driven};
use super::respond::{self, Answer};
use super::{Gate, RequestCtx};
use crate::error::{anthropic_error_type, ProxyError};
use crate::surfaces::messages::output::message;
use crate::surfaces::messages::request::{decode, Decoded};
use crate::surfaces::messages::stream::MessagesStream;
use crate::tool_loop::native::tool_specs;
use crate::tool_loop::{Job, Outcome};
use crate::upstream::UpstreamError;

/// An error answer in Anthropic's shape.
pub async fn refuse(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx, e: &ProxyError) -> Result<()> {
    respond::send(session, ctx, &gate.settings, Answer::raw(e.status(), "application/json", e.anthropic_body())).await
}

async fn read(gate: &Gate, session: &mut Session) -> Result<Decoded, ProxyError> {
    let body = read_body(gate, session).await?;
    let value: Value = serde_json::from_slice(&body)
        .map_err(|e| ProxyError::bad_request(format!("the body is not valid JSON: {e}"), None))?;
    decode(&value)
}

/// Handles the request completely (always `Ok(true)` unless a write fails).
pub async fn post(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let parsed = match read(gate, session).await.and_then(|d| Ok((d, mcp_headers(session)?))) {
        Ok(parsed) => parsed,
        Err(e) => {
            refuse(gate, session, ctx, &e).await?;
            return Ok(true);
        }
    };
    let (decoded, headers) = parsed;
    let mcp = decoded.mcp && !headers.off;
    let stream = decoded.stream;
    let job = Job::new(decoded.chat, gate.caller(session, ctx), headers.mode, mcp);
    let mut encoder = MessagesStream::new();
    let driven = drive::run(gate, session, ctx, job, stream.then_some(&mut encoder as _)).await?;
    let Driven { outcome, head_sent } = driven;
    if let Some(e) = drive::in_band(&outcome).filter(|_| head_sent) {
        tracing::info!(request_id = %ctx.request_id, "the answer failed after it started: {e}");
        drive::end_stream(session, MessagesStream::error(&e)).await?;
        return Ok(true);
    }
    match outcome {
        Outcome::Done(answer) if stream => {
            if !head_sent {
                drive::write_sse_head(gate, session, ctx).await?;
            }
            drive::end_stream(session, encoder.finish(&answer)).await?;
        }
        Outcome::Done(answer) => {
            respond::send(session, ctx, &gate.settings, Answer::json(200, message(&answer))).await?
        }
        Outcome::Refused(e) => refused(gate, session, ctx, e).await?,
        Outcome::Failed(e) => refuse(gate, session, ctx, &e).await?,
        Outcome::Gone => {}
    }
    Ok(true)
}

/// The upstream's own refusal, in Anthropic's shape with its status and
/// message (an OpenAI-shaped body's `error.message`, else the body's text).
async fn refused(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx, e: UpstreamError) -> Result<()> {
    let parsed: Option<Value> = serde_json::from_slice(&e.body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&e.body).chars().take(500).collect());
    let kind = anthropic_error_type(e.status);
    let body = json!({"type": "error", "error": {"type": kind, "message": text}});
    ctx.upstream_status = Some(e.status);
    let answer = Answer::raw(e.status, "application/json", Bytes::from(body.to_string()));
    respond::send(session, ctx, &gate.settings, answer).await
}

/// `count_tokens`: an estimate of the prompt's tokens, one per four
/// characters of the messages' text and the tools' JSON as the upstream
/// would receive them (the client's and the MCP tools this request would be
/// offered; rounded up), so clients that ask first keep working and budget
/// for the tools the proxy adds.
pub async fn count_tokens(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let counted = async {
        let body = read_body(gate, session).await?;
        let mut value: Value = serde_json::from_slice(&body)
            .map_err(|e| ProxyError::bad_request(format!("the body is not valid JSON: {e}"), None))?;
        // count_tokens takes no max_tokens; the decoder wants one.
        value["max_tokens"] = json!(1);
        let decoded = decode(&value)?;
        let text: usize = decoded.chat.messages.iter().map(|m| m.content_text().chars().count()).sum();
        let client = decoded.chat.tools.clone().unwrap_or_default();
        let mcp = if decoded.mcp && !mcp_headers(session)?.off {
            let names = client.iter().filter_map(|t| t["function"]["name"].as_str().map(str::to_string)).collect();
            tool_specs(&gate.tools_for(ctx).catalog(), &names)
        } else {
            Vec::new()
        };
        let tools = if client.is_empty() && mcp.is_empty() {
            0
        } else {
            Value::Array([client, mcp].concat()).to_string().chars().count()
        };
        Ok::<_, ProxyError>((text + tools).div_ceil(4))
    };
    match counted.await {
        Ok(n) => respond::send(session, ctx, &gate.settings, Answer::json(200, json!({"input_tokens": n}))).await?,
        Err(e) => refuse(gate, session, ctx, &e).await?,
    }
    Ok(true)
}
