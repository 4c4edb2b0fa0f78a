//! The hub over remote MCP servers (our rmcp test server over streamable
//! HTTP and over the legacy HTTP+SSE protocol): calls, and reconnection with
//! the call replayed when the server goes away and comes back.

use std::time::Duration;

use crate::common::mcp::{eventually, hub, quick_settings, start_remote, url};
use mcp_chat_proxy::mcp::Phase;
use serde_json::json;

async fn calls_over(mode: &str, kind: &str) {
    let server = start_remote(mode, 0, &[]);
    let hub = hub(json!({"r": {"type": kind, "url": url(mode, server.port)}}), quick_settings()).await;
    assert_eq!(hub.status()[0].state, Phase::Connected, "{:?}", hub.status());
    assert!(hub.catalog().get("echo").is_some());
    assert_eq!(hub.call("echo", json!({"text": "over the wire"})).await.text, "over the wire");
    assert_eq!(hub.call("add", json!({"a": 20, "b": 22})).await.text, "42");
    assert!(hub.call("fail", json!({})).await.is_error);
    let calls = (0..20).map(|i| {
        let hub = hub.clone();
        tokio::spawn(async move { (i, hub.call("echo", json!({"text": format!("r{i}")})).await.text) })
    });
    for c in calls {
        let (i, text) = c.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(text, format!("r{i}"));
    }
    assert_eq!(hub.call("toggle_extra", json!({})).await.text, "extra on");
    assert!(
        eventually(Duration::from_secs(5), || hub.catalog().get("extra").is_some()).await,
        "list_changed over {mode}"
    );
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_calls() {
    calls_over("http", "streamable-http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sse_calls() {
    calls_over("sse", "sse").await;
}

/// Kill the server, start a new one on the same port, and call again: the
/// hub reconnects (for streamable HTTP the old session id now gets 404, so it
/// re-initialises) and the very first call after the restart succeeds: it
/// waits for the reconnection (or is replayed after it) instead of failing.
async fn survives_a_server_restart(mode: &str, kind: &str) {
    let first = start_remote(mode, 0, &[]);
    let port = first.port;
    let hub = hub(json!({"r": {"type": kind, "url": url(mode, port)}}), quick_settings()).await;
    assert_eq!(hub.call("echo", json!({"text": "before"})).await.text, "before");
    drop(first);
    let _second = start_remote(mode, port, &[]);
    let out = hub.call("echo", json!({"text": "after"})).await;
    assert_eq!(
        (out.text.as_str(), out.is_error),
        ("after", false),
        "the first call after the restart: {:?}",
        hub.status()
    );
    assert!(
        eventually(Duration::from_secs(10), || hub.status()[0].state == Phase::Connected).await,
        "{:?}",
        hub.status()
    );
    assert_eq!(hub.call("echo", json!({"text": "again"})).await.text, "again");
    assert!(hub.catalog().get("echo").is_some(), "tools stayed listed across the restart");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_survives_a_server_restart() {
    survives_a_server_restart("http", "streamable-http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sse_survives_a_server_restart() {
    survives_a_server_restart("sse", "sse").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_in_flight_when_the_connection_drops_is_replayed_after_reconnect() {
    let first = start_remote("sse", 0, &[]);
    let port = first.port;
    let hub = hub(json!({"r": {"type": "sse", "url": url("sse", port)}}), quick_settings()).await;
    let call = tokio::spawn({
        let hub = hub.clone();
        async move { hub.call("sleep", json!({"ms": 600})).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(first);
    let _second = start_remote("sse", port, &[]);
    let out = call.await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.text, "slept 600ms", "{out:?}");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_on_a_remote_server_that_dies_fail_fast_not_at_their_timeout() {
    for (mode, kind) in [("http", "streamable-http"), ("sse", "sse")] {
        let server = start_remote(mode, 0, &[]);
        let hub = hub(json!({"r": {"type": kind, "url": url(mode, server.port)}}), quick_settings()).await;
        let call = tokio::spawn({
            let hub = hub.clone();
            async move { hub.call("sleep", json!({"ms": 9000})).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = std::time::Instant::now();
        drop(server);
        let out = call.await.unwrap_or_else(|e| panic!("{e}"));
        assert!(out.is_error, "{mode}: {out:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "{mode}: failed only after {:?}", started.elapsed());
        hub.shutdown().await;
    }
}
