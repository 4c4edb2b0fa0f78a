//! A `POST /v1/messages` body in chat-completions terms, checked field by
//! field: a wrong type, a missing required field or a field this proxy does
//! not know is a 400 naming it (as Anthropic's API refuses extra fields).
//!
//! | Messages | chat completions |
//! | --- | --- |
//! | `max_tokens` (required) | `max_tokens` |
//! | `system`, `messages` | messages (see `conversation`) |
//! | `tools` (`name`, `description`, `input_schema`) | function tools |
//! | `tool_choice` `auto` / `any` / `tool` / `none` | `auto` / `required` / the named function / `none` (and no MCP tools) |
//! | `tool_choice.disable_parallel_tool_use` | `parallel_tool_calls: false` |
//! | `stop_sequences` | `stop` |
//! | `temperature`, `top_p`, `top_k` | the same (`top_k` as vLLM and llama.cpp read it) |
//! | `metadata.user_id` | `user` |
//! | `thinking` `{type: enabled, budget_tokens}` | `reasoning_effort` (≤ 4096 low, ≤ 16384 medium, else high) |
//! | `thinking` `adaptive` / `between_tools` / `disabled` | nothing (the upstream thinks as it is set up to) |
//! | `output_config.effort` `low` / `medium` / `high` / `xhigh` / `max` | `reasoning_effort` (the last two as `high`, the most chat completions knows) |
//! | `output_config.format` `{type: json_schema, schema}` | `response_format` `json_schema` |
//! | `cache_control` | nothing: an upstream caches prompt prefixes by itself, or not at all |
//! | `context_management.edits` | checked, not applied: the client sends the whole history each turn and the proxy keeps none, so there is nothing of its own to clear; the upstream reads the history as sent |

use serde_json::{json, Map, Value};

use super::conversation::to_chat;
use super::toolset::Toolset;
use crate::error::ProxyError;
use crate::openai::chat::ChatRequest;

/// The request, decoded.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub chat: ChatRequest,
    /// False when `tool_choice` is `none`: no MCP tools this time.
    pub mcp: bool,
    pub stream: bool,
}

/// Fields a client may send that this proxy does not (yet) serve.
const REFUSED: [(&str, &str); 3] = [
    ("mcp_servers", "mcp_servers is not supported yet; the proxy's own MCP servers are offered"),
    ("container", "containers are not supported by this proxy"),
    ("service_tier", "service_tier is not supported by this proxy"),
];

fn bad(message: impl Into<String>, param: &str) -> ProxyError {
    ProxyError::bad_request(message, Some(param))
}

pub fn decode(body: &Value) -> Result<Decoded, ProxyError> {
    let Some(obj) = body.as_object() else { return Err(bad("the request body must be a JSON object", "body")) };
    let mut obj = obj.clone();
    for (field, why) in REFUSED {
        if obj.get(field).is_some_and(|v| !v.is_null()) {
            return Err(bad(why, field));
        }
    }
    let model = match obj.remove("model") {
        Some(Value::String(m)) if !m.is_empty() => m,
        _ => return Err(bad("model: a model name is required", "model")),
    };
    let max_tokens = match obj.remove("max_tokens") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => n,
        _ => return Err(bad("max_tokens: a positive whole number is required", "max_tokens")),
    };
    let messages = match obj.remove("messages") {
        Some(Value::Array(list)) => list,
        _ => return Err(bad("messages: an array of messages is required", "messages")),
    };
    let system = obj.remove("system");
    let stream = match obj.remove("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => b,
        Some(_) => return Err(bad("stream must be true or false", "stream")),
    };
    let mut rest = Map::new();
    rest.insert("max_tokens".into(), Value::Number(max_tokens));
    let mut toolset = Toolset::decode(obj.remove("tools"))?;
    let (tool_choice, mcp) = tool_choice(obj.remove("tool_choice"), &mut rest)?;
    sampling(&mut obj, &mut rest)?;
    output_config(obj.remove("output_config"), &mut rest)?;
    context_management(obj.remove("context_management"))?;
    obj.remove("cache_control");
    if let Some(field) = obj.keys().next() {
        return Err(bad(format!("{field}: extra inputs are not permitted"), field));
    }
    let conversation = to_chat(system.as_ref(), &messages, &mut toolset)?;
    if let Some(effort) = conversation.effort {
        rest.insert("reasoning_effort".into(), Value::String(effort));
    }
    let tools = toolset.offered();
    let chat = ChatRequest {
        model,
        messages: conversation.messages,
        stream: Some(stream),
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        stream_options: stream.then(|| json!({"include_usage": true})),
        rest,
    };
    Ok(Decoded { chat, mcp, stream })
}

