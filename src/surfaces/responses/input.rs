//! A Responses request's input items as chat messages: messages with their
//! content parts, the client's function calls and their outputs, MCP calls
//! and listings carried in the input, approval requests and their answers.

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Value};

use super::decode::{bad, Context};
use super::record::Awaiting;
use crate::error::ProxyError;
use crate::openai::chat::{Message, ToolCall};

/// The `mcp_approval_request` id for a call, and back.
pub fn approval_request_id(call_id: &str) -> String {
    format!("mcpr_{call_id}")
}

fn call_id_of(request_id: &str) -> String {
    request_id.strip_prefix("mcpr_").unwrap_or(request_id).to_string()
}

/// An input item as `input_items` lists it: with an id (the client may
/// have sent none), a message's text as a content part.
pub fn with_id(item: &Value) -> Value {
    let mut item = item.clone();
    let kind = item.get("type").and_then(Value::as_str).unwrap_or("message").to_string();
    item["type"] = json!(kind);
    if kind == "message" {
        if let Some(text) = item.get("content").and_then(Value::as_str).map(str::to_string) {
            let part = if item["role"] == "assistant" { "output_text" } else { "input_text" };
            item["content"] = json!([{"type": part, "text": text}]);
        }
        if item.get("status").is_none() {
            item["status"] = json!("completed");
        }
    }
    if item.get("id").and_then(Value::as_str).is_none() {
        let prefix = match kind.as_str() {
            "message" => "msg",
            "function_call_output" => "fco",
            "mcp_approval_response" => "mcpa",
            _ => "item",
        };
        item["id"] = json!(format!("{prefix}_{}", uuid::Uuid::new_v4().simple()));
    }
    item
}

/// Input items → chat messages, with the tool messages that answer calls
/// waiting for approval kept as slots until every answer is read.
pub struct Converter<'c, 'a> {
    cx: &'c Context<'a>,
    /// The conversation so far, then the input's messages.
    pub messages: Vec<Message>,
    /// Tool messages waiting for an approval answer: their index, and the call.
    pub slots: Vec<(usize, Awaiting)>,
    decisions: HashMap<String, (bool, Option<String>)>,
}

impl<'c, 'a> Converter<'c, 'a> {
    /// A converter continuing `conversation`.
    pub fn new(cx: &'c Context<'a>, conversation: Vec<Message>) -> Self {
        Self { cx, messages: conversation, slots: Vec::new(), decisions: HashMap::new() }
    }

    pub fn slot(&mut self, waiting: Awaiting) {
        let mut m = Message::text("tool", "");
        m.tool_call_id = Some(waiting.call.id.clone());
        self.messages.push(m);
        self.slots.push((self.messages.len() - 1, waiting));
    }

    /// The exposed name of `name` on `server`, for the conversation.
    fn exposed(&self, server: &str, name: &str) -> String {
        let found = self.cx.catalog.tools().iter().find(|t| t.server == server && t.original == name);
        found.map_or_else(|| name.to_string(), |t| t.name.clone())
    }

    /// Adds a call to the assistant message it belongs to.
    fn call(&mut self, call: ToolCall) {
        match self.messages.last_mut() {
            Some(m) if m.role == "assistant" => m.tool_calls.get_or_insert_with(Vec::new).push(call),
            _ => {
                let mut m = Message::text("assistant", "");
                m.tool_calls = Some(vec![call]);
                self.messages.push(m);
            }
        }
    }

    fn tool_result(&mut self, call_id: &str, text: String) {
        let mut m = Message::text("tool", text);
        m.tool_call_id = Some(call_id.to_string());
        self.messages.push(m);
    }

