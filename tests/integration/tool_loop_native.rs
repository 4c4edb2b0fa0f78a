//! The tool loop in native mode: the model's `tool_calls` run on a real MCP
//! server (our rmcp test server over stdio), results go back as `tool`
//! messages, and the client sees one ordinary completion.

use crate::common;

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{client, start_proxy_with_tools};
use serde_json::{json, Value};

const TOOLS: &str = "echo,add,sleep,fail";

async fn chat(proxy: &common::Proxy, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

fn ask(text: &str) -> Value {
    json!({"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]})
}

fn tool_messages(req: &Value) -> Vec<Value> {
    req["messages"].as_array().cloned().unwrap_or_default().into_iter().filter(|m| m["role"] == "tool").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_tool_round() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(Reply::tool_calls(&[("call_1", "echo", json!({"text": "ping"}))]));
    mock.push(Reply::chat("The tool said ping."));

    let (status, out) = chat(&proxy, ask("echo ping")).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["choices"][0]["message"]["content"], "The tool said ping.");
    assert_eq!(out["choices"][0]["finish_reason"], "stop");
    assert!(out["choices"][0]["message"].get("tool_calls").is_none_or(Value::is_null), "{out}");
    assert_eq!(out["usage"]["total_tokens"], 13 + 12, "usage summed over both rounds");
    assert_eq!(out["id"], "chatcmpl-tools", "one id: the first round's");

    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    let first = seen[0].json();
    let tools = first["tools"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = tools.iter().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert_eq!(names, ["add", "echo", "fail", "sleep"]);
    let echo = tools.iter().find(|t| t["function"]["name"] == "echo").cloned().unwrap_or_default();
    assert_eq!(echo["type"], "function");
    assert_eq!(echo["function"]["parameters"]["type"], "object");
    assert!(echo["function"]["parameters"]["properties"]["text"].is_object(), "{echo}");
    assert_eq!(first["messages"][0]["content"], "Be brief.", "the client's system message is kept");

    let second = seen[1].json();
    let msgs = second["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(msgs.len(), 4, "{second}");
    assert_eq!(msgs[2]["role"], "assistant");
    assert_eq!(msgs[2]["tool_calls"][0]["id"], "call_1");
    assert_eq!(msgs[3], json!({"role": "tool", "tool_call_id": "call_1", "content": "ping"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rounds_and_two_parallel_calls() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(Reply::tool_calls(&[("a", "add", json!({"a": 2, "b": 3})), ("b", "echo", json!({"text": "x"}))]));
    mock.push(Reply::tool_calls(&[("c", "add", json!({"a": 5, "b": 5}))]));
    mock.push(Reply::chat("10"));
    let (status, out) = chat(&proxy, ask("compute")).await;
    assert_eq!((status, out["choices"][0]["message"]["content"].clone()), (200, json!("10")));

    let seen = mock.requests();
    assert_eq!(seen.len(), 3);
    let round2 = tool_messages(&seen[1].json());
    assert_eq!(
        round2,
        [
            json!({"role": "tool", "tool_call_id": "a", "content": "5"}),
            json!({"role": "tool", "tool_call_id": "b", "content": "x"})
        ]
    );
    let round3 = tool_messages(&seen[2].json());
    assert_eq!(round3.len(), 3);
    assert_eq!(round3[2]["content"], "10");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_slow_and_unknown_tools_become_errors_for_the_model() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(Reply::tool_calls(&[
        ("f", "fail", json!({"message": "disk on fire"})),
        ("s", "sleep", json!({"ms": 10_000})),
        ("u", "no_such_tool", json!({})),
        ("j", "echo", json!("not an object")),
    ]));
    mock.push(Reply::chat("I could not do it."));
    let (status, out) = chat(&proxy, ask("try")).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["choices"][0]["message"]["content"], "I could not do it.");
    let results = tool_messages(&mock.requests()[1].json());
    let text = |i: usize| results[i]["content"].as_str().unwrap_or("").to_string();
    assert!(text(0).contains("disk on fire"), "{results:?}");
    assert!(text(1).contains("did not finish within 2 s"), "{results:?}");
    assert!(text(2).contains("unknown tool") && text(2).contains("echo"), "{results:?}");
    assert!(text(3).contains("JSON object"), "{results:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_round_limit_asks_for_a_final_answer_and_says_so() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[("TOOL_MAX_ROUNDS", "2")]);
    mock.push(Reply::tool_calls(&[("1", "echo", json!({"text": "one"}))]));
    mock.push(Reply::tool_calls(&[("2", "echo", json!({"text": "two"}))]));
    mock.push(Reply::tool_calls(&[("3", "echo", json!({"text": "three"}))]));
    mock.push(Reply::chat("Stopping here."));
    let (_, out) = chat(&proxy, ask("loop")).await;
    assert_eq!(out["choices"][0]["message"]["content"], "Stopping here.");
    assert_eq!(out["mcp_proxy"]["stopped"], "round_limit");
    assert_eq!(mock.requests().len(), 4, "two tool rounds, the third's calls refused, then the answer");
    let last = mock.requests()[3].json();
    assert_eq!(last["tool_choice"], "none", "the final round may call nothing: {last}");
    let results: Vec<Value> = tool_messages(&last).into_iter().map(|m| m["content"].clone()).collect();
    assert_eq!(results, [json!("one"), json!("two")], "the third round's call was not run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeating_the_same_call_stops_the_loop() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(Reply::tool_calls(&[("1", "echo", json!({"text": "same"}))]));
    mock.push(Reply::tool_calls(&[("2", "echo", json!({"text": "same"}))]));
    mock.push(Reply::chat("Done."));
    let (_, out) = chat(&proxy, ask("repeat")).await;
    assert_eq!(out["mcp_proxy"]["stopped"], "repeated_tool_call");
    assert_eq!(mock.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_tools_are_merged_and_their_calls_returned_to_the_client() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    let weather = json!({"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}});
    mock.push(Reply::tool_calls(&[
        ("m", "echo", json!({"text": "mcp"})),
        ("w", "get_weather", json!({"city": "Oslo"})),
    ]));
    let mut body = ask("weather?");
    body["tools"] = json!([weather]);
    let (status, out) = chat(&proxy, body).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["choices"][0]["finish_reason"], "tool_calls");
    let calls = out["choices"][0]["message"]["tool_calls"].as_array().cloned().unwrap_or_default();
    assert_eq!(calls.len(), 1, "only the client's own call comes back: {out}");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(calls[0]["id"], "w");
    let sent_tools = mock.requests()[0].json()["tools"].as_array().cloned().unwrap_or_default();
    assert_eq!(sent_tools[0], weather, "the client's tool comes first, untouched");
    assert_eq!(sent_tools.len(), 5);
    assert_eq!(mock.requests().len(), 1, "the turn ended at the client's call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_choice_none_and_the_off_header_send_no_mcp_tools() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(Reply::chat("plain"));
    let mut body = ask("hi");
    body["tool_choice"] = json!("none");
    let (_, out) = chat(&proxy, body).await;
    assert_eq!(out["choices"][0]["message"]["content"], "plain");
    assert!(mock.requests()[0].json().get("tools").is_none());

    mock.push(Reply::chat("plain again"));
    let body = ask("hi");
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .header("x-mcp-tools", "off")
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    assert_eq!(mock.requests()[1].json(), body, "with tools off the request is proxied as sent");

    let bad = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .header("x-mcp-tool-mode", "magic")
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bad.status(), 400);
    let v: Value = bad.json().await.unwrap_or_default();
    assert_eq!(v["error"]["param"], "x-mcp-tool-mode");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_400_naming_the_field_and_upstream_errors_pass_through() {
    let mock = MockUpstream::start().await;
    // What the upstream answers once retries are spent (see tests/upstream_faults.rs).
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[("UPSTREAM_RETRIES", "0")]);
    let (status, out) = chat(&proxy, json!({"model": "m", "messages": "hello"})).await;
    assert_eq!(status, 400);
    assert_eq!(out["error"]["param"], "messages");
    let (status, out) = chat(&proxy, json!({"model": "m", "messages": [{"content": "no role"}]})).await;
    assert_eq!(status, 400, "{out}");
    assert!(out["error"]["param"].as_str().unwrap_or_default().starts_with("messages"), "{out}");
    let bad_header = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .header("x-mcp-tools", "sometimes")
        .json(&ask("hi"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bad_header.status(), 400);
    let v: Value = bad_header.json().await.unwrap_or_default();
    assert_eq!(v["error"]["param"], "x-mcp-tools");
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .header("content-type", "application/json")
        .body("{\"model\": ")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 400);
    assert!(mock.requests().is_empty());

    mock.push(Reply::error(429, "slow down", "rate_limit_error").header("retry-after", "4"));
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&ask("hi"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "4");
    let v: Value = r.json().await.unwrap_or_default();
    assert_eq!(v["error"]["message"], "slow down");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_mode_falls_back_to_prompt_mode_when_the_upstream_rejects_tools() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(Reply::error(400, "This model does not support tools", "invalid_request_error"));
    mock.push(Reply::chat("answered without function calling"));
    mock.push(Reply::chat("second request"));
    let (status, out) = chat(&proxy, ask("hi")).await;
    assert_eq!(status, 200, "{out}");
    assert_eq!(out["choices"][0]["message"]["content"], "answered without function calling");
    let (_, _) = chat(&proxy, ask("again")).await;
    let seen = mock.requests();
    assert_eq!(seen.len(), 3);
    assert!(seen[0].json().get("tools").is_some());
    for later in &seen[1..] {
        let req = later.json();
        assert!(req.get("tools").is_none(), "prompt mode sends no tools field");
        let system = req["messages"][0]["content"].as_str().unwrap_or("");
        assert!(system.contains("echo") && system.contains("Be brief."), "{system}");
    }
}
