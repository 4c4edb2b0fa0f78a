//! Reload without a restart: the servers file and the keys file are read
//! again when they change on disk (and on SIGHUP, as `Proxy::reload` does
//! in-process and `binary.rs` does to the real binary). Added servers are
//! connected, removed ones stopped (their process gone), changed ones
//! restarted, unchanged ones kept with their process; a broken file keeps
//! the running set and shows in /healthz; keys swap in one step. Each with
//! a stream in flight that must finish intact.

use std::time::Duration;

use crate::common::mock_upstream::{MockUpstream, Recorded, Reply};
use crate::common::prometheus::scrape;
use crate::common::scratch::Scratch;
use crate::common::{client, get_json, mcp, start_proxy_in, Proxy};
use serde_json::{json, Value};

/// One stdio test-server entry with `tools`.
fn server(tools: &str) -> Value {
    json!({"command": mcp::test_server(), "args": ["stdio", "--tools", tools]})
}

/// Replaces `path`'s contents in one step (as editors and config managers
/// do), so the watcher never reads half a file.
fn replace(path: &str, contents: &str) {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, contents).unwrap_or_else(|e| panic!("{tmp}: {e}"));
    std::fs::rename(&tmp, path).unwrap_or_else(|e| panic!("{path}: {e}"));
}

fn servers_json(servers: Value) -> String {
    json!({ "mcpServers": servers }).to_string()
}

struct Setup {
    proxy: Proxy,
    mock: MockUpstream,
    servers: String,
}

async fn setup(servers: Value, extra: &[(&str, &str)]) -> Setup {
    let mock = MockUpstream::start().await;
    let scratch = Scratch::new();
    let file = scratch.write("servers.json", &servers_json(servers));
    let mut env = vec![("MCP_SERVERS_CONFIG", file.as_str()), ("MCP_STARTUP_WAIT_SECONDS", "10")];
    env.extend_from_slice(extra);
    let proxy = start_proxy_in(scratch, &mock.base_url(), &env);
    Setup { proxy, mock, servers: file }
}

async fn health(proxy: &Proxy) -> Value {
    get_json(&format!("{}/healthz", proxy.url)).await
}

/// Waits until /healthz satisfies `done`; returns it.
async fn health_until(proxy: &Proxy, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..200 {
        last = health(proxy).await;
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: /healthz never showed it; last: {last}");
}

fn server_names(health: &Value) -> Vec<String> {
    let servers = health["mcp_servers"].as_array().cloned().unwrap_or_default();
    servers.iter().filter_map(|s| s["name"].as_str().map(str::to_string)).collect()
}

fn all_connected(health: &Value, names: &[&str]) -> bool {
    server_names(health) == names
        && health["mcp_servers"].as_array().is_some_and(|s| s.iter().all(|s| s["state"] == "connected"))
}

/// A streamed answer in flight: started, its first bytes read.
struct InFlight {
    resp: reqwest::Response,
    seen: String,
}

async fn start_stream(s: &Setup, auth: Option<&str>) -> InFlight {
    s.mock.push(Reply::chat_stream(&["one ", "two ", "three"], Duration::from_millis(700)));
    let body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "count"}]});
    let mut req = client().post(format!("{}/chat/completions", s.proxy.base_url())).json(&body);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let mut resp = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    let first = resp.chunk().await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_default();
    InFlight { resp, seen: String::from_utf8_lossy(&first).into_owned() }
}

impl InFlight {
    /// Reads the rest and checks the answer arrived whole and ended properly.
    async fn finishes_intact(mut self) {
        while let Some(chunk) = self.resp.chunk().await.unwrap_or_else(|e| panic!("the stream broke: {e}")) {
            self.seen.push_str(&String::from_utf8_lossy(&chunk));
        }
        let text: String = self
            .seen
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| v["choices"][0]["delta"]["content"].as_str().map(str::to_string))
            .collect();
        assert_eq!(text, "one two three", "{}", self.seen);
        assert!(self.seen.trim_end().ends_with("data: [DONE]"), "{}", self.seen);
    }
}

