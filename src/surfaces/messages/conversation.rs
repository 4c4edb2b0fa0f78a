//! An Anthropic Messages conversation in chat-completions terms: `system`
//! (a string or text blocks) and `messages` whose content is a string or
//! blocks (`text`, `image`, `tool_use`, `tool_result`, `thinking`,
//! `redacted_thinking`). Each block maps to what the upstream reads:
//!
//! - `text` → a text part; `image` (base64 or url) → an `image_url` part;
//! - an assistant's `tool_use` → a tool call with the same id and its
//!   `input` as the arguments' JSON text;
//! - a user's `tool_result` → a `tool` message answering that id (its text,
//!   prefixed `Error: ` when `is_error`), placed before the user's other
//!   blocks, as chat completions wants tool answers right after the call;
//!   a `tool_reference` in it offers that deferred tool (see `toolset`) and
//!   reads as the tool's definition;
//! - `thinking` → the assistant message's `reasoning_content` (what
//!   reasoning upstreams read back); `redacted_thinking` is dropped;
//! - a `role: "system"` message (Claude Code sends its environment as one)
//!   → a system message: folded into the leading system prompt while no
//!   assistant turn precedes it (chat templates such as Qwen's refuse a
//!   system message anywhere but first), else a system message in place.
//!   `clear_at: "next_user_message"` hides its text once a user message
//!   follows; its `tool_addition` / `tool_removal` blocks change the
//!   offered tools; its `output_config.effort` sets the effort of the
//!   reply it precedes.
//!
//! `cache_control` on any block is accepted and has no effect (an
//! upstream caches prefixes by itself, or not at all). Anything else is a
//! 400 naming the block's place (`messages[2].content[1]`).

use serde_json::{json, Map, Value};

use super::toolset::Toolset;
use crate::error::ProxyError;
use crate::openai::chat::{FunctionCall, Message, ToolCall};

fn bad(message: impl Into<String>, param: &str) -> ProxyError {
    ProxyError::bad_request(message, Some(param))
}

/// A conversation in chat terms.
#[derive(Debug)]
pub struct Conversation {
    pub messages: Vec<Message>,
    /// The effort a system message after the last user message asks for.
    pub effort: Option<String>,
}

/// `system` and `messages` as chat messages, the system prompt first;
/// `tools` learns which deferred tools the conversation loaded.
pub fn to_chat(system: Option<&Value>, messages: &[Value], tools: &mut Toolset) -> Result<Conversation, ProxyError> {
    let mut out = Vec::with_capacity(messages.len() + 1);
    let mut lead = Vec::new();
    if let Some(system) = system.filter(|s| !s.is_null()) {
        let text = system_text(system)?;
        if !text.is_empty() {
            lead.push(text);
        }
    }
    let role = |m: &Value| m.get("role").and_then(Value::as_str).unwrap_or_default().to_string();
    let last_user = messages.iter().rposition(|m| role(m) == "user");
    let mut effort = None;
    let mut answered = false;
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let content = message.get("content").ok_or_else(|| bad(format!("{at}.content is required"), &at))?;
        match role(message).as_str() {
            "user" => user(content, &at, tools, &mut out)?,
            "assistant" => {
                answered = true;
                out.push(assistant(content, &at)?)
            }
            "system" => {
                let later_user = last_user.is_some_and(|u| u > i);
                let said = system_message(message, content, &at, tools)?;
                if let Some(e) = said.effort.filter(|_| !later_user) {
                    effort = Some(e);
                }
                let hidden = later_user && message.get("clear_at").and_then(Value::as_str) == Some("next_user_message");
                match said.text {
                    Some(text) if !hidden && !answered => lead.push(text),
                    Some(text) if !hidden => out.push(Message::text("system", text)),
                    _ => {}
                }
            }
            other => {
                return Err(bad(format!("{at}.role must be \"user\", \"assistant\" or \"system\", not {other:?}"), &at))
            }
        }
    }
    if !lead.is_empty() {
        out.insert(0, Message::text("system", lead.join("\n\n")));
    }
    Ok(Conversation { messages: out, effort })
}

/// What a `role: "system"` message says.
struct Said {
    text: Option<String>,
    effort: Option<String>,
}

