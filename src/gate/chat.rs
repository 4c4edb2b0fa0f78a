//! `POST /v1/chat/completions` with MCP tools: read and check the body and
//! the `x-mcp-*` headers, run the tool loop, and write its answer with the
//! chat-completions surface, streamed or not.

use std::sync::Arc;

use pingora::proxy::Session;
use pingora::Result;

use super::drive::{self, Driven};
use super::respond::{self, Answer};
use super::{Gate, RequestCtx};
use crate::error::ProxyError;
use crate::mcp::Catalog;
use crate::openai::chat::{parse_request, ChatRequest};
use crate::settings::keys::AllowList;
use crate::settings::ModeSetting;
use crate::surfaces::chat::{completion, ChatStream};
use crate::surfaces::progress::Progress;
use crate::tool_loop::{Job, Outcome};
use crate::upstream::Caller;

pub fn header(session: &Session, name: &str) -> Option<String> {
    session.req_header().headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// What the client asked of the MCP tools in its `x-mcp-*` headers, the
/// same on every tool-loop route; a value it cannot mean is a 400 naming the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct McpHeaders {
    /// `x-mcp-tools: off`: no MCP tools for this request.
    pub off: bool,
    /// `x-mcp-tool-mode`.
    pub mode: Option<ModeSetting>,
    /// `x-mcp-progress: on`: a chat stream shows its MCP tool calls as they
    /// run ([`crate::surfaces::progress`]); other answers are the same either way.
    pub progress: bool,
}

pub fn mcp_headers(session: &Session) -> Result<McpHeaders, ProxyError> {
    let off = match on_or_off(session, "x-mcp-tools", &["auto"])? {
        Some(on) => !on,
        None => false,
    };
    let mode = match session.req_header().headers.get("x-mcp-tool-mode").map(|v| v.to_str().unwrap_or("?")) {
        None => None,
        Some(v) => Some(ModeSetting::parse(v).ok_or_else(|| {
            ProxyError::bad_request(
                format!("x-mcp-tool-mode must be auto, native or prompt, not {v:?}"),
                Some("x-mcp-tool-mode"),
            )
        })?),
    };
    let progress = on_or_off(session, "x-mcp-progress", &[])?.unwrap_or(false);
    Ok(McpHeaders { off, mode, progress })
}

/// `x-mcp-allow: files, search__query, db__read_*`: this request is offered
/// only these of its tools, in the allow-list's terms (a server's name, a
/// tool as `server__tool` with its name on the server, a prefix ending in
/// `*`). It narrows what the key may see and never widens it. `None` when
/// absent; a 400 naming the header for an empty list or an entry that can
/// be no such name (`x-mcp-tools: off` is the way to offer none).
pub fn allow_header(session: &Session) -> Result<Option<AllowList>, ProxyError> {
    const NAME: &str = "x-mcp-allow";
    let Some(value) = session.req_header().headers.get(NAME) else {
        return Ok(None);
    };
    parse_allow(value.to_str().unwrap_or("\u{fffd}"))
        .map(Some)
        .map_err(|why| ProxyError::bad_request(format!("{NAME}: {why}"), Some(NAME)))
}

fn parse_allow(value: &str) -> Result<AllowList, String> {
    let entries: Vec<&str> = value.split(',').map(str::trim).collect();
    if entries.iter().all(|e| e.is_empty()) {
        return Err("the list is empty (to offer no MCP tools, send x-mcp-tools: off)".into());
    }
    let name_char = |c: char| c.is_ascii_alphanumeric() || "_-.:".contains(c);
    let mut patterns = Vec::with_capacity(entries.len());
    for entry in entries {
        let stem = entry.strip_suffix('*').unwrap_or(entry);
        if (entry.is_empty() || !stem.chars().all(name_char)) && entry != "*" {
            return Err(format!("{entry:?} is not a server name, server__tool or prefix*, separated by commas"));
        }
        patterns.push(entry.to_string());
    }
    Ok(AllowList::only(patterns))
}

/// A header that is `on` or `off` (any case; `also_on` are other words for
/// on), `None` when it is absent, a 400 naming it for anything else.
fn on_or_off(session: &Session, name: &str, also_on: &[&str]) -> Result<Option<bool>, ProxyError> {
    let Some(value) = session.req_header().headers.get(name) else {
        return Ok(None);
    };
    match value.to_str().unwrap_or("?").trim() {
        v if v.eq_ignore_ascii_case("on") || also_on.iter().any(|w| v.eq_ignore_ascii_case(w)) => Ok(Some(true)),
        v if v.eq_ignore_ascii_case("off") => Ok(Some(false)),
        other => Err(ProxyError::bad_request(format!("{name} must be on or off, not {other:?}"), Some(name))),
    }
}

/// Whether this request goes through the tool loop: tools exist for it and
/// the client did not turn them off. Otherwise it is proxied as it is.
pub fn applies(gate: &Gate, session: &Session, ctx: &RequestCtx) -> Result<bool, ProxyError> {
    let headers = mcp_headers(session)?;
    Ok(!headers.off && !gate.tools_for(ctx).catalog().is_empty())
}

