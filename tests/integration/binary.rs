//! The real binary as a user runs it: start-up validation, graceful shutdown
//! on SIGTERM with an in-flight stream, and no secret in its logs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::binary::{command, scratch_dir, start_binary, wait_exit};
use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{client, repo_config};
use futures_util::StreamExt;
use serde_json::json;

const CANARY_KEY: &str = "sk-canary-7f3e9d1c-never-print-me";

fn run_to_exit(cmd: &mut Command) -> (i32, String) {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("{e}"));
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).to_string())
}

#[test]
fn a_bad_env_file_value_stops_start_up_with_one_line_and_exit_2() {
    let dir = scratch_dir();
    std::fs::write(dir.join(".env"), "OPENAI_API_KEY=sk-x\nPORT=99999\n").unwrap_or_else(|e| panic!("{e}"));
    let (code, stderr) = run_to_exit(&mut command(&dir));
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("PORT") && stderr.contains("99999"), "{stderr}");
}

#[test]
fn bad_url_and_missing_config_file_are_named() {
    let dir = scratch_dir();
    let (code, stderr) = run_to_exit(command(&dir).env("OPENAI_BASE_URL", "not a url"));
    assert_eq!(code, 2);
    assert!(stderr.contains("OPENAI_BASE_URL") && stderr.contains("not a url"), "{stderr}");

    let (code, stderr) = run_to_exit(command(&dir).env("CONFIG_FILE", "/nonexistent/proxy.toml"));
    assert_eq!(code, 2);
    assert!(stderr.contains("CONFIG_FILE") && stderr.contains("/nonexistent/proxy.toml"), "{stderr}");

    let (code, stderr) =
        run_to_exit(command(&dir).env("CONFIG_FILE", repo_config()).env("UPSTREAM_FIRST_BYTE_TIMEOUT_SECONDS", "soon"));
    assert_eq!(code, 2);
    assert!(stderr.contains("UPSTREAM_FIRST_BYTE_TIMEOUT_SECONDS") && stderr.contains("soon"), "{stderr}");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_stream_finish_then_exits() {
    let mock = MockUpstream::start().await;
    let mut proxy = start_binary(&mock.base_url(), &[("SERVER_GRACE_PERIOD_SECONDS", "30")]);
    let pieces: Vec<String> = (0..10).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    mock.push(Reply::chat_stream(&refs, Duration::from_millis(100)));

    let resp = client()
        .post(format!("http://127.0.0.1:{}/v1/chat/completions", proxy.port))
        .json(&json!({"model": "m", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    if let Some(Ok(first)) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&first));
    }
    let pid = proxy.child.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let started = Instant::now();

    while let Some(piece) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&piece.unwrap_or_else(|e| panic!("stream cut by shutdown: {e}"))));
    }
    assert!(text.contains("w9"), "the whole answer arrived: {text}");
    assert!(text.trim_end().ends_with("data: [DONE]"));

    let code = wait_exit(&mut proxy.child, Duration::from_secs(10));
    assert_eq!(code, Some(0), "exits cleanly once the stream is done");
    assert!(started.elapsed() < Duration::from_secs(20), "did not sit out the whole 30 s grace period");
    assert!(std::net::TcpStream::connect(("127.0.0.1", proxy.port)).is_err(), "no longer listening");
}

/// A process manager's SIGHUP ("reload") reloads the MCP servers and the
/// client keys, never kills the proxy, and leaves a stream in flight intact.
#[tokio::test]
async fn sighup_reloads_and_streams_continue() {
    let mock = MockUpstream::start().await;
    let mut proxy = start_binary(&mock.base_url(), &[]);
    let pieces: Vec<String> = (0..6).map(|i| format!("w{i} ")).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    mock.push(Reply::chat_stream(&refs, Duration::from_millis(100)));
    let resp = client()
        .post(format!("http://127.0.0.1:{}/v1/chat/completions", proxy.port))
        .json(&json!({"model": "m", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut body = resp.bytes_stream();
    let mut text = String::new();
    if let Some(Ok(first)) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&first));
    }
    let pid = proxy.child.id() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    while let Some(piece) = body.next().await {
        text.push_str(&String::from_utf8_lossy(&piece.unwrap_or_else(|e| panic!("stream cut by SIGHUP: {e}"))));
    }
    assert!(text.contains("w5") && text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(proxy.child.try_wait().ok().flatten(), None, "SIGHUP ended the proxy");
    mock.push(Reply::chat("still here"));
    let r = client()
        .post(format!("http://127.0.0.1:{}/v1/chat/completions", proxy.port))
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    let health = crate::common::get_json(&format!("http://127.0.0.1:{}/healthz", proxy.port)).await;
    assert_eq!(health["config"]["reloads"], 1, "one reload: {health}");
    let log = std::fs::read_to_string(&proxy.log).unwrap_or_default();
    assert!(log.contains("SIGHUP: configuration reloaded"), "no log line says what SIGHUP did: {log}");
}

#[tokio::test]
async fn the_upstream_key_never_appears_in_logs_or_responses() {
    let mock = MockUpstream::start().await;
    let proxy = start_binary(
        &mock.base_url(),
        &[("UPSTREAM_FIRST_BYTE_TIMEOUT_SECONDS", "1"), ("OPENAI_API_KEY", CANARY_KEY), ("RUST_LOG", "trace")],
    );
    mock.push(Reply::chat("fine"));
    mock.push(Reply::error(401, "Incorrect API key provided", "invalid_request_error"));
    mock.push(Reply::hang());
    let c = client();
    let base = format!("http://127.0.0.1:{}/v1", proxy.port);
    let mut bodies = String::new();
    for _ in 0..2 {
        let r = c.post(format!("{base}/chat/completions")).json(&json!({"model": "m", "messages": []})).send().await;
        let r = r.unwrap_or_else(|e| panic!("{e}"));
        bodies.push_str(&format!("{:?}", r.headers()));
        bodies.push_str(&r.text().await.unwrap_or_default());
    }
    let r = c.get(format!("{base}/models")).send().await.unwrap_or_else(|e| panic!("{e}"));
    bodies.push_str(&r.text().await.unwrap_or_default());
    assert_eq!(mock.requests()[0].header("authorization"), Some(format!("Bearer {CANARY_KEY}")));

    let log = std::fs::read_to_string(&proxy.log).unwrap_or_default();
    assert!(log.contains("access"), "the log has access lines: {log}");
    assert!(!log.contains(CANARY_KEY), "key leaked into the log");
    assert!(!bodies.contains(CANARY_KEY), "key leaked into a response");
}
