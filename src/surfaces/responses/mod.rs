//! The Responses surface: `POST /v1/responses` over the one tool loop,
//! whatever the upstream speaks (it is asked in chat-completions terms).
//!
//! | file | owns |
//! | --- | --- |
//! | `request` | the request body, checked field by field |
//! | `decode` | the request (and the stored conversation) in the loop's terms |
//! | `input` | input items → chat messages; approval requests and answers |
//! | `tools` | `tools` and `tool_choice`: chat tools, the MCP selection, approval rules |
//! | `output` | the response object and its output items |
//! | `stream` | the loop's events as Responses stream events |
//! | `record` | what a stored response keeps, for `previous_response_id` and `GET` |
//!
//! Tool ownership as on the chat path: the client's `function` tools come
//! back as `function_call` items; MCP tools run in the proxy and show as
//! `mcp_call` items; a call that needs approval ends the response with an
//! `mcp_approval_request` item, and the next request's
//! `mcp_approval_response` runs it (or tells the model it was denied).

pub mod decode;
pub mod input;
pub mod output;
pub mod record;
pub mod request;
pub mod stream;
pub mod tools;

use serde_json::Value;

use crate::mcp::Catalog;
use crate::openai::chat::Message;
use crate::tool_loop::fill_approved;
use crate::tool_loop::Answer;
use decode::{approval_request_id, Decoded};
use record::Awaiting;

/// What is stored of a finished response, as the store keeps it (JSON).
/// Serialised from borrows: the response and the conversation are not copied.
pub fn record_json(decoded: &Decoded, answer: &Answer, response: &Value, catalog: &Catalog) -> String {
    let filled;
    let before: &[Message] = if answer.tool_runs.iter().any(|r| r.round == 0) {
        let mut conversation = decoded.conversation.clone();
        fill_approved(&mut conversation, &answer.tool_runs);
        filled = conversation;
        &filled
    } else {
        &decoded.conversation
    };
    let awaiting: Vec<Awaiting> = answer
        .awaiting_approval
        .iter()
        .map(|call| {
            let (server, name) = output::tool_of(catalog, &call.function.name);
            Awaiting {
                request_id: approval_request_id(&call.id),
                server_label: server.to_string(),
                name: name.to_string(),
                call: call.clone(),
            }
        })
        .collect();
    let record = record::StoredRef {
        response,
        input_items: &decoded.input_items,
        conversation: before.iter().chain(&answer.transcript).collect(),
        listed: &decoded.listed,
        awaiting: &awaiting,
    };
    serde_json::to_string(&record).unwrap_or_default()
}