/// Handles the request completely (always `Ok(true)` unless a write fails).
pub async fn handle(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let (req, headers) = match read_request(gate, session).await.and_then(|r| Ok((r, mcp_headers(session)?))) {
        Ok(parsed) => parsed,
        Err(e) => {
            respond::send(session, ctx, &gate.settings, Answer::error(&e)).await?;
            return Ok(true);
        }
    };
    let mcp = req.tool_choice.as_ref().and_then(|c| c.as_str()) != Some("none");
    let stream = req.is_stream();
    let mut encoder = Progress::new(ChatStream::new(req.wants_stream_usage()), progress_catalog(gate, ctx, headers));
    let job = Job::new(req, gate.caller(session, ctx), headers.mode, mcp);
    let driven = drive::run(gate, session, ctx, job, stream.then_some(&mut encoder as _)).await?;
    if stream {
        finish_stream(gate, session, ctx, driven, &mut encoder.inner, None).await?;
    } else {
        finish_json(gate, session, ctx, driven.outcome, completion).await?;
    }
    Ok(true)
}

/// The catalog a [`Progress`] encoder names servers from, when the client asked for progress.
pub fn progress_catalog(gate: &Gate, ctx: &RequestCtx, headers: McpHeaders) -> Option<Arc<Catalog>> {
    headers.progress.then(|| gate.tools_for(ctx).catalog())
}

/// The end of a non-streamed answer: `body` of the answer, or the error.
pub async fn finish_json(
    gate: &Gate,
    session: &mut Session,
    ctx: &mut RequestCtx,
    outcome: Outcome,
    body: impl FnOnce(&crate::tool_loop::Answer) -> serde_json::Value,
) -> Result<()> {
    match outcome {
        Outcome::Done(answer) => respond::send(session, ctx, &gate.settings, Answer::json(200, body(&answer))).await,
        Outcome::Refused(e) => drive::pass_on(gate, session, ctx, e).await,
        Outcome::Failed(e) => respond::send(session, ctx, &gate.settings, Answer::error(&e)).await,
        Outcome::Gone => Ok(()),
    }
}

/// The end of a streamed answer: the surface's last chunks (with
/// `last_event` right before `[DONE]`), or the error in-band once the stream
/// has started (no `[DONE]`, so clients raise), or an ordinary error answer
/// if it has not.
pub async fn finish_stream(
    gate: &Gate,
    session: &mut Session,
    ctx: &mut RequestCtx,
    driven: Driven,
    encoder: &mut ChatStream,
    last_event: Option<serde_json::Value>,
) -> Result<()> {
    let Driven { outcome, head_sent } = driven;
    if let Some(e) = drive::in_band(&outcome).filter(|_| head_sent) {
        tracing::info!(request_id = %ctx.request_id, "the answer failed after it started: {e}");
        return drive::end_stream(session, ChatStream::error(&e)).await;
    }
    match outcome {
        Outcome::Done(answer) => {
            if !head_sent {
                drive::write_sse_head(gate, session, ctx).await?;
            }
            drive::end_stream(session, encoder.finish_with(&answer, last_event.as_ref())).await
        }
        other => finish_json(gate, session, ctx, other, |_| serde_json::Value::Null).await,
    }
}

pub async fn read_body(gate: &Gate, session: &mut Session) -> Result<Vec<u8>, ProxyError> {
    let cap = gate.settings.max_body_bytes;
    // A declared length over the cap was already refused (`guard::check`,
    // before any route); a body without one is counted as it comes.
    let declared = header(session, "content-length").and_then(|v| v.parse::<usize>().ok());
    let mut body = Vec::with_capacity(declared.unwrap_or(0).min(cap));
    loop {
        match session.read_request_body().await {
            Ok(Some(piece)) => {
                if body.len() + piece.len() > cap {
                    return Err(ProxyError::PayloadTooLarge { limit: cap });
                }
                body.extend_from_slice(&piece);
            }
            Ok(None) => break,
            Err(e) => return Err(ProxyError::bad_request(format!("could not read the request body: {e}"), None)),
        }
    }
    Ok(body)
}

async fn read_request(gate: &Gate, session: &mut Session) -> Result<ChatRequest, ProxyError> {
    let body = read_body(gate, session).await?;
    parse_request(&body).map_err(|(message, param)| ProxyError::bad_request(message, param))
}

impl Gate {
    /// Who the upstream call is made for (see [`Caller`]).
    pub(super) fn caller(&self, session: &Session, ctx: &RequestCtx) -> Caller {
        Caller { authorization: self.forwardable_authorization(session), request_id: ctx.request_id.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_header_takes_the_allow_lists_patterns() {
        let allow = parse_allow(" test, other__add ,db__read_*").unwrap_or_else(|e| panic!("{e}"));
        assert!(allow.permits("test", "echo"));
        assert!(allow.permits("other", "add") && !allow.permits("other", "sub"));
        assert!(allow.permits("db", "read_rows") && !allow.permits("db", "write"));
        assert!(parse_allow("*").is_ok_and(|a| a.permits("any", "thing")));
    }

    #[test]
    fn the_allow_header_refuses_what_can_name_nothing() {
        for bad in ["", " , ", "test,,echo", "te st", "a/b", "x*y", "**"] {
            let e = parse_allow(bad).err().unwrap_or_else(|| panic!("{bad:?} was accepted"));
            assert!(!e.is_empty(), "{bad:?}");
        }
        assert!(parse_allow("").is_err_and(|e| e.contains("x-mcp-tools: off")));
    }
}
