//! `/v1/messages` when things go wrong or take time, as an Anthropic client
//! sees it: refusals the gate makes before any handler runs (body over the
//! cap, too many requests in flight) in Anthropic's error shape; a failure
//! after the stream started as Anthropic's `error` event, with no
//! `message_stop`, so the SDK raises instead of taking a cut answer as whole;
//! `ping` events while an MCP tool runs; and, with no keys of ours and no
//! upstream key, the client's `x-api-key` as the upstream's bearer.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::mock_upstream::{chunk, MockUpstream, Reply};
use crate::common::{self, client, read_to_end, read_until, start_proxy_with_tools, Proxy};

async fn sdk(proxy: &Proxy, key: &str, case: &str) -> Value {
    common::require_python_module("anthropic", "anthropic");
    let base = proxy.url.clone();
    common::run_python("anthropic_client.py", &[base.as_str(), key, case]).await
}

/// The SDK's view of an error: HTTP status, Anthropic's envelope and type.
fn refusal(out: &Value) -> (Value, Value, Value) {
    let e = &out["error"];
    (e["status"].clone(), e["envelope"].clone(), e["type"].clone())
}

/// A streamed message request, sent without an SDK to read the raw events.
async fn stream(proxy: &Proxy) -> reqwest::Response {
    let body = json!({"model": "m", "max_tokens": 10, "stream": true, "messages": [{"role": "user", "content": "a"}]});
    let sent = client().post(format!("{}/v1/messages", proxy.url)).json(&body).send().await;
    sent.unwrap_or_else(|e| panic!("POST /v1/messages: {e}"))
}

fn event_names(raw: &str) -> Vec<&str> {
    raw.split("\n\n").filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("event: "))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_cap_is_refused_in_anthropics_shape() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo", &[("LIMITS_MAX_BODY_BYTES", "65536")]);
    let out = sdk(&proxy, "k", "huge").await;
    assert_eq!(refusal(&out), (json!(413), json!("error"), json!("request_too_large")), "{out}");
    assert!(out["error"]["message"].as_str().is_some_and(|m| m.contains("65536")), "{out}");
    assert!(mock.requests().is_empty(), "nothing reached the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_in_flight_is_an_anthropic_overload() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo", &[("LIMITS_MAX_IN_FLIGHT", "1")]);
    // One stream holds the only place until released.
    let (release, gate) = tokio::sync::oneshot::channel();
    mock.push(Reply::sse().event(chunk(json!({"role": "assistant", "content": "held"}), None)).gate(gate).done());
    let mut held_body = stream(&proxy).await.bytes_stream();
    let mut seen = String::new();
    read_until(&mut held_body, &mut seen, "held").await;

    let out = sdk(&proxy, "k", "create").await;
    assert_eq!(refusal(&out), (json!(503), json!("error"), json!("overloaded_error")), "{out}");

    let _ = release.send(());
    read_to_end(&mut held_body, &mut seen).await;
    assert_eq!(event_names(&seen).last(), Some(&"message_stop"), "the held stream finished: {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_after_the_first_byte_is_an_error_event_and_the_sdk_raises() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo", &[]);
    mock.push(Reply::cut_stream("The answer begins"));
    let out = sdk(&proxy, "k", "stream").await;
    assert_eq!(out["pieces_so_far"], json!(["The answer begins"]), "what had streamed reached the client: {out}");
    assert_eq!(out["error"]["type"], "api_error", "the SDK raised on the error event: {out}");
    assert!(out["text"].is_null(), "no final message was accepted: {out}");

    // On the wire: the error event ends the stream, with no message_stop.
    mock.push(Reply::cut_stream("The answer begins"));
    let raw = stream(&proxy).await.text().await.unwrap_or_default();
    let names = event_names(&raw);
    assert_eq!(names.first(), Some(&"message_start"), "{raw}");
    assert_eq!(names.last(), Some(&"error"), "{raw}");
    assert!(!names.contains(&"message_stop"), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_events_keep_the_stream_alive_while_a_tool_runs() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo,sleep", &[]);
    mock.push(Reply::tool_calls_stream(&[("c1", "sleep", json!({"ms": 1600}))]));
    mock.push(Reply::chat_stream(&["Rested."], Duration::ZERO));
    let raw = stream(&proxy).await.text().await.unwrap_or_default();
    let names = event_names(&raw);
    let ping = names.iter().position(|n| *n == "ping");
    let text = names.iter().position(|n| *n == "content_block_start");
    assert!(ping.is_some_and(|p| text.is_some_and(|t| p < t)), "a ping before the answer's first block: {names:?}");
    assert_eq!(names.last(), Some(&"message_stop"), "{raw}");
    assert!(!raw.contains("tool_use"), "the MCP call stays in the proxy: {raw}");
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_keys_of_ours_the_clients_x_api_key_is_the_upstreams_bearer() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo", &[]);
    mock.push(Reply::chat("brought my own"));
    let out = sdk(&proxy, "x-api-key=sk-users-own-0003", "create").await;
    assert_eq!(out["text"], "brought my own", "{out}");
    let sent = &mock.requests()[0];
    assert_eq!(sent.header("authorization").as_deref(), Some("Bearer sk-users-own-0003"));
    assert_eq!(sent.header("x-api-key"), None);
}