/// `tool_choice` in chat terms, and whether MCP tools are offered.
fn tool_choice(choice: Option<Value>, rest: &mut Map<String, Value>) -> Result<(Option<Value>, bool), ProxyError> {
    let Some(choice) = choice.filter(|c| !c.is_null()) else { return Ok((None, true)) };
    if choice.get("disable_parallel_tool_use").and_then(Value::as_bool) == Some(true) {
        rest.insert("parallel_tool_calls".into(), Value::Bool(false));
    }
    match choice.get("type").and_then(Value::as_str) {
        Some("auto") => Ok((Some(json!("auto")), true)),
        Some("any") => Ok((Some(json!("required")), true)),
        Some("none") => Ok((Some(json!("none")), false)),
        Some("tool") => {
            let name = choice.get("name").and_then(Value::as_str);
            let name = name.ok_or_else(|| bad("tool_choice.name is required with type \"tool\"", "tool_choice"))?;
            Ok((Some(json!({"type": "function", "function": {"name": name}})), true))
        }
        _ => Err(bad("tool_choice.type must be auto, any, tool or none", "tool_choice")),
    }
}

/// The sampling fields, each moved from `obj` to `rest` in chat terms.
fn sampling(obj: &mut Map<String, Value>, rest: &mut Map<String, Value>) -> Result<(), ProxyError> {
    for key in ["temperature", "top_p", "top_k"] {
        match obj.remove(key) {
            None | Some(Value::Null) => {}
            Some(v @ Value::Number(_)) => {
                rest.insert(key.into(), v);
            }
            Some(_) => return Err(bad(format!("{key} must be a number"), key)),
        }
    }
    match obj.remove("stop_sequences") {
        None | Some(Value::Null) => {}
        Some(Value::Array(s)) if s.iter().all(Value::is_string) => {
            rest.insert("stop".into(), Value::Array(s));
        }
        Some(_) => return Err(bad("stop_sequences must be an array of strings", "stop_sequences")),
    }
    if let Some(metadata) = obj.remove("metadata").filter(|m| !m.is_null()) {
        let Some(m) = metadata.as_object() else { return Err(bad("metadata must be an object", "metadata")) };
        if let Some(user) = m.get("user_id").and_then(Value::as_str) {
            rest.insert("user".into(), json!(user));
        }
    }
    if let Some(thinking) = obj.remove("thinking").filter(|t| !t.is_null()) {
        match thinking.get("type").and_then(Value::as_str) {
            Some("enabled") => {
                let budget = thinking.get("budget_tokens").and_then(Value::as_u64).unwrap_or(0);
                let effort = match budget {
                    0..=4096 => "low",
                    4097..=16384 => "medium",
                    _ => "high",
                };
                rest.insert("reasoning_effort".into(), json!(effort));
            }
            Some("disabled" | "adaptive" | "between_tools") => {}
            _ => return Err(bad("thinking.type must be enabled, adaptive, between_tools or disabled", "thinking")),
        }
    }
    Ok(())
}

