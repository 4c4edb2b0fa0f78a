//! `x-mcp-progress: on`: a tool-loop stream shows each MCP call of a round as
//! named SSE events (`mcp.tool_call.started`, `mcp.tool_call.done`) before
//! the answer; off or absent, the stream is the same bytes as ever; the real
//! openai SDK still reads the answer; `/chat` streams show them too.

use crate::common;

use std::time::Duration;

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{client, start_proxy_with_tools};
use serde_json::{json, Value};

const TOOLS: &str = "echo,big,fail";

/// The raw SSE body of a streamed chat completion sent with `progress` as
/// the header's value (`None`: no header).
async fn raw_stream(proxy: &common::Proxy, progress: Option<&str>, body: Value) -> String {
    let mut req = client().post(format!("{}/chat/completions", proxy.base_url())).json(&body);
    if let Some(value) = progress {
        req = req.header("x-mcp-progress", value);
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    r.text().await.unwrap_or_else(|e| panic!("{e}"))
}

fn ask(text: &str) -> Value {
    json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": text}]})
}

/// Every SSE event as `(event name or "", data)`, comments left out.
fn events(raw: &str) -> Vec<(String, String)> {
    raw.split("\n\n")
        .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or_default();
            (name.to_string(), data.to_string())
        })
        .collect()
}

