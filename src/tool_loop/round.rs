//! One round: send the conversation to the upstream and collect its reply,
//! giving a streaming client each piece as it arrives (prompt mode holds
//! back only what may still become a tool call).

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{Map, Value};

use super::events::{Delta, Event, Identity, Reasoning, REASONING_FIELDS};
use super::scan::{CallScanner, Found};
use super::{Sink, ToolMode};
use crate::error::ProxyError;
use crate::openai::chat::{ChatCompletion, ToolCall, Usage};
use crate::openai::stream::ToolCallAccumulator;
use crate::upstream::{Caller, ChatUpstream, ChunkStream, StreamItem, UpstreamError, UpstreamReply};

/// What one round produced.
#[derive(Debug, Default)]
pub struct Reply {
    pub identity: Identity,
    /// Everything the model wrote (in prompt mode, a call included).
    pub text: String,
    /// What of it the client sees.
    pub visible: String,
    /// Native tool calls, assembled.
    pub calls: Vec<ToolCall>,
    /// Prompt mode: the call found in the text.
    pub prompt_call: Option<Found>,
    pub finish_reason: Option<String>,
    /// The stop sequence that ended the reply, when the upstream names it.
    pub stop_sequence: Option<String>,
    pub usage: Option<Usage>,
    pub reasoning: Option<Reasoning>,
    /// Not streamed: the completion itself.
    pub completion: Option<ChatCompletion>,
}

#[derive(Debug)]
pub enum RoundError {
    /// The upstream answered with an error status.
    Upstream(UpstreamError),
    Proxy(ProxyError),
    /// The client went away.
    Gone,
}

impl From<ProxyError> for RoundError {
    fn from(e: ProxyError) -> Self {
        RoundError::Proxy(e)
    }
}

/// How to read this round.
pub struct Reading<'a> {
    pub mode: ToolMode,
    pub round: u32,
    /// Prompt mode: whether a name is a tool the model may call.
    pub is_known: &'a (dyn Fn(&str) -> bool + Sync),
    /// Prompt mode, streaming: a keep-alive this often while text is held back.
    pub keepalive: Duration,
}

/// Sends `body` and collects the reply; a streaming sink gets what the client may see as it comes.
pub async fn run(
    upstream: &dyn ChatUpstream,
    body: &Value,
    caller: &Caller,
    reading: &Reading<'_>,
    sink: &mut Sink,
) -> Result<Reply, RoundError> {
    match upstream.send(body, caller).await? {
        UpstreamReply::Failed(e) => Err(RoundError::Upstream(e)),
        UpstreamReply::Complete(completion) => Ok(from_completion(completion, reading)),
        UpstreamReply::Stream(stream) if sink.streaming() => collect_stream(stream, reading, sink).await,
        UpstreamReply::Stream(_) => {
            Err(ProxyError::UpstreamProtocol("a stream came back for a non-streaming request".into()).into())
        }
    }
}

fn from_completion(mut completion: ChatCompletion, reading: &Reading<'_>) -> Reply {
    let identity = Identity { id: completion.id.clone(), created: completion.created, model: completion.model.clone() };
    let choice = completion.choices.first_mut();
    let text = choice.as_ref().map(|c| c.message.content_text()).unwrap_or_default();
    let calls = choice.as_ref().and_then(|c| c.message.tool_calls.clone()).unwrap_or_default();
    let finish_reason = choice.as_ref().and_then(|c| c.finish_reason.clone());
    let stop_sequence = choice.as_ref().and_then(|c| matched_stop(&c.rest));
    let reasoning = choice.and_then(|c| {
        drop_legacy_call(&mut c.message.rest, reading.is_known, &mut false);
        take_reasoning(&mut c.message.rest)
    });
    let (visible, prompt_call) = match reading.mode {
        ToolMode::Native => (text.clone(), None),
        ToolMode::Prompt => CallScanner::scan_whole(&text, reading.is_known),
    };
    let usage = completion.usage.clone();
    Reply {
        identity,
        text,
        visible,
        calls,
        prompt_call,
        finish_reason,
        stop_sequence,
        usage,
        reasoning,
        completion: Some(completion),
    }
}

/// vLLM (and servers copying it) say which stop sequence ended a choice in
/// `stop_reason`; a number there is a stop token, not one of the sequences.
fn matched_stop(choice: &Map<String, Value>) -> Option<String> {
    choice.get("stop_reason").and_then(Value::as_str).map(str::to_string)
}