/// An `effort` value in chat terms (`reasoning_effort`).
pub fn effort(value: &Value, at: &str) -> Result<Option<String>, ProxyError> {
    match value {
        Value::Null => Ok(None),
        Value::String(e) => match e.as_str() {
            "low" | "medium" | "high" => Ok(Some(e.clone())),
            "xhigh" | "max" => Ok(Some("high".into())),
            _ => Err(bad(format!("{at} must be low, medium, high, xhigh or max"), at)),
        },
        _ => Err(bad(format!("{at} must be low, medium, high, xhigh or max"), at)),
    }
}

/// `output_config`: `effort` and `format`; its other fields are refused by
/// name (a budget this proxy would not keep is worse than a 400).
fn output_config(config: Option<Value>, rest: &mut Map<String, Value>) -> Result<(), ProxyError> {
    let Some(config) = config.filter(|c| !c.is_null()) else { return Ok(()) };
    let Some(config) = config.as_object() else { return Err(bad("output_config must be an object", "output_config")) };
    for (key, value) in config {
        match key.as_str() {
            "effort" => {
                if let Some(e) = effort(value, "output_config.effort")? {
                    rest.insert("reasoning_effort".into(), Value::String(e));
                }
            }
            "format" if value.is_null() => {}
            "format" => {
                let schema = value.get("schema").filter(|s| s.is_object());
                let (Some("json_schema"), Some(schema)) = (value.get("type").and_then(Value::as_str), schema) else {
                    return Err(bad(
                        "output_config.format must be {type: json_schema, schema}",
                        "output_config.format",
                    ));
                };
                let format = json!({"name": "output", "schema": schema, "strict": true});
                rest.insert("response_format".into(), json!({"type": "json_schema", "json_schema": format}));
            }
            other => {
                let at = format!("output_config.{other}");
                return Err(bad(format!("{at} is not supported by this proxy"), &at));
            }
        }
    }
    Ok(())
}

