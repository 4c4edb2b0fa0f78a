//! The tool loop on its own, with a scripted upstream and scripted tools:
//! rounds, limits, parallel and mixed calls, cancellation, failures after
//! the first byte, mode fallback; each streamed and not, where it applies.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::events::StopReason;
use super::*;
use crate::mcp::catalog::ServerTool;
use crate::openai::chat::{ChatCompletion, Chunk};
use crate::upstream::{StreamItem, UpstreamError, UpstreamReply};

/// One scripted upstream answer.
enum Scripted {
    /// Text, then native calls `(id, name, arguments)`.
    Turn(&'static str, Vec<(&'static str, &'static str, Value)>),
    Refuse(u16, Value),
    /// Streamed: this text, then the connection breaks. Not streamed: unreachable.
    CutAfter(&'static str),
    Hang,
}

#[derive(Default)]
struct FakeUpstream {
    script: Mutex<VecDeque<Scripted>>,
    /// Every body the loop sent.
    seen: Mutex<Vec<Value>>,
}

impl FakeUpstream {
    fn new(script: Vec<Scripted>) -> Self {
        Self { script: Mutex::new(script.into()), seen: Mutex::default() }
    }

    fn seen(&self) -> Vec<Value> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn completion(text: &str, calls: &[(&str, &str, Value)]) -> Value {
    let tool_calls: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({"id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}))
        .collect();
    let mut message = json!({"role": "assistant", "content": text});
    if !tool_calls.is_empty() {
        message["tool_calls"] = json!(tool_calls);
    }
    json!({"id": "cmpl-1", "created": 1, "model": "m", "choices": [{"index": 0, "message": message,
           "finish_reason": if calls.is_empty() { "stop" } else { "tool_calls" }}],
           "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3}})
}

fn chunk(delta: Value, finish: Option<&str>) -> Result<StreamItem, ProxyError> {
    let v = json!({"id": "cmpl-1", "created": 1, "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    serde_json::from_value::<Chunk>(v).map(StreamItem::Chunk).map_err(|e| ProxyError::Internal(e.to_string()))
}

fn stream_of(text: &str, calls: &[(&str, &str, Value)]) -> Vec<Result<StreamItem, ProxyError>> {
    let mut items = vec![chunk(json!({"role": "assistant"}), None)];
    let chars: Vec<char> = text.chars().collect();
    for piece in chars.chunks(2) {
        items.push(chunk(json!({"content": piece.iter().collect::<String>()}), None));
    }
    for (i, (id, name, args)) in calls.iter().enumerate() {
        let d = json!({"tool_calls": [{"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}}]});
        items.push(chunk(d, None));
    }
    items.push(chunk(json!({}), Some(if calls.is_empty() { "stop" } else { "tool_calls" })));
    items.push(Ok(StreamItem::Done));
    items
}

#[async_trait]
impl ChatUpstream for FakeUpstream {
    async fn send(&self, body: &Value, _caller: &Caller) -> Result<UpstreamReply, ProxyError> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(body.clone());
        }
        let next = self.script.lock().ok().and_then(|mut s| s.pop_front());
        let stream = body["stream"] == true;
        let items = match next {
            None => return Err(ProxyError::Internal("the script is over".into())),
            Some(Scripted::Hang) => std::future::pending().await,
            Some(Scripted::Refuse(status, body)) => {
                let body = body.to_string().into();
                return Ok(UpstreamReply::Failed(UpstreamError {
                    status,
                    retry_after: None,
                    content_type: None,
                    body,
                }));
            }
            Some(Scripted::CutAfter(_)) if !stream => return Err(ProxyError::UpstreamUnreachable("cut".into())),
            Some(Scripted::CutAfter(text)) => {
                let mut items = stream_of(text, &[]);
                items.truncate(items.len() - 2);
                items.push(Err(ProxyError::UpstreamUnreachable("the response was cut off".into())));
                items
            }
            Some(Scripted::Turn(text, calls)) if !stream => {
                let c: ChatCompletion = serde_json::from_value(completion(text, &calls))
                    .map_err(|e| ProxyError::Internal(e.to_string()))?;
                return Ok(UpstreamReply::Complete(c));
            }
            Some(Scripted::Turn(text, calls)) => stream_of(text, &calls),
        };
        Ok(UpstreamReply::Stream(Box::pin(futures_util::stream::iter(items))))
    }
}

/// Tools `echo` (its `text`) and `sleep` (`ms`), counting calls at once.
#[derive(Default)]
struct FakeTools {
    running: AtomicUsize,
    most_at_once: AtomicUsize,
    calls: AtomicUsize,
    /// Calls dropped before they finished (cancelled).
    cancelled: Arc<AtomicUsize>,
}

struct Unfinished(Arc<AtomicUsize>, bool);

impl Drop for Unfinished {
    fn drop(&mut self) {
        if !self.1 {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[async_trait]
impl ToolRunner for FakeTools {
    fn catalog(&self) -> Arc<Catalog> {
        let tool =
            |name: &str| ServerTool { name: name.into(), description: format!("{name} it"), input_schema: json!({}) };
        let known: BTreeMap<String, Vec<ServerTool>> = [("t".to_string(), vec![tool("echo"), tool("sleep")])].into();
        Catalog::build(&known, &["t"])
    }

    async fn call(&self, name: &str, arguments: Value) -> ToolOutput {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        let mut guard = Unfinished(self.cancelled.clone(), false);
        let out = match name {
            "echo" => ToolOutput { text: arguments["text"].as_str().unwrap_or("").to_string(), is_error: false },
            "sleep" => {
                tokio::time::sleep(Duration::from_millis(arguments["ms"].as_u64().unwrap_or(0))).await;
                ToolOutput { text: "slept".into(), is_error: false }
            }
            other => ToolOutput::error(format!("unknown tool {other}")),
        };
        guard.1 = true;
        self.running.fetch_sub(1, Ordering::SeqCst);
        out
    }
}

struct Setup {
    upstream: FakeUpstream,
    tools: FakeTools,
    limits: Limits,
    modes: ModePolicy,
}

impl Setup {
    fn new(script: Vec<Scripted>) -> Self {
        let limits = Limits { keepalive: Duration::from_millis(50), ..Limits::default() };
        let modes = ModePolicy::new(crate::settings::ToolSettings::default(), "fake");
        Self { upstream: FakeUpstream::new(script), tools: FakeTools::default(), limits, modes }
    }

    fn tool_loop(&self) -> ToolLoop<'_> {
        ToolLoop { upstream: &self.upstream, tools: &self.tools, limits: &self.limits, modes: &self.modes }
    }

    /// Runs `job`, streamed or not; the outcome and the events.
    async fn run(&self, job: Job, stream: bool) -> (Outcome, Vec<Event>) {
        if !stream {
            return (self.tool_loop().run(job, None).await, Vec::new());
        }
        let (tx, mut rx) = mpsc::channel(8);
        let collect = async {
            let mut events = Vec::new();
            while let Some(e) = rx.recv().await {
                events.push(e);
            }
            events
        };
        let tool_loop = self.tool_loop();
        let (outcome, events) = tokio::join!(tool_loop.run(job, Some(tx)), collect);
        (outcome, events)
    }
}

fn job(mode: Option<ModeSetting>) -> Job {
    let request = serde_json::from_value(json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .unwrap_or_else(|e| panic!("{e}"));
    Job::new(request, Caller::default(), mode, true)
}

fn done(outcome: Outcome) -> Answer {
    match outcome {
        Outcome::Done(answer) => *answer,
        other => panic!("not done: {other:?}"),
    }
}

/// The text a streaming client saw, joined the way every surface joins rounds.
fn streamed_text(events: &[Event]) -> String {
    let mut joiner = events::Joiner::default();
    events
        .iter()
        .filter_map(|e| match e {
            Event::Delta(d) => Some(joiner.push(d.round, &d.text).into_owned()),
            _ => None,
        })
        .collect()
}

const NATIVE: Option<ModeSetting> = Some(ModeSetting::Native);

#[tokio::test]
async fn a_tool_round_then_the_answer_both_ways() {
    for stream in [false, true] {
        let s = Setup::new(vec![
            Scripted::Turn("Looking.", vec![("c1", "echo", json!({"text": "pong"}))]),
            Scripted::Turn("It said pong.", vec![]),
        ]);
        let (outcome, events) = s.run(job(NATIVE), stream).await;
        let answer = done(outcome);
        assert_eq!(answer.text(), "Looking.\n\nIt said pong.", "stream {stream}");
        assert_eq!(answer.finish_reason, "stop");
        assert_eq!(answer.usage.as_ref().map(|u| u.total_tokens), if stream { None } else { Some(6) });
        assert_eq!(answer.tool_runs.len(), 1);
        assert_eq!(answer.tool_runs[0].output, "pong");
        let roles: Vec<&str> = answer.transcript.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(roles, ["assistant", "tool", "assistant"]);
        let seen = s.upstream.seen();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[1]["messages"][2], json!({"role": "tool", "content": "pong", "tool_call_id": "c1"}));
        if stream {
            assert!(matches!(events.first(), Some(Event::Started(i)) if i.id == "cmpl-1"), "{events:?}");
            assert_eq!(streamed_text(&events), answer.text());
            assert!(events.iter().any(|e| matches!(e, Event::ToolsStarted { round: 1, .. })));
            assert!(events.iter().any(|e| matches!(e, Event::ToolFinished { output, .. } if output == "pong")));
        }
    }
}

#[tokio::test]
async fn the_round_limit_stops_the_calls_and_the_last_round_may_call_nothing() {
    for stream in [false, true] {
        let mut s = Setup::new(vec![
            Scripted::Turn("", vec![("c1", "echo", json!({"text": "1"}))]),
            Scripted::Turn("", vec![("c2", "echo", json!({"text": "2"}))]),
            Scripted::Turn("Enough.", vec![]),
        ]);
        s.limits.max_rounds = 1;
        let answer = done(s.run(job(NATIVE), stream).await.0);
        assert_eq!(answer.stopped, Some(StopReason::RoundLimit));
        assert_eq!(answer.text(), "Enough.");
        assert_eq!(s.tools.calls.load(Ordering::SeqCst), 1, "stream {stream}: the second round's call did not run");
        let seen = s.upstream.seen();
        assert_eq!(seen[2]["tool_choice"], "none");
        assert_eq!(seen[2]["tools"], seen[0]["tools"]);
    }
}

#[tokio::test]
async fn a_forced_tool_choice_is_obeyed_once_then_the_model_may_answer() {
    for choice in [json!("required"), json!({"type": "function", "function": {"name": "echo"}})] {
        let s = Setup::new(vec![
            Scripted::Turn("", vec![("c1", "echo", json!({"text": "1"}))]),
            Scripted::Turn("Answered.", vec![]),
        ]);
        let mut j = job(NATIVE);
        j.request.tool_choice = Some(choice.clone());
        assert_eq!(done(s.run(j, false).await.0).text(), "Answered.");
        let seen = s.upstream.seen();
        assert_eq!((&seen[0]["tool_choice"], &seen[1]["tool_choice"]), (&choice, &json!("auto")));
    }
}

#[tokio::test]
async fn the_same_calls_twice_stop_the_loop() {
    let s = Setup::new(vec![
        Scripted::Turn("", vec![("c1", "echo", json!({"text": "x"}))]),
        Scripted::Turn("", vec![("c2", "echo", json!({"text": "x"}))]),
        Scripted::Turn("Done.", vec![]),
    ]);
    let answer = done(s.run(job(NATIVE), false).await.0);
    assert_eq!(answer.stopped, Some(StopReason::RepeatedCall));
    assert_eq!(s.tools.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_calls_of_one_round_run_at_once_up_to_the_limit() {
    for stream in [false, true] {
        let mut s = Setup::new(vec![
            Scripted::Turn(
                "",
                vec![
                    ("a", "sleep", json!({"ms": 200})),
                    ("b", "sleep", json!({"ms": 200})),
                    ("c", "sleep", json!({"ms": 200})),
                ],
            ),
            Scripted::Turn("ok", vec![]),
        ]);
        s.limits.max_calls_per_round = 2;
        let (outcome, events) = s.run(job(NATIVE), stream).await;
        let answer = done(outcome);
        assert_eq!(s.tools.most_at_once.load(Ordering::SeqCst), 2, "stream {stream}");
        let outputs: Vec<&str> = answer.tool_runs.iter().map(|r| r.output.as_str()).collect();
        assert_eq!(outputs[..2], ["slept", "slept"]);
        assert!(outputs[2].contains("at most 2 tool calls"), "{outputs:?}");
        if stream {
            assert!(
                events.iter().any(|e| matches!(e, Event::Waiting { what } if what.contains("sleep"))),
                "{events:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_turn_mixing_client_and_mcp_calls_runs_ours_and_returns_the_clients() {
    for stream in [false, true] {
        let s = Setup::new(vec![Scripted::Turn(
            "",
            vec![("m", "echo", json!({"text": "mcp"})), ("w", "get_weather", json!({"city": "Oslo"}))],
        )]);
        let mut j = job(NATIVE);
        j.request.tools =
            Some(vec![json!({"type": "function", "function": {"name": "get_weather", "parameters": {}}})]);
        let answer = done(s.run(j, stream).await.0);
        assert_eq!(answer.finish_reason, "tool_calls", "stream {stream}");
        let client: Vec<&str> = answer.client_calls.iter().map(|c| c.function.name.as_str()).collect();
        assert_eq!(client, ["get_weather"]);
        assert_eq!(answer.tool_runs.iter().map(|r| r.output.as_str()).collect::<Vec<_>>(), ["mcp"]);
        assert_eq!(s.upstream.seen().len(), 1, "the client answers its own call; no second round");
        let names: Vec<Value> = s.upstream.seen()[0]["tools"]
            .as_array()
            .map(|t| t.iter().map(|t| t["function"]["name"].clone()).collect())
            .unwrap_or_default();
        assert_eq!(names, [json!("get_weather"), json!("echo"), json!("sleep")]);
    }
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_running_tools() {
    // Streaming: the next event (a keep-alive) finds the client gone.
    let s = Setup::new(vec![Scripted::Turn("", vec![("s", "sleep", json!({"ms": 10_000}))])]);
    let (tx, mut rx) = mpsc::channel(8);
    let tool_loop = s.tool_loop();
    let run = tool_loop.run(job(NATIVE), Some(tx));
    let watch = async move {
        while let Some(e) = rx.recv().await {
            if matches!(e, Event::ToolsStarted { .. }) {
                break;
            }
        }
    };
    let (outcome, ()) = tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(run, watch) })
        .await
        .unwrap_or_else(|_| panic!("the loop kept working for a client that was gone"));
    assert!(matches!(outcome, Outcome::Gone), "{outcome:?}");
    assert_eq!(s.tools.cancelled.load(Ordering::SeqCst), 1, "the tool call was dropped, not finished");

    // Not streaming: the gate drops the run when the client hangs up.
    let s = Setup::new(vec![Scripted::Turn("", vec![("s", "sleep", json!({"ms": 10_000}))])]);
    let tool_loop = s.tool_loop();
    let dropped = tokio::time::timeout(Duration::from_millis(300), tool_loop.run(job(NATIVE), None)).await;
    assert!(dropped.is_err());
    assert_eq!(s.tools.cancelled.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_failure_after_the_first_byte_ends_the_run_with_what_was_sent_before_it() {
    let s = Setup::new(vec![
        Scripted::Turn("", vec![("c1", "echo", json!({"text": "x"}))]),
        Scripted::CutAfter("Half an ans"),
    ]);
    let (outcome, events) = s.run(job(NATIVE), true).await;
    assert!(matches!(outcome, Outcome::Failed(ProxyError::UpstreamUnreachable(_))), "{outcome:?}");
    assert_eq!(streamed_text(&events), "Half an ans");

    let s = Setup::new(vec![Scripted::CutAfter("x")]);
    let (outcome, events) = s.run(job(NATIVE), false).await;
    assert!(matches!(outcome, Outcome::Failed(_)) && events.is_empty(), "{outcome:?}");

    // An upstream refusal in a later round is the outcome too; the surface decides how to tell it.
    for stream in [false, true] {
        let s = Setup::new(vec![
            Scripted::Turn("", vec![("c1", "echo", json!({"text": "x"}))]),
            Scripted::Refuse(429, json!({"error": {"message": "slow down"}})),
        ]);
        let outcome = s.run(job(NATIVE), stream).await.0;
        assert!(matches!(&outcome, Outcome::Refused(e) if e.status == 429), "stream {stream}: {outcome:?}");
    }
}

#[tokio::test]
async fn the_deadline_ends_a_run_that_hangs() {
    for stream in [false, true] {
        let mut s = Setup::new(vec![Scripted::Hang]);
        s.limits.deadline = Duration::from_millis(100);
        let outcome = s.run(job(NATIVE), stream).await.0;
        assert!(matches!(outcome, Outcome::Failed(ProxyError::UpstreamTimeout(_))), "{outcome:?}");
    }
}

#[tokio::test]
async fn auto_mode_falls_back_to_prompt_mode_when_tools_are_refused() {
    let refusal = json!({"error": {"message": "tools param requires --jinja flag"}});
    for stream in [false, true] {
        let s = Setup::new(vec![
            Scripted::Refuse(500, refusal.clone()),
            Scripted::Turn("{\"tool\": \"echo\", \"arguments\": {\"text\": \"via prompt\"}}", vec![]),
            Scripted::Turn("Done.", vec![]),
        ]);
        let answer = done(s.run(job(None), stream).await.0);
        assert_eq!(answer.text(), "Done.", "stream {stream}");
        assert_eq!(answer.tool_runs[0].output, "via prompt");
        let seen = s.upstream.seen();
        assert!(seen[0].get("tools").is_some() && seen[1].get("tools").is_none());
        assert!(seen[1]["messages"][0]["content"].as_str().unwrap_or("").contains("## echo"));
        assert_eq!(s.modes.pick("m", None).mode, ToolMode::Prompt, "remembered");
    }
    // The client's own tools: the error may be theirs; it is the outcome.
    let s = Setup::new(vec![Scripted::Refuse(500, refusal)]);
    let mut j = job(None);
    j.request.tools = Some(vec![json!({"type": "function", "function": {"name": "mine"}})]);
    assert!(matches!(s.run(j, false).await.0, Outcome::Refused(_)));
    assert_eq!(s.modes.pick("m", None).mode, ToolMode::Native, "nothing learned");
}

#[tokio::test]
async fn prompt_mode_agrees_streamed_and_not() {
    let mut answers = Vec::new();
    for stream in [false, true] {
        let s = Setup::new(vec![
            Scripted::Turn("Checking.\n```json\n{\"tool\": \"echo\", \"arguments\": {\"text\": \"hi\"}}\n```", vec![]),
            Scripted::Turn("It said hi.", vec![]),
        ]);
        let (outcome, events) = s.run(job(Some(ModeSetting::Prompt)), stream).await;
        let answer = done(outcome);
        if stream {
            assert_eq!(streamed_text(&events), answer.text());
        }
        assert_eq!(answer.tool_runs[0].output, "hi");
        let second = &s.upstream.seen()[1];
        let result = second["messages"].as_array().and_then(|m| m.last()).cloned().unwrap_or_default();
        assert!(result["content"].as_str().unwrap_or("").starts_with("Tool `echo` returned:\nhi"), "{result}");
        answers.push(answer.text());
    }
    assert_eq!(answers, ["Checking.\n\nIt said hi.", "Checking.\n\nIt said hi."]);
}

#[tokio::test]
async fn mcp_tools_off_means_none_offered_and_none_run() {
    for stream in [false, true] {
        let s = Setup::new(vec![Scripted::Turn("No tools.", vec![("c1", "echo", json!({"text": "x"}))])]);
        let mut j = job(NATIVE);
        j.mcp = false;
        let answer = done(s.run(j, stream).await.0);
        assert_eq!(answer.text(), "No tools.");
        assert_eq!(s.tools.calls.load(Ordering::SeqCst), 0);
        assert!(s.upstream.seen()[0].get("tools").is_none());
    }
}

#[tokio::test]
async fn a_selection_offers_and_runs_only_the_selected_tools() {
    for stream in [false, true] {
        let s = Setup::new(vec![
            Scripted::Turn("", vec![("c1", "sleep", json!({"ms": 1}))]),
            Scripted::Turn("No sleep for me.", vec![]),
        ]);
        let mut j = job(NATIVE);
        let mut selection = Selection::default();
        selection.add("t", Some(vec!["echo".into()]));
        j.selection = Some(selection);
        let answer = done(s.run(j, stream).await.0);
        let seen = s.upstream.seen();
        let offered: Vec<&str> =
            seen[0]["tools"].as_array().into_iter().flatten().filter_map(|t| t["function"]["name"].as_str()).collect();
        assert_eq!(offered, ["echo"], "stream {stream}");
        assert_eq!(s.tools.calls.load(Ordering::SeqCst), 0, "a guessed tool outside the selection never runs");
        assert!(answer.tool_runs[0].is_error);
        assert!(answer.tool_runs[0].output.contains("echo") && !answer.tool_runs[0].output.contains("sleep\","));
    }
}

#[tokio::test]
async fn a_call_that_needs_approval_ends_the_turn_unrun_and_the_others_run() {
    for stream in [false, true] {
        let s = Setup::new(vec![Scripted::Turn(
            "Both.",
            vec![("c1", "echo", json!({"text": "now"})), ("c2", "sleep", json!({"ms": 1}))],
        )]);
        let mut j = job(NATIVE);
        j.approval.set("t", policy::Rule { by_default: false, except: ["sleep".to_string()].into() });
        let answer = done(s.run(j, stream).await.0);
        assert_eq!(s.upstream.seen().len(), 1, "stream {stream}: no second round while a call waits");
        assert_eq!(s.tools.calls.load(Ordering::SeqCst), 1);
        assert_eq!(answer.tool_runs.len(), 1);
        assert_eq!(answer.tool_runs[0].call.id, "c1");
        let waiting: Vec<&str> = answer.awaiting_approval.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(waiting, ["c2"]);
        assert_eq!(answer.finish_reason, "tool_calls");
        let last = answer.transcript.last().and_then(|m| m.tool_calls.clone()).unwrap_or_default();
        assert_eq!(last.len(), 1, "the waiting call is in the history, to be answered");
    }
}

#[tokio::test]
async fn approved_calls_run_before_the_first_round_into_their_tool_messages() {
    for stream in [false, true] {
        let s = Setup::new(vec![Scripted::Turn("It said yes.", vec![])]);
        let mut j = job(NATIVE);
        let call = crate::openai::chat::ToolCall::new("c9", "echo", json!({"text": "yes"}).to_string());
        let mut assistant = Message::text("assistant", "");
        assistant.tool_calls = Some(vec![call.clone()]);
        let mut slot = Message::text("tool", "");
        slot.tool_call_id = Some("c9".into());
        j.request.messages.extend([assistant, slot]);
        j.approved = vec![call];
        let (outcome, events) = s.run(j, stream).await;
        let answer = done(outcome);
        assert_eq!(answer.text(), "It said yes.");
        assert_eq!(answer.tool_runs.len(), 1);
        assert_eq!(answer.tool_runs[0].round, 0);
        let sent = &s.upstream.seen()[0]["messages"];
        assert_eq!(sent[2], json!({"role": "tool", "content": "yes", "tool_call_id": "c9"}), "stream {stream}");
        if stream {
            assert!(events
                .iter()
                .any(|e| matches!(e, Event::ToolFinished { round: 0, output, .. } if output == "yes")));
        }
    }
}
