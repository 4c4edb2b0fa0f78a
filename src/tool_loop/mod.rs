//! The tool loop: one chat request becomes rounds of upstream call → the
//! model's tool calls run on the MCP hub → results sent back, until the model
//! answers without one. The same core serves every API surface.
//!
//! It touches no socket and writes no wire format: it takes a
//! [`ChatUpstream`] and a [`ToolRunner`], sends [`Event`]s to a channel
//! while it runs (when the client streams) and ends with an [`Outcome`]; a
//! surface turns those into its own bytes. Tests drive it with fakes.
//!
//! Tool ownership: calls to the client's own tools (the request's `tools`)
//! end the loop and go back to the client; calls to MCP tools are the
//! proxy's to run. A turn that mixes both runs the MCP calls first.
//!
//! | file | owns |
//! | --- | --- |
//! | `events` | what the loop gives a surface: events, the answer, the outcome |
//! | `mode` | which tool mode a request runs in, and what `auto` learns |
//! | `round` | one upstream call, collected (and streamed) |
//! | `native` | the round's request body, the messages for results |
//! | `prompt` | prompt mode: the catalog in the system prompt, what a call is |
//! | `scan` | prompt mode: finding the call as the reply streams, holding back only what may be one |
//! | `calls` | one round's calls: whose they are, running ours, repeat detection |
//! | `policy` | what a request selects of the tools, and which calls wait for approval |

mod calls;
pub mod events;
pub mod mode;
pub mod native;
pub mod policy;
pub mod prompt;
mod round;
pub mod scan;

#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::ProxyError;
use crate::mcp::{Catalog, Hub, ToolOutput};
use crate::openai::chat::{ChatRequest, Message, ToolCall, Usage};
use crate::settings::ModeSetting;
pub use crate::settings::ToolLimits as Limits;
use crate::upstream::{Caller, ChatUpstream};
pub use calls::fill_approved;
pub use events::{Answer, Event, Identity, Outcome};
pub use mode::ModePolicy;
use native::Offer;
pub use policy::{Approval, Selection};
use round::{Reading, Reply, RoundError};

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
    /// The tools the model may be offered now (read at the start of every round).
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

/// What the loop runs on; one per gate.
pub struct ToolLoop<'a> {
    pub upstream: &'a dyn ChatUpstream,
    pub tools: &'a dyn ToolRunner,
    pub limits: &'a Limits,
    pub modes: &'a ModePolicy,
}

/// One request for the loop, decoded by a surface.
#[derive(Debug, Clone)]
pub struct Job {
    pub request: ChatRequest,
    pub caller: Caller,
    /// The client's `x-mcp-tool-mode`, if it sent one.
    pub mode: Option<ModeSetting>,
    /// False when the client turned MCP tools off for this request.
    pub mcp: bool,
    /// Only these MCP servers and tools (narrowing the key's allow-list), when given.
    pub selection: Option<Selection>,
    /// Which MCP calls wait for a person's approval: they end the turn
    /// unrun, in [`Answer::awaiting_approval`].
    pub approval: Approval,
    /// Calls a person approved since the turn that asked: they run before
    /// the first round, and each result becomes the content of the `tool`
    /// message with the call's id already in `request.messages`.
    pub approved: Vec<ToolCall>,
}

impl Job {
    /// A job with every MCP tool the key may use, none waiting for approval.
    pub fn new(request: ChatRequest, caller: Caller, mode: Option<ModeSetting>, mcp: bool) -> Self {
        Self { request, caller, mode, mcp, selection: None, approval: Approval::default(), approved: Vec::new() }
    }
}

/// Where events go: a streaming client's channel, or nowhere.
pub struct Sink {
    tx: Option<mpsc::Sender<Event>>,
    started: bool,
    emitted: bool,
}

/// The client has gone; stop working for it.
impl From<ClientGone> for RoundError {
    fn from(_: ClientGone) -> Self {
        RoundError::Gone
    }
}

#[derive(Debug)]
pub struct ClientGone;

