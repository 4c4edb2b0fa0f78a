//! `/chat`: the simple endpoint with server-side sessions.
//!
//! `POST /chat {"message", "session_id"?, "model"?, "stream"?}` runs one turn
//! through the same tool loop as `/v1/chat/completions` and answers
//! `{"response", "session_id"}` (or an OpenAI-shaped SSE stream ending with a
//! `chat.session` event). `GET /chat/{id}` returns the history, `DELETE`
//! removes it. Turns on one session are serialised; the user's message is
//! stored before the upstream is called and the answer before the client is
//! told it is complete.

use pingora::proxy::Session;
use pingora::Result;
use serde::Deserialize;
use serde_json::{json, Value};

use super::chat::{header, pick_mode, read_body, run_with_fallback, write_finish, Job, TurnRecord};
use super::respond::{self, Answer};
use super::{Gate, RequestCtx};
use crate::error::ProxyError;
use crate::openai::chat::{ChatRequest, Message};
use crate::sessions::{context, owner_of, History};
use crate::tool_loop::Finish;
use crate::upstream::Caller;

#[derive(Debug, Deserialize)]
struct TurnRequest {
    message: Value,
    session_id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    stream: bool,
}

fn not_found(id: &str) -> ProxyError {
    ProxyError::SessionNotFound { id: id.chars().take(64).collect() }
}

fn store_error(e: impl std::fmt::Display) -> ProxyError {
    ProxyError::Internal(e.to_string())
}

fn parse(body: &[u8]) -> Result<(TurnRequest, String), ProxyError> {
    let req: TurnRequest = serde_json::from_slice(body)
        .map_err(|e| ProxyError::bad_request(format!("the body must be {{\"message\": \"...\"}}: {e}"), None))?;
    let message = match &req.message {
        Value::String(s) if !s.trim().is_empty() => s.clone(),
        _ => return Err(ProxyError::bad_request("'message' must be a non-empty string", Some("message"))),
    };
    Ok((req, message))
}

/// `POST /chat`.
pub async fn post(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    match turn(gate, session, ctx).await {
        Ok(()) => Ok(true),
        Err(e) => {
            respond::send(session, ctx, &gate.settings, Answer::error(&e)).await?;
            Ok(true)
        }
    }
}

async fn turn(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<(), ProxyError> {
    let body = read_body(gate, session).await?;
    let (req, message) = parse(&body)?;
    let authorization = header(session, "authorization");
    let owner = owner_of(authorization.as_deref());
    let store = gate.sessions.clone();
    let id = match &req.session_id {
        Some(id) => id.clone(),
        None => store.create(&owner).await.map_err(store_error)?,
    };
    if store.load(&id, &owner).await.map_err(store_error)?.is_none() {
        return Err(not_found(&id));
    }
    // Known from here on, even if the turn fails (then no `chat.session` event comes).
    ctx.session_id = Some(id.clone());
    // One turn at a time per session; the second waits and sees the first's turn.
    // A turn stuck longer than a whole request's budget is not waited for.
    let wait = gate.settings.tool.limits.budget;
    let _lock = tokio::time::timeout(wait, store.lock(&id))
        .await
        .map_err(|_| ProxyError::SessionBusy { id: id.clone() })?
        .map_err(store_error)?;
    let history = store.load(&id, &owner).await.map_err(store_error)?.ok_or_else(|| not_found(&id))?;
    let user = Message::text("user", message);
    let turn = store.begin_turn(&id, &user).await.map_err(store_error)?;

    let cfg = &gate.settings.session;
    let model = req.model.clone().unwrap_or_else(|| gate.settings.default_model.clone());
    let chat = ChatRequest {
        model: model.clone(),
        messages: context(&history, &cfg.system_prompt, &user, cfg.context_budget_chars),
        stream: Some(req.stream),
        tools: None,
        tool_choice: None,
        stream_options: None,
        rest: Default::default(),
    };
    let (mode, auto) = pick_mode(gate, session, &model);
    let mcp = header(session, "x-mcp-tools").as_deref() != Some("off");
    let caller = Caller { authorization: gate.forwardable_authorization(session), request_id: ctx.request_id.clone() };
    let record = TurnRecord { store: store.clone(), session_id: id.clone(), turn };
    let job = Job { req: chat, mode, mcp, caller, record: Some(record) };
    let done =
        run_with_fallback(gate, session, ctx, job, auto).await.map_err(|e| ProxyError::Internal(e.to_string()))?;
    match done.finish {
        Some(Finish::Completion(completion)) => {
            store.complete_turn(&id, turn, &done.transcript).await.map_err(store_error)?;
            let response = completion.pointer("/choices/0/message/content").cloned().unwrap_or(Value::Null);
            let answer = json!({"response": response, "session_id": id});
            respond::send(session, ctx, &gate.settings, Answer::json(200, answer))
                .await
                .map_err(|e| ProxyError::Internal(e.to_string()))
        }
        Some(other) => write_finish(gate, session, ctx, other).await.map_err(|e| ProxyError::Internal(e.to_string())),
        None => Ok(()),
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
            Ok(Some(history)) => Answer::json(200, history_json(&id, &history)),
            Ok(None) => Answer::error(&not_found(&id)),
            Err(e) => Answer::error(&store_error(e)),
        }
    };
    respond::send(session, ctx, &gate.settings, answer).await?;
    Ok(true)
}

/// The history as the client sees it: every message, each tagged with its
/// turn and whether that turn completed.
fn history_json(id: &str, history: &History) -> Value {
    let messages: Vec<Value> = history
        .turns
        .iter()
        .flat_map(|t| {
            t.messages.iter().map(move |m| {
                let mut v = serde_json::to_value(m).unwrap_or_default();
                if let Some(obj) = v.as_object_mut() {
                    obj.insert("turn".into(), json!(t.number));
                    if !t.complete {
                        obj.insert("incomplete".into(), json!(true));
                    }
                }
                v
            })
        })
        .collect();
    json!({"session_id": id, "created": history.created, "updated": history.updated, "messages": messages})
}
