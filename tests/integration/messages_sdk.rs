//! The real `anthropic` Python SDK against `/v1/messages`, over a
//! chat-completions upstream, with the project's MCP test server: plain and
//! streamed answers, MCP rounds, the client's own tools through
//! `tool_result`, a mixed turn, `tool_choice`, errors in Anthropic's shape,
//! `x-api-key` under client keys, `count_tokens`, and the third-party
//! `server-everything` over stdio and streamable HTTP.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::mcp;
use crate::common::mock_upstream::{chunk, completion, MockUpstream, Reply};
use crate::common::prometheus::scrape;
use crate::common::{self, start_proxy_with_tools, Proxy};

async fn sdk(proxy: &Proxy, key: &str, case: &str) -> Value {
    common::require_python_module("anthropic", "anthropic");
    let base = proxy.url.clone();
    common::run_python("anthropic_client.py", &[base.as_str(), key, case]).await
}

fn proxy(mock: &MockUpstream) -> Proxy {
    start_proxy_with_tools(&mock.base_url(), "echo,add", &[])
}

fn tool_messages(req: &Value) -> Vec<Value> {
    req["messages"].as_array().cloned().unwrap_or_default().into_iter().filter(|m| m["role"] == "tool").collect()
}

fn tool_names(req: &Value) -> Vec<String> {
    let tools = req["tools"].as_array().cloned().unwrap_or_default();
    tools.iter().filter_map(|t| t["function"]["name"].as_str().map(str::to_string)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_message() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    mock.push(Reply::chat("Paris."));
    let out = sdk(&proxy, "sk-any", "create").await;
    assert_eq!((out["text"].as_str(), out["stop_reason"].as_str()), (Some("Paris."), Some("end_turn")), "{out}");
    assert!(out["id"].as_str().is_some_and(|id| id.starts_with("msg_")), "{out}");
    assert_eq!((&out["input_tokens"], &out["output_tokens"]), (&json!(5), &json!(7)));
    let sent = mock.requests()[0].json();
    assert_eq!(sent["messages"][0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(sent["max_tokens"], 100);
    assert_eq!(tool_names(&sent), ["add", "echo"], "the MCP tools are offered");
}

/// Most upstreams say only `stop`; vLLM names the sequence in `stop_reason`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_sequence_the_upstream_names_is_reported_streamed_and_not() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    let mut whole = completion("1, 2, 3");
    whole["choices"][0]["stop_reason"] = json!("END");
    mock.push(Reply::json(200, whole));
    let mut last = chunk(json!({}), Some("stop"));
    last["choices"][0]["stop_reason"] = json!("END");
    mock.push(Reply::sse().event(chunk(json!({"role": "assistant", "content": "1, 2, 3"}), None)).event(last).done());
    for case in ["create", "stream"] {
        let out = sdk(&proxy, "sk-any", case).await;
        assert_eq!(
            (&out["text"], &out["stop_reason"], &out["stop_sequence"]),
            (&json!("1, 2, 3"), &json!("stop_sequence"), &json!("END")),
            "{case}: {out}"
        );
    }
    mock.push(Reply::chat("Paris."));
    let out = sdk(&proxy, "sk-any", "create").await;
    assert_eq!((&out["stop_reason"], &out["stop_sequence"]), (&json!("end_turn"), &Value::Null), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_round_runs_in_the_proxy_streamed_and_not() {
    for stream in [false, true] {
        let mock = MockUpstream::start().await;
        let proxy = proxy(&mock);
        mock.push(Reply::turn(stream, "", &[("c1", "add", json!({"a": 20, "b": 22}))]));
        mock.push(if stream {
            Reply::chat_stream(&["It ", "is ", "42."], Duration::from_millis(5))
        } else {
            Reply::chat("It is 42.")
        });
        let out = sdk(&proxy, "sk-any", if stream { "stream" } else { "create" }).await;
        assert_eq!(out["text"], "It is 42.", "stream={stream}: {out}");
        assert_eq!(out["blocks"], json!(["text"]), "no MCP call shows: {out}");
        assert_eq!(out["stop_reason"], "end_turn");
        if stream {
            assert_eq!(out["pieces"], "It is 42.", "text_stream agrees with get_final_message()");
        }
        let second = mock.requests()[1].json();
        assert_eq!(tool_messages(&second)[0]["content"], "42", "the MCP server ran add");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_tool_goes_back_to_the_client_and_its_result_continues() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    mock.push(Reply::tool_calls(&[("call_w1", "weather", json!({"city": "Oslo"}))]));
    mock.push(Reply::chat("Cold in Oslo."));
    let out = sdk(&proxy, "sk-any", "client_tool").await;
    assert_eq!(out["first_stop"], "tool_use", "{out}");
    assert_eq!(out["first_blocks"], json!(["tool_use"]));
    assert_eq!(out["use"], json!(["toolu_call_w1", "weather", {"city": "Oslo"}]));
    assert_eq!((out["text"].as_str(), out["stop_reason"].as_str()), (Some("Cold in Oslo."), Some("end_turn")));
    let seen = mock.requests();
    assert_eq!(seen.len(), 2, "the proxy did not run the client's tool");
    let second = seen[1].json();
    assert_eq!(tool_messages(&second), [json!({"role": "tool", "content": "cold", "tool_call_id": "toolu_call_w1"})]);
    assert_eq!(tool_names(&second), ["weather", "add", "echo"], "the client's tool first, then the MCP tools");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_turn_runs_the_mcp_call_and_returns_the_clients_streamed() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    mock.push(Reply::tool_calls_stream(&[
        ("c1", "add", json!({"a": 1, "b": 2})),
        ("c2", "weather", json!({"city": "Oslo"})),
    ]));
    let out = sdk(&proxy, "sk-any", "stream_tools").await;
    assert_eq!(out["stop_reason"], "tool_use", "{out}");
    let uses = out["tool_uses"].as_array().cloned().unwrap_or_default();
    assert_eq!(uses.len(), 1, "only the client's call: {out}");
    assert_eq!((&uses[0][1], &uses[0][2]), (&json!("weather"), &json!({"city": "Oslo"})));
    assert!(uses[0][0].as_str().is_some_and(|id| id.starts_with("toolu_")), "{out}");
    assert_eq!(mock.requests().len(), 1, "the turn ended at the client's call");
    let metrics = scrape(&format!("{}/metrics", proxy.url), None).await;
    let ran = metrics.value("mcp_chat_proxy_tool_calls_total", &[("tool", "add"), ("outcome", "ok")]);
    assert_eq!(ran, 1.0, "the MCP call ran in the proxy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_choice_any_and_none() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    mock.push(Reply::chat("forced"));
    let out = sdk(&proxy, "sk-any", "any").await;
    assert_eq!(out["text"], "forced", "{out}");
    let sent = mock.requests()[0].json();
    assert_eq!(sent["tool_choice"], "required");
    mock.push(Reply::chat("no tools"));
    let out = sdk(&proxy, "sk-any", "none").await;
    assert_eq!(out["text"], "no tools", "{out}");
    let sent = mock.requests()[1].json();
    assert_eq!(sent["tool_choice"], "none");
    assert_eq!(tool_names(&sent), ["weather"], "no MCP tools with tool_choice none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_is_an_anthropic_shaped_400() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    let out = sdk(&proxy, "sk-any", "malformed").await;
    let e = &out["error"];
    assert_eq!(
        (&e["status"], &e["type"], &e["envelope"]),
        (&json!(400), &json!("invalid_request_error"), &json!("error"))
    );
    assert!(e["message"].as_str().is_some_and(|m| m.contains("messages[0].role")), "{out}");
    assert!(mock.requests().is_empty(), "nothing reached the upstream");
}

/// This SDK sends its key as `Authorization: Bearer`; Claude Code and older
/// SDKs as `X-Api-Key` (the script's `x-api-key=` form). Both are client keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_api_key_is_a_client_key() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(
        &mock.base_url(),
        "echo",
        &[("AUTH_KEYS", "anthropic-client-0001"), ("OPENAI_API_KEY", "sk-up")],
    );
    for how in ["", "x-api-key="] {
        let before = mock.requests().len();
        mock.push(Reply::chat("let in"));
        let out = sdk(&proxy, &format!("{how}anthropic-client-0001"), "create").await;
        assert_eq!(out["text"], "let in", "{how}: {out}");
        let sent = &mock.requests()[before];
        assert_eq!(sent.header("authorization").as_deref(), Some("Bearer sk-up"), "{how}");
        assert_eq!(sent.header("x-api-key"), None, "{how}: the client's key never goes upstream");
        let out = sdk(&proxy, &format!("{how}wrong-key-0002"), "create").await;
        assert_eq!(
            (&out["error"]["status"], &out["error"]["type"], &out["error"]["envelope"]),
            (&json!(401), &json!("authentication_error"), &json!("error")),
            "{how}: {out}"
        );
        assert_eq!(mock.requests().len(), before + 1, "{how}: a wrong key reaches no upstream");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_tokens_estimates() {
    let mock = MockUpstream::start().await;
    let proxy = proxy(&mock);
    let out = sdk(&proxy, "sk-any", "count").await;
    assert!(mock.requests().is_empty(), "counting asks no upstream");
    // The MCP tools the proxy would add count too: the same JSON a real
    // request offers the upstream, at four characters per token.
    mock.push(Reply::chat("ok"));
    sdk(&proxy, "sk-any", "create").await;
    let offered = mock.requests()[0].json()["tools"].to_string().chars().count();
    assert_eq!(out["input_tokens"], json!((400 + offered).div_ceil(4)), "400 characters and the tools: {out}");
    // Without the MCP tools, the 400 characters alone.
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x".repeat(400)}]});
    let r = common::client()
        .post(format!("{}/v1/messages/count_tokens", proxy.url))
        .header("x-mcp-tools", "off")
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.json::<Value>().await.unwrap_or_default(), json!({"input_tokens": 100}));
}

/// The same third-party server the other surfaces are tested with, over
/// stdio and streamable HTTP, streamed and not: the SDK sees only the answer
/// and the upstream reads the tool's result.
async fn everything_round(servers: Value) {
    for case in ["create", "stream"] {
        let mock = MockUpstream::start().await;
        let file = common::write_servers(servers.clone());
        let env = [("MCP_SERVERS_CONFIG", file.as_str()), ("MCP_STARTUP_WAIT_SECONDS", "30")];
        let proxy = common::start_proxy(&mock.base_url(), &env);
        let stream = case == "stream";
        mock.push(Reply::turn(stream, "", &[("c1", "get-sum", json!({"a": 2, "b": 40}))]));
        mock.push(Reply::turn(stream, "The sum is 42.", &[]));
        let out = sdk(&proxy, "sk-any", case).await;
        assert_eq!(
            (&out["text"], &out["stop_reason"]),
            (&json!("The sum is 42."), &json!("end_turn")),
            "{case}: {out}"
        );
        let sent = mock.requests();
        assert!(tool_names(&sent[0].json()).iter().any(|n| n == "get-sum"), "{case}");
        let answers = tool_messages(&sent[1].json());
        assert!(answers[0]["content"].as_str().is_some_and(|c| c.contains("42")), "{case}: {answers:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_stdio() {
    everything_round(json!({"everything": {"command": "node", "args": [mcp::everything_js(), "stdio"]}})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_streamable_http() {
    let port = common::free_port();
    let _server = mcp::start_everything("streamableHttp", port);
    everything_round(json!({"everything": {"type": "streamable-http", "url": format!("http://127.0.0.1:{port}/mcp")}}))
        .await;
}
