//! The binary's MCP side: `tools` and `check` output, `${VAR}` expansion and
//! its error, and `/healthz` reporting each server.

use crate::common;

use std::process::{Command, Stdio};

use crate::common::binary::hermetic;
use crate::common::mcp::{start_remote, test_server, url};
use crate::common::mock_upstream::MockUpstream;
use crate::common::scratch::Scratch;
use crate::common::{client, start_proxy, write_servers};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-chat-proxy");

fn run(args: &[&str], servers_file: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = Scratch::new();
    let mut command = Command::new(BIN);
    let out = hermetic(&mut command)
        .args(args)
        .current_dir(&dir)
        .env("CONFIG_FILE", common::repo_config())
        .env("MCP_SERVERS_CONFIG", servers_file)
        .env("MCP_STARTUP_WAIT_SECONDS", "10")
        .env("MCP_CONNECT_TIMEOUT_SECONDS", "10")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

#[test]
fn tools_prints_the_catalog() {
    let file = write_servers(json!({"alpha": {"command": test_server(), "args": ["stdio", "--tools", "echo,add"]}}));
    let (code, out, err) = run(&["tools"], &file, &[]);
    assert_eq!(code, 0, "{err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.starts_with("alpha")).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows.iter().any(|r| r.split_whitespace().nth(1) == Some("echo")), "{out}");
    assert!(rows.iter().any(|r| r.split_whitespace().nth(1) == Some("add")), "{out}");
}

#[test]
fn check_reports_each_server_and_fails_if_one_does() {
    let remote = start_remote("http", 0, &[]);
    let good = write_servers(json!({
        "local": {"command": test_server(), "args": ["stdio"]},
        "remote": {"type": "streamable-http", "url": url("http", remote.port)},
    }));
    let (code, out, err) = run(&["check"], &good, &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with("ok") && l.contains("local")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("ok") && l.contains("remote")), "{out}");

    let bad = write_servers(json!({
        "local": {"command": test_server(), "args": ["stdio"]},
        "gone": {"command": "/nonexistent/server"},
    }));
    let (code, out, _) = run(&["check"], &bad, &[]);
    assert_ne!(code, 0);
    assert!(out.lines().any(|l| l.starts_with("FAILED") && l.contains("gone")), "{out}");
}

#[test]
fn variables_are_expanded_and_a_missing_one_stops_start_up() {
    let file = write_servers(json!({"s": {"command": test_server(), "args": ["stdio", "--tools", "${TOOL_LIST}"]}}));
    let (code, out, err) = run(&["tools"], &file, &[("TOOL_LIST", "sleep")]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sleep") && !out.contains("echo"), "{out}");

    let (code, _, err) = run(&["tools"], &file, &[]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("\"s\"") && err.contains("TOOL_LIST"), "{err}");
}

#[test]
fn unknown_keys_stop_start_up_naming_them() {
    let file = write_servers(json!({"s": {"command": test_server(), "argz": []}}));
    let (code, _, err) = run(&["tools"], &file, &[]);
    assert_eq!(code, 2);
    assert!(err.contains("argz") && err.contains("\"s\""), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_reports_each_server() {
    let mock = MockUpstream::start().await;
    let file = write_servers(json!({
        "good": {"command": test_server(), "args": ["stdio", "--tools", "echo"]},
        "gone": {"command": "/nonexistent/server"},
    }));
    let proxy =
        start_proxy(&mock.base_url(), &[("MCP_SERVERS_CONFIG", file.as_str()), ("MCP_STARTUP_WAIT_SECONDS", "10")]);
    let h: Value = client()
        .get(format!("{}/healthz", proxy.url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["tools"], 1);
    let servers = h["mcp_servers"].as_array().cloned().unwrap_or_default();
    let good = servers.iter().find(|s| s["name"] == "good").cloned().unwrap_or_default();
    let gone = servers.iter().find(|s| s["name"] == "gone").cloned().unwrap_or_default();
    assert_eq!((good["state"].as_str(), good["tools"].as_u64()), (Some("connected"), Some(1)), "{h}");
    assert_eq!(gone["state"], "failed", "{h}");
    assert!(gone["error"].as_str().unwrap_or("").contains("/nonexistent/server"), "{h}");
    // Live tokio tasks: at least the hub's supervisors, on its own runtime.
    assert!(h["runtime"]["tasks"].as_u64().is_some(), "{h}");
    assert!(h["runtime"]["hub_tasks"].as_u64().unwrap_or(0) >= 2, "{h}");
}