impl Sink {
    fn new(tx: Option<mpsc::Sender<Event>>) -> Self {
        Self { tx, started: false, emitted: false }
    }

    /// Whether the client streams (and events reach it).
    pub fn streaming(&self) -> bool {
        self.tx.is_some()
    }

    /// `Started` with the answer's identity, once per answer.
    async fn start(&mut self, identity: &Identity) -> Result<(), ClientGone> {
        if self.started {
            return Ok(());
        }
        self.started = true;
        self.send(Event::Started(identity.clone())).await
    }

    async fn send(&mut self, event: Event) -> Result<(), ClientGone> {
        let Some(tx) = &self.tx else { return Ok(()) };
        if !self.started {
            // Nothing came from the upstream yet (cannot happen: a round's reply comes first).
            self.started = true;
            tx.send(Event::Started(Identity::default())).await.map_err(|_| ClientGone)?;
        }
        self.emitted = true;
        tx.send(event).await.map_err(|_| ClientGone)
    }
}

impl ToolLoop<'_> {
    /// Runs `job` to its end. With `events`, the request streams: what the
    /// client may see goes there as it happens. In `auto` mode an upstream
    /// that plainly refuses `tools` gets the request again in prompt mode,
    /// if nothing was sent to the client yet.
    pub async fn run(&self, job: Job, events: Option<mpsc::Sender<Event>>) -> Outcome {
        if let Some(selection) = &job.selection {
            let selected = policy::Selected { inner: self.tools, selection };
            let narrowed = ToolLoop { tools: &selected, ..*self };
            return narrowed.run_selected(&job, events).await;
        }
        self.run_selected(&job, events).await
    }

    async fn run_selected(&self, job: &Job, events: Option<mpsc::Sender<Event>>) -> Outcome {
        let mut sink = Sink::new(events);
        let pick = self.modes.pick(&job.request.model, job.mode);
        let client_names: HashSet<String> = job.request.client_tool_names().into_iter().collect();
        let outcome = self.run_mode(job, pick.mode, &client_names, &mut sink).await;
        match outcome {
            Outcome::Refused(e)
                if pick.auto
                    && pick.mode == ToolMode::Native
                    && client_names.is_empty()
                    && !sink.emitted
                    && mode::refuses_tools(&e) =>
            {
                self.modes.learn_prompt_only(&job.request.model);
                self.run_mode(job, ToolMode::Prompt, &client_names, &mut sink).await
            }
            other => other,
        }
    }

    async fn run_mode(&self, job: &Job, mode: ToolMode, client: &HashSet<String>, sink: &mut Sink) -> Outcome {
        // The deadline drops the rounds wherever they are (an upstream call, a tool call).
        match tokio::time::timeout(self.limits.deadline, self.rounds(job, mode, client, sink)).await {
            Ok(Ok(answer)) => Outcome::Done(Box::new(answer)),
            Ok(Err(RoundError::Upstream(e))) => Outcome::Refused(e),
            Ok(Err(RoundError::Proxy(e))) => Outcome::Failed(e),
            Ok(Err(RoundError::Gone)) => Outcome::Gone,
            Err(_) => Outcome::Failed(ProxyError::UpstreamTimeout(format!(
                "the request did not finish within its deadline of {}s",
                self.limits.deadline.as_secs()
            ))),
        }
    }

    async fn rounds(
        &self,
        job: &Job,
        mode: ToolMode,
        client_names: &HashSet<String>,
        sink: &mut Sink,
    ) -> Result<Answer, RoundError> {
        let started = Instant::now();
        let mut messages = job.request.messages.clone();
        let mut answer = Answer::default();
        if !job.approved.is_empty() {
            let approved: Vec<calls::McpCall> = job.approved.iter().map(calls::McpCall::of).collect();
            let runs = calls::run_all(self.tools, &approved, 0, self.limits, sink).await?;
            calls::fill_approved(&mut messages, &runs);
            answer.tool_runs.extend(runs);
        }
        let mut usage: Option<Usage> = None;
        let mut previous: Option<Vec<(String, String)>> = None;
        let mut tool_rounds = 0u32;
        for round in 1.. {
            let catalog = self.tools.catalog();
            let offered = (job.mcp && !catalog.is_empty()).then_some(&*catalog);
            let offer =
                Offer { catalog: offered, client_names, last: answer.stopped.is_some(), after_tools: tool_rounds > 0 };
            let body = native::round_body(&job.request, &messages, mode, offer, sink.streaming());
            let is_known = |name: &str| offered.is_some_and(|c| c.get(name).is_some() && !client_names.contains(name));
            let reading = Reading { mode, round, is_known: &is_known, keepalive: self.limits.keepalive };
            let reply = round::run(self.upstream, &body, &job.caller, &reading, sink).await?;
            if let Some(u) = &reply.usage {
                usage.get_or_insert_with(Usage::default).add(u);
            }
            if round == 1 {
                answer.identity = reply.identity.clone();
            }
            answer.texts.push(reply.visible.clone());
            if let Some(r) = &reply.reasoning {
                answer.reasoning.push((round, r.clone()));
            }
            let may_call = offered.is_some() && answer.stopped.is_none();
            let mut step = calls::classify(&reply, mode, may_call, client_names);
            let waiting = calls::waiting_for_approval(&mut step, &catalog, &job.approval);
            if step.mcp.is_empty() || !step.client.is_empty() || !waiting.is_empty() {
                // A turn that mixes both: ours run first, the client's (and
                // those waiting for approval) go back to it.
                if !step.mcp.is_empty() {
                    let runs = calls::run_all(self.tools, &step.mcp, round, self.limits, sink).await?;
                    answer.transcript.extend(calls::turn_messages(&reply, mode, &runs));
                    answer.tool_runs.extend(runs);
                }
                answer.awaiting_approval = waiting;
                return Ok(self.finish(answer, reply, step.client, usage));
            }
            let signature = calls::signature(&step.mcp);
            answer.stopped = if previous.as_ref() == Some(&signature) {
                Some(events::StopReason::RepeatedCall)
            } else if tool_rounds >= self.limits.max_rounds {
                Some(events::StopReason::RoundLimit)
            } else if started.elapsed() >= self.limits.budget {
                Some(events::StopReason::TimeBudget)
            } else {
                None
            };
            previous = Some(signature);
            if let Some(reason) = answer.stopped {
                // The calls are not run: the model is asked to answer with what it has.
                if !reply.text.is_empty() {
                    messages.push(Message::text("assistant", reply.text.clone()));
                }
                messages.push(native::final_answer_request(reason.as_str()));
                continue;
            }
            let runs = calls::run_all(self.tools, &step.mcp, round, self.limits, sink).await?;
            let added = calls::turn_messages(&reply, mode, &runs);
            answer.transcript.extend(added.iter().cloned());
            messages.extend(added);
            answer.tool_runs.extend(runs);
            tool_rounds += 1;
        }
        Err(RoundError::Proxy(ProxyError::Internal("the rounds ended without an answer".into())))
    }

    /// The last round's reply made into the answer.
    fn finish(&self, mut answer: Answer, last: Reply, client_calls: Vec<ToolCall>, usage: Option<Usage>) -> Answer {
        let mut final_message = Message::text("assistant", last.visible.clone());
        // Calls still to be answered: the client's, and ours waiting for approval.
        let open: Vec<ToolCall> = client_calls.iter().chain(&answer.awaiting_approval).cloned().collect();
        final_message.tool_calls = (!open.is_empty()).then_some(open);
        answer.transcript.push(final_message);
        answer.finish_reason = if !client_calls.is_empty() || !answer.awaiting_approval.is_empty() {
            "tool_calls".to_string()
        } else {
            match last.finish_reason.as_deref() {
                Some("tool_calls") | None => "stop".to_string(),
                Some(other) => other.to_string(),
            }
        };
        answer.stop_sequence = last.stop_sequence.filter(|_| answer.finish_reason == "stop");
        answer.client_calls = client_calls;
        answer.usage = usage;
        answer.last = last.completion;
        answer
    }
}
