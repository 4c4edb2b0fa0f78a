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
//! - `thinking` → the assistant message's `reasoning_content` (what
//!   reasoning upstreams read back); `redacted_thinking` is dropped.
//!
//! Anything else is a 400 naming the block's place (`messages[2].content[1]`).

use serde_json::{json, Map, Value};

use crate::error::ProxyError;
use crate::openai::chat::{FunctionCall, Message, ToolCall};

fn bad(message: impl Into<String>, param: &str) -> ProxyError {
    ProxyError::bad_request(message, Some(param))
}

/// `system` and `messages` as chat messages, the system prompt first.
pub fn to_chat(system: Option<&Value>, messages: &[Value]) -> Result<Vec<Message>, ProxyError> {
    let mut out = Vec::with_capacity(messages.len() + 1);
    if let Some(system) = system.filter(|s| !s.is_null()) {
        let text = system_text(system)?;
        if !text.is_empty() {
            out.push(Message::text("system", text));
        }
    }
    for (i, message) in messages.iter().enumerate() {
        let at = format!("messages[{i}]");
        let role = message.get("role").and_then(Value::as_str).unwrap_or_default();
        let content = message.get("content").ok_or_else(|| bad(format!("{at}.content is required"), &at))?;
        match role {
            "user" => user(content, &at, &mut out)?,
            "assistant" => out.push(assistant(content, &at)?),
            other => return Err(bad(format!("{at}.role must be \"user\" or \"assistant\", not {other:?}"), &at)),
        }
    }
    Ok(out)
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

fn user(content: &Value, at: &str, out: &mut Vec<Message>) -> Result<(), ProxyError> {
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
        let out = to_chat(system.as_ref(), &list).unwrap_or_else(|e| panic!("{e}"));
        out.iter().map(|m| serde_json::to_value(m).unwrap_or_default()).collect()
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
        let bad_role = [json!({"role": "system", "content": "x"})];
        let e = to_chat(None, &bad_role).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("messages[0].role"), "{e}");
        let bad_block = [
            json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "tool_use", "id": "x", "name": "y"}]}),
        ];
        let e = to_chat(None, &bad_block).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("messages[0].content[1]"), "{e}");
        let e = to_chat(Some(&json!(3)), &[]).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("system"), "{e}");
    }
}
