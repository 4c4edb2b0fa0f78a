//! A third-party MCP server from the npm registry,
//! `@modelcontextprotocol/server-everything`, over all three transports.

use std::time::Duration;

use crate::common::free_port;
use crate::common::mcp::{everything_js, hub, quick_settings, start_everything};
use mcp_chat_proxy::mcp::Phase;
use serde_json::json;

async fn check_echo(servers: serde_json::Value) {
    let settings = mcp_chat_proxy::mcp::HubSettings { startup_wait: Duration::from_secs(30), ..quick_settings() };
    let hub = hub(servers, settings).await;
    assert_eq!(hub.status()[0].state, Phase::Connected, "{:?}", hub.status());
    let catalog = hub.catalog();
    assert!(catalog.len() >= 5, "server-everything lists its tools: {:?}", catalog.tools());
    let echo = catalog.tools().iter().find(|t| t.original == "echo").unwrap_or_else(|| panic!("no echo tool"));
    let out = hub.call(&echo.name, json!({"message": "hi from the hub"})).await;
    assert!(!out.is_error && out.text.contains("hi from the hub"), "{out:?}");
    // A tool with typed arguments, whose answer the server computes.
    let sum = catalog.tools().iter().find(|t| t.original == "get-sum").unwrap_or_else(|| panic!("no get-sum tool"));
    let out = hub.call(&sum.name, json!({"a": 2, "b": 40})).await;
    assert!(!out.is_error && out.text.contains("42"), "{out:?}");
    let wrong = hub.call(&sum.name, json!({"a": "two"})).await;
    assert!(wrong.is_error, "arguments against the schema are the server's error, for the model: {wrong:?}");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_stdio() {
    check_echo(json!({"everything": {"command": "node", "args": [everything_js(), "stdio"]}})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_legacy_sse() {
    let port = free_port();
    let _server = start_everything("sse", port);
    check_echo(json!({"everything": {"type": "sse", "url": format!("http://127.0.0.1:{port}/sse")}})).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_streamable_http() {
    let port = free_port();
    let _server = start_everything("streamableHttp", port);
    check_echo(json!({"everything": {"type": "streamable-http", "url": format!("http://127.0.0.1:{port}/mcp")}})).await;
}
