//! The tool loop in prompt mode (for models without function calling): the
//! catalog goes into the system prompt, `{"tool": …}` replies are detected
//! and run, and the result goes back as a message naming the tool.

use crate::common;

use crate::common::mock_upstream::{chunk, MockUpstream, Reply};
use crate::common::{client, read_to_end, read_until, start_proxy_with_tools};
use serde_json::{json, Value};

const TOOLS: &str = "echo,add,sleep";

async fn chat(proxy: &common::Proxy, body: Value) -> Value {
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .header("x-mcp-tool-mode", "prompt")
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    if body["stream"] == true {
        return Value::String(r.text().await.unwrap_or_default());
    }
    r.json().await.unwrap_or_default()
}

fn ask(text: &str, stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_call_with_prose_runs_and_the_result_names_the_tool() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(Reply::chat("I will add them.\n```json\n{\"tool\": \"add\", \"arguments\": {\"a\": 40, \"b\": 2}}\n```"));
    mock.push(Reply::chat("It is 42."));
    let out = chat(&proxy, ask("40+2?", false)).await;
    // The prose before the call is part of the answer (as it is when streamed); the call is not.
    assert_eq!(out["choices"][0]["message"]["content"], "I will add them.\n\nIt is 42.");

    let seen = mock.requests();
    let first = seen[0].json();
    assert!(first.get("tools").is_none(), "prompt mode sends no tools field");
    let system = first["messages"][0]["content"].as_str().unwrap_or("").to_string();
    assert_eq!(first["messages"][0]["role"], "system");
    for name in ["echo", "add", "sleep"] {
        assert!(system.contains(name), "{name} missing from the system prompt");
    }
    assert!(system.contains("\"a\"") && system.contains("\"b\""), "argument schema rendered: {system}");
    assert!(system.ends_with("You are terse."), "the client's own system message is kept after the catalog");
    assert_eq!(first["messages"].as_array().map(Vec::len), Some(2), "no extra system message");

    let second = seen[1].json();
    let msgs = second["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(msgs[2]["role"], "assistant");
    assert_eq!(msgs[3]["role"], "user");
    let result = msgs[3]["content"].as_str().unwrap_or("");
    assert!(result.contains("add") && result.contains("42"), "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_the_user_asked_for_is_the_answer_not_a_call() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(Reply::chat("{\"name\": \"Alice\", \"age\": 30}"));
    let out = chat(&proxy, ask("give me a JSON person", false)).await;
    assert_eq!(out["choices"][0]["message"]["content"], "{\"name\": \"Alice\", \"age\": 30}");
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_tool_is_reported_to_the_model() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(Reply::chat("{\"tool\": \"launch_rockets\", \"arguments\": {}}"));
    mock.push(Reply::chat("I cannot do that."));
    let out = chat(&proxy, ask("launch", false)).await;
    assert_eq!(out["choices"][0]["message"]["content"], "I cannot do that.");
    let result = mock.requests()[1].json()["messages"][3]["content"].as_str().unwrap_or("").to_string();
    assert!(result.contains("unknown tool") && result.contains("launch_rockets"), "{result}");
}

async fn open_stream(
    proxy: &common::Proxy,
    text: &str,
) -> impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin {
    client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .header("x-mcp-tool-mode", "prompt")
        .json(&ask(text, true))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .bytes_stream()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_holds_a_call_but_streams_prose_at_once() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(
        Reply::sse()
            .event(chunk(json!({"role": "assistant", "content": "  {\"tool\": \"echo\", "}), None))
            .event(chunk(json!({"content": "\"arguments\": {\"text\": \"hidden\"}}"}), Some("stop")))
            .done(),
    );
    let (release, gate) = tokio::sync::oneshot::channel();
    mock.push(
        Reply::sse()
            .event(chunk(json!({"role": "assistant", "content": "The echo "}), None))
            .gate(gate)
            .event(chunk(json!({"content": "said hidden."}), Some("stop")))
            .done(),
    );
    let mut body = open_stream(&proxy, "echo").await;
    let mut raw = String::new();
    read_until(&mut body, &mut raw, "The echo ").await;
    let _ = release.send(());
    read_to_end(&mut body, &mut raw).await;
    assert!(!raw.contains("\\\"tool\\\""), "the call itself never reaches the client: {raw}");
    let text: String = raw
        .split("\n\n")
        .filter_map(|ev| ev.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, "The echo said hidden.");
    assert_eq!(raw.matches("[DONE]").count(), 1);
    let result = mock.requests()[1].json()["messages"][3]["content"].as_str().unwrap_or("").to_string();
    assert!(result.starts_with("Tool `echo` returned:\nhidden"), "the call ran: {result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_a_plain_answer_is_released_without_waiting_for_the_end() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    let (release, gate) = tokio::sync::oneshot::channel();
    mock.push(
        Reply::sse()
            .event(chunk(json!({"role": "assistant", "content": "Hello"}), None))
            .gate(gate)
            .event(chunk(json!({"content": " there"}), Some("stop")))
            .done(),
    );
    let mut body = open_stream(&proxy, "hi").await;
    let mut raw = String::new();
    read_until(&mut body, &mut raw, "\"Hello\"").await;
    let _ = release.send(());
    read_to_end(&mut body, &mut raw).await;
    assert!(raw.contains("\" there\""), "released as it came, not re-chunked: {raw}");
}
