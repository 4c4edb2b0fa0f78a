//! Starting real MCP servers for tests: our rmcp test server (stdio, or
//! streamable HTTP / legacy SSE on a loopback port) and the npm package
//! `@modelcontextprotocol/server-everything`; and a hub over them.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mcp_chat_proxy::mcp::{Hub, HubSettings};
use mcp_chat_proxy::settings::servers as config;
use serde_json::{json, Value};

/// The path of the test MCP server's binary (the workspace member
/// `tests/mcp_test_server`), built on first use: cargo builds a package's own
/// binaries for its tests, not another package's, and `cargo build` is a
/// no-op when it is fresh.
pub fn test_server() -> &'static str {
    static PATH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    PATH.get_or_init(build_test_server)
}

fn build_test_server() -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "--locked", "-p", "mcp-test-server", "--message-format=json"]);
    build.current_dir(env!("CARGO_MANIFEST_DIR")).stderr(Stdio::inherit());
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    let out = build.output().unwrap_or_else(|e| panic!("cargo build -p mcp-test-server: {e}"));
    assert!(out.status.success(), "cargo build -p mcp-test-server failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find_map(|msg| msg["executable"].as_str().filter(|e| e.ends_with("/mcp-test-server")).map(str::to_string))
        .unwrap_or_else(|| panic!("cargo build -p mcp-test-server named no executable"))
}

/// Settings with short waits, so tests fail fast instead of hanging, and
/// room for many calls at once: tests of other behaviours fire dozens
/// together and must not meet the per-server limit (tests/mcp_limits.rs sets its own).
pub fn quick_settings() -> HubSettings {
    HubSettings {
        call_timeout: Duration::from_secs(10),
        startup_wait: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(20),
        backoff_max: Duration::from_secs(1),
        max_concurrent_calls: 64,
        max_queued_calls: 64,
        ..HubSettings::default()
    }
}

/// A `servers_config.json` entry running our test server over stdio.
pub fn stdio_entry(extra_args: &[&str]) -> Value {
    let mut args = vec!["stdio".to_string()];
    args.extend(extra_args.iter().map(|s| s.to_string()));
    json!({"command": test_server(), "args": args})
}

/// The environment the hub sees as the proxy's own (as `Settings::child_env` would be filtered from).
pub fn parent_env() -> HashMap<String, String> {
    std::env::vars().collect()
}

/// Starts a hub over `{"mcpServers": servers}`.
pub async fn hub(servers: Value, settings: HubSettings) -> Arc<Hub> {
    let text = json!({ "mcpServers": servers }).to_string();
    let env = parent_env();
    let configs = config::parse(&text, &env).unwrap_or_else(|e| panic!("config: {e}"));
    let child_env = env.into_iter().filter(|(k, _)| config::INHERITED_ENV.contains(&k.as_str())).collect();
    Hub::start(configs, settings, child_env).await
}

/// A remote test server process; killed on drop.
pub struct Remote {
    pub child: Child,
    pub port: u16,
}

impl Drop for Remote {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts our test server in `mode` (`http` or `sse`) on `port` (0 = any) and
/// waits for its `LISTENING <port>` line.
pub fn start_remote(mode: &str, port: u16, extra_args: &[&str]) -> Remote {
    let mut child = Command::new(test_server())
        .arg(mode)
        .args(["--port", &port.to_string()])
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn test server: {e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let mut lines = BufReader::new(stderr).lines();
    let port = loop {
        let line = lines.next().unwrap_or_else(|| panic!("test server exited")).unwrap_or_default();
        if let Some(p) = line.strip_prefix("LISTENING ") {
            break p.trim().parse().unwrap_or_else(|e| panic!("{e}: {line}"));
        }
    };
    // Keep draining stderr so the server never blocks on it.
    std::thread::spawn(move || for _ in lines {});
    Remote { child, port }
}

pub fn url(mode: &str, port: u16) -> String {
    match mode {
        "sse" => format!("http://127.0.0.1:{port}/sse"),
        _ => format!("http://127.0.0.1:{port}/mcp"),
    }
}

/// The installed `@modelcontextprotocol/server-everything` entry point.
pub fn everything_js() -> String {
    let path = format!(
        "{}/tests/node/node_modules/@modelcontextprotocol/server-everything/dist/index.js",
        env!("CARGO_MANIFEST_DIR")
    );
    assert!(std::path::Path::new(&path).exists(), "{path} is missing: run tests/run (or npm ci --prefix tests/node)");
    path
}

/// Whether a process with this pid exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}

/// Waits until `cond` holds, up to `within`.
pub async fn eventually(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

/// A `server-everything` child process; killed when dropped.
pub struct Node(std::process::Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts server-everything in `mode` (`sse`, `streamableHttp`) on `port`
/// and waits until it says it listens.
pub fn start_everything(mode: &str, port: u16) -> Node {
    let mut child = Command::new("node")
        .args([everything_js().as_str(), mode])
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("node: {e}"));
    let stderr = child.stderr.take().unwrap_or_else(|| panic!("no stderr"));
    let mut lines = BufReader::new(stderr).lines();
    loop {
        let line = lines.next().unwrap_or_else(|| panic!("server-everything exited")).unwrap_or_default();
        if line.contains(&port.to_string()) {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    Node(child)
}
