//! `/mcp`: the proxy's catalog served as an MCP server (streamable HTTP),
//! driven by rmcp's own client: the same names, descriptions and schemas
//! the chat path offers, calls through the hub (a failed tool is a result
//! with `isError`), the key's allow-list on what is listed and what may be
//! called, 401 without a valid key, and a server that goes down and comes back.
//! Subscriptions: `mcp_listen.rs`.

use std::time::Duration;

use rmcp::model::{CallToolRequestParams, CallToolResult, Tool};
use rmcp::service::{RunningService, ServiceError};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Value};

use crate::common::mcp::{start_remote, test_server, url};
use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::prometheus::scrape;
use crate::common::scratch::ScratchFile;
use crate::common::{
    client, require_python_module, run_python, start_proxy, start_proxy_with_tools, write_servers, Proxy,
};

pub(crate) type Client = RunningService<RoleClient, ()>;

/// How long anything that should happen may take before the test fails.
pub(crate) const WAIT: Duration = Duration::from_secs(15);

/// An MCP client of the proxy's `/mcp`, presenting `key` as its bearer token.
async fn connect(proxy: &Proxy, key: Option<&str>) -> Result<Client, String> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(format!("{}/mcp", proxy.url));
    if let Some(key) = key {
        config = config.auth_header(key);
    }
    let transport = StreamableHttpClientTransport::from_config(config);
    match tokio::time::timeout(WAIT, ().serve(transport)).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in time".into()),
    }
}

async fn must_connect(proxy: &Proxy, key: Option<&str>) -> Client {
    connect(proxy, key).await.unwrap_or_else(|e| panic!("connect to /mcp: {e}"))
}

async fn tools(client: &Client) -> Vec<Tool> {
    let listed = tokio::time::timeout(WAIT, client.list_all_tools()).await;
    listed.unwrap_or_else(|_| panic!("tools/list took too long")).unwrap_or_else(|e| panic!("tools/list: {e}"))
}

pub(crate) async fn names(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = tools(client).await.into_iter().map(|t| t.name.to_string()).collect();
    names.sort();
    names
}

pub(crate) async fn call(client: &Client, name: &str, arguments: Value) -> Result<CallToolResult, ServiceError> {
    let mut params = CallToolRequestParams::new(name.to_string());
    if let Value::Object(arguments) = arguments {
        params = params.with_arguments(arguments);
    }
    tokio::time::timeout(WAIT, client.call_tool(params)).await.unwrap_or_else(|_| panic!("{name} took too long"))
}

/// The text of a call's one text block, and whether it is an error.
pub(crate) fn text_of(result: &CallToolResult) -> (String, bool) {
    let text: Vec<&str> = result.content.iter().filter_map(|b| b.as_text()).map(|t| t.text.as_str()).collect();
    (text.join(""), result.is_error == Some(true))
}

