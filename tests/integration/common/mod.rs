//! Shared test support: the proxy started in-process on a free loopback
//! port, the scriptable mock upstream, and small client helpers.
#![allow(dead_code)]

pub mod binary;
pub mod llama;
pub mod mcp;
pub mod mock_upstream;
pub mod oauth;
pub mod prometheus;
pub mod raw_http;
pub mod redis;
pub mod scratch;
pub mod tls;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mcp_chat_proxy::server::{start_in_background, BackgroundServer};
use mcp_chat_proxy::settings::Settings;
use scratch::{Scratch, ScratchFile};

/// A proxy running in this test process; stopped (its MCP servers too) and
/// its files removed when dropped, so a test binary does not pile up servers.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`
    pub url: String,
    pub port: u16,
    server: Option<BackgroundServer>,
    /// Its session database and config files.
    pub scratch: Scratch,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop_now();
        }
    }
}

impl Proxy {
    /// Asks for a reload, as SIGHUP does for the binary.
    pub fn reload(&self) {
        if let Some(server) = &self.server {
            server.reload();
        }
    }

    /// `http://127.0.0.1:PORT/v1`, the client's `base_url`.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.url)
    }
}

/// A loopback port that was free a moment ago and that no other test in
/// this process has been given (the kernel may hand a released port out again).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The repository's own config file, so the shipped defaults are what tests run.
pub fn repo_config() -> String {
    format!("{}/conf/mcp-chat-proxy.toml", env!("CARGO_MANIFEST_DIR"))
}

/// The environment a test proxy starts from: loopback, one thread, the given
/// upstream, its session database in `scratch`; `extra` adds or overrides.
/// Nothing comes from the test process's own environment.
pub fn proxy_env(upstream_base: &str, scratch: &Scratch, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let port = free_port().to_string();
    let store = format!("sqlite:{}", scratch.join("sessions.db").display());
    let mut env: HashMap<String, String> = [
        ("HOST", "127.0.0.1"),
        ("PORT", port.as_str()),
        ("OPENAI_BASE_URL", upstream_base),
        ("CONFIG_FILE", repo_config().as_str()),
        ("SERVER_THREADS", "1"),
        ("SERVER_GRACE_PERIOD_SECONDS", "1"),
        // No MCP servers unless a test configures some.
        ("MCP_SERVERS_CONFIG", ""),
        // A fresh session database per proxy.
        ("SESSION_STORE", store.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    env
}

/// Starts the proxy in-process against `upstream_base`.
pub fn start_proxy(upstream_base: &str, extra: &[(&str, &str)]) -> Proxy {
    start_proxy_in(Scratch::new(), upstream_base, extra)
}

/// Starts the proxy in-process, its files in `scratch` (which it then owns).
pub fn start_proxy_in(scratch: Scratch, upstream_base: &str, extra: &[(&str, &str)]) -> Proxy {
    let env = proxy_env(upstream_base, &scratch, extra);
    let settings = Settings::from_sources(&env).unwrap_or_else(|e| panic!("test settings: {e}"));
    let port = settings.port;
    let server = start_in_background(Arc::new(settings)).unwrap_or_else(|e| panic!("start: {e}"));
    Proxy { url: format!("http://127.0.0.1:{port}"), port, server: Some(server), scratch }
}

/// Writes `{"mcpServers": servers}` to a scratch file, removed when the result is dropped.
pub fn write_servers(servers: serde_json::Value) -> ScratchFile {
    ScratchFile::new("servers.json", &serde_json::json!({ "mcpServers": servers }).to_string())
}

/// A proxy with our test MCP server (over stdio, tools limited to `tools`)
/// in front of `upstream_base`.
pub fn start_proxy_with_tools(upstream_base: &str, tools: &str, extra: &[(&str, &str)]) -> Proxy {
    let scratch = Scratch::new();
    let servers = serde_json::json!({"mcpServers": {
        "test": {"command": mcp::test_server(), "args": ["stdio", "--tools", tools], "timeout_seconds": 2}
    }});
    let file = scratch.write("servers.json", &servers.to_string());
    let mut env: Vec<(&str, &str)> = vec![("MCP_SERVERS_CONFIG", file.as_str()), ("TOOL_KEEPALIVE_SECONDS", "1")];
    env.extend_from_slice(extra);
    start_proxy_in(scratch, upstream_base, &env)
}

/// The Python the tests drive real SDKs and the model server with: `$PYTHON`
/// (tests/run points it into its virtual environment), else that
/// environment if it exists, else `python3`.
pub fn python() -> String {
    if let Ok(python) = std::env::var("PYTHON") {
        return python;
    }
    let venv = format!("{}/target/test-env/py/bin/python", env!("CARGO_MANIFEST_DIR"));
    if std::path::Path::new(&venv).exists() {
        return venv;
    }
    "python3".into()
}

/// Fails the test, naming what to install, when `python()` lacks `module`.
pub fn require_python_module(module: &str, package: &str) {
    let python = python();
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "{python} cannot import {module}: run tests/run (it provisions target/test-env/py), or pip install {package}"
    );
}

/// An HTTP client that keeps nothing between tests and never waits forever.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap_or_else(|e| panic!("client: {e}"))
}

/// `GET url` as JSON (`Null` when the body is not JSON).
pub async fn get_json(url: &str) -> serde_json::Value {
    let r = client().get(url).send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    r.json().await.unwrap_or_default()
}

/// Reads a streamed body as it arrives into `seen` until it holds `needle`;
/// fails if that takes 5 s (a proxy that holds the stream back never shows it
/// before the upstream goes on).
pub async fn read_until(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    seen: &mut String,
    needle: &str,
) {
    use futures_util::StreamExt;
    while !seen.contains(needle) {
        let piece = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .unwrap_or_else(|_| panic!("{needle:?} was held back: {seen:?}"));
        let piece = piece.unwrap_or_else(|| panic!("the stream ended before {needle:?}: {seen}"));
        seen.push_str(&String::from_utf8_lossy(&piece.unwrap_or_else(|e| panic!("{e}"))));
    }
}

/// Reads the rest of a streamed body into `seen`.
pub async fn read_to_end(
    body: &mut (impl futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    seen: &mut String,
) {
    use futures_util::StreamExt;
    while let Some(piece) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&piece.unwrap_or_else(|e| panic!("{e}"))));
    }
}

/// Reads an SSE response body into its `data:` payloads, in order.
pub async fn sse_data(resp: reqwest::Response) -> Vec<String> {
    let text = resp.text().await.unwrap_or_else(|e| panic!("reading stream: {e}"));
    text.split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")).map(str::to_string))
        .collect()
}

/// Runs `tests/python/SCRIPT` with `args` in the test environment's Python
/// (the real SDKs) and returns the JSON object it printed; fails with its
/// stderr when it exits non-zero.
pub async fn run_python(script: &str, args: &[&str]) -> serde_json::Value {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("python could not run {script}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{script} {args:?} failed:\n{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}
