//! `POST /v1/chat/completions` with MCP tools: read and check the body, pick
//! the tool mode, run the tool loop, and write its answer, streaming or not.
//! A client that hangs up cancels the loop, and with it the upstream request
//! and the tool calls.

use std::sync::Arc;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use tokio::sync::mpsc;

use super::respond::{self, Answer};
use super::{cors, Gate, RequestCtx, REQUEST_ID};
use crate::error::ProxyError;
use crate::openai::chat::{parse_request, ChatRequest, Message};
use crate::sessions::SessionStore;
use crate::settings::ModeSetting;
use crate::tool_loop::{rejects_tools, Finish, Run, ToolMode};
use crate::upstream::Caller;

/// Whether this request goes through the tool loop: tools exist and the
/// client did not turn them off. Otherwise it is proxied as it is.
pub fn header(session: &Session, name: &str) -> Option<String> {
    session.req_header().headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

pub fn applies(gate: &Gate, session: &Session, ctx: &RequestCtx) -> Result<bool, ProxyError> {
    let given = session.req_header().headers.get("x-mcp-tools").map(|v| v.to_str().unwrap_or("?"));
    match given {
        None => {}
        Some(v) if v.eq_ignore_ascii_case("on") || v.eq_ignore_ascii_case("auto") => {}
        Some(v) if v.eq_ignore_ascii_case("off") => return Ok(false),
        Some(other) => {
            return Err(ProxyError::bad_request(
                format!("x-mcp-tools must be on or off, not {other:?}"),
                Some("x-mcp-tools"),
            ))
        }
    }
    mode_header(session)?;
    Ok(has_tools(gate, ctx))
}

/// Whether the tools this request may use are not empty.
pub fn has_tools(gate: &Gate, ctx: &RequestCtx) -> bool {
    !gate.tools_for(ctx).catalog().is_empty()
}

fn mode_header(session: &Session) -> Result<Option<ModeSetting>, ProxyError> {
    match header(session, "x-mcp-tool-mode") {
        None => Ok(None),
        Some(v) => ModeSetting::parse(&v).map(Some).ok_or_else(|| {
            ProxyError::bad_request(
                format!("x-mcp-tool-mode must be auto, native or prompt, not {v:?}"),
                Some("x-mcp-tool-mode"),
            )
        }),
    }
}

/// Handles the request completely (always `Ok(true)` unless the write fails).
pub async fn handle(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let req = match read_request(gate, session).await {
        Ok(req) => req,
        Err(e) => {
            respond::send(session, ctx, &gate.settings, Answer::error(&e)).await?;
            return Ok(true);
        }
    };
    let (mode, auto) = pick_mode(gate, session, &req.model);
    let mcp = req.tool_choice.as_ref().and_then(|c| c.as_str()) != Some("none");
    let caller = Caller { authorization: gate.forwardable_authorization(session), request_id: ctx.request_id.clone() };
    let job = Job { req, mode, mcp, caller, record: None };
    let done = run_with_fallback(gate, session, ctx, job, auto).await?;
    if let Some(finish) = done.finish {
        write_finish(gate, session, ctx, finish).await?;
    }
    Ok(true)
}

/// Runs `job`; in `auto` mode, an upstream that rejects the `tools` field
/// gets the same request again in prompt mode (and the model is remembered).
pub async fn run_with_fallback(
    gate: &Gate,
    session: &mut Session,
    ctx: &mut RequestCtx,
    job: Job,
    auto: bool,
) -> Result<Executed> {
    let retry = Job {
        req: job.req.clone(),
        mode: ToolMode::Prompt,
        mcp: job.mcp,
        caller: job.caller.clone(),
        record: job.record.clone(),
    };
    let was_native = job.mode == ToolMode::Native;
    let done = execute(gate, session, ctx, job).await?;
    if let Some(Finish::Upstream { status, body, .. }) = &done.finish {
        if auto && was_native && rejects_tools(*status, body) {
            tracing::info!(model = %retry.req.model, "the upstream rejects the tools field; using prompt mode for this model");
            gate.learn_prompt_only(&retry.req.model);
            return execute(gate, session, ctx, retry).await;
        }
    }
    Ok(done)
}

/// The tool mode for `model`: the request's header, the model's own
/// setting, what was learned about it, or the global setting.
pub fn pick_mode(gate: &Gate, session: &Session, model: &str) -> (ToolMode, bool) {
    let requested = mode_header(session).ok().flatten();
    let configured = requested.unwrap_or_else(|| gate.settings.tool.mode_for(model));
    let mode = match configured {
        ModeSetting::Native => ToolMode::Native,
        ModeSetting::Prompt => ToolMode::Prompt,
        ModeSetting::Auto if gate.learned_prompt_only(model) => ToolMode::Prompt,
        ModeSetting::Auto => ToolMode::Native,
    };
    (mode, configured == ModeSetting::Auto)
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

/// One run of the tool loop for the gate.
pub struct Job {
    pub req: ChatRequest,
    pub mode: ToolMode,
    pub mcp: bool,
    pub caller: Caller,
    /// `/chat`: where the finished turn is stored, before the client sees
    /// `[DONE]`, and the session announced in an event before it.
    pub record: Option<TurnRecord>,
}

#[derive(Clone)]
pub struct TurnRecord {
    pub store: Arc<dyn SessionStore>,
    pub session_id: String,
    pub turn: u64,
}

/// What a job left to do and what it produced.
pub struct Executed {
    /// The finish still to be written (`None`: written, or the client is gone).
    pub finish: Option<Finish>,
    /// The messages the turn added (for `/chat` to store).
    pub transcript: Vec<Message>,
}

const DONE: &[u8] = b"data: [DONE]\n\n";

/// Runs the loop while watching for the client to hang up; streams go to
/// the client as they come.
pub async fn execute(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx, job: Job) -> Result<Executed> {
    let tools = gate.tools_for(ctx);
    let run = Run {
        upstream: &*gate.chat_upstream,
        tools: &*tools,
        limits: &gate.settings.tool.limits,
        caller: job.caller,
        mode: job.mode,
        mcp: job.mcp,
        transcript: Default::default(),
    };
    let (tx, mut rx) = if job.req.is_stream() {
        let (tx, rx) = mpsc::channel::<Bytes>(32);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let work = run.run(job.req.clone(), tx);
    tokio::pin!(work);
    let (mut header_sent, mut watch_client) = (false, true);
    let mut result = None;
    loop {
        tokio::select! {
            bytes = recv(&mut rx), if rx.is_some() => match bytes {
                Some(bytes) => {
                    if !header_sent {
                        session.write_response_header(Box::new(sse_header(gate, ctx)?), false).await?;
                        ctx.local_status = Some(200);
                        header_sent = true;
                    }
                    if bytes.as_ref() == DONE {
                        if let Some(record) = &job.record {
                            // Stored before the client is told the answer is complete.
                            let stored = record.store.complete_turn(&record.session_id, record.turn, &run.take_transcript()).await;
                            let event = match stored {
                                Ok(()) => serde_json::json!({"object": "chat.session", "session_id": record.session_id}),
                                Err(e) => serde_json::from_slice(&ProxyError::Internal(e.to_string()).openai_body()).unwrap_or_default(),
                            };
                            session.write_response_body(Some(Bytes::from(format!("data: {event}\n\n"))), false).await?;
                            if event.get("error").is_some() {
                                continue;
                            }
                        }
                    }
                    session.write_response_body(Some(bytes), false).await?;
                }
                None => rx = None,
            },
            r = &mut work, if result.is_none() => result = Some(r),
            gone = session.read_body_or_idle(true), if watch_client => {
                if gone.is_err() {
                    tracing::info!(request_id = %ctx.request_id, "client went away; cancelling");
                    return Ok(Executed { finish: None, transcript: Vec::new() });
                }
                watch_client = false;
            }
        }
        // Done once the loop has finished and its channel has drained.
        if result.is_some() && rx.is_none() {
            break;
        }
    }
    let transcript = run.take_transcript();
    let result = result.unwrap_or(Ok(Finish::Gone));
    if header_sent {
        session.write_response_body(None, true).await?;
        return Ok(Executed { finish: None, transcript });
    }
    let finish = match result {
        Ok(Finish::Streamed) | Ok(Finish::Gone) => None,
        Ok(other) => Some(other),
        Err(e) => {
            respond::send(session, ctx, &gate.settings, Answer::error(&e)).await?;
            None
        }
    };
    Ok(Executed { finish, transcript })
}

async fn recv(rx: &mut Option<mpsc::Receiver<Bytes>>) -> Option<Bytes> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn sse_header(gate: &Gate, ctx: &RequestCtx) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(200, Some(6))?;
    resp.insert_header("content-type", "text/event-stream")?;
    resp.insert_header("cache-control", "no-cache")?;
    resp.insert_header(REQUEST_ID, super::request_id_value(&ctx.request_id)?)?;
    if let Some(id) = &ctx.session_id {
        resp.insert_header("x-session-id", id.as_str())?;
    }
    cors::decorate(&mut resp, &gate.settings.cors, ctx.allow_origin.as_ref());
    Ok(resp)
}

pub async fn write_finish(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx, finish: Finish) -> Result<()> {
    match finish {
        Finish::Completion(body) => respond::send(session, ctx, &gate.settings, Answer::json(200, body)).await,
        Finish::Upstream { status, retry_after, content_type, body } => {
            let mut resp = respond::json_header(status, body.len())?;
            if let Some(ct) = content_type {
                resp.insert_header("content-type", ct)?;
            }
            if let Some(ra) = retry_after {
                resp.insert_header("retry-after", ra)?;
            }
            resp.insert_header(REQUEST_ID, super::request_id_value(&ctx.request_id)?)?;
            cors::decorate(&mut resp, &gate.settings.cors, ctx.allow_origin.as_ref());
            ctx.local_status = Some(status);
            ctx.upstream_status = Some(status);
            session.write_response_header(Box::new(resp), false).await?;
            session.write_response_body(Some(body), true).await
        }
        Finish::Streamed | Finish::Gone => Ok(()),
    }
}
