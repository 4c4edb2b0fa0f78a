//! The tool loop: one chat request becomes rounds of upstream call → detect
//! tool calls → run them → re-forward, until the model answers without one.
//!
//! It touches no socket: it takes a [`ChatUpstream`], a [`ToolRunner`] and,
//! for streaming, a channel for SSE bytes, so tests drive it with fakes.
//!
//! | file | owns |
//! | --- | --- |
//! | `round` | one upstream call, collected (and streamed to the client) |
//! | `native` | the `tools` field, the system prompt, messages for results |
//! | `prompt` | prompt mode: render the catalog, detect `{"tool": …}` replies |
//! | `stream` | the single SSE stream the client sees across rounds |
//! | `calls` | running one round's tool calls, limits, repeat detection |

mod calls;
pub mod native;
pub mod prompt;
mod round;
pub mod stream;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::ProxyError;
use crate::mcp::{Catalog, Hub, ToolOutput};
use crate::openai::chat::{ChatRequest, Message, ToolCall, Usage};
pub use crate::settings::ToolLimits as Limits;
use crate::upstream::{Caller, ChatUpstream};
use round::{Answer, RoundError};
use stream::SseWriter;

/// How tools reach the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolMode {
    /// OpenAI `tools` and `tool_calls`.
    Native,
    /// The catalog in the system prompt; replies checked for `{"tool": …}`.
    Prompt,
}

/// The seam to the MCP hub.
#[async_trait]
pub trait ToolRunner: Send + Sync {
    /// The tools the model may be offered now.
    fn catalog(&self) -> Arc<Catalog>;
    /// Runs one tool; failures come back as error outputs, never as `Err`.
    async fn call(&self, name: &str, arguments: Value) -> ToolOutput;
}

#[async_trait]
impl ToolRunner for Hub {
    fn catalog(&self) -> Arc<Catalog> {
        Hub::catalog(self)
    }

    async fn call(&self, name: &str, arguments: Value) -> ToolOutput {
        Hub::call(self, name, arguments).await
    }
}

/// How a run ended.
#[derive(Debug)]
pub enum Finish {
    /// Non-streaming: the response body.
    Completion(Value),
    /// Streaming: everything went through the channel (ending in `[DONE]` or an error event).
    Streamed,
    /// The upstream refused before anything was sent: its answer, unchanged.
    Upstream { status: u16, retry_after: Option<String>, content_type: Option<String>, body: Bytes },
    /// The client went away; the work was stopped.
    Gone,
}

/// One request's run.
pub struct Run<'a> {
    pub upstream: &'a dyn ChatUpstream,
    pub tools: &'a dyn ToolRunner,
    pub limits: &'a Limits,
    pub caller: Caller,
    pub mode: ToolMode,
    /// False when MCP tools are off for this request (`tool_choice: "none"`, a header).
    pub mcp: bool,
    /// What this turn added to the conversation (tool calls, results, the
    /// final answer), for `/chat` to store.
    pub transcript: std::sync::Mutex<Vec<Message>>,
}

impl Run<'_> {
    fn record(&self, messages: &[Message]) {
        if let Ok(mut t) = self.transcript.lock() {
            t.extend_from_slice(messages);
        }
    }

    /// The messages this turn added, once the run has finished.
    pub fn take_transcript(&self) -> Vec<Message> {
        self.transcript.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default()
    }
}

/// Whether an upstream error says it does not take the `tools` field, so
/// `auto` mode should fall back to prompt mode.
pub fn rejects_tools(status: u16, body: &[u8]) -> bool {
    matches!(status, 400 | 422 | 501) && String::from_utf8_lossy(body).to_ascii_lowercase().contains("tool")
}