fn system_message(message: &Value, content: &Value, at: &str, tools: &mut Toolset) -> Result<Said, ProxyError> {
    for key in message.as_object().into_iter().flat_map(|o| o.keys()) {
        if !matches!(key.as_str(), "role" | "content" | "clear_at" | "output_config") {
            return Err(bad(format!("{at}.{key}: extra inputs are not permitted"), at));
        }
    }
    match message.get("clear_at") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s == "never" || s == "next_user_message" => {}
        Some(_) => return Err(bad(format!("{at}.clear_at must be \"next_user_message\" or \"never\""), at)),
    }
    let mut effort = None;
    if let Some(config) = message.get("output_config").filter(|c| !c.is_null()) {
        let Some(config) = config.as_object() else {
            return Err(bad(format!("{at}.output_config must be an object"), at));
        };
        for (key, value) in config {
            match key.as_str() {
                "effort" => effort = super::request::effort(value, &format!("{at}.output_config.effort"))?,
                other => {
                    return Err(bad(format!("{at}.output_config.{other} is not supported on a system message"), at))
                }
            }
        }
    }
    let mut texts = Vec::new();
    for (at, block) in blocks(content, at)? {
        match kind(block) {
            "tool_addition" | "tool_removal" => tools.change(block, &at)?,
            "text" => texts.push(part(block, &at)?["text"].as_str().unwrap_or_default().to_string()),
            other => return Err(bad(format!("{at}: a {other:?} block is not allowed in a system message"), &at)),
        }
    }
    let text = texts.join("\n\n");
    Ok(Said { text: (!text.is_empty()).then_some(text), effort })
}

