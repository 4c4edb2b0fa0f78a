//! `auto` tool mode: native first; an upstream that plainly refuses the
//! `tools` field gets the request again in prompt mode, and the model is
//! remembered for a while (per upstream and model, then tried natively
//! again). Nothing else is learned from: not a vague 400 that mentions a
//! tool, and never an error about the client's own tools.

use std::time::Duration;

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{client, start_proxy_with_tools, Proxy};
use serde_json::{json, Value};

async fn ask(proxy: &Proxy, model: &str, client_tools: Option<Value>) -> (u16, Value) {
    let mut body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    if let Some(tools) = client_tools {
        body["tools"] = tools;
    }
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// Whether the upstream request number `i` was made in native mode.
fn native(mock: &MockUpstream, i: usize) -> bool {
    mock.requests()[i].json().get("tools").is_some()
}

/// vLLM's answer to `tools` when it was started without a tool parser.
fn vllm_refusal() -> Reply {
    Reply::json(
        400,
        json!({"object": "error", "type": "BadRequestError", "param": null, "code": 400,
               "message": "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set"}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_refusal_of_tools_falls_back_for_that_model_and_expires() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo", &[("TOOL_LEARNED_MODE_SECONDS", "2")]);
    mock.push(vllm_refusal());
    mock.push(Reply::chat("hello from prompt mode"));
    let (status, out) = ask(&proxy, "small", None).await;
    assert_eq!((status, out["choices"][0]["message"]["content"].clone()), (200, json!("hello from prompt mode")));
    assert!(native(&mock, 0) && !native(&mock, 1), "refused natively, then asked in prompt mode");

    mock.push(Reply::chat("again"));
    assert_eq!(ask(&proxy, "small", None).await.0, 200);
    assert!(!native(&mock, 2), "the model is remembered as prompt-only");
    mock.push(Reply::chat("other"));
    assert_eq!(ask(&proxy, "other-model", None).await.0, 200);
    assert!(native(&mock, 3), "another model is not affected");

    tokio::time::sleep(Duration::from_millis(2200)).await;
    mock.push(Reply::chat("native again"));
    assert_eq!(ask(&proxy, "small", None).await.0, 200);
    assert!(native(&mock, 4), "what was learned expires");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_about_the_clients_own_tool_is_passed_on_and_not_learned() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo", &[]);
    let mine = json!([{"type": "function", "function": {"name": "mine", "parameters": {"type": "objekt"}}}]);
    mock.push(Reply::json(
        400,
        json!({"error": {"message": "Invalid schema for function 'mine': 'objekt' is not valid under any of the given schemas.",
                         "type": "invalid_request_error", "param": "tools[0].function.parameters", "code": "invalid_function_parameters"}}),
    ));
    let (status, out) = ask(&proxy, "gpt", Some(mine)).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(out["error"]["code"], "invalid_function_parameters", "the upstream's own error: {out}");
    assert_eq!(mock.requests().len(), 1, "not retried in prompt mode");

    mock.push(Reply::chat("fine"));
    assert_eq!(ask(&proxy, "gpt", None).await.0, 200);
    assert!(native(&mock, 1), "another client's request is still native");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vague_400_that_mentions_a_tool_is_not_a_refusal_of_tools() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo", &[]);
    mock.push(Reply::error(
        400,
        "Invalid 'messages[2]': tool_call_id call_9 has no matching tool call.",
        "invalid_request_error",
    ));
    let (status, out) = ask(&proxy, "gpt", None).await;
    assert_eq!(status, 400, "{out}");
    assert_eq!(mock.requests().len(), 1, "not retried in prompt mode");
    mock.push(Reply::chat("fine"));
    assert_eq!(ask(&proxy, "gpt", None).await.0, 200);
    assert!(native(&mock, 1), "nothing was learned");
}
