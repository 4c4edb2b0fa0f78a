//! One round's tool calls: which are ours and which the client's, running
//! ours concurrently, and shaping the final completion.

use std::collections::HashSet;

use serde_json::{json, Value};

use super::native::{native_turn, prompt_turn};
use super::prompt::{classify_opening, detect_tool_call, Opening};
use super::round::{Answer, RoundError};
use super::stream::SseWriter;
use super::{Limits, ToolMode, ToolRunner};
use crate::mcp::Catalog;
use crate::openai::chat::{FunctionCall, Message, ToolCall, Usage};

/// A call the proxy will run on the hub.
#[derive(Debug, Clone)]
pub struct McpCall {
    pub call: ToolCall,
    /// The parsed arguments, or why they could not be parsed.
    pub arguments: Result<Value, String>,
}

/// What the model asked for in one round.
#[derive(Debug, Default)]
pub struct Step {
    pub mcp: Vec<McpCall>,
    /// Calls of the client's own tools: returned to the client untouched.
    pub client: Vec<ToolCall>,
}

pub fn classify(answer: &Answer, mode: ToolMode, offer: Option<&Catalog>, client_names: &HashSet<String>) -> Step {
    let mut step = Step::default();
    for call in &answer.calls {
        if client_names.contains(&call.function.name) {
            step.client.push(call.clone());
        } else {
            let arguments = parse_arguments(&call.function.arguments);
            step.mcp.push(McpCall { call: call.clone(), arguments });
        }
    }
    // A streamed reply that opened as prose has reached the client already:
    // it is the answer, whatever JSON may follow in it.
    let inspectable = answer.completion.is_some() || answer.held.is_some();
    if mode == ToolMode::Prompt && step.client.is_empty() && inspectable {
        if let Some(catalog) = offer {
            if let Some(call) = prompt_call(&answer.content, catalog) {
                step.mcp = vec![call];
            }
        }
    }
    step
}

fn parse_arguments(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(text).map_err(|e| format!("the arguments are not valid JSON ({e}): {text}"))
}

/// Prompt mode: a `{"tool": …}` object for a known tool; or, when the reply
/// opens like a call and names a tool explicitly, that call (so an unknown
/// name is answered with an error instead of reaching the user).
fn prompt_call(text: &str, catalog: &Catalog) -> Option<McpCall> {
    let found = detect_tool_call(text, &|name| catalog.get(name).is_some()).or_else(|| {
        let opens_as_call = classify_opening(text) == Opening::MaybeTool && text.contains("\"tool\"");
        opens_as_call.then(|| detect_tool_call(text, &|_| true)).flatten()
    })?;
    let arguments = Value::Object(found.arguments);
    let call = ToolCall {
        id: format!("prompt_{}", uuid::Uuid::new_v4().simple()),
        kind: "function".into(),
        function: FunctionCall { name: found.name, arguments: arguments.to_string() },
    };
    Some(McpCall { call, arguments: Ok(arguments) })
}

/// What makes two rounds' calls "the same": names and canonical arguments.
pub fn signature(calls: &[McpCall]) -> Vec<(String, String)> {
    let mut sig: Vec<(String, String)> = calls
        .iter()
        .map(|c| {
            let args = c.arguments.as_ref().map(Value::to_string).unwrap_or_else(|e| e.clone());
            (c.call.function.name.clone(), args)
        })
        .collect();
    sig.sort();
    sig
}

/// Runs the calls concurrently (at most `max_calls_per_round`; the rest get
/// an error result), sending keep-alive comments while they run.
pub async fn run_all(
    tools: &dyn ToolRunner,
    calls: &[McpCall],
    limits: &Limits,
    writer: Option<&mut SseWriter>,
) -> Result<Vec<(String, bool)>, RoundError> {
    let work = futures_util::future::join_all(calls.iter().enumerate().map(|(i, c)| async move {
        if i >= limits.max_calls_per_round {
            return (format!("not run: at most {} tool calls per turn", limits.max_calls_per_round), true);
        }
        match &c.arguments {
            Err(why) => (why.clone(), true),
            Ok(args) => {
                let out = tools.call(&c.call.function.name, args.clone()).await;
                (out.text, out.is_error)
            }
        }
    }));
    let Some(writer) = writer else { return Ok(work.await) };
    tokio::pin!(work);
    let names: Vec<&str> = calls.iter().map(|c| c.call.function.name.as_str()).collect();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + limits.keepalive, limits.keepalive);
    loop {
        tokio::select! {
            results = &mut work => return Ok(results),
            _ = ticker.tick() => writer.comment(&format!("tool {} running", names.join(", "))).await?,
        }
    }
}

/// The messages one round adds to the conversation.
pub fn turn_messages(answer: &Answer, mode: ToolMode, calls: &[McpCall], results: &[(String, bool)]) -> Vec<Message> {
    match mode {
        ToolMode::Native => {
            let raw: Vec<ToolCall> = calls.iter().map(|c| c.call.clone()).collect();
            native_turn(&answer.content, &raw, results)
        }
        ToolMode::Prompt => {
            let (text, is_error) = results.first().cloned().unwrap_or_default();
            let name = calls.first().map(|c| c.call.function.name.as_str()).unwrap_or("");
            prompt_turn(&answer.content, name, &text, is_error)
        }
    }
}

/// The non-streaming response: the last round's completion with the first
/// round's identity, the client's own tool calls, and usage summed.
pub fn final_completion(
    last: Answer,
    first: &Answer,
    client_calls: Vec<ToolCall>,
    finish_reason: &str,
    usage: Usage,
    note: Option<Value>,
) -> Value {
    let Some(mut completion) = last.completion else { return Value::Null };
    if let Some(f) = &first.completion {
        (completion.id, completion.created) = (f.id.clone(), f.created);
    }
    if let Some(choice) = completion.choices.first_mut() {
        choice.message.tool_calls = (!client_calls.is_empty()).then_some(client_calls);
        choice.finish_reason = Some(finish_reason.to_string());
    }
    let estimated = usage == Usage::default();
    completion.usage = if estimated { completion.usage } else { Some(usage) };
    if let Some(note) = note {
        completion.rest.insert("mcp_proxy".into(), note);
    }
    serde_json::to_value(completion).unwrap_or_default()
}