/// Removes the legacy `function_call` (which servers such as llama.cpp's send
/// beside `tool_calls`) when it is a call of an MCP tool: the proxy runs it,
/// the client must not see it. Once one piece of a stream was, so are the rest
/// (later pieces may not repeat the name).
fn drop_legacy_call(rest: &mut Map<String, Value>, is_mcp: &(dyn Fn(&str) -> bool + Sync), seen: &mut bool) {
    let Some(call) = rest.get("function_call") else { return };
    let name = call.get("name").and_then(Value::as_str);
    if *seen || name.is_some_and(is_mcp) || call.is_null() {
        *seen |= !call.is_null();
        rest.remove("function_call");
    }
}

/// The reasoning text of a message or delta, taken out of its other fields.
fn take_reasoning(rest: &mut Map<String, Value>) -> Option<Reasoning> {
    let field = REASONING_FIELDS.iter().find(|f| rest.get(**f).is_some_and(Value::is_string))?;
    let text = rest.remove(*field).and_then(|v| v.as_str().map(str::to_string))?;
    Some(Reasoning { field: field.to_string(), text })
}

async fn collect_stream(mut stream: ChunkStream, reading: &Reading<'_>, sink: &mut Sink) -> Result<Reply, RoundError> {
    let mut reply = Reply::default();
    let mut calls = ToolCallAccumulator::default();
    let mut scanner = (reading.mode == ToolMode::Prompt).then(|| CallScanner::new(reading.is_known));
    let mut identity: Option<Identity> = None;
    let mut reasoning = String::new();
    let mut reasoning_field: Option<String> = None;
    let mut legacy_mcp_call = false;
    loop {
        // While prompt mode holds text back the client sees nothing: keep it alive.
        let holding = scanner.as_ref().is_some_and(CallScanner::holding);
        let item = if holding {
            match tokio::time::timeout(reading.keepalive, stream.next()).await {
                Ok(item) => item,
                Err(_) => {
                    sink.send(Event::Waiting { what: "a reply that may be a tool call".into() }).await?;
                    continue;
                }
            }
        } else {
            stream.next().await
        };
        let chunk = match item {
            None => {
                return Err(ProxyError::UpstreamProtocol(
                    "the upstream's stream ended without [DONE]: the answer may be cut short".into(),
                )
                .into())
            }
            Some(item) => match item? {
                StreamItem::Done => break,
                StreamItem::Chunk(c) => c,
            },
        };
        if identity.is_none() {
            let first = Identity { id: chunk.id.clone(), created: chunk.created, model: chunk.model.clone() };
            sink.start(&first).await?;
            identity = Some(first);
        }
        if let Some(u) = chunk.usage {
            reply.usage = Some(u);
        }
        for mut choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(deltas) = &choice.delta.tool_calls {
                calls.push(deltas);
            }
            if let Some(reason) = choice.finish_reason.take() {
                reply.finish_reason = Some(reason);
                reply.stop_sequence = matched_stop(&choice.rest);
            }
            let piece = choice.delta.content.take().unwrap_or_default();
            reply.text.push_str(&piece);
            let text = match scanner.as_mut() {
                Some(scanner) => scanner.push(&piece),
                None => piece,
            };
            reply.visible.push_str(&text);
            drop_legacy_call(&mut choice.delta.rest, reading.is_known, &mut legacy_mcp_call);
            let got_reasoning = take_reasoning(&mut choice.delta.rest);
            if let Some(r) = &got_reasoning {
                reasoning.push_str(&r.text);
                reasoning_field.get_or_insert_with(|| r.field.clone());
            }
            // A field sent as null says nothing (`"logprobs": null` in every chunk).
            choice.delta.rest.retain(|_, v| !v.is_null());
            choice.rest.retain(|_, v| !v.is_null());
            let delta = Delta {
                round: reading.round,
                text,
                reasoning: got_reasoning,
                extra_delta: choice.delta.rest,
                extra_choice: choice.rest,
            };
            if !delta.text.is_empty()
                || delta.reasoning.is_some()
                || !delta.extra_delta.is_empty()
                || !delta.extra_choice.is_empty()
            {
                sink.send(Event::Delta(delta)).await?;
            }
        }
    }
    if let Some(scanner) = scanner.as_mut() {
        let (rest, found) = scanner.finish();
        reply.visible.push_str(&rest);
        reply.prompt_call = found;
        if !rest.is_empty() {
            let delta = Delta { round: reading.round, text: rest, ..Delta::default() };
            sink.send(Event::Delta(delta)).await?;
        }
    }
    reply.identity = identity.unwrap_or_default();
    reply.calls = calls.finish();
    reply.reasoning = reasoning_field.map(|field| Reasoning { field, text: reasoning });
    Ok(reply)
}