/// The message of a protocol error (a call that was refused, not run).
fn refusal(result: Result<CallToolResult, ServiceError>) -> String {
    match result {
        Err(ServiceError::McpError(e)) => format!("{:?}: {}", e.code, e.message),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

/// Two stdio test servers that both have `echo` (so the catalog names them
/// `a__echo` and `b__echo`), `a` with `add` and `fail` besides.
fn two_servers() -> ScratchFile {
    write_servers(json!({
        "a": {"command": test_server(), "args": ["stdio", "--tools", "echo,add,fail"]},
        "b": {"command": test_server(), "args": ["stdio", "--tools", "echo"]},
    }))
}

/// The tools the chat path offers the model for `key`, by name: (description, parameters).
async fn chat_path_tools(proxy: &Proxy, mock: &MockUpstream, key: Option<&str>) -> Vec<(String, String, Value)> {
    mock.push(Reply::chat("fine"));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let mut req = client().post(format!("{}/chat/completions", proxy.base_url())).json(&body);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    let status = req.send().await.map(|r| r.status().as_u16()).unwrap_or(0);
    assert_eq!(status, 200);
    let seen = mock.requests();
    let offered = seen.last().map(|r| r.json()["tools"].clone()).unwrap_or_default();
    let mut tools: Vec<(String, String, Value)> = offered
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|t| {
            let f = &t["function"];
            (
                f["name"].as_str().unwrap_or("").into(),
                f["description"].as_str().unwrap_or("").into(),
                f["parameters"].clone(),
            )
        })
        .collect();
    tools.sort_by(|a, b| a.0.cmp(&b.0));
    tools
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_calls_the_catalog_under_the_chat_paths_names() {
    let mock = MockUpstream::start().await;
    let servers = two_servers();
    // No keys: /mcp is as open as the chat path.
    let proxy = start_proxy(&mock.base_url(), &[("MCP_SERVERS_CONFIG", servers.as_str())]);
    let mcp = must_connect(&proxy, None).await;

    assert_eq!(names(&mcp).await, ["a__echo", "add", "b__echo", "fail"]);
    let chat = chat_path_tools(&proxy, &mock, None).await;
    let mut listed: Vec<Tool> = tools(&mcp).await;
    listed.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(listed.len(), chat.len());
    for (tool, (name, description, parameters)) in listed.iter().zip(&chat) {
        assert_eq!(tool.name.as_ref(), name);
        assert_eq!(tool.description.as_deref().unwrap_or(""), description, "{name}");
        assert_eq!(Value::Object((*tool.input_schema).clone()), *parameters, "{name}");
    }

    let sum = call(&mcp, "add", json!({"a": 20, "b": 22})).await.unwrap_or_else(|e| panic!("add: {e}"));
    assert_eq!(text_of(&sum), ("42".to_string(), false));
    let echoed = call(&mcp, "b__echo", json!({"text": "from b"})).await.unwrap_or_else(|e| panic!("echo: {e}"));
    assert_eq!(text_of(&echoed), ("from b".to_string(), false));
    // A failing tool is data: a result with isError, not a protocol error.
    let failed = call(&mcp, "fail", json!({"message": "on purpose"})).await.unwrap_or_else(|e| panic!("fail: {e}"));
    assert_eq!(text_of(&failed), ("on purpose".to_string(), true));
    // A name the catalog does not have: refused, nothing runs.
    let unknown = refusal(call(&mcp, "echo", json!({"text": "x"})).await);
    assert!(unknown.contains("unknown tool"), "{unknown}");
    let _ = mcp.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_key_sees_and_calls_only_its_tools() {
    let keys = ScratchFile::new(
        "keys.toml",
        "[[key]]\nname = \"limited\"\nkey = \"limited-key-0101\"\ntools = [\"a__add\", \"b__echo\"]\n\n\
         [[key]]\nname = \"full\"\nkey = \"full-key-0102\"\n",
    );
    let mock = MockUpstream::start().await;
    let servers = two_servers();
    let proxy =
        start_proxy(&mock.base_url(), &[("MCP_SERVERS_CONFIG", servers.as_str()), ("AUTH_KEYS_FILE", keys.as_str())]);

    let limited = must_connect(&proxy, Some("limited-key-0101")).await;
    assert_eq!(names(&limited).await, ["add", "b__echo"]);
    let chat: Vec<String> =
        chat_path_tools(&proxy, &mock, Some("limited-key-0101")).await.into_iter().map(|t| t.0).collect();
    assert_eq!(chat, ["add", "b__echo"], "the chat path offers the same key the same tools");
    let echoed = call(&limited, "b__echo", json!({"text": "allowed"})).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text_of(&echoed), ("allowed".to_string(), false));

    // A tool the key may not use is refused exactly as one that does not exist.
    let forbidden = refusal(call(&limited, "fail", json!({})).await);
    let unknown = refusal(call(&limited, "no_such", json!({})).await);
    assert_eq!(forbidden.replace("fail", "no_such"), unknown, "a forbidden tool must look unknown");

    // Counted as the chat path counts them: the forbidden tool under its name, the made-up one apart.
    let scraped = scrape(&format!("{}/metrics", proxy.url), Some("Bearer full-key-0102")).await;
    let calls = "mcp_chat_proxy_tool_calls_total";
    assert_eq!(scraped.value(calls, &[("server", "a"), ("tool", "fail"), ("outcome", "refused")]), 1.0);
    assert_eq!(scraped.value(calls, &[("tool", "(unknown)"), ("outcome", "refused")]), 1.0);
    assert_eq!(scraped.value(calls, &[("server", "b"), ("tool", "b__echo"), ("outcome", "ok")]), 1.0);

    let full = must_connect(&proxy, Some("full-key-0102")).await;
    assert_eq!(names(&full).await, ["a__echo", "add", "b__echo", "fail"]);
    let failed = call(&full, "fail", json!({})).await.unwrap_or_else(|e| panic!("{e}"));
    assert!(text_of(&failed).1, "the full key runs fail: {failed:?}");
    let _ = limited.cancel().await;
    let _ = full.cancel().await;
}

/// A JSON-RPC `initialize`, as a client's first POST.
fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "raw", "version": "0"}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_valid_key_mcp_is_a_401_that_asks_for_a_bearer_token() {
    let mock = MockUpstream::start().await;
    let servers = two_servers();
    let proxy =
        start_proxy(&mock.base_url(), &[("MCP_SERVERS_CONFIG", servers.as_str()), ("AUTH_KEYS", "good-key-0201")]);
    for auth in [None, Some("Bearer wrong-key-0202"), Some("good-key-0201")] {
        let mut req = client()
            .post(format!("{}/mcp", proxy.url))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize());
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status().as_u16(), 401, "{auth:?}");
        let challenge = r.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_string);
        assert_eq!(challenge.as_deref(), Some("Bearer"), "{auth:?}");
        let body: Value = r.json().await.unwrap_or_default();
        assert_eq!(body["error"]["code"], "invalid_api_key");
    }
    assert!(connect(&proxy, Some("wrong-key-0202")).await.is_err(), "a real client with a wrong key gets nowhere");

    let r = client()
        .post(format!("{}/mcp", proxy.url))
        .bearer_auth("good-key-0201")
        .header("accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("x-request-id").is_some(), "the gate's headers are on /mcp answers too");
    let body: Value = r.json().await.unwrap_or_default();
    assert_eq!(body["result"]["serverInfo"]["name"], "mcp-chat-proxy", "{body}");
    // No session, so no stream of the server's own: GET is a 405, as the spec allows.
    let get = client()
        .get(format!("{}/mcp", proxy.url))
        .bearer_auth("good-key-0201")
        .header("accept", "text/event-stream")
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0);
    assert_eq!(get, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_going_down_fails_its_tools_clearly_and_they_work_again_after() {
    let first = start_remote("http", 0, &[]);
    let port = first.port;
    let mock = MockUpstream::start().await;
    let servers =
        write_servers(json!({"r": {"type": "streamable-http", "url": url("http", port), "timeout_seconds": 3}}));
    let proxy = start_proxy(
        &mock.base_url(),
        &[("MCP_SERVERS_CONFIG", servers.as_str()), ("MCP_RESTART_BACKOFF_MAX_SECONDS", "1")],
    );
    let mcp = must_connect(&proxy, None).await;
    let before = call(&mcp, "echo", json!({"text": "before"})).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text_of(&before), ("before".to_string(), false));

    drop(first);
    let down = call(&mcp, "echo", json!({"text": "down"})).await.unwrap_or_else(|e| panic!("{e}"));
    let (text, is_error) = text_of(&down);
    assert!(is_error, "a call to a server that is down fails: {text}");
    assert!(text.contains("MCP server \"r\""), "the error names the server: {text}");
    assert!(names(&mcp).await.contains(&"echo".to_string()), "its tools stay listed while it restarts");

    let _second = start_remote("http", port, &[]);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let again = call(&mcp, "echo", json!({"text": "again"})).await.unwrap_or_else(|e| panic!("{e}"));
        if text_of(&again) == ("again".to_string(), false) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the tool never worked again: {again:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = mcp.cancel().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_server_enabled_off_takes_the_route_away() {
    let mock = MockUpstream::start().await;
    let on = start_proxy(&mock.base_url(), &[]);
    let off = start_proxy(&mock.base_url(), &[("MCP_SERVER_ENABLED", "false")]);
    for (proxy, served) in [(&on, true), (&off, false)] {
        let welcome: Value = crate::common::get_json(&proxy.url).await;
        let listed = welcome["endpoints"].as_array().is_some_and(|e| e.iter().any(|p| p == "/mcp"));
        assert_eq!(listed, served, "{welcome}");
        let status = client()
            .post(format!("{}/mcp", proxy.url))
            .header("accept", "application/json, text/event-stream")
            .json(&initialize())
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        assert_eq!(status, if served { 200 } else { 404 });
    }
}

/// Another implementation than the one the proxy is built on: the Python
/// SDK's streamable-HTTP client, with a restricted key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_mcp_sdk_lists_and_calls_with_a_restricted_key() {
    require_python_module("mcp", "mcp");
    let keys = ScratchFile::new(
        "keys.toml",
        "[[key]]\nname = \"py\"\nkey = \"py-key-0301\"\ntools = [\"test__add\", \"test__fail\"]\n",
    );
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo,add,fail,pid", &[("AUTH_KEYS_FILE", keys.as_str())]);
    let seen = run_python("mcp_client.py", &[&format!("{}/mcp", proxy.url), "py-key-0301"]).await;
    assert_eq!(seen["server"], "mcp-chat-proxy", "{seen}");
    assert_eq!(seen["tools"], json!(["add", "fail"]), "{seen}");
    assert_eq!(seen["add"], json!(["5", false]), "{seen}");
    assert_eq!(seen["fail"], json!(["no", true]), "{seen}");
    let refused = seen["refused"]["error"].as_str().unwrap_or_default();
    assert!(refused.contains("unknown tool"), "pid is not the key's: {seen}");
}

/// The client connection is watched while a call runs (a hang-up cancels
/// it); a call that outlasts the body read timeout is still no hang-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_outlasts_the_body_timeout_is_answered() {
    let mock = MockUpstream::start().await;
    // The test server's calls time out after 2 s: the sleep fits between the two.
    let proxy = start_proxy_with_tools(&mock.base_url(), "sleep", &[("LIMITS_BODY_TIMEOUT_SECONDS", "1")]);
    let mcp = must_connect(&proxy, None).await;
    let slept = call(&mcp, "sleep", json!({"ms": 1600})).await.unwrap_or_else(|e| panic!("sleep: {e}"));
    let (text, is_error) = text_of(&slept);
    assert!(!is_error && text.contains("1600"), "{slept:?}");
    let _ = mcp.cancel().await;
}
