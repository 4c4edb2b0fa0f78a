//! The real `openai` Python SDK, pointed at the proxy by `base_url` only,
//! works as it does against the upstream itself.

use crate::common;

use std::time::Duration;

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::start_proxy;
use serde_json::{json, Value};

/// Runs `tests/python/sdk_client.py` with `case` and returns what it printed.
async fn sdk(base_url: &str, case: &str) -> Value {
    common::require_python_module("openai", "openai");
    common::run_python("sdk_client.py", &[base_url, case]).await
}

#[tokio::test]
async fn non_streaming_completion() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat("Paris."));
    let out = sdk(&proxy.base_url(), "chat").await;
    assert_eq!(out["content"], "Paris.");
    assert_eq!(out["finish_reason"], "stop");
    assert_eq!(out["total_tokens"], 12);
    assert_eq!(mock.requests()[0].json()["messages"][0]["content"], "hi");
}

#[tokio::test]
async fn streaming_completion() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat_stream(&["The ", "answer ", "is ", "42."], Duration::from_millis(10)));
    let out = sdk(&proxy.base_url(), "stream").await;
    assert_eq!(out["content"], "The answer is 42.");
    assert_eq!(out["finish_reason"], "stop");
}

#[tokio::test]
async fn models_list() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::json(
        200,
        json!({"object": "list", "data": [
        {"id": "alpha", "object": "model", "created": 1, "owned_by": "me"},
        {"id": "beta", "object": "model", "created": 2, "owned_by": "me"}]}),
    ));
    let out = sdk(&proxy.base_url(), "models").await;
    assert_eq!(out["ids"], json!(["alpha", "beta"]));
}

#[tokio::test]
async fn upstream_429_is_the_sdks_rate_limit_error() {
    let mock = MockUpstream::start().await;
    // What the upstream answers once retries are spent (see tests/upstream_faults.rs).
    let proxy = start_proxy(&mock.base_url(), &[("UPSTREAM_RETRIES", "0")]);
    mock.push(Reply::error(429, "Rate limit reached for requests", "requests").header("retry-after", "3"));
    let out = sdk(&proxy.base_url(), "rate_limit").await;
    assert_eq!(out["raised"], "RateLimitError");
    assert_eq!(out["status"], 429);
    assert_eq!(out["retry_after"], "3");
}

#[tokio::test]
async fn a_stream_cut_by_the_upstream_makes_the_sdk_raise() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::cut_stream("half an"));
    let out = sdk(&proxy.base_url(), "stream_error").await;
    // The transparent path cuts the connection (no final chunk): the SDK's connection error.
    assert_eq!(out["raised"], "APIConnectionError", "the SDK accepted a truncated stream: {out}");
    assert_eq!(out["content"], "half an");
}

/// With MCP tools configured, the same SDK calls go through the tool loop.
fn proxy_with_tools(mock: &MockUpstream) -> common::Proxy {
    common::start_proxy_with_tools(&mock.base_url(), "echo,add", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_with_a_tool_round_assembles_exactly_the_final_answer() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::tool_calls_stream(&[("c1", "add", json!({"a": 20, "b": 22}))]));
    mock.push(Reply::chat_stream(&["The answer ", "is ", "42."], Duration::from_millis(5)));
    let out = sdk(&proxy.base_url(), "stream").await;
    assert_eq!(out["content"], "The answer is 42.");
    assert_eq!(out["finish_reason"], "stop");
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_streaming_with_a_tool_round() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::tool_calls(&[("c1", "echo", json!({"text": "Paris"}))]));
    mock.push(Reply::chat("Paris."));
    let out = sdk(&proxy.base_url(), "chat").await;
    assert_eq!(out["content"], "Paris.");
    assert_eq!(out["finish_reason"], "stop");
    assert_eq!(out["total_tokens"], 13 + 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_after_a_tool_round_makes_the_sdk_raise() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::tool_calls_stream(&[("c1", "echo", json!({"text": "x"}))]));
    mock.push(Reply::cut_stream("half an"));
    let out = sdk(&proxy.base_url(), "stream_error").await;
    // The tool loop ends the stream with an error event: the SDK raises it as an APIError.
    assert_eq!(out["raised"], "APIError", "the SDK accepted a truncated stream: {out}");
    assert!(out["message"].as_str().is_some_and(|m| m.contains("upstream")), "{out}");
    assert_eq!(out["content"], "half an");
}
