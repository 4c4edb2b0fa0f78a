//! `/v1/responses` (its shapes: [`crate::surfaces::responses`]): one
//! response runs through the same tool loop as `/v1/chat/completions`, with
//! the same `x-mcp-*` headers, keys and limits. A stored response is in the
//! session store before the client hears it is done (`response.completed`
//! or the JSON answer), so the next request can continue it.

use std::sync::Arc;

use pingora::proxy::Session;
use pingora::Result;
use serde_json::{json, Value};

use super::chat::{self, header, mcp_headers, read_body};
use super::drive::{self, Driven};
use super::respond::{self, Answer};
use super::{Gate, RequestCtx};
use crate::error::ProxyError;
use crate::mcp::Catalog;
use crate::metrics::SessionEvent;
use crate::sessions::owner_of;
use crate::surfaces::responses::decode::{self, Decoded};
use crate::surfaces::responses::output::{self, Meta};
use crate::surfaces::responses::record::Stored;
use crate::surfaces::responses::request::{self, Request};
use crate::surfaces::responses::stream::ResponsesStream;
use crate::tool_loop::{Job, Outcome};

fn store_error(e: impl std::fmt::Display) -> ProxyError {
    ProxyError::Internal(e.to_string())
}

fn not_found(id: &str) -> ProxyError {
    ProxyError::ResponseNotFound { id: id.chars().take(64).collect() }
}

/// Whether this `POST /v1/responses` is the proxy's: always, unless the
/// operator lets requests with no MCP tool in play go to the upstream as they are.
pub fn applies(gate: &Gate, session: &Session, ctx: &RequestCtx) -> Result<bool, ProxyError> {
    if !gate.settings.responses_passthrough {
        return Ok(true);
    }
    let headers = mcp_headers(session)?;
    Ok(!headers.off && !gate.tools_for(ctx).catalog().is_empty())
}

/// A request ready to run.
struct Prepared {
    req: Request,
    decoded: Decoded,
    meta: Meta,
    catalog: Arc<Catalog>,
    owner: String,
    job: Job,
}

async fn load(gate: &Gate, id: &str, owner: &str) -> Result<Stored, ProxyError> {
    let text = gate.sessions.get_response(id, owner).await.map_err(store_error)?.ok_or_else(|| not_found(id))?;
    Stored::from_json(&text).ok_or_else(|| ProxyError::Internal(format!("stored response {id} is unreadable")))
}

async fn prepare(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<Prepared, ProxyError> {
    let headers = mcp_headers(session)?;
    let body = read_body(gate, session).await?;
    let req = request::parse(&body)?;
    let owner = owner_of(header(session, "authorization").as_deref());
    let previous = match &req.previous_response_id {
        Some(id) => Some(load(gate, id, &owner).await.map_err(|e| match e {
            ProxyError::ResponseNotFound { id } => ProxyError::bad_request(
                format!("Previous response with id '{id}' not found."),
                Some("previous_response_id"),
            ),
            other => other,
        })?),
        None => None,
    };
    let catalog = gate.tools_for(ctx).catalog();
    let cx = decode::Context {
        catalog: &catalog,
        servers: &gate.settings.mcp_servers,
        default_model: &gate.settings.default_model,
        mcp: !headers.off,
    };
    let mut decoded = decode::decode(&req, previous.as_ref(), &cx)?;
    // What this response lists and names: the key's tools, as the request selected them.
    let catalog = match &decoded.selection {
        Some(s) => Arc::new(s.narrow(&catalog)),
        None => catalog,
    };
    let meta = Meta::new(&req, &decoded.chat.model);
    // The loop's parts of the decoded request move to the job; the rest is kept for the record.
    let mut job = Job::new(std::mem::take(&mut decoded.chat), gate.caller(session, ctx), headers.mode, decoded.mcp);
    job.selection = decoded.selection.take();
    job.approval = std::mem::take(&mut decoded.approval);
    job.approved = std::mem::take(&mut decoded.approved);
    Ok(Prepared { req, decoded, meta, catalog, owner, job })
}

/// `POST /v1/responses`.
pub async fn post(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let prepared = match prepare(gate, session, ctx).await {
        Ok(p) => p,
        Err(e) => {
            respond::send(session, ctx, &gate.settings, Answer::error(&e)).await?;
            return Ok(true);
        }
    };
    let Prepared { req, decoded, meta, catalog, owner, job } = prepared;
    let mut encoder = ResponsesStream::new(meta.clone(), catalog.clone(), decoded.to_list.clone());
    let driven = drive::run(gate, session, ctx, job, req.stream.then_some(&mut encoder as _)).await?;
    let keep = Keep { gate, owner: &owner, store: req.store, decoded: &decoded, catalog: &catalog };
    if req.stream {
        finish_stream(gate, session, ctx, driven, &mut encoder, &keep).await?;
    } else {
        finish_json(gate, session, ctx, driven.outcome, &meta, &keep).await?;
    }
    Ok(true)
}

/// What storing a finished response needs.
struct Keep<'a> {
    gate: &'a Gate,
    owner: &'a str,
    store: bool,
    decoded: &'a Decoded,
    catalog: &'a Catalog,
}

