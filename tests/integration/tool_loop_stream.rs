//! The tool loop streaming: content arrives as the upstream sends it, tool
//! rounds are invisible but for time and comment lines, and the client gets
//! one coherent SSE stream: one id, one role chunk, one finish, one [DONE].

use crate::common;

use std::time::Duration;

use crate::common::mock_upstream::{chunk, MockUpstream, Reply};
use crate::common::{client, start_proxy_with_tools};
use futures_util::StreamExt;
use serde_json::{json, Value};

const TOOLS: &str = "echo,add,sleep,fail";

async fn stream(proxy: &common::Proxy, body: Value) -> (Vec<String>, String) {
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let raw = r.text().await.unwrap_or_else(|e| panic!("{e}"));
    let data = raw
        .split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")).map(str::to_string))
        .collect();
    (data, raw)
}

fn ask(text: &str) -> Value {
    json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": text}]})
}

fn chunks(data: &[String]) -> Vec<Value> {
    data.iter().filter(|d| *d != "[DONE]").map(|d| serde_json::from_str(d).unwrap_or_default()).collect()
}

fn content(chunks: &[Value]) -> String {
    chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_round_inside_one_stream() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(Reply::tool_calls_stream(&[
        ("c1", "add", json!({"a": 2, "b": 2})),
        ("c2", "echo", json!({"text": "hi"})),
    ]));
    mock.push(Reply::chat_stream(&["The sum ", "is 4."], Duration::from_millis(5)));
    let (data, _) = stream(&proxy, ask("add")).await;

    assert_eq!(data.iter().filter(|d| *d == "[DONE]").count(), 1);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks = chunks(&data);
    assert_eq!(content(&chunks), "The sum is 4.");
    let ids: std::collections::HashSet<String> =
        chunks.iter().filter_map(|c| c["id"].as_str().map(str::to_string)).collect();
    assert_eq!(ids.len(), 1, "one id across rounds: {ids:?}");
    let roles = chunks.iter().filter(|c| c["choices"][0]["delta"].get("role").is_some()).count();
    assert_eq!(roles, 1, "one role chunk");
    let finishes: Vec<&Value> =
        chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
    assert_eq!(finishes, [&json!("stop")]);
    assert!(chunks.iter().all(|c| c["choices"][0]["delta"].get("tool_calls").is_none()), "tool-call deltas held back");

    let second = mock.requests()[1].json();
    let tool_msgs: Vec<Value> = second["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert_eq!(tool_msgs[0]["content"], "4", "parallel arguments assembled by index, not glued");
    assert_eq!(tool_msgs[1]["content"], "hi");
    assert_eq!(second["stream"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_content_arrives_before_the_upstream_sends_more() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    let (release, gate) = tokio::sync::oneshot::channel();
    mock.push(
        Reply::sse()
            .event(chunk(json!({"role": "assistant", "content": "Hel"}), None))
            .gate(gate)
            .event(chunk(json!({"content": "lo"}), Some("stop")))
            .done(),
    );
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&ask("hi"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("Hel") {
        let piece = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .unwrap_or_else(|_| panic!("first content held back: {seen:?}"));
        seen.push_str(&String::from_utf8_lossy(
            &piece.unwrap_or_else(|| panic!("ended")).unwrap_or_else(|e| panic!("{e}")),
        ));
    }
    let _ = release.send(());
    while let Some(piece) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&piece.unwrap_or_else(|e| panic!("{e}"))));
    }
    assert!(seen.contains("\"lo\"") && seen.trim_end().ends_with("data: [DONE]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tool_sends_keep_alive_comments_and_usage_is_summed() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    let usage = |p: u64, c: u64| {
        json!({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [],
               "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c,
                         "prompt_tokens_details": {"cached_tokens": p / 2}}})
    };
    mock.push(
        Reply::sse()
            .event(chunk(json!({"role": "assistant", "content": null}), None))
            .event(chunk(json!({"tool_calls": [{"index": 0, "id": "s", "type": "function", "function": {"name": "sleep", "arguments": "{\"ms\": 1500}"}}]}), Some("tool_calls")))
            .event(usage(10, 3))
            .done(),
    );
    mock.push(
        Reply::sse()
            .event(chunk(json!({"role": "assistant", "content": "done"}), Some("stop")))
            .event(usage(7, 2))
            .done(),
    );
    let mut body = ask("wait");
    body["stream_options"] = json!({"include_usage": true});
    let (data, raw) = stream(&proxy, body).await;
    assert!(raw.contains(": tool sleep running"), "{raw}");
    let chunks = chunks(&data);
    let usage: Vec<&Value> = chunks.iter().filter(|c| c["usage"].is_object()).map(|c| &c["usage"]).collect();
    assert_eq!(usage.len(), 1, "one usage chunk: {data:?}");
    assert_eq!(usage[0]["prompt_tokens"], 17, "{data:?}");
    assert_eq!(usage[0]["completion_tokens"], 5, "{data:?}");
    assert_eq!(usage[0]["total_tokens"], 22, "both rounds' usage: {data:?}");
    assert_eq!(usage[0]["prompt_tokens_details"]["cached_tokens"], 8, "{data:?}");
    assert_eq!(chunks.last().map(|c| c["choices"].clone()), Some(json!([])), "the usage chunk comes last");
    assert_eq!(mock.requests()[1].json()["stream_options"]["include_usage"], true, "each round asks for usage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_mid_stream_is_an_error_event_without_done() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(
        Reply::sse()
            .event(chunk(json!({"role": "assistant", "content": "partial"}), None))
            .sleep(Duration::from_millis(20))
            .drop_connection(),
    );
    let (data, _) = stream(&proxy, ask("hi")).await;
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    let last: Value = serde_json::from_str(data.last().map(String::as_str).unwrap_or("{}")).unwrap_or_default();
    assert!(last["error"]["message"].is_string(), "{data:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_cancels_the_upstream_request() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    let pieces: Vec<String> = (0..300).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    mock.push(Reply::chat_stream(&refs, Duration::from_millis(20)));
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&ask("long"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut body = r.bytes_stream();
    let _ = body.next().await;
    drop(body);
    mock.wait_aborted(1).await;
}

/// llama.cpp's server sends each tool call twice: in `tool_calls` and in the
/// legacy `function_call`. Neither reaches the client for an MCP tool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_function_call_beside_tool_calls_never_reaches_the_client() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    let piece = |name: Option<&str>, args: &str| {
        let mut function = json!({"arguments": args});
        if let Some(name) = name {
            function["name"] = json!(name);
        }
        chunk(
            json!({"role": null, "content": null, "function_call": function.clone(),
                   "tool_calls": [{"index": 0, "id": "call_x", "type": "function", "function": function}]}),
            None,
        )
    };
    mock.push(
        Reply::sse()
            .event(chunk(
                json!({"role": "assistant", "content": null, "function_call": null, "tool_calls": null}),
                None,
            ))
            .event(piece(Some("echo"), "{\"text\": "))
            .event(piece(None, "\"hi\"}"))
            .event(chunk(json!({}), Some("tool_calls")))
            .done(),
    );
    mock.push(Reply::chat_stream(&["It said hi."], Duration::ZERO));
    let (data, raw) = stream(&proxy, ask("echo")).await;
    assert!(!raw.contains("function_call") && !raw.contains("call_x"), "{raw}");
    assert_eq!(content(&chunks(&data)), "It said hi.");
    let second = mock.requests()[1].json();
    let tool = second["messages"].as_array().and_then(|m| m.iter().find(|m| m["role"] == "tool").cloned());
    assert_eq!(tool.map(|t| t["content"].clone()), Some(json!("hi")), "the name resent with each piece is one name");
}
