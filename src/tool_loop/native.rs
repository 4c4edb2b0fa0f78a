//! The request and messages of each round: the `tools` field (native mode),
//! the system prompt (prompt mode), and how tool calls and their results
//! are written back into the conversation.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::prompt::{render_system_prompt, tool_result_message, PromptTool};
use super::ToolMode;
use crate::mcp::Catalog;
use crate::openai::chat::{ChatRequest, Message, ToolCall};

/// MCP tools as OpenAI `tools` entries, leaving out names the client's own
/// tools already use (the client's definition wins for its own name).
pub fn tool_specs(catalog: &Catalog, client_names: &HashSet<String>) -> Vec<Value> {
    catalog
        .tools()
        .iter()
        .filter(|t| !client_names.contains(&t.name))
        .map(|t| {
            json!({"type": "function", "function": {
                "name": t.name,
                "description": t.description,
                "parameters": normalise_schema(&t.input_schema),
            }})
        })
        .collect()
}

/// OpenAI wants an object schema with `properties`; some MCP servers send `{}`.
fn normalise_schema(schema: &Value) -> Value {
    let mut s = schema.clone();
    if let Some(obj) = s.as_object_mut() {
        obj.entry("type").or_insert(json!("object"));
        obj.entry("properties").or_insert(json!({}));
        return s;
    }
    json!({"type": "object", "properties": {}})
}

/// What one round's request offers the model.
#[derive(Debug, Clone, Copy)]
pub struct Offer<'c> {
    /// The MCP tools, or `None` when they are off for this request.
    pub catalog: Option<&'c Catalog>,
    /// Names the client's own tools use (its definitions win).
    pub client_names: &'c HashSet<String>,
    /// The answer after a limit: the same tools (the history holds calls to
    /// them, and the prompt-cache prefix stays), but no call may be made.
    pub last: bool,
    /// A tool round has run: a `tool_choice` that forces a call (`required`,
    /// or a named function) has been obeyed, and is `auto` from now on, or
    /// the model could never answer.
    pub after_tools: bool,
}

/// The body of one round.
pub fn round_body(base: &ChatRequest, messages: &[Message], mode: ToolMode, offer: Offer<'_>, stream: bool) -> Value {
    let mut req = base.clone();
    req.stream = Some(stream);
    if !stream {
        req.stream_options = None;
    }
    req.messages = match (mode, offer.catalog) {
        (ToolMode::Native, Some(catalog)) => {
            let mut tools = base.tools.clone().unwrap_or_default();
            tools.extend(tool_specs(catalog, offer.client_names));
            req.tools = (!tools.is_empty()).then_some(tools);
            messages.to_vec()
        }
        (ToolMode::Prompt, Some(catalog)) => with_system_prompt(messages, &system_prompt(catalog, offer.client_names)),
        (_, None) => messages.to_vec(),
    };
    if offer.last && req.tools.is_some() {
        req.tool_choice = Some(Value::String("none".into()));
    } else if offer.after_tools && forces_a_call(req.tool_choice.as_ref()) {
        req.tool_choice = Some(Value::String("auto".into()));
    }
    serde_json::to_value(req).unwrap_or_default()
}

fn forces_a_call(choice: Option<&Value>) -> bool {
    match choice {
        Some(Value::String(s)) => s == "required",
        Some(Value::Object(o)) => o.get("type").and_then(Value::as_str) == Some("function"),
        _ => false,
    }
}

fn system_prompt(catalog: &Catalog, client_names: &HashSet<String>) -> String {
    let tools: Vec<PromptTool<'_>> = catalog
        .tools()
        .iter()
        .filter(|t| !client_names.contains(&t.name))
        .map(|t| PromptTool { name: &t.name, description: &t.description, schema: &t.input_schema })
        .collect();
    render_system_prompt(&tools)
}

/// Prepends `prompt` to the client's system message, or adds one.
fn with_system_prompt(messages: &[Message], prompt: &str) -> Vec<Message> {
    let mut out = messages.to_vec();
    if prompt.is_empty() {
        return out;
    }
    match out.iter_mut().find(|m| m.role == "system" || m.role == "developer") {
        Some(system) => {
            let own = system.content_text();
            system.content = Some(Value::String(format!("{prompt}\n\n{own}")));
        }
        None => out.insert(0, Message::text("system", prompt)),
    }
    out
}

/// Native mode: the assistant turn with its tool calls, then one `tool`
/// message per call with its result. `content` is always there, `""` when
/// the model wrote none: Jinja chat templates (llama.cpp, vLLM) read it
/// unconditionally, and OpenAI takes it.
pub fn native_turn(content: &str, calls: &[ToolCall], results: &[(String, bool)]) -> Vec<Message> {
    let mut assistant = Message::text("assistant", content);
    assistant.tool_calls = Some(calls.to_vec());
    let mut out = vec![assistant];
    for (call, (text, _)) in calls.iter().zip(results) {
        let mut m = Message::text("tool", text.clone());
        m.tool_call_id = Some(call.id.clone());
        out.push(m);
    }
    out
}

/// Prompt mode: the model's reply as it was, then the result as a user message.
pub fn prompt_turn(reply: &str, name: &str, text: &str, is_error: bool) -> Vec<Message> {
    vec![Message::text("assistant", reply), Message::text("user", tool_result_message(name, text, is_error))]
}

/// The note asking for an answer without tools once a limit is reached.
pub fn final_answer_request(reason: &str) -> Message {
    Message::text(
        "user",
        format!("({reason}: no more tool calls are possible. Answer now with the information you have.)"),
    )
}