impl Keep<'_> {
    async fn put(&self, answer: &crate::tool_loop::Answer, response: &Value) -> Result<(), ProxyError> {
        if !self.store {
            return Ok(());
        }
        let record = crate::surfaces::responses::record_json(self.decoded, answer, response, self.catalog);
        let id = response["id"].as_str().unwrap_or_default();
        let sessions = &self.gate.sessions;
        sessions.put_response(id, self.owner, &record).await.map_err(store_error)?;
        self.gate.metrics.session(SessionEvent::ResponseStored, sessions.kind());
        Ok(())
    }
}

async fn finish_json(
    gate: &Gate,
    session: &mut Session,
    ctx: &mut RequestCtx,
    outcome: Outcome,
    meta: &Meta,
    keep: &Keep<'_>,
) -> Result<()> {
    let answer = match outcome {
        Outcome::Done(answer) => answer,
        // The upstream's refusal, the proxy's error, or nothing for a client that left: as on the chat path.
        other => return chat::finish_json(gate, session, ctx, other, |_| Value::Null).await,
    };
    let items = output::output(&answer, &keep.decoded.to_list, keep.catalog);
    let response = meta.finished(&answer, &items);
    let reply = match keep.put(&answer, &response).await {
        Ok(()) => Answer::json(200, response),
        Err(e) => Answer::error(&e),
    };
    respond::send(session, ctx, &gate.settings, reply).await
}

async fn finish_stream(
    gate: &Gate,
    session: &mut Session,
    ctx: &mut RequestCtx,
    driven: Driven,
    encoder: &mut ResponsesStream,
    keep: &Keep<'_>,
) -> Result<()> {
    let Driven { outcome, head_sent } = driven;
    if let Some(e) = drive::in_band(&outcome).filter(|_| head_sent) {
        tracing::info!(request_id = %ctx.request_id, "the response failed after it started: {e}");
        return drive::end_stream(session, encoder.failed(&e)).await;
    }
    let answer = match outcome {
        Outcome::Done(answer) => answer,
        // The upstream's refusal, the proxy's error, or nothing for a client that left: as on the chat path.
        other => return chat::finish_json(gate, session, ctx, other, |_| Value::Null).await,
    };
    let (response, last) = encoder.finish(&answer);
    let stored = keep.put(&answer, &response).await;
    if !head_sent {
        if let Err(e) = stored {
            return respond::send(session, ctx, &gate.settings, Answer::error(&e)).await;
        }
        drive::write_sse_head(gate, session, ctx).await?;
    }
    match stored {
        Ok(()) => drive::end_stream(session, last).await,
        Err(e) => drive::end_stream(session, encoder.failed(&e)).await,
    }
}

/// `GET` / `DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`.
/// With pass-through on, an id this proxy does not hold is the upstream's
/// (`Ok(false)`: proxied).
pub async fn item(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
    let path = session.req_header().uri.path().trim_start_matches("/v1/responses/").to_string();
    let (id, items) = match path.strip_suffix("/input_items") {
        Some(id) => (id.to_string(), true),
        None => (path.clone(), false),
    };
    let owner = owner_of(header(session, "authorization").as_deref());
    let delete = session.req_header().method == http::Method::DELETE;
    let found = match gate.sessions.get_response(&id, &owner).await {
        Ok(found) => found,
        Err(e) => return send(gate, session, ctx, Answer::error(&store_error(e))).await,
    };
    let Some(text) = found else {
        if gate.settings.responses_passthrough {
            return Ok(false);
        }
        return send(gate, session, ctx, Answer::error(&not_found(&id))).await;
    };
    let answer = if delete {
        match gate.sessions.delete_response(&id, &owner).await {
            Ok(_) => Answer::json(200, json!({"id": id, "object": "response", "deleted": true})),
            Err(e) => Answer::error(&store_error(e)),
        }
    } else {
        match Stored::from_json(&text) {
            Some(record) if items => Answer::json(200, input_items(&record, session.req_header().uri.query())),
            Some(record) => Answer::json(200, record.response),
            None => Answer::error(&ProxyError::Internal(format!("stored response {id} is unreadable"))),
        }
    };
    send(gate, session, ctx, answer).await
}

async fn send(gate: &Gate, session: &mut Session, ctx: &mut RequestCtx, answer: Answer) -> Result<bool> {
    respond::send(session, ctx, &gate.settings, answer).await?;
    Ok(true)
}

/// A page of the input items: `order` (`desc` by default, as OpenAI),
/// `limit` (1–100, 20) and `after` (an item id).
fn input_items(record: &Stored, query: Option<&str>) -> Value {
    let param = |name: &str| {
        query.into_iter().flat_map(|q| q.split('&')).find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    };
    let mut items: Vec<&Value> = record.input_items.iter().collect();
    if param("order") != Some("asc") {
        items.reverse();
    }
    if let Some(after) = param("after") {
        if let Some(at) = items.iter().position(|i| i["id"] == after) {
            items.drain(..=at);
        }
    }
    let limit = param("limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(20).clamp(1, 100);
    let has_more = items.len() > limit;
    items.truncate(limit);
    json!({
        "object": "list",
        "data": items,
        "first_id": items.first().map(|i| i["id"].clone()),
        "last_id": items.last().map(|i| i["id"].clone()),
        "has_more": has_more,
    })
}