/// Runs the tool `name` through the tool loop and returns its result text.
async fn call_tool(s: &Setup, name: &str, args: Value) -> String {
    s.mock.clear();
    s.mock.push(Reply::tool_calls(&[("c1", name, args)]));
    s.mock.push(Reply::chat("ok"));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "go"}]});
    let r = client().post(format!("{}/chat/completions", s.proxy.base_url())).json(&body).send().await;
    assert_eq!(r.map(|r| r.status().as_u16()).unwrap_or(0), 200);
    let seen: Vec<Recorded> = s.mock.requests();
    let messages = seen.last().map(|r| r.json()["messages"].clone()).unwrap_or_default();
    let tool = messages.as_array().and_then(|m| m.iter().find(|m| m["role"] == "tool")).cloned();
    tool.and_then(|t| t["content"].as_str().map(str::to_string)).unwrap_or_default()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_added_server_is_connected_and_the_others_are_kept() {
    let s = setup(json!({"a": server("pid,echo")}), &[]).await;
    let pid_a = call_tool(&s, "pid", json!({})).await;
    let stream = start_stream(&s, None).await;
    replace(&s.servers, &servers_json(json!({"a": server("pid,echo"), "b": server("add")})));
    let h = health_until(&s.proxy, "b connected", |h| all_connected(h, &["a", "b"])).await;
    assert_eq!(h["config"]["last"]["added"], json!(["b"]), "{h}");
    assert_eq!(h["config"]["last"]["kept"], json!(["a"]), "{h}");
    assert_eq!(h["tools"], 3);
    stream.finishes_intact().await;
    assert_eq!(call_tool(&s, "add", json!({"a": 2, "b": 3})).await, "5");
    assert_eq!(call_tool(&s, "pid", json!({})).await, pid_a, "a kept its process");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_server_is_stopped_and_its_process_is_gone() {
    let s = setup(json!({"a": server("echo"), "b": server("pid")}), &[]).await;
    let pid_b: u32 = call_tool(&s, "pid", json!({})).await.parse().unwrap_or_else(|e| panic!("pid: {e}"));
    assert!(alive(pid_b));
    let stream = start_stream(&s, None).await;
    replace(&s.servers, &servers_json(json!({"a": server("echo")})));
    let h = health_until(&s.proxy, "b removed", |h| server_names(h) == ["a"]).await;
    assert_eq!(h["config"]["last"]["removed"], json!(["b"]), "{h}");
    assert_eq!(h["tools"], 1);
    for _ in 0..100 {
        if !alive(pid_b) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(pid_b), "the removed server's process {pid_b} is still running");
    stream.finishes_intact().await;
    let out = call_tool(&s, "pid", json!({})).await;
    assert!(out.contains("unknown tool"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_server_is_restarted_with_its_new_configuration() {
    let s = setup(json!({"a": server("pid")}), &[]).await;
    let before = call_tool(&s, "pid", json!({})).await;
    let stream = start_stream(&s, None).await;
    replace(&s.servers, &servers_json(json!({"a": server("pid,add")})));
    let h = health_until(&s.proxy, "a restarted", |h| h["tools"] == 2 && all_connected(h, &["a"])).await;
    assert_eq!(h["config"]["last"]["restarted"], json!(["a"]), "{h}");
    stream.finishes_intact().await;
    let after = call_tool(&s, "pid", json!({})).await;
    assert_ne!(after, before, "a new process");
    let old: u32 = before.parse().unwrap_or_default();
    for _ in 0..100 {
        if !alive(old) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!alive(old), "the old process is gone");
    assert_eq!(call_tool(&s, "add", json!({"a": 1, "b": 1})).await, "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_file_keeps_the_running_configuration_and_shows_in_healthz() {
    let s = setup(json!({"a": server("pid,echo")}), &[]).await;
    let pid = call_tool(&s, "pid", json!({})).await;
    let stream = start_stream(&s, None).await;
    let broken = [
        ("{\"mcpServers\": {", "EOF"),
        (r#"{"mcpServers": {"a": {"command": "x", "colour": "red"}}}"#, "colour"),
        (r#"{"mcpServers": {"a": {"command": "${UNDEFINED_VAR_FOR_RELOAD}"}}}"#, "UNDEFINED_VAR_FOR_RELOAD"),
    ];
    for (text, named) in broken {
        replace(&s.servers, text);
        let h =
            health_until(&s.proxy, named, |h| h["config"]["error"].as_str().is_some_and(|e| e.contains(named))).await;
        assert!(all_connected(&h, &["a"]), "the running server stays: {h}");
        assert_eq!(h["tools"], 2);
        let m = scrape(&format!("{}/metrics", s.proxy.url), None).await;
        assert_eq!(m.value("mcp_chat_proxy_config_reload_failed", &[]), 1.0, "{named}");
        assert_eq!(m.value("mcp_chat_proxy_config_reloads_total", &[]), 0.0, "{named}");
    }
    stream.finishes_intact().await;
    assert_eq!(call_tool(&s, "pid", json!({})).await, pid, "the same process serves");
    replace(&s.servers, &servers_json(json!({"a": server("pid,echo")})));
    let h = health_until(&s.proxy, "fixed", |h| h["config"].get("error").is_none()).await;
    assert_eq!(h["config"]["last"]["kept"], json!(["a"]), "{h}");
    let m = scrape(&format!("{}/metrics", s.proxy.url), None).await;
    assert_eq!(m.value("mcp_chat_proxy_config_reload_failed", &[]), 0.0);
    assert_eq!(m.value("mcp_chat_proxy_config_reloads_total", &[]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_allow_lists_swap_in_one_step() {
    let scratch = Scratch::new();
    let keys = scratch.write("keys.toml", "[[key]]\nname = \"one\"\nkey = \"first-key-0001\"\ntools = [\"a__echo\"]\n");
    let s = setup(json!({"a": server("pid,echo")}), &[("AUTH_KEYS_FILE", keys.as_str())]).await;
    let stream = start_stream(&s, Some("Bearer first-key-0001")).await;
    replace(
        &keys,
        "[[key]]\nname = \"one\"\nkey = \"first-key-0001\"\ntools = [\"a__pid\"]\n\n[[key]]\nname = \"two\"\nkey = \"second-key-0002\"\n",
    );
    health_until(&s.proxy, "keys reloaded", |h| h["config"]["reloads"] == 1).await;
    stream.finishes_intact().await;

    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    for (key, tools) in [("first-key-0001", vec!["pid"]), ("second-key-0002", vec!["echo", "pid"])] {
        s.mock.clear();
        s.mock.push(Reply::chat("hello"));
        let r = client()
            .post(format!("{}/chat/completions", s.proxy.base_url()))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 200, "{key}");
        let sent = s.mock.requests().last().map(Recorded::json).unwrap_or_default();
        let offered: Vec<String> = sent["tools"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
            .collect();
        assert_eq!(offered, tools, "{key}: the new allow-list");
    }
    replace(&keys, "[[key]]\nname = \"two\"\nkey = \"second-key-0002\"\n");
    health_until(&s.proxy, "second reload", |h| h["config"]["reloads"] == 2).await;
    let r = client()
        .post(format!("{}/chat/completions", s.proxy.base_url()))
        .bearer_auth("first-key-0001")
        .json(&body)
        .send()
        .await;
    assert_eq!(r.map(|r| r.status().as_u16()).unwrap_or(0), 401, "a removed key is refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_request_with_nothing_changed_keeps_everything() {
    let s = setup(json!({"a": server("pid")}), &[]).await;
    let pid = call_tool(&s, "pid", json!({})).await;
    s.proxy.reload();
    let h = health_until(&s.proxy, "reloaded", |h| h["config"]["reloads"] == 1).await;
    assert_eq!(h["config"]["last"]["kept"], json!(["a"]), "{h}");
    assert_eq!(call_tool(&s, "pid", json!({})).await, pid);
}