/// The data of the events named `name`, in order.
fn named(raw: &str, name: &str) -> Vec<Value> {
    events(raw)
        .into_iter()
        .filter(|(n, _)| n == name)
        .map(|(_, d)| serde_json::from_str(&d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

/// The answer's text, from the chat chunks only.
fn content(raw: &str) -> String {
    events(raw)
        .into_iter()
        .filter(|(n, d)| n.is_empty() && d != "[DONE]")
        .filter_map(|(_, d)| serde_json::from_str::<Value>(&d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect()
}

fn echo_then_answer(mock: &MockUpstream) {
    mock.push(Reply::tool_calls_stream(&[("c1", "echo", json!({"text": "hi"}))]));
    mock.push(Reply::chat_stream(&["It said ", "hi."], Duration::from_millis(5)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_shows_the_call_starting_and_done_before_the_answer() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    echo_then_answer(&mock);
    let raw = raw_stream(&proxy, Some("On"), ask("echo hi")).await;

    let names: Vec<String> = events(&raw).into_iter().map(|(n, _)| n).filter(|n| !n.is_empty()).collect();
    assert_eq!(names, ["mcp.tool_call.started", "mcp.tool_call.done"], "{raw}");
    let first_content = raw.find("It said").unwrap_or_else(|| panic!("no answer: {raw}"));
    assert!(raw.find("event: mcp.tool_call.done").is_some_and(|d| d < first_content), "{raw}");

    let started = &named(&raw, "mcp.tool_call.started")[0];
    assert_eq!(started["object"], "mcp.tool_call.started");
    assert_eq!(started["choices"], json!([]));
    assert_eq!((started["round"].as_u64(), started["id"].as_str()), (Some(1), Some("c1")));
    assert_eq!((started["tool"].as_str(), started["server"].as_str()), (Some("echo"), Some("test")));
    let arguments: Value = serde_json::from_str(started["arguments"].as_str().unwrap_or_default()).unwrap_or_default();
    assert_eq!(arguments, json!({"text": "hi"}), "the arguments as the model wrote them: {started}");

    let done = &named(&raw, "mcp.tool_call.done")[0];
    assert_eq!((done["object"].as_str(), &done["choices"]), (Some("mcp.tool_call.done"), &json!([])));
    assert_eq!(
        (done["round"].as_u64(), done["id"].as_str(), done["tool"].as_str()),
        (Some(1), Some("c1"), Some("echo"))
    );
    assert_eq!((done["output"].as_str(), done["length"].as_u64()), (Some("hi"), Some(2)));
    assert_eq!((done["truncated"].as_bool(), done["is_error"].as_bool()), (Some(false), Some(false)));
    assert!(done["duration_ms"].is_u64(), "{done}");

    assert_eq!(content(&raw), "It said hi.");
    assert!(raw.ends_with("data: [DONE]\n\n"), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_of_two_calls_shows_both_a_long_output_cut_and_a_failure() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(Reply::tool_calls_stream(&[("b", "big", json!({"n": 10000})), ("f", "fail", json!({"message": "no"}))]));
    mock.push(Reply::chat_stream(&["Done."], Duration::ZERO));
    let raw = raw_stream(&proxy, Some("on"), ask("both")).await;

    let started: Vec<Value> = named(&raw, "mcp.tool_call.started");
    let ids: Vec<&str> = started.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(ids, ["b", "f"], "one started event per call, as the round starts: {raw}");
    let done = named(&raw, "mcp.tool_call.done");
    let by_id = |id: &str| done.iter().find(|d| d["id"] == id).cloned().unwrap_or_else(|| panic!("{id}: {raw}"));
    let (big, fail) = (by_id("b"), by_id("f"));
    assert_eq!((big["output"].as_str().map(str::len), big["length"].as_u64()), (Some(4096), Some(10000)));
    assert_eq!((big["truncated"].as_bool(), big["is_error"].as_bool()), (Some(true), Some(false)));
    assert_eq!((fail["output"].as_str(), fail["is_error"].as_bool()), (Some("no"), Some(true)));
    assert_eq!(content(&raw), "Done.");
}

/// Off, or no header at all: the bytes the stream has always had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_and_absent_are_the_stream_without_the_header() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    let mut seen = Vec::new();
    for progress in [None, Some("off"), Some("OFF")] {
        echo_then_answer(&mock);
        seen.push(raw_stream(&proxy, progress, ask("echo hi")).await);
    }
    assert!(!seen[0].contains("event:") && seen[0].contains("It said"), "{}", seen[0]);
    // The mock's id and created are fixed, and the proxy keeps them: nothing to normalise.
    assert_eq!(seen[1], seen[0]);
    assert_eq!(seen[2], seen[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_other_than_on_or_off_is_a_400_naming_the_header() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    for (path, body) in [("/v1/chat/completions", ask("hi")), ("/chat", json!({"message": "hi", "stream": true}))] {
        let r = client()
            .post(format!("{}{path}", proxy.url))
            .header("x-mcp-progress", "yes")
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 400, "{path}");
        let err: Value = r.json().await.unwrap_or_default();
        assert_eq!(err["error"]["param"], "x-mcp-progress", "{path}: {err}");
        assert!(err["error"]["message"].as_str().is_some_and(|m| m.contains("x-mcp-progress")), "{path}: {err}");
    }
    // Messages accepts the header and ignores it, but a bad value is refused the same, in Anthropic's shape.
    let body = json!({"model": "m", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "a"}]});
    let r = client()
        .post(format!("{}/v1/messages", proxy.url))
        .header("x-mcp-progress", "1")
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 400);
    let err: Value = r.json().await.unwrap_or_default();
    assert_eq!((err["type"].as_str(), err["error"]["type"].as_str()), (Some("error"), Some("invalid_request_error")));
    assert!(err["error"]["message"].as_str().is_some_and(|m| m.contains("x-mcp-progress")), "{err}");
    assert!(mock.requests().is_empty(), "refused before the upstream is asked");
}

/// The client's own tools are the client's to run: no progress for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_of_the_clients_own_tool_shows_no_progress() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(Reply::tool_calls_stream(&[("mine1", "mine", json!({"x": 1}))]));
    let mut body = ask("use mine");
    body["tools"] = json!([{"type": "function", "function": {"name": "mine", "parameters": {"type": "object"}}}]);
    let raw = raw_stream(&proxy, Some("on"), body).await;
    assert!(!raw.contains("event:"), "{raw}");
    assert!(raw.contains("\"mine1\"") && raw.contains("\"tool_calls\""), "the call goes back to the client: {raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openai_sdk_reads_the_same_answer_with_progress_on() {
    common::require_python_module("openai", "openai");
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    let mut out = Vec::new();
    for case in ["stream", "stream_progress"] {
        echo_then_answer(&mock);
        out.push(common::run_python("sdk_client.py", &[&proxy.base_url(), case]).await);
    }
    assert_eq!(out[1]["content"], "It said hi.", "{}", out[1]);
    assert_eq!((&out[1]["content"], &out[1]["finish_reason"]), (&out[0]["content"], &out[0]["finish_reason"]));
    assert_eq!(out[1]["progress"], json!(["mcp.tool_call.started", "mcp.tool_call.done"]), "{}", out[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_chat_turn_shows_the_calls_too() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    echo_then_answer(&mock);
    let r = client()
        .post(format!("{}/chat", proxy.url))
        .header("x-mcp-progress", "on")
        .json(&json!({"message": "echo hi", "stream": true}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    let raw = r.text().await.unwrap_or_default();
    let started = named(&raw, "mcp.tool_call.started");
    let done = named(&raw, "mcp.tool_call.done");
    assert_eq!((started.len(), done.len()), (1, 1), "{raw}");
    assert_eq!((started[0]["tool"].as_str(), done[0]["output"].as_str()), (Some("echo"), Some("hi")));
    assert!(raw.find("mcp.tool_call.done").zip(raw.find("It said")).is_some_and(|(d, a)| d < a), "{raw}");
    assert_eq!(content(&raw), "It said hi.");
    let data: Vec<String> = events(&raw).into_iter().map(|(_, d)| d).collect();
    let session: Value = serde_json::from_str(&data[data.len() - 2]).unwrap_or_default();
    assert_eq!(session["object"], "chat.session", "the turn still ends with its session: {raw}");
}

/// Not streamed, the answer is the same JSON with progress on or off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_streamed_answer_ignores_it() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(Reply::tool_calls(&[("c1", "echo", json!({"text": "hi"}))]));
    mock.push(Reply::chat("It said hi."));
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .header("x-mcp-progress", "on")
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "echo hi"}]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: Value = r.json().await.unwrap_or_default();
    assert_eq!(body["choices"][0]["message"]["content"], "It said hi.", "{body}");
}
