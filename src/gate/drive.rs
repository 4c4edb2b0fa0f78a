//! Running the tool loop for one client connection: the loop's events,
//! encoded by the surface, go to the client as they come (the SSE head with
//! the first bytes), while the client connection is watched: a client that
//! hangs up cancels the loop, and with it the upstream request and the tool
//! calls. What to write at the end is the surface's to decide.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use tokio::sync::mpsc;

use super::{cors, respond, Gate, RequestCtx, REQUEST_ID};
use crate::error::ProxyError;
use crate::surfaces::StreamEncoder;
use crate::tool_loop::{Event, Job, Outcome};
use crate::upstream::UpstreamError;

/// How a run went, for the surface to finish.
pub struct Driven {
    pub outcome: Outcome,
    /// Whether the SSE head went out: then only in-band bytes may follow.
    pub head_sent: bool,
}

/// Runs `job`; with `stream`, its events are encoded and written as they come.
pub async fn run(
    gate: &Gate,
    session: &mut Session,
    ctx: &mut RequestCtx,
    job: Job,
    mut stream: Option<&mut dyn StreamEncoder>,
) -> Result<Driven> {
    ctx.tool_loop = true;
    let tools = gate.tools_for(ctx);
    let tool_loop = gate.tool_loop(&*tools);
    let (tx, mut rx) = match stream {
        Some(_) => {
            let (tx, rx) = mpsc::channel::<Event>(32);
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    let work = tool_loop.run(job, tx);
    tokio::pin!(work);
    let (mut head_sent, mut watch_client) = (false, true);
    let mut outcome = None;
    loop {
        tokio::select! {
            event = recv(&mut rx), if rx.is_some() => match event {
                Some(event) => {
                    let bytes = stream.as_deref_mut().and_then(|s| s.event(&event));
                    if let Some(bytes) = bytes {
                        if !head_sent {
                            write_sse_head(gate, session, ctx).await?;
                            head_sent = true;
                        }
                        session.write_response_body(Some(bytes), false).await?;
                    }
                }
                None => rx = None,
            },
            done = &mut work, if outcome.is_none() => outcome = Some(done),
            gone = session.read_body_or_idle(true), if watch_client => {
                if gone.is_err() {
                    tracing::info!(request_id = %ctx.request_id, "client went away; cancelling");
                    return Ok(Driven { outcome: Outcome::Gone, head_sent });
                }
                watch_client = false;
            }
        }
        // Done once the loop has finished and its channel has drained.
        if let (Some(_), None) = (&outcome, &rx) {
            break;
        }
    }
    let outcome = outcome.unwrap_or(Outcome::Gone);
    if let Outcome::Done(answer) = &outcome {
        let tokens = answer.usage.as_ref().map(|u| (u.prompt_tokens, u.completion_tokens));
        gate.metrics.answered(ctx.route.surface(), answer.texts.len() as u32, tokens);
    }
    Ok(Driven { outcome, head_sent })
}

async fn recv(rx: &mut Option<mpsc::Receiver<Event>>) -> Option<Event> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The head of a streamed answer (once: check `head_sent`).
pub async fn write_sse_head(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
    let mut resp = ResponseHeader::build(200, Some(6))?;
    resp.insert_header("content-type", "text/event-stream")?;
    resp.insert_header("cache-control", "no-cache")?;
    resp.insert_header(REQUEST_ID, super::request_id_value(&ctx.request_id)?)?;
    if let Some(id) = &ctx.session_id {
        resp.insert_header("x-session-id", id.as_str())?;
    }
    cors::decorate(&mut resp, &gate.settings.cors, ctx.allow_origin.as_ref());
    ctx.wrote_head(200);
    ctx.stream = Some(gate.metrics.hold_stream());
    session.write_response_header(Box::new(resp), false).await
}

/// Writes the last bytes of a stream and ends it.
pub async fn end_stream(session: &mut Session, last: Bytes) -> Result<()> {
    session.write_response_body(Some(last), false).await?;
    session.write_response_body(None, true).await
}

/// The in-band error for a run that failed after the stream started.
pub fn in_band(outcome: &Outcome) -> Option<ProxyError> {
    match outcome {
        Outcome::Failed(e) => Some(e.clone()),
        Outcome::Refused(e) => Some(ProxyError::UpstreamProtocol(e.describe())),
        Outcome::Done(_) | Outcome::Gone => None,
    }
}

/// The upstream's own error answer, passed on unchanged.
pub async fn pass_on(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx, e: UpstreamError) -> Result<()> {
    let mut resp = respond::json_header(e.status, e.body.len())?;
    if let Some(ct) = e.content_type {
        resp.insert_header("content-type", ct)?;
    }
    if let Some(ra) = e.retry_after {
        resp.insert_header("retry-after", ra)?;
    }
    resp.insert_header(REQUEST_ID, super::request_id_value(&ctx.request_id)?)?;
    cors::decorate(&mut resp, &gate.settings.cors, ctx.allow_origin.as_ref());
    ctx.wrote_head(e.status);
    ctx.upstream_status = Some(e.status);
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(e.body), true).await
}