fn system_text(system: &Value) -> Result<String, ProxyError> {
    match system {
        Value::String(s) => Ok(s.clone()),
        Value::Array(blocks) => blocks
            .iter()
            .enumerate()
            .map(|(i, b)| match (b.get("type").and_then(Value::as_str), b.get("text").and_then(Value::as_str)) {
                (Some("text"), Some(t)) => Ok(t),
                _ => Err(bad(format!("system[{i}] must be a text block"), "system")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|texts| texts.join("\n\n")),
        _ => Err(bad("system must be a string or an array of text blocks", "system")),
    }
}

/// A content field as blocks (a string is one text block).
fn blocks<'v>(content: &'v Value, at: &str) -> Result<Vec<(String, &'v Value)>, ProxyError> {
    match content {
        Value::String(_) => Ok(vec![(format!("{at}.content"), content)]),
        Value::Array(list) => Ok(list.iter().enumerate().map(|(j, b)| (format!("{at}.content[{j}]"), b)).collect()),
        _ => Err(bad(format!("{at}.content must be a string or an array of content blocks"), at)),
    }
}

fn kind(block: &Value) -> &str {
    match block {
        Value::String(_) => "text",
        _ => block.get("type").and_then(Value::as_str).unwrap_or_default(),
    }
}

/// A text or image block as a chat content part.
fn part(block: &Value, at: &str) -> Result<Value, ProxyError> {
    match kind(block) {
        "text" => {
            let text = block.as_str().or_else(|| block.get("text").and_then(Value::as_str));
            let text = text.ok_or_else(|| bad(format!("{at}.text must be a string"), at))?;
            Ok(json!({"type": "text", "text": text}))
        }
        "image" => {
            let source = &block["source"];
            let url = match source.get("type").and_then(Value::as_str) {
                Some("base64") => {
                    let media = source["media_type"].as_str().unwrap_or("image/png");
                    let data =
                        source["data"].as_str().ok_or_else(|| bad(format!("{at}.source.data is required"), at))?;
                    format!("data:{media};base64,{data}")
                }
                Some("url") => source["url"].as_str().unwrap_or_default().to_string(),
                _ => return Err(bad(format!("{at}.source.type must be \"base64\" or \"url\""), at)),
            };
            Ok(json!({"type": "image_url", "image_url": {"url": url}}))
        }
        other => Err(bad(format!("{at}: a {other:?} block is not allowed here"), at)),
    }
}

/// Parts as a message's content: one text part as a plain string (what
/// every upstream reads), else the parts.
fn content_of(parts: Vec<Value>) -> Value {
    match parts.as_slice() {
        [one] if one["type"] == "text" => one["text"].clone(),
        _ => Value::Array(parts),
    }
}

fn user(content: &Value, at: &str, tools: &mut Toolset, out: &mut Vec<Message>) -> Result<(), ProxyError> {
    let mut parts = Vec::new();
    for (at, block) in blocks(content, at)? {
        if kind(block) != "tool_result" {
            parts.push(part(block, &at)?);
            continue;
        }
        let id = block.get("tool_use_id").and_then(Value::as_str);
        let id = id.ok_or_else(|| bad(format!("{at}.tool_use_id is required"), &at))?;
        let mut text = match block.get("content") {
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(inner) => {
                let texts: Result<Vec<String>, ProxyError> = blocks(inner, &at)?
                    .into_iter()
                    .map(|(at, b)| match kind(b) {
                        "text" => part(b, &at).map(|p| p["text"].as_str().unwrap_or_default().to_string()),
                        "image" => Ok("[image]".to_string()),
                        "tool_reference" => {
                            let name = b.get("tool_name").and_then(Value::as_str).unwrap_or_default();
                            tools.load(name, &at)
                        }
                        other => Err(bad(format!("{at}: a {other:?} block cannot be a tool result"), &at)),
                    })
                    .collect();
                texts?.join("\n")
            }
        };
        if block.get("is_error").and_then(Value::as_bool) == Some(true) {
            text = format!("Error: {text}");
        }
        let mut answer = Message::text("tool", text);
        answer.tool_call_id = Some(id.to_string());
        out.push(answer);
    }
    if !parts.is_empty() {
        let mut m = Message::text("user", "");
        m.content = Some(content_of(parts));
        out.push(m);
    }
    Ok(())
}

fn assistant(content: &Value, at: &str) -> Result<Message, ProxyError> {
    let (mut texts, mut calls, mut reasoning) = (Vec::new(), Vec::new(), String::new());
    for (at, block) in blocks(content, at)? {
        match kind(block) {
            "text" => texts.push(part(block, &at)?),
            "tool_use" => {
                let id = block.get("id").and_then(Value::as_str);
                let name = block.get("name").and_then(Value::as_str);
                let (Some(id), Some(name)) = (id, name) else {
                    return Err(bad(format!("{at}: a tool_use block needs an id and a name"), &at));
                };
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                calls.push(ToolCall {
                    id: id.to_string(),
                    kind: "function".into(),
                    function: FunctionCall { name: name.to_string(), arguments: input.to_string(), rest: Map::new() },
                    rest: Map::new(),
                });
            }
            "thinking" => reasoning.push_str(block.get("thinking").and_then(Value::as_str).unwrap_or_default()),
            "redacted_thinking" => {}
            other => return Err(bad(format!("{at}: a {other:?} block is not allowed in an assistant message"), &at)),
        }
    }
    let mut m = Message::text("assistant", "");
    m.content = if texts.is_empty() { None } else { Some(content_of(texts)) };
    if !calls.is_empty() {
        m.tool_calls = Some(calls);
    }
    if !reasoning.is_empty() {
        m.rest.insert("reasoning_content".into(), Value::String(reasoning));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(system: Option<Value>, messages: Value) -> Vec<Value> {
        let list = messages.as_array().cloned().unwrap_or_default();
        let out = to_chat(system.as_ref(), &list, &mut Toolset::default()).unwrap_or_else(|e| panic!("{e}"));
        out.messages.iter().map(|m| serde_json::to_value(m).unwrap_or_default()).collect()
    }

    #[test]
    fn strings_and_system_blocks() {
        let out = chat(
            Some(json!([{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}])),
            json!([{"role": "user", "content": "hi"}, {"role": "assistant", "content": [{"type": "text", "text": "hello"}]}]),
        );
        assert_eq!(out[0], json!({"role": "system", "content": "Be brief.\n\nBe kind."}));
        assert_eq!(out[1], json!({"role": "user", "content": "hi"}));
        assert_eq!(out[2], json!({"role": "assistant", "content": "hello"}));
    }

    #[test]
    fn a_tool_round_trip_keeps_ids_and_puts_results_first() {
        let out = chat(
            None,
            json!([
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "need the tool", "signature": "s"},
                    {"type": "text", "text": "Looking."},
                    {"type": "tool_use", "id": "toolu_01", "name": "weather", "input": {"city": "Oslo"}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_01", "content": [{"type": "text", "text": "cold"}]},
                    {"type": "tool_result", "tool_use_id": "toolu_02", "content": "no such city", "is_error": true},
                    {"type": "text", "text": "and tomorrow?"}
                ]}
            ]),
        );
        assert_eq!(out[1]["content"], "Looking.");
        assert_eq!(out[1]["reasoning_content"], "need the tool");
        assert_eq!(out[1]["tool_calls"][0]["id"], "toolu_01");
        assert_eq!(out[1]["tool_calls"][0]["function"]["arguments"], r#"{"city":"Oslo"}"#);
        assert_eq!(out[2], json!({"role": "tool", "content": "cold", "tool_call_id": "toolu_01"}));
        assert_eq!(out[3], json!({"role": "tool", "content": "Error: no such city", "tool_call_id": "toolu_02"}));
        assert_eq!(out[4], json!({"role": "user", "content": "and tomorrow?"}));
    }

    #[test]
    fn images_become_image_url_parts() {
        let out = chat(
            None,
            json!([{"role": "user", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}},
                {"type": "text", "text": "what is it?"}
            ]}]),
        );
        assert_eq!(
            out[0]["content"][0],
            json!({"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}})
        );
        assert_eq!(out[0]["content"][1], json!({"type": "text", "text": "what is it?"}));
    }

    #[test]
    fn a_bad_block_is_named_by_its_place() {
        let none = &mut Toolset::default();
        let bad_role = [json!({"role": "developer", "content": "x"})];
        let e = to_chat(None, &bad_role, none).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("messages[0].role"), "{e}");
        let bad_block = [
            json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "tool_use", "id": "x", "name": "y"}]}),
        ];
        let e = to_chat(None, &bad_block, none).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("messages[0].content[1]"), "{e}");
        let e = to_chat(Some(&json!(3)), &[], none).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("system"), "{e}");
    }

    #[test]
    fn system_messages_fold_first_then_stay_in_place_and_change_tools() {
        let mut tools = Toolset::decode(Some(json!([
            {"name": "Read", "input_schema": {"type": "object"}},
            {"name": "Grep", "input_schema": {"type": "object"}, "defer_loading": true},
            {"name": "Glob", "input_schema": {"type": "object"}, "defer_loading": true}
        ])))
        .unwrap_or_else(|e| panic!("{e}"));
        let messages = json!([
            {"role": "user", "content": "find it"},
            {"role": "system", "content": [{"type": "text", "text": "cwd is /src", "cache_control": {"type": "ephemeral"}}]},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "ToolSearch", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                "content": [{"type": "tool_reference", "tool_name": "Grep"}]}]},
            {"role": "system", "clear_at": "next_user_message", "content": "only this turn"},
            {"role": "system", "content": [
                {"type": "text", "text": "now careful"},
                {"type": "tool_addition", "tool": {"type": "tool_reference", "name": "Glob"}},
                {"type": "tool_removal", "tool": {"type": "tool_reference", "name": "Read"}}
            ]},
            {"role": "user", "content": "go on"},
            {"role": "system", "content": "think hard", "output_config": {"effort": "max"}}
        ]);
        let list = messages.as_array().cloned().unwrap_or_default();
        let out = to_chat(Some(&json!("Be brief.")), &list, &mut tools).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.effort.as_deref(), Some("high"), "max effort after the last user message, as high");
        let out: Vec<Value> = out_values(&out);
        assert_eq!(
            out[0],
            json!({"role": "system", "content": "Be brief.\n\ncwd is /src"}),
            "folded before any answer"
        );
        assert_eq!(out[1], json!({"role": "user", "content": "find it"}));
        assert!(out[3]["content"].as_str().is_some_and(|c| c.starts_with("<function>{") && c.contains("Grep")));
        assert_eq!(out[4], json!({"role": "system", "content": "now careful"}), "the cleared one is gone");
        assert_eq!(out[5], json!({"role": "user", "content": "go on"}));
        assert_eq!(out[6], json!({"role": "system", "content": "think hard"}));
        let offered: Vec<Value> = tools.offered().iter().map(|t| t["function"]["name"].clone()).collect();
        assert_eq!(offered, [json!("Grep"), json!("Glob")]);
        let none = &mut Toolset::default();
        let undeclared = to_chat(None, &list, none).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(undeclared.contains("Grep"), "a reference to an undeclared tool is named: {undeclared}");
    }

    fn out_values(c: &Conversation) -> Vec<Value> {
        c.messages.iter().map(|m| serde_json::to_value(m).unwrap_or_default()).collect()
    }
}
