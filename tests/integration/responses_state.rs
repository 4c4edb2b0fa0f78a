//! `/v1/responses` with real MCP servers over stdio and streamable HTTP (the
//! third-party `server-everything` and our test server), and stored
//! conversations that outlive a proxy: a `kill -9`ed binary on SQLite, and
//! two instances sharing one Redis.

use serde_json::{json, Value};

use crate::common::binary::{scratch_dir, start_binary_in};
use crate::common::mcp::{everything_js, start_everything, start_remote, test_server, url};
use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::redis::RedisServer;
use crate::common::{self, free_port, start_proxy, write_servers};

async fn post(base: &str, body: Value) -> Value {
    let r = common::client()
        .post(format!("{base}/v1/responses"))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /v1/responses: {e}"));
    assert_eq!(r.status(), 200);
    r.json().await.unwrap_or_default()
}

fn item<'a>(response: &'a Value, kind: &str) -> &'a Value {
    let found = response["output"].as_array().into_iter().flatten().find(|i| i["type"] == kind);
    found.unwrap_or_else(|| panic!("no {kind} item: {response}"))
}

/// One MCP round on the server `label`, whose tool `tool` the model calls with `arguments`.
async fn one_round(servers: Value, label: &str, tool: &str, arguments: Value) -> Value {
    let mock = MockUpstream::start().await;
    let file = write_servers(servers);
    let proxy =
        start_proxy(&mock.base_url(), &[("MCP_SERVERS_CONFIG", file.as_str()), ("MCP_STARTUP_WAIT_SECONDS", "30")]);
    mock.push(Reply::tool_calls(&[("c1", tool, arguments)]));
    mock.push(Reply::chat("Done."));
    let mcp = json!({"type": "mcp", "server_label": label, "require_approval": "never"});
    let r = post(&proxy.url, json!({"model": "m", "input": "go", "tools": [mcp]})).await;
    assert_eq!(item(&r, "mcp_list_tools")["server_label"], label);
    item(&r, "mcp_call").clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_stdio() {
    let servers = json!({"everything": {"command": "node", "args": [everything_js(), "stdio"]}});
    let call = one_round(servers, "everything", "get-sum", json!({"a": 2, "b": 40})).await;
    assert_eq!((call["server_label"].as_str(), call["name"].as_str()), (Some("everything"), Some("get-sum")));
    assert!(call["output"].as_str().is_some_and(|o| o.contains("42")), "{call}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_everything_over_streamable_http() {
    let port = free_port();
    let _server = start_everything("streamableHttp", port);
    let servers = json!({"everything": {"type": "streamable-http", "url": format!("http://127.0.0.1:{port}/mcp")}});
    let call = one_round(servers, "everything", "get-sum", json!({"a": 2, "b": 40})).await;
    assert!(call["output"].as_str().is_some_and(|o| o.contains("42")), "{call}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_test_server_over_streamable_http_and_its_configured_url() {
    let remote = start_remote("http", 0, &[]);
    let address = url("http", remote.port);
    let servers = json!({"remote": {"type": "streamable-http", "url": address}});
    let call = one_round(servers.clone(), "remote", "add", json!({"a": 1, "b": 2})).await;
    assert_eq!(call["output"], "3");
    // Naming the server by its configured address is accepted too.
    let mock = MockUpstream::start().await;
    let file = write_servers(servers);
    let proxy = start_proxy(&mock.base_url(), &[("MCP_SERVERS_CONFIG", file.as_str())]);
    mock.push(Reply::chat("ok"));
    let mcp = json!({"type": "mcp", "server_label": "remote", "server_url": address, "require_approval": "never"});
    post(&proxy.url, json!({"model": "m", "input": "x", "tools": [mcp]})).await;
}

/// The upstream messages of the last request the mock saw.
fn last_messages(mock: &MockUpstream) -> Vec<String> {
    let sent = mock.requests().last().map(|r| r.json()).unwrap_or_default();
    sent["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conversation_continues_after_the_proxy_is_killed_and_restarted() {
    let mock = MockUpstream::start().await;
    let dir = scratch_dir();
    let servers = dir.write(
        "servers.json",
        &json!({"mcpServers": {"test": {"command": test_server(), "args": ["stdio", "--tools", "echo"]}}}).to_string(),
    );
    let env = [("SESSION_STORE", "sqlite:state/sessions.db"), ("MCP_SERVERS_CONFIG", servers.as_str())];
    let mut first = start_binary_in(&dir, &mock.base_url(), &env);
    mock.push(Reply::tool_calls(&[("c1", "echo", json!({"text": "remember 7"}))]));
    mock.push(Reply::chat("I will remember 7."));
    let r = post(&first.url(), json!({"model": "m", "input": "Remember 7."})).await;
    first.kill9();
    let second = start_binary_in(&dir, &mock.base_url(), &env);
    mock.push(Reply::chat("You said 7."));
    let next =
        post(&second.url(), json!({"model": "m", "input": "What did I say?", "previous_response_id": r["id"]})).await;
    assert_eq!(next["previous_response_id"], r["id"]);
    assert_eq!(last_messages(&mock), ["Remember 7.", "", "remember 7", "I will remember 7.", "What did I say?"]);
    assert!(
        !next["output"].as_array().into_iter().flatten().any(|i| i["type"] == "mcp_list_tools"),
        "listed once: {next}"
    );
    let got =
        common::get_json(&format!("{}/v1/responses/{}", second.url(), r["id"].as_str().unwrap_or_default())).await;
    assert_eq!(got, r, "the stored response survived kill -9");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_sharing_redis_continue_each_others_responses() {
    let redis = RedisServer::start();
    let mock = MockUpstream::start().await;
    let store = redis.url();
    let a = start_proxy(&mock.base_url(), &[("SESSION_STORE", store.as_str())]);
    let b = start_proxy(&mock.base_url(), &[("SESSION_STORE", store.as_str())]);
    mock.push(Reply::chat("Hello Ada."));
    let first = post(&a.url, json!({"model": "m", "input": "I am Ada."})).await;
    mock.push(Reply::chat("You are Ada."));
    let second = post(&b.url, json!({"model": "m", "input": "Who am I?", "previous_response_id": first["id"]})).await;
    assert_eq!(last_messages(&mock), ["I am Ada.", "Hello Ada.", "Who am I?"]);
    let id = second["id"].as_str().unwrap_or_default();
    assert_eq!(common::get_json(&format!("{}/v1/responses/{id}", a.url)).await, second, "A sees what B stored");
    let deleted = common::client().delete(format!("{}/v1/responses/{id}", a.url)).send().await;
    assert_eq!(deleted.map(|r| r.status().as_u16()).ok(), Some(200));
    let gone = common::client().get(format!("{}/v1/responses/{id}", b.url)).send().await;
    assert_eq!(gone.map(|r| r.status().as_u16()).ok(), Some(404));
    assert_eq!(redis.keys_with(id), Vec::<String>::new(), "delete leaves no key behind");
}
