//! The hub over a stdio MCP server (our rmcp test server): calls, errors,
//! timeouts, crashes and restarts, size caps, environment isolation,
//! concurrency, tool-list changes, and no processes left behind.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::mcp::{alive, eventually, hub, quick_settings, stdio_entry};
use mcp_chat_proxy::mcp::{HubSettings, Phase};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_calls_tools() {
    let hub = hub(json!({"t": stdio_entry(&[])}), quick_settings()).await;
    let catalog = hub.catalog();
    for name in ["echo", "add", "sleep", "fail", "crash", "big", "env"] {
        let tool = catalog.get(name).unwrap_or_else(|| panic!("{name} missing"));
        assert_eq!(tool.input_schema["type"], "object", "{name} has a schema");
    }
    assert!(!catalog.get("echo").map(|t| t.description.clone()).unwrap_or_default().is_empty());

    let out = hub.call("echo", json!({"text": "hello"})).await;
    assert_eq!((out.text.as_str(), out.is_error), ("hello", false));
    assert_eq!(hub.call("add", json!({"a": 2, "b": 3})).await.text, "5");

    let failed = hub.call("fail", json!({"message": "nope"})).await;
    assert!(failed.is_error);
    assert!(failed.text.contains("nope"));

    let unknown = hub.call("no_such_tool", json!({})).await;
    assert!(unknown.is_error && unknown.text.contains("no_such_tool") && unknown.text.contains("echo"));

    let image = hub.call("image", json!({})).await;
    assert!(image.text.contains("[image: image/png"), "{}", image.text);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_child_sees_its_own_env_but_not_the_proxys_secrets() {
    // The test process itself stands in for the proxy: give it a key to leak.
    std::env::set_var("OPENAI_API_KEY", "sk-must-not-leak");
    let entry = json!({"command": common::mcp::test_server(), "args": ["stdio"], "env": {"GIVEN": "to-the-child"}});
    let hub = hub(json!({"t": entry}), quick_settings()).await;
    assert_eq!(hub.call("env", json!({"name": "OPENAI_API_KEY"})).await.text, "<unset>");
    assert_eq!(hub.call("env", json!({"name": "GIVEN"})).await.text, "to-the-child");
    assert!(!hub.call("env", json!({"name": "PATH"})).await.text.is_empty());
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tool_times_out_as_a_tool_error() {
    let entry = json!({"command": common::mcp::test_server(), "args": ["stdio"], "timeout_seconds": 1});
    let hub = hub(json!({"t": entry}), quick_settings()).await;
    let started = Instant::now();
    let out = hub.call("sleep", json!({"ms": 5000})).await;
    assert!(out.is_error && out.text.contains("did not finish within 1 s"), "{}", out.text);
    assert!(started.elapsed() < Duration::from_secs(3));
    // The server is still usable.
    assert_eq!(hub.call("echo", json!({"text": "still here"})).await.text, "still here");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_fails_the_call_fast_then_the_server_restarts() {
    let hub = hub(json!({"t": stdio_entry(&[])}), quick_settings()).await;
    let pid_before = hub.call("pid", json!({})).await.text;

    // Another call in flight when the server dies must fail fast too.
    let slow = tokio::spawn({
        let hub = hub.clone();
        async move { hub.call("sleep", json!({"ms": 8000})).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let crashed = hub.call("crash", json!({})).await;
    assert!(crashed.is_error, "{}", crashed.text);
    let slow = slow.await.unwrap_or_else(|e| panic!("{e}"));
    assert!(slow.is_error, "{}", slow.text);
    assert!(started.elapsed() < Duration::from_secs(1), "in-flight calls failed after {:?}", started.elapsed());

    // Tools stay listed while it restarts; then the next call succeeds.
    assert!(hub.catalog().get("echo").is_some());
    let back = eventually(Duration::from_secs(10), || {
        let s = &hub.status()[0];
        s.state == Phase::Connected && s.restarts == 1
    })
    .await;
    assert!(back, "{:?}", hub.status());
    assert_eq!(hub.call("echo", json!({"text": "again"})).await.text, "again");
    assert_ne!(hub.call("pid", json!({})).await.text, pid_before, "a new process");
    assert_eq!(hub.status()[0].restarts, 1);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_are_capped_with_head_and_tail() {
    let entry = json!({"command": common::mcp::test_server(), "args": ["stdio"], "max_result_bytes": 1000});
    let hub = hub(json!({"t": entry}), quick_settings()).await;
    let out = hub.call("big", json!({"n": 200_000})).await;
    assert!(out.text.len() <= 1000, "{}", out.text.len());
    assert!(out.text.starts_with("0123456789"));
    assert!(out.text.contains("bytes cut"));
    assert!(!out.is_error);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_calls_each_get_their_own_answer() {
    let hub = hub(json!({"t": stdio_entry(&[])}), quick_settings()).await;
    let calls = (0..50).map(|i| {
        let hub = hub.clone();
        tokio::spawn(async move { (i, hub.call("echo", json!({"text": format!("call-{i}")})).await) })
    });
    for call in calls {
        let (i, out) = call.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.text, format!("call-{i}"));
    }
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_list_changed_refreshes_the_catalog() {
    let hub = hub(json!({"t": stdio_entry(&[])}), quick_settings()).await;
    assert!(hub.catalog().get("extra").is_none());
    assert_eq!(hub.call("toggle_extra", json!({})).await.text, "extra on");
    assert!(eventually(Duration::from_secs(5), || hub.catalog().get("extra").is_some()).await);
    assert_eq!(hub.call("extra", json!({})).await.text, "extra!");
    hub.call("toggle_extra", json!({})).await;
    assert!(eventually(Duration::from_secs(5), || hub.catalog().get("extra").is_none()).await);
    hub.shutdown().await;
}

/// A process id a tool reports; a test of processes gone means nothing without a real one.
async fn pid(hub: &mcp_chat_proxy::mcp::Hub, tool: &str) -> u32 {
    let out = hub.call(tool, json!({})).await;
    match out.text.parse::<u32>() {
        Ok(pid) if pid > 1 => pid,
        _ => panic!("{tool} gave no process id: {out:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_and_restart_leave_no_process_behind() {
    let hub = hub(json!({"t": stdio_entry(&[])}), quick_settings()).await;
    let server_pid = pid(&hub, "pid").await;
    let grandchild = pid(&hub, "spawn_child").await;
    assert!(alive(server_pid) && alive(grandchild));

    // A crash takes the grandchild down with it (the whole group is killed).
    hub.call("crash", json!({})).await;
    assert!(
        eventually(Duration::from_secs(5), || !alive(grandchild) && !alive(server_pid)).await,
        "server {server_pid} or grandchild {grandchild} outlived a crash"
    );
    assert!(
        eventually(Duration::from_secs(10), || {
            let s = &hub.status()[0];
            s.state == Phase::Connected && s.restarts == 1
        })
        .await
    );

    let restarted_pid = pid(&hub, "pid").await;
    let grandchild = pid(&hub, "spawn_child").await;
    assert_ne!(restarted_pid, server_pid, "a new process after the crash");
    assert!(alive(restarted_pid) && alive(grandchild));
    let server_pid = restarted_pid;
    hub.shutdown().await;
    assert!(eventually(Duration::from_secs(5), || !alive(server_pid) && !alive(grandchild)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_cannot_start_does_not_block_or_break_the_others() {
    let settings = HubSettings { startup_wait: Duration::from_secs(5), ..quick_settings() };
    let started = Instant::now();
    let hub = hub(
        json!({"good": stdio_entry(&["--tools", "echo"]), "broken": {"command": "/nonexistent/mcp-server"}}),
        settings,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(hub.call("echo", json!({"text": "ok"})).await.text, "ok");
    let status = hub.status();
    let broken = status.iter().find(|s| s.name == "broken").unwrap_or_else(|| panic!("no status"));
    assert_eq!(broken.state, Phase::Failed);
    assert!(broken.error.as_deref().unwrap_or("").contains("/nonexistent/mcp-server"), "{broken:?}");
    hub.shutdown().await;
}