    pub fn item(
        &mut self,
        item: &Value,
        i: usize,
        known: &BTreeSet<String>,
        listed: &mut BTreeSet<String>,
    ) -> Result<(), ProxyError> {
        let at = |field: &str| format!("input[{i}].{field}");
        let text = |field: &str| item.get(field).and_then(Value::as_str).unwrap_or_default().to_string();
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
        match kind {
            "message" => {
                let role = match item.get("role").and_then(Value::as_str) {
                    Some("developer") | Some("system") => "system",
                    Some(r @ ("user" | "assistant")) => r,
                    _ => return Err(bad("a message needs a role: user, assistant, system or developer", &at("role"))),
                };
                let content = content(item.get("content"), &at("content"))?;
                let mut m = Message::text(role, "");
                m.content = Some(content);
                self.messages.push(m);
            }
            "function_call" => {
                let call_id = item
                    .get("call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("needs a call_id", &at("call_id")))?;
                self.call(ToolCall::new(call_id, text("name"), text("arguments")));
            }
            "function_call_output" => {
                let call_id = item
                    .get("call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("needs a call_id", &at("call_id")))?;
                let output = output_text(item.get("output"), &at("output"))?;
                self.tool_result(call_id, output);
            }
            "mcp_call" => {
                let id = text("id");
                let name = self.exposed(&text("server_label"), &text("name"));
                self.call(ToolCall::new(id.clone(), name, text("arguments")));
                let output = match item.get("error").and_then(Value::as_str) {
                    Some(e) => e.to_string(),
                    None => text("output"),
                };
                self.tool_result(&id, output);
            }
            "mcp_list_tools" => {
                listed.insert(text("server_label"));
            }
            "mcp_approval_request" => {
                let request_id = text("id");
                if !known.contains(&request_id) {
                    let (server_label, name) = (text("server_label"), text("name"));
                    let call =
                        ToolCall::new(call_id_of(&request_id), self.exposed(&server_label, &name), text("arguments"));
                    self.call(call.clone());
                    self.slot(Awaiting { request_id, server_label, name, call });
                }
            }
            "mcp_approval_response" => {
                let Some(id) = item.get("approval_request_id").and_then(Value::as_str) else {
                    return Err(bad("needs an approval_request_id", &at("approval_request_id")));
                };
                let Some(approve) = item.get("approve").and_then(Value::as_bool) else {
                    return Err(bad("needs approve: true or false", &at("approve")));
                };
                let reason = item.get("reason").and_then(Value::as_str).map(str::to_string);
                self.decisions.insert(id.to_string(), (approve, reason));
            }
            // The model's earlier thinking is not sent again (as chat templates do).
            "reasoning" => {}
            other => {
                return Err(bad(format!("input items of type {other:?} are not supported by this proxy"), &at("type")))
            }
        }
        Ok(())
    }

    /// Fills each slot: an approved call is to run (its result goes in the
    /// slot), a denied or unanswered one tells the model it did not run.
    pub fn decide(&mut self) -> Vec<ToolCall> {
        let mut approved = Vec::new();
        for (index, waiting) in &self.slots {
            let text = match self.decisions.get(&waiting.request_id) {
                Some((true, _)) => {
                    approved.push(waiting.call.clone());
                    continue;
                }
                Some((false, reason)) => match reason {
                    Some(r) => format!("The user denied this tool call: {r}"),
                    None => "The user denied this tool call.".to_string(),
                },
                None => "Not run: the call was not approved.".to_string(),
            };
            if let Some(m) = self.messages.get_mut(*index) {
                m.content = Some(Value::String(text));
            }
        }
        approved
    }
}

/// A message's content in chat terms: text stays a string, images become
/// `image_url` parts.
fn content(given: Option<&Value>, at: &str) -> Result<Value, ProxyError> {
    let parts = match given {
        None | Some(Value::Null) => return Ok(Value::String(String::new())),
        Some(Value::String(s)) => return Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(bad("content must be a string or an array of parts", at)),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let here = format!("{at}[{j}]");
        let text = |field: &str| part.get(field).and_then(Value::as_str).map(str::to_string);
        match part.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                out.push(json!({"type": "text", "text": text("text").unwrap_or_default()}))
            }
            Some("refusal") => out.push(json!({"type": "text", "text": text("refusal").unwrap_or_default()})),
            Some("input_image") => {
                let Some(url) = text("image_url") else {
                    return Err(bad("input_image needs an image_url (file_id is not supported by this proxy)", &here));
                };
                let mut image = json!({"url": url});
                if let Some(detail) = text("detail") {
                    image["detail"] = json!(detail);
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            other => {
                return Err(bad(
                    format!("content parts of type {:?} are not supported by this proxy", other.unwrap_or("")),
                    &here,
                ))
            }
        }
    }
    if out.iter().all(|p| p["type"] == "text") {
        let texts: Vec<&str> = out.iter().filter_map(|p| p["text"].as_str()).collect();
        return Ok(Value::String(texts.join("\n")));
    }
    Ok(Value::Array(out))
}

/// A `function_call_output`'s output as the tool message's text.
fn output_text(given: Option<&Value>, at: &str) -> Result<String, ProxyError> {
    match given {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                    (Some("input_text" | "output_text"), Some(t)) => texts.push(t),
                    _ => return Err(bad("a function_call_output may hold text parts only", at)),
                }
            }
            Ok(texts.join("\n"))
        }
        _ => Err(bad("a function_call_output needs an output string", at)),
    }
}