/// `context_management`: its shape is checked (a typo is still a 400) and
/// nothing is applied (see the table above).
fn context_management(config: Option<Value>) -> Result<(), ProxyError> {
    let Some(config) = config.filter(|c| !c.is_null()) else { return Ok(()) };
    let edits = match config.as_object().map(|o| (o.get("edits"), o.len())) {
        Some((None, 0)) => return Ok(()),
        Some((Some(Value::Array(edits)), 1)) => edits,
        _ => return Err(bad("context_management must be {edits: [...]}", "context_management")),
    };
    for (i, edit) in edits.iter().enumerate() {
        if edit.get("type").and_then(Value::as_str).is_none() {
            let at = format!("context_management.edits[{i}]");
            return Err(bad(format!("{at}.type is required"), &at));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: Value) -> (Value, bool) {
        let d = decode(&body).unwrap_or_else(|e| panic!("{e}"));
        (serde_json::to_value(&d.chat).unwrap_or_default(), d.mcp)
    }

    fn refused(body: Value) -> String {
        decode(&body).err().map(|e| e.to_string()).unwrap_or_else(|| panic!("accepted: {body}"))
    }

    fn base() -> Value {
        json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]})
    }

    #[test]
    fn fields_map_to_their_chat_names() {
        let mut body = base();
        body["system"] = json!("Be brief.");
        body["stream"] = json!(true);
        body["temperature"] = json!(0.2);
        body["top_k"] = json!(5);
        body["stop_sequences"] = json!(["END"]);
        body["metadata"] = json!({"user_id": "u-1"});
        body["thinking"] = json!({"type": "enabled", "budget_tokens": 8000});
        body["tools"] = json!([{"name": "weather", "description": "Weather now", "input_schema": {"type": "object"}}]);
        body["tool_choice"] = json!({"type": "any", "disable_parallel_tool_use": true});
        let (chat, mcp) = ok(body);
        assert!(mcp);
        assert_eq!(chat["messages"][0], json!({"role": "system", "content": "Be brief."}));
        assert_eq!(chat["max_tokens"], 100);
        assert_eq!(chat["stream"], true);
        assert_eq!(chat["stream_options"], json!({"include_usage": true}));
        assert_eq!(chat["temperature"], 0.2);
        assert_eq!(chat["top_k"], 5);
        assert_eq!(chat["stop"], json!(["END"]));
        assert_eq!(chat["user"], "u-1");
        assert_eq!(chat["reasoning_effort"], "medium");
        assert_eq!(chat["tool_choice"], "required");
        assert_eq!(chat["parallel_tool_calls"], false);
        assert_eq!(
            chat["tools"][0],
            json!({"type": "function", "function": {"name": "weather", "description": "Weather now", "parameters": {"type": "object"}}})
        );
    }

    #[test]
    fn tool_choice_none_turns_mcp_tools_off_and_tool_names_a_function() {
        let mut body = base();
        body["tool_choice"] = json!({"type": "none"});
        let (chat, mcp) = ok(body.clone());
        assert!(!mcp, "no MCP tools with tool_choice none");
        assert_eq!(chat["tool_choice"], "none");
        body["tool_choice"] = json!({"type": "tool", "name": "weather"});
        assert_eq!(ok(body).0["tool_choice"], json!({"type": "function", "function": {"name": "weather"}}));
    }

    #[test]
    fn missing_wrong_and_unknown_fields_are_named() {
        let mut no_max = base();
        no_max.as_object_mut().map(|o| o.remove("max_tokens"));
        assert!(refused(no_max).contains("max_tokens"));
        let mut extra = base();
        extra["frobnicate"] = json!(1);
        assert!(refused(extra).contains("frobnicate"));
        let mut server_tool = base();
        server_tool["tools"] = json!([{"type": "web_search_20250305", "name": "web_search"}]);
        assert!(refused(server_tool).contains("tools[0]"));
        let mut servers = base();
        servers["mcp_servers"] = json!([{"type": "url", "url": "https://x", "name": "x"}]);
        assert!(refused(servers).contains("mcp_servers"));
        let mut budget = base();
        budget["output_config"] = json!({"task_budget": {"type": "tokens", "total": 10}});
        assert!(refused(budget).contains("output_config.task_budget"));
        let mut edits = base();
        edits["context_management"] = json!({"edit": []});
        assert!(refused(edits).contains("context_management"));
        let mut effort = base();
        effort["output_config"] = json!({"effort": "extreme"});
        assert!(refused(effort).contains("output_config.effort"));
        let mut bad_choice = base();
        bad_choice["tool_choice"] = json!({"type": "sometimes"});
        assert!(refused(bad_choice).contains("tool_choice"));
    }

    /// What Claude Code 2.1 sends beside the conversation.
    #[test]
    fn claude_codes_request_fields_are_taken() {
        let mut body = base();
        body["thinking"] = json!({"type": "adaptive", "display": "omitted"});
        body["output_config"] =
            json!({"effort": "xhigh", "format": {"type": "json_schema", "schema": {"type": "object"}}});
        body["context_management"] = json!({"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]});
        body["cache_control"] = json!({"type": "ephemeral"});
        body["tools"] = json!([
            {"name": "Read", "input_schema": {"type": "object"}},
            {"name": "DeferredToolPlaceholder", "input_schema": {"type": "object"}, "defer_loading": true}
        ]);
        let (chat, _) = ok(body);
        assert_eq!(chat["reasoning_effort"], "high");
        assert_eq!(chat["response_format"]["json_schema"]["schema"], json!({"type": "object"}));
        let names: Vec<&Value> =
            chat["tools"].as_array().into_iter().flatten().map(|t| &t["function"]["name"]).collect();
        assert_eq!(names, [&json!("Read")], "a deferred tool is not offered until loaded");
        assert!(chat.get("cache_control").is_none() && chat.get("context_management").is_none());
    }
}
