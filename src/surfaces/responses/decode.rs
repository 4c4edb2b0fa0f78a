//! A Responses request in the tool loop's terms: input items become chat
//! messages after the stored conversation of `previous_response_id`
//! ([`super::input`]), the tools a selection, approval rules and chat tools
//! ([`super::tools`]), approval answers calls to run (or refusals the model
//! reads), and the sampling and format fields their chat-completions names.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::input::{with_id, Converter};
use super::record::Stored;
use super::request::Request;
use super::tools::{tool_choice, tools};
use crate::error::ProxyError;
use crate::mcp::Catalog;
use crate::openai::chat::{ChatRequest, Message, ToolCall};
use crate::settings::servers::ServerConfig;
use crate::tool_loop::{Approval, Selection};

/// What decoding reads besides the request.
pub struct Context<'a> {
    /// The tools the client's key may use.
    pub catalog: &'a Catalog,
    /// The configured MCP servers: the only ones a request may name.
    pub servers: &'a [ServerConfig],
    pub default_model: &'a str,
    /// False when the client turned MCP tools off (`x-mcp-tools: off`).
    pub mcp: bool,
}

/// The request, decoded.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub chat: ChatRequest,
    /// False when `tool_choice` is `none`: no MCP tools this time.
    pub mcp: bool,
    pub selection: Option<Selection>,
    pub approval: Approval,
    pub approved: Vec<ToolCall>,
    /// The conversation before this response's output, without instructions.
    pub conversation: Vec<Message>,
    /// Servers whose tools this response lists (first time in the conversation).
    pub to_list: Vec<String>,
    /// Servers listed in the conversation once this response is done.
    pub listed: BTreeSet<String>,
    /// The input items with ids, as `input_items` returns them.
    pub input_items: Vec<Value>,
}

pub(super) fn bad(message: impl Into<String>, param: &str) -> ProxyError {
    ProxyError::bad_request(message, Some(param))
}

pub use super::input::approval_request_id;

pub fn decode(req: &Request, previous: Option<&Stored>, cx: &Context<'_>) -> Result<Decoded, ProxyError> {
    let tools = tools(&req.tools, cx)?;
    let mut conv = Converter::new(cx, previous.map(|p| p.conversation.clone()).unwrap_or_default());
    let mut listed = previous.map(|p| p.listed.clone()).unwrap_or_default();
    for waiting in previous.iter().flat_map(|p| &p.awaiting) {
        conv.slot(waiting.clone());
    }
    let known: BTreeSet<String> = conv.slots.iter().map(|(_, w)| w.request_id.clone()).collect();
    let mut input_items = Vec::new();
    for (i, item) in req.input.iter().enumerate() {
        conv.item(item, i, &known, &mut listed)?;
        input_items.push(with_id(item));
    }
    let approved = conv.decide();
    let selection = tools.selection.clone();
    let (tool_choice, mcp) = tool_choice(req.tool_choice.as_ref(), cx.catalog)?;
    let mcp = mcp && cx.mcp;
    let in_play = if mcp { servers_in_play(cx.catalog, selection.as_ref()) } else { Vec::new() };
    let to_list: Vec<String> = in_play.into_iter().filter(|s| !listed.contains(s)).collect();
    listed.extend(to_list.iter().cloned());
    let conversation = conv.messages;
    let mut messages = Vec::with_capacity(conversation.len() + 1);
    if let Some(instructions) = req.instructions.as_deref().filter(|i| !i.is_empty()) {
        messages.push(Message::text("system", instructions));
    }
    messages.extend(conversation.iter().cloned());
    let chat = ChatRequest {
        model: req.model.clone().unwrap_or_else(|| cx.default_model.to_string()),
        messages,
        stream: Some(req.stream),
        tools: (!tools.chat.is_empty()).then_some(tools.chat),
        tool_choice,
        stream_options: req.stream.then(|| json!({"include_usage": true})),
        rest: chat_fields(req)?,
    };
    Ok(Decoded { chat, mcp, selection, approval: tools.approval, approved, conversation, to_list, listed, input_items })
}

/// The request's sampling and format fields in chat-completions terms, and
/// every field this proxy does not know, unchanged.
fn chat_fields(req: &Request) -> Result<Map<String, Value>, ProxyError> {
    let mut rest = req.rest.clone();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            rest.insert(k.to_string(), v);
        }
    };
    put("parallel_tool_calls", req.parallel_tool_calls.map(Value::Bool));
    put("max_tokens", req.max_output_tokens.map(Value::from));
    put("temperature", req.temperature.map(Value::from));
    put("top_p", req.top_p.map(Value::from));
    put("user", req.user.clone().map(Value::String));
    put("top_logprobs", req.top_logprobs.map(Value::from));
    put("logprobs", (req.logprobs || req.top_logprobs.is_some()).then_some(Value::Bool(true)));
    put("reasoning_effort", req.reasoning.as_ref().and_then(|r| r.get("effort")).filter(|e| !e.is_null()).cloned());
    if let Some(text) = &req.text {
        put("verbosity", text.get("verbosity").filter(|v| !v.is_null()).cloned());
        put("response_format", response_format(text.get("format"))?);
    }
    Ok(rest)
}

fn response_format(format: Option<&Value>) -> Result<Option<Value>, ProxyError> {
    let Some(format) = format.filter(|f| !f.is_null()) else { return Ok(None) };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for key in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        _ => Err(bad("'text.format.type' must be text, json_object or json_schema", "text.format.type")),
    }
}

/// The servers whose tools this request offers.
fn servers_in_play(catalog: &Catalog, selection: Option<&Selection>) -> Vec<String> {
    match selection {
        Some(s) => s.servers().map(str::to_string).collect(),
        None => catalog.tools().iter().map(|t| t.server.clone()).collect::<BTreeSet<_>>().into_iter().collect(),
    }
}
