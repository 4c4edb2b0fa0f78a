//! `/chat`: the simple endpoint with server-side sessions (its shapes:
//! [`crate::surfaces::session`]).
//!
//! One turn runs through the same tool loop as `/v1/chat/completions`, with
//! the same `x-mcp-*` headers. Turns on one session are serialised; the
//! user's message is stored before the upstream is called and the answer
//! (with the turn's tool calls and results) before the client is told it is
//! complete. An error after a stream has started is an error event, never a
//! second response.

use pingora::proxy::Session;
use pingora::Result;

use super::chat::{finish_json, finish_stream, header, mcp_headers, progress_catalog, read_body, McpHeaders};
use super::drive::{self, Driven};
use super::respond::{self, Answer};
use super::{Gate, RequestCtx};
use crate::error::ProxyError;
use crate::metrics::SessionEvent;
use crate::openai::chat::{ChatRequest, Message};
use crate::sessions::{context, owner_of, SessionStore};
use crate::surfaces::chat::ChatStream;
use crate::surfaces::progress::Progress;
use crate::surfaces::session::{self as wire, TurnRequest};
use crate::tool_loop::{Job, Outcome};

fn not_found(id: &str) -> ProxyError {
    ProxyError::SessionNotFound { id: id.chars().take(64).collect() }
}

fn store_error(e: impl std::fmt::Display) -> ProxyError {
    ProxyError::Internal(e.to_string())
}

/// `POST /chat`.
pub async fn post(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let started = match start_turn(gate, session, ctx).await {
        Ok(started) => started,
        Err(e) => {
            respond::send(session, ctx, &gate.settings, Answer::error(&e)).await?;
            return Ok(true);
        }
    };
    run_turn(gate, session, ctx, started).await?;
    Ok(true)
}

/// A turn whose user message is stored and whose session is locked.
struct Started {
    req: TurnRequest,
    headers: McpHeaders,
    job: Job,
    id: String,
    turn: u64,
    store: std::sync::Arc<dyn SessionStore>,
    _lock: crate::sessions::SessionLock,
}

/// Everything before the upstream is called; any failure here is a plain error answer.
async fn start_turn(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<Started, ProxyError> {
    let headers = mcp_headers(session)?;
    let body = read_body(gate, session).await?;
    let (req, message) = wire::parse(&body)?;
    let owner = owner_of(header(session, "authorization").as_deref());
    let store = gate.sessions.clone();
    let id = match &req.session_id {
        Some(id) => id.clone(),
        None => {
            let id = store.create(&owner).await.map_err(store_error)?;
            gate.metrics.session(SessionEvent::Created, store.kind());
            id
        }
    };
    if store.load(&id, &owner).await.map_err(store_error)?.is_none() {
        return Err(not_found(&id));
    }
    // Known from here on, even if the turn fails (then no `chat.session` event comes).
    ctx.session_id = Some(id.clone());
    // One turn at a time per session; the second waits and sees the first's turn.
    // A turn stuck longer than a whole request's budget is not waited for.
    let wait = gate.settings.tool.limits.budget;
    let lock = tokio::time::timeout(wait, store.lock(&id))
        .await
        .map_err(|_| ProxyError::SessionBusy { id: id.clone() })?
        .map_err(store_error)?;
    let history = store.load(&id, &owner).await.map_err(store_error)?.ok_or_else(|| not_found(&id))?;
    let user = Message::text("user", message);
    let turn = store.begin_turn(&id, &user).await.map_err(store_error)?;
    let cfg = &gate.settings.session;
    let request = ChatRequest {
        model: req.model.clone().unwrap_or_else(|| gate.settings.default_model.clone()),
        messages: context(&history, &cfg.system_prompt, &user, cfg.context_budget_chars),
        stream: Some(req.stream),
        tools: None,
        tool_choice: None,
        stream_options: None,
        rest: Default::default(),
    };
    let job = Job::new(request, gate.caller(session, ctx), headers.mode, !headers.off);
    Ok(Started { req, headers, job, id, turn, store, _lock: lock })
}

async fn run_turn(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx, started: Started) -> Result<()> {
    let Started { req, headers, job, id, turn, store, _lock } = started;
    let mut encoder = Progress::new(ChatStream::new(false), progress_catalog(gate, ctx, headers));
    let driven = drive::run(gate, session, ctx, job, req.stream.then_some(&mut encoder as _)).await?;
    let Driven { outcome, head_sent } = driven;
    // Stored before the client is told the answer is complete.
    let stored = match &outcome {
        Outcome::Done(answer) => {
            let stored = store.complete_turn(&id, turn, &answer.transcript).await.map_err(store_error);
            if stored.is_ok() {
                gate.metrics.session(SessionEvent::TurnStored, store.kind());
            }
            Some(stored)
        }
        _ => None,
    };
    match (outcome, stored) {
        (Outcome::Done(_), Some(Err(e))) if head_sent => drive::end_stream(session, ChatStream::error(&e)).await,
        (Outcome::Done(_), Some(Err(e))) => respond::send(session, ctx, &gate.settings, Answer::error(&e)).await,
        (Outcome::Done(answer), _) if req.stream => {
            let event = wire::session_event(&answer, &id);
            let driven = Driven { outcome: Outcome::Done(answer), head_sent };
            finish_stream(gate, session, ctx, driven, &mut encoder.inner, Some(event)).await
        }
        (outcome, _) if req.stream => {
            finish_stream(gate, session, ctx, Driven { outcome, head_sent }, &mut encoder.inner, None).await
        }
        (outcome, _) => finish_json(gate, session, ctx, outcome, |answer| wire::response(answer, &id)).await,
    }
}

/// `GET` or `DELETE /chat/{id}`.
pub async fn item(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let id = session.req_header().uri.path().trim_start_matches("/chat/").to_string();
    let owner = owner_of(header(session, "authorization").as_deref());
    let delete = session.req_header().method == http::Method::DELETE;
    let answer = if delete {
        match gate.sessions.delete(&id, &owner).await {
            Ok(true) => Answer::raw(204, "application/json", bytes::Bytes::new()),
            Ok(false) => Answer::error(&not_found(&id)),
            Err(e) => Answer::error(&store_error(e)),
        }
    } else {
        match gate.sessions.load(&id, &owner).await {
            Ok(Some(history)) => Answer::json(200, wire::history(&id, &history)),
            Ok(None) => Answer::error(&not_found(&id)),
            Err(e) => Answer::error(&store_error(e)),
        }
    };
    respond::send(session, ctx, &gate.settings, answer).await?;
    Ok(true)
}
