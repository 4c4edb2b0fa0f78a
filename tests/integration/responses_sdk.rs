//! The real `openai` Python SDK's `client.responses.*` against the proxy,
//! over a chat-completions upstream, with the project's MCP test server.

use std::time::Duration;

use serde_json::json;

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{self, start_proxy_with_tools, Proxy};

async fn sdk(proxy: &Proxy, case: &str, arg: Option<&str>) -> serde_json::Value {
    common::require_python_module("openai", "openai");
    let base = proxy.base_url();
    let mut args = vec![base.as_str(), case];
    args.extend(arg);
    common::run_python("responses_client.py", &args).await
}

fn proxy(mock: &MockUpstream) -> Proxy {
    start_proxy_with_tools(&mock.base_url(), "echo,add", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_plain() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    mock.push(Reply::chat("Paris."));
    let out = sdk(&proxy, "create", None).await;
    assert_eq!(out["text"], "Paris.");
    assert_eq!(out["status"], "completed");
    assert_eq!(out["total_tokens"], 12);
    let sent = mock.requests()[0].json();
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "Be brief."}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_with_an_mcp_tool_carries_the_call_output() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    mock.push(Reply::tool_calls(&[("c1", "add", json!({"a": 20, "b": 22}))]));
    mock.push(Reply::chat("It is 42."));
    let out = sdk(&proxy, "create_mcp", None).await;
    assert_eq!(out["items"], json!(["mcp_list_tools", "mcp_call", "message"]));
    assert_eq!(
        (&out["call_output"], &out["call_name"], &out["call_server"]),
        (&json!("42"), &json!("add"), &json!("test"))
    );
    assert_eq!(out["listed"], json!(["add", "echo"]));
    assert_eq!(out["text"], "It is 42.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_with_the_sdks_own_accumulation() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    mock.push(Reply::chat_stream(&["The ", "answer ", "is ", "42."], Duration::from_millis(5)));
    let out = sdk(&proxy, "stream", None).await;
    assert_eq!(out["deltas"], "The answer is 42.");
    assert_eq!(out["text"], "The answer is 42.", "get_final_response() agrees with the deltas");
    assert_eq!(out["status"], "completed");
    assert_eq!(out["kinds"][0], "response.created");
    assert_eq!(out["kinds"].as_array().and_then(|k| k.last()), Some(&json!("response.completed")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_mcp_round_shows_mcp_call_events() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    mock.push(Reply::tool_calls_stream(&[("c1", "echo", json!({"text": "pong"}))]));
    mock.push(Reply::chat_stream(&["It said ", "pong."], Duration::from_millis(5)));
    let out = sdk(&proxy, "stream", Some("mcp")).await;
    let kinds: Vec<&str> = out["kinds"].as_array().into_iter().flatten().filter_map(|k| k.as_str()).collect();
    for needed in ["response.mcp_call.in_progress", "response.mcp_call_arguments.done", "response.mcp_call.completed"] {
        assert!(kinds.contains(&needed), "no {needed}: {kinds:?}");
    }
    assert_eq!(out["items"], json!(["mcp_list_tools", "mcp_call", "message"]));
    assert_eq!(out["call_outputs"], json!(["pong"]));
    assert_eq!(out["text"], "It said pong.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_function_tool_answered_through_previous_response_id() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    mock.push(Reply::tool_calls(&[("call_w", "weather", json!({"city": "Oslo"}))]));
    mock.push(Reply::chat("Cold: -5 C."));
    let out = sdk(&proxy, "function", None).await;
    assert_eq!((&out["call_name"], &out["call_args"]), (&json!("weather"), &json!({"city": "Oslo"})));
    assert_eq!(out["text"], "Cold: -5 C.");
    let sent = mock.requests()[1].json();
    assert_eq!(
        sent["messages"].as_array().and_then(|m| m.last()),
        Some(&json!({"role": "tool", "content": "-5 C in Oslo", "tool_call_id": "call_w"}))
    );
    let names: Vec<&str> =
        sent["tools"].as_array().into_iter().flatten().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert!(names.contains(&"weather") && names.contains(&"echo"), "the client's tool beside the catalog: {names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_over_three_turns() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    for answer in ["Hello Ada.", "Noted.", "Your name is Ada and you like tea."] {
        mock.push(Reply::chat(answer));
    }
    let out = sdk(&proxy, "conversation", None).await;
    assert_eq!(out["said"], json!(["Hello Ada.", "Noted.", "Your name is Ada and you like tea."]));
    let third = mock.requests()[2].json();
    let contents: Vec<&str> =
        third["messages"].as_array().into_iter().flatten().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(contents, ["My name is Ada.", "Hello Ada.", "I like tea.", "Noted.", "What do you know about me?"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retrieve_list_input_items_and_delete() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    mock.push(Reply::chat("Hello."));
    let out = sdk(&proxy, "retrieve_delete", None).await;
    assert_eq!(out["same"], true, "{out}");
    assert_eq!(out["input_texts"], json!(["Hi"]));
    assert_eq!(out["after_delete"], "NotFoundError 404");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_approval_flow_approved_and_denied() {
    for (decision, ran) in [("approve", true), ("deny", false)] {
        let mock = MockUpstream::start().await;
        let proxy = proxy(&mock);
        mock.push(Reply::tool_calls(&[("c1", "echo", json!({"text": "secret"}))]));
        mock.push(Reply::chat("Done."));
        let out = sdk(&proxy, "approval", Some(decision)).await;
        assert_eq!(out["first_items"], json!(["mcp_list_tools", "mcp_approval_request"]), "{decision}");
        assert_eq!((&out["request_name"], &out["request_server"]), (&json!("echo"), &json!("test")));
        assert_eq!(out["text"], "Done.");
        let told = mock.requests()[1].json()["messages"][2]["content"].clone();
        if ran {
            assert_eq!(out["call_outputs"], json!(["secret"]));
            assert_eq!(told, "secret");
        } else {
            assert_eq!(out["call_outputs"], json!([]));
            assert_eq!(told, "The user denied this tool call.");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_server_label_is_the_sdks_bad_request() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    let out = sdk(&proxy, "unknown_label", None).await;
    assert_eq!((&out["raised"], &out["status"]), (&json!("BadRequestError"), &json!(400)));
    assert_eq!(out["param"], "tools[0].server_label");
    assert!(out["message"].as_str().is_some_and(|m| m.contains("nowhere")), "{out}");
    assert!(mock.requests().is_empty());
}