impl Run<'_> {
    /// Runs `req` to its final answer. `Err` is only returned before anything
    /// was sent to the client; after that, errors go in-band.
    pub async fn run(&self, req: ChatRequest, sink: Option<mpsc::Sender<Bytes>>) -> Result<Finish, ProxyError> {
        let mut writer = sink.map(|tx| SseWriter::new(tx, req.wants_stream_usage()));
        // The deadline drops the rounds wherever they are (an upstream call,
        // a tool call); the writer is ours again to report it.
        let result = match tokio::time::timeout(self.limits.deadline, self.rounds(&req, writer.as_mut())).await {
            Ok(result) => result,
            Err(_) => Err(RoundError::Proxy(ProxyError::UpstreamTimeout(format!(
                "the request did not finish within its deadline of {}s",
                self.limits.deadline.as_secs()
            )))),
        };
        match (result, writer) {
            (Ok(finish), _) => Ok(finish),
            (Err(RoundError::Gone), _) => Ok(Finish::Gone),
            (Err(RoundError::Upstream { status, retry_after, content_type, body }), w)
                if w.as_ref().is_none_or(|w| !w.started()) =>
            {
                Ok(Finish::Upstream { status, retry_after, content_type, body })
            }
            (Err(RoundError::Proxy(e)), w) if w.as_ref().is_none_or(|w| !w.started()) => Err(e),
            (Err(e), Some(mut w)) => {
                let err = match e {
                    RoundError::Proxy(e) => e,
                    RoundError::Upstream { status, body, .. } => ProxyError::UpstreamProtocol(format!(
                        "the upstream answered {status} in a later round: {}",
                        String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
                    )),
                    RoundError::Gone => return Ok(Finish::Gone),
                };
                w.error(&err).await;
                Ok(Finish::Streamed)
            }
            (Err(_), None) => Err(ProxyError::Internal("unreachable loop state".into())),
        }
    }

    async fn rounds(&self, req: &ChatRequest, mut writer: Option<&mut SseWriter>) -> Result<Finish, RoundError> {
        let started = Instant::now();
        let client_names: HashSet<String> = req.client_tool_names().into_iter().collect();
        let stream = writer.is_some();
        let mut messages = req.messages.clone();
        let mut usage = Usage::default();
        let mut first: Option<Answer> = None;
        let mut previous_calls: Option<Vec<(String, String)>> = None;
        let mut stopped: Option<&'static str> = None;
        let mut round = 0u32;
        loop {
            round += 1;
            let catalog = self.tools.catalog();
            let offer = (self.mcp && stopped.is_none() && !catalog.is_empty()).then_some(&*catalog);
            let body = native::round_body(req, &messages, self.mode, offer, &client_names, stream);
            let answer = round::run(self.upstream, &body, &self.caller, self.mode, writer.as_deref_mut()).await?;
            if let Some(u) = &answer.usage {
                usage.add(u);
            }
            let step = calls::classify(&answer, self.mode, offer, &client_names);
            if !step.client.is_empty() {
                // A turn that mixes both: ours run first, the client's go back to it.
                if offer.is_some() && !step.mcp.is_empty() {
                    calls::run_all(self.tools, &step.mcp, self.limits, writer.as_deref_mut()).await?;
                }
                let first =
                    first.get_or_insert_with(|| Answer { completion: answer.completion.clone(), ..Answer::default() });
                return self.finish(answer, first, step.client, usage, stopped, writer).await;
            }
            if step.mcp.is_empty() || offer.is_none() {
                let first =
                    first.get_or_insert_with(|| Answer { completion: answer.completion.clone(), ..Answer::default() });
                return self.finish(answer, first, step.client, usage, stopped, writer).await;
            }
            if first.is_none() {
                first = Some(Answer { completion: answer.completion.clone(), ..Answer::default() });
            }
            let signature = calls::signature(&step.mcp);
            let repeated = previous_calls.as_ref() == Some(&signature);
            previous_calls = Some(signature);
            if repeated {
                stopped = Some("repeated_tool_call");
            } else if round >= self.limits.max_rounds {
                stopped = Some("round_limit");
            } else if started.elapsed() >= self.limits.budget {
                stopped = Some("time_budget");
            }
            if let Some(reason) = stopped {
                messages.push(native::final_answer_request(reason));
                continue;
            }
            let results = calls::run_all(self.tools, &step.mcp, self.limits, writer.as_deref_mut()).await?;
            let added = calls::turn_messages(&answer, self.mode, &step.mcp, &results);
            self.record(&added);
            messages.extend(added);
        }
    }

    /// Writes the final answer: the last round's content (already streamed,
    /// or released now), the client's own tool calls, summed usage.
    async fn finish(
        &self,
        last: Answer,
        first: &Answer,
        client_calls: Vec<ToolCall>,
        usage: Usage,
        stopped: Option<&'static str>,
        writer: Option<&mut SseWriter>,
    ) -> Result<Finish, RoundError> {
        let mut final_message = Message::text("assistant", last.content.clone());
        final_message.tool_calls = (!client_calls.is_empty()).then(|| client_calls.clone());
        self.record(&[final_message]);
        let note = stopped.map(|reason| json!({"stopped": reason}));
        let finish_reason = if !client_calls.is_empty() {
            "tool_calls".to_string()
        } else {
            match last.finish_reason.as_deref() {
                Some("tool_calls") | None => "stop".to_string(),
                Some(other) => other.to_string(),
            }
        };
        if let Some(w) = writer {
            if let Some(held) = &last.held {
                w.content(held).await?;
            }
            w.finish(&finish_reason, &client_calls, usage, note.as_ref()).await?;
            return Ok(Finish::Streamed);
        }
        Ok(Finish::Completion(calls::final_completion(last, first, client_calls, &finish_reason, usage, note)))
    }
}
