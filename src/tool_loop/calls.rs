//! One round's tool calls: which are the proxy's to run and which the
//! client's (ownership: a call to a tool the client defined goes back to the
//! client untouched), running ours concurrently, and the messages they add.

use std::collections::HashSet;
use std::time::Instant;

use serde_json::{json, Value};

use super::events::{Event, ToolRun};
use super::native::{native_turn, prompt_turn};
use super::policy::Approval;
use super::round::{Reply, RoundError};
use super::{Limits, Sink, ToolMode, ToolRunner};
use crate::mcp::Catalog;
use crate::openai::chat::{Message, ToolCall};

/// A call the proxy will run on the hub.
#[derive(Debug, Clone)]
pub struct McpCall {
    pub call: ToolCall,
    /// The parsed arguments, or why they could not be parsed.
    pub arguments: Result<Value, String>,
}

impl McpCall {
    pub fn of(call: &ToolCall) -> Self {
        Self { call: call.clone(), arguments: parse_arguments(&call.function.arguments) }
    }
}

/// What the model asked for in one round.
#[derive(Debug, Default)]
pub struct Step {
    pub mcp: Vec<McpCall>,
    /// Calls of the client's own tools: returned to the client untouched.
    pub client: Vec<ToolCall>,
}

/// Sorts the reply's calls by owner. `mcp` is false when MCP tools were not
/// offered: then a call the model makes anyway is not run.
pub fn classify(reply: &Reply, mode: ToolMode, mcp: bool, client_names: &HashSet<String>) -> Step {
    let mut step = Step::default();
    for call in &reply.calls {
        if client_names.contains(&call.function.name) {
            step.client.push(call.clone());
        } else if mcp {
            let arguments = parse_arguments(&call.function.arguments);
            step.mcp.push(McpCall { call: call.clone(), arguments });
        }
    }
    if mode == ToolMode::Prompt && mcp && step.client.is_empty() {
        if let Some(found) = &reply.prompt_call {
            let arguments = Value::Object(found.call.arguments.clone());
            let id = format!("call_{}", uuid::Uuid::new_v4().simple());
            let call = ToolCall::new(id, found.call.name.clone(), arguments.to_string());
            step.mcp = vec![McpCall { call, arguments: Ok(arguments) }];
        }
    }
    step
}

/// Takes out of `step` the calls that must be approved before they run.
pub fn waiting_for_approval(step: &mut Step, catalog: &Catalog, approval: &Approval) -> Vec<ToolCall> {
    if approval.is_empty() {
        return Vec::new();
    }
    let needs =
        |c: &McpCall| catalog.get(&c.call.function.name).is_some_and(|t| approval.needed(&t.server, &t.original));
    let (waiting, now): (Vec<McpCall>, Vec<McpCall>) = std::mem::take(&mut step.mcp).into_iter().partition(needs);
    step.mcp = now;
    waiting.into_iter().map(|c| c.call).collect()
}

/// The results of approved calls (round 0 of `runs`), written into the
/// `tool` messages waiting for them: by the loop for the upstream, and by a
/// surface for the conversation it stores.
pub fn fill_approved(messages: &mut [Message], runs: &[ToolRun]) {
    for run in runs.iter().filter(|r| r.round == 0) {
        let slot = messages.iter_mut().find(|m| m.role == "tool" && m.tool_call_id.as_deref() == Some(&run.call.id));
        match slot {
            Some(m) => m.content = Some(Value::String(run.output.clone())),
            None => tracing::warn!(call = %run.call.id, "an approved call has no tool message to answer"),
        }
    }
}

fn parse_arguments(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Ok(json!({}));
    }
    serde_json::from_str(text).map_err(|e| format!("the arguments are not valid JSON ({e}): {text}"))
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
/// an error result), telling the sink as each starts and ends and keeping a
/// streaming client alive while they run.
pub async fn run_all(
    tools: &dyn ToolRunner,
    calls: &[McpCall],
    round: u32,
    limits: &Limits,
    sink: &mut Sink,
) -> Result<Vec<ToolRun>, RoundError> {
    sink.send(Event::ToolsStarted { round, calls: calls.iter().map(|c| c.call.clone()).collect() }).await?;
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let work = futures_util::future::join_all(calls.iter().enumerate().map(|(i, c)| {
        let done_tx = done_tx.clone();
        async move {
            let started = Instant::now();
            let (output, is_error) = run_one(tools, c, i, limits).await;
            let event = Event::ToolFinished {
                round,
                call_id: c.call.id.clone(),
                name: c.call.function.name.clone(),
                output: output.clone(),
                is_error,
                elapsed: started.elapsed(),
            };
            let _ = done_tx.send(event);
            ToolRun { round, call: c.call.clone(), output, is_error }
        }
    }));
    drop(done_tx);
    tokio::pin!(work);
    let names: Vec<&str> = calls.iter().map(|c| c.call.function.name.as_str()).collect();
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + limits.keepalive, limits.keepalive);
    let mut results = None;
    loop {
        tokio::select! {
            r = &mut work, if results.is_none() => results = Some(r),
            event = done_rx.recv() => match event {
                Some(event) => sink.send(event).await?,
                None if results.is_some() => break,
                None => {}
            },
            _ = ticker.tick(), if results.is_none() && sink.streaming() => {
                sink.send(Event::Waiting { what: format!("tool {} running", names.join(", ")) }).await?;
            }
        }
    }
    Ok(results.unwrap_or_default())
}

async fn run_one(tools: &dyn ToolRunner, c: &McpCall, i: usize, limits: &Limits) -> (String, bool) {
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
}

/// The messages one round adds to the conversation.
pub fn turn_messages(reply: &Reply, mode: ToolMode, runs: &[ToolRun]) -> Vec<Message> {
    match mode {
        ToolMode::Native => {
            let calls: Vec<ToolCall> = runs.iter().map(|r| r.call.clone()).collect();
            let results: Vec<(String, bool)> = runs.iter().map(|r| (r.output.clone(), r.is_error)).collect();
            native_turn(&reply.text, &calls, &results)
        }
        ToolMode::Prompt => match runs.first() {
            Some(run) => prompt_turn(&reply.text, &run.call.function.name, &run.output, run.is_error),
            None => vec![Message::text("assistant", reply.text.clone())],
        },
    }
}
