//! A slow, silent, overloaded or absent upstream: the proxy gives up in time
//! with an OpenAI-shaped 504 (or an SSE error once a stream has started),
//! repeats a failed call before the first byte only, after a backoff that
//! honours `Retry-After` up to a cap, and never runs a tool twice for it.
//! Every test runs against both paths: the tool loop (MCP tools configured)
//! and the transparent one (no tools).

use std::time::{Duration, Instant};

use crate::common::mock_upstream::{chunk, MockUpstream, Reply};
use crate::common::{client, sse_data, start_proxy, start_proxy_with_tools, Proxy};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy)]
enum Path {
    ToolLoop,
    Transparent,
}

const BOTH: [Path; 2] = [Path::ToolLoop, Path::Transparent];

/// Short waits so retries do not slow the suite; tests override them.
const QUICK_RETRIES: [(&str, &str); 1] = [("UPSTREAM_RETRY_BACKOFF_MS", "20")];

fn start(path: Path, mock: &MockUpstream, env: &[(&str, &str)]) -> Proxy {
    let mut all: Vec<(&str, &str)> = QUICK_RETRIES.to_vec();
    all.extend_from_slice(env);
    match path {
        Path::ToolLoop => start_proxy_with_tools(&mock.base_url(), "echo,toggle_extra", &all),
        Path::Transparent => start_proxy(&mock.base_url(), &all),
    }
}

async fn post(proxy: &Proxy, stream: bool) -> reqwest::Response {
    let body = json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("request: {e}"))
}

async fn assert_error(resp: reqwest::Response, status: u16, code: &str, path: Path) -> String {
    assert_eq!(resp.status(), status, "{path:?}");
    let v: Value = resp.json().await.unwrap_or_else(|e| panic!("{path:?}: not JSON: {e}"));
    assert_eq!(v["error"]["code"], code, "{path:?}: {v}");
    assert!(v["error"]["type"].is_string() && v["error"].get("param").is_some(), "{path:?}: {v}");
    v["error"]["message"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_upstream_is_a_504_after_the_first_byte_timeout_and_is_not_retried() {
    for path in BOTH {
        let mock = MockUpstream::start().await;
        let proxy = start(
            path,
            &mock,
            // A long idle limit: the wait for the head has its own.
            &[("UPSTREAM_FIRST_BYTE_TIMEOUT_SECONDS", "1"), ("UPSTREAM_IDLE_TIMEOUT_SECONDS", "120")],
        );
        for stream in [false, true] {
            mock.push(Reply::hang());
            let started = Instant::now();
            assert_error(post(&proxy, stream).await, 504, "upstream_timeout", path).await;
            assert!(started.elapsed() < Duration::from_secs(10), "{path:?}: took {:?}", started.elapsed());
        }
        assert_eq!(mock.requests().len(), 2, "{path:?}: a timeout is not retried");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_stalls_mid_way_ends_in_an_error_not_a_short_answer() {
    for path in BOTH {
        let mock = MockUpstream::start().await;
        // The tool loop keeps the idle gap apart from the long first-byte
        // wait; the transparent path has one per-read limit, the first-byte one.
        let first_byte = if matches!(path, Path::Transparent) { "1" } else { "300" };
        let proxy = start(
            path,
            &mock,
            &[("UPSTREAM_FIRST_BYTE_TIMEOUT_SECONDS", first_byte), ("UPSTREAM_IDLE_TIMEOUT_SECONDS", "1")],
        );
        mock.push(
            Reply::sse()
                .event(chunk(json!({"role": "assistant", "content": "partial"}), None))
                .sleep(Duration::from_secs(8))
                .event(chunk(json!({"content": " rest"}), Some("stop")))
                .done(),
        );
        let started = Instant::now();
        let resp = post(&proxy, true).await;
        assert_eq!(resp.status(), 200, "{path:?}");
        match path {
            Path::ToolLoop => {
                let data = sse_data(resp).await;
                let last: Value =
                    serde_json::from_str(data.last().map(String::as_str).unwrap_or("")).unwrap_or_default();
                assert_eq!(last["error"]["code"], "upstream_timeout", "{data:?}");
                assert!(!data.iter().any(|d| d == "[DONE]" || d.contains(" rest")), "{data:?}");
            }
            Path::Transparent => {
                let body = resp.text().await;
                assert!(body.is_err(), "a cut stream must not read as complete: {body:?}");
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(7),
            "{path:?}: cut after {:?}, not at the idle gap",
            started.elapsed()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_loop_past_its_deadline_fails_with_504_or_an_sse_error() {
    let mock = MockUpstream::start().await;
    let proxy = start(Path::ToolLoop, &mock, &[("TOOL_DEADLINE_SECONDS", "2")]);
    // Round 1 asks for a tool; round 2's upstream call would take a minute.
    mock.push(Reply::tool_calls(&[("c1", "echo", json!({"text": "x"}))]));
    mock.push(Reply::chat("too late").head_delay(Duration::from_secs(60)));
    let started = Instant::now();
    let message = assert_error(post(&proxy, false).await, 504, "upstream_timeout", Path::ToolLoop).await;
    assert!(message.contains("deadline"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());

    mock.push(
        Reply::sse()
            .event(chunk(json!({"role": "assistant", "content": "partial"}), None))
            .sleep(Duration::from_secs(60))
            .done(),
    );
    let resp = post(&proxy, true).await;
    assert_eq!(resp.status(), 200);
    let data = sse_data(resp).await;
    let last: Value = serde_json::from_str(data.last().map(String::as_str).unwrap_or("")).unwrap_or_default();
    assert!(last["error"]["message"].as_str().is_some_and(|m| m.contains("deadline")), "{data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_503s_then_an_answer_reach_the_client_as_the_answer() {
    for path in BOTH {
        let mock = MockUpstream::start().await;
        let proxy = start(path, &mock, &[]);
        mock.push(Reply::error(503, "busy 1", "server_error"));
        mock.push(Reply::error(503, "busy 2", "server_error"));
        mock.push(Reply::chat("at last"));
        let resp = post(&proxy, false).await;
        assert_eq!(resp.status(), 200, "{path:?}");
        let v: Value = resp.json().await.unwrap_or_default();
        assert_eq!(v["choices"][0]["message"]["content"], "at last", "{path:?}");
        let seen = mock.requests();
        assert_eq!(seen.len(), 3, "{path:?}");
        assert!(seen.iter().all(|r| r.body == seen[0].body), "{path:?}: the same request each time");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_round_does_not_run_the_previous_rounds_tools_again() {
    let mock = MockUpstream::start().await;
    let proxy = start(Path::ToolLoop, &mock, &[]);
    // toggle_extra answers "extra on" on its first call and "extra off" on its second.
    mock.push(Reply::tool_calls(&[("t1", "toggle_extra", json!({}))]));
    mock.push(Reply::error(503, "busy", "server_error"));
    mock.push(Reply::error(503, "busy", "server_error"));
    mock.push(Reply::chat("toggled"));
    let resp = post(&proxy, false).await;
    assert_eq!(resp.status(), 200);
    let seen = mock.requests();
    assert_eq!(seen.len(), 4, "round 1 once, round 2 three times");
    for retry in &seen[1..] {
        let results: Vec<Value> = retry.json()["messages"]
            .as_array()
            .map(|m| m.iter().filter(|m| m["role"] == "tool").cloned().collect())
            .unwrap_or_default();
        assert_eq!(results.len(), 1, "{results:?}");
        assert_eq!(results[0]["content"], "extra on", "the tool ran exactly once");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_waited_for_up_to_the_cap_and_a_longer_one_is_passed_on_at_once() {
    for path in BOTH {
        let mock = MockUpstream::start().await;
        let proxy = start(path, &mock, &[("UPSTREAM_RETRY_MAX_DELAY_SECONDS", "2")]);
        // Backoff alone would wait ~20 ms: a retry after a second is the header's doing.
        mock.push(Reply::error(429, "slow down", "rate_limit_error").header("retry-after", "1"));
        mock.push(Reply::chat("ok"));
        let started = Instant::now();
        assert_eq!(post(&proxy, false).await.status(), 200, "{path:?}");
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(950) && waited < Duration::from_secs(10), "{path:?}: {waited:?}");
        assert_eq!(mock.requests().len(), 2, "{path:?}");

        // An hour is asked for, more than the cap of 2 s: retrying early would
        // only be refused again, so the client gets the answer and its header now.
        mock.push(Reply::error(503, "maintenance", "server_error").header("retry-after", "3600"));
        mock.push(Reply::chat("never asked for"));
        let started = Instant::now();
        let resp = post(&proxy, false).await;
        let waited = started.elapsed();
        assert_eq!(resp.status(), 503, "{path:?}");
        assert_eq!(resp.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"3600"[..]), "{path:?}");
        assert!(waited < Duration::from_millis(900), "{path:?}: waited {waited:?} before passing it on");
        assert_eq!(mock.requests().len(), 3, "{path:?}: not retried");
        mock.clear();
    }
}

/// A transparent request that may have done something upstream (a file
/// upload, a batch) is not repeated on an answer that does not say "nothing
/// was done" (502, 504); inference requests and idempotent methods are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_that_creates_something_is_retried_only_when_the_upstream_did_nothing() {
    let mock = MockUpstream::start().await;
    let proxy = start(Path::Transparent, &mock, &[]);
    let send = |method: reqwest::Method, path: &str| {
        client()
            .request(method, format!("{}/{path}", proxy.base_url()))
            .json(&json!({"input_file_id": "file-1"}))
            .send()
    };
    let cases = [
        (reqwest::Method::POST, "batches", 502, 1),
        (reqwest::Method::POST, "files", 504, 1),
        (reqwest::Method::POST, "fine_tuning/jobs", 502, 1),
        (reqwest::Method::POST, "batches", 503, 2),
        (reqwest::Method::POST, "batches", 429, 2),
        (reqwest::Method::POST, "embeddings", 502, 2),
        (reqwest::Method::GET, "batches/b1", 502, 2),
        (reqwest::Method::DELETE, "files/f1", 504, 2),
    ];
    for (method, path, status, tries) in cases {
        let before = mock.requests().len();
        mock.push(Reply::error(status, "upstream trouble", "server_error"));
        mock.push(Reply::json(200, json!({"ok": true})));
        let resp = send(method.clone(), path).await.unwrap_or_else(|e| panic!("{e}"));
        let expected = if tries == 1 { status } else { 200 };
        assert_eq!(resp.status().as_u16(), expected, "{method} {path} after {status}");
        assert_eq!(mock.requests().len() - before, tries, "{method} {path} after {status}");
        mock.clear();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_retries_run_out_the_client_gets_the_last_answer() {
    for path in BOTH {
        let mock = MockUpstream::start().await;
        let proxy = start(path, &mock, &[("UPSTREAM_RETRIES", "2")]);
        for i in 1..=3 {
            mock.push(Reply::error(503, &format!("busy {i}"), "server_error").header("retry-after", "0"));
        }
        mock.push(Reply::chat("never asked for"));
        let resp = post(&proxy, false).await;
        assert_eq!(resp.status(), 503, "{path:?}");
        assert_eq!(resp.headers().get("retry-after").map(|v| v.as_bytes()), Some(&b"0"[..]), "{path:?}");
        let v: Value = resp.json().await.unwrap_or_default();
        assert_eq!(v["error"]["message"], "busy 3", "{path:?}");
        assert_eq!(mock.requests().len(), 3, "{path:?}: one try and two retries");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_comes_up_late_is_reached_by_a_retry() {
    for path in BOTH {
        // Bound but not listening: connections are refused until the mock starts.
        let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| panic!("{e}"));
        socket.bind("127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}"))).unwrap_or_else(|e| panic!("{e}"));
        let port = socket.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
        let base = format!("http://127.0.0.1:{port}/v1");
        let env = [("UPSTREAM_RETRY_BACKOFF_MS", "3000"), ("UPSTREAM_RETRY_MAX_DELAY_SECONDS", "5")];
        let proxy = match path {
            Path::ToolLoop => start_proxy_with_tools(&base, "echo", &env),
            Path::Transparent => start_proxy(&base, &env),
        };
        let started = Instant::now();
        let request = tokio::spawn(async move { post(&proxy, false).await.status() });
        // The first try is refused; the first retry waits at least 1.5 s.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mock = MockUpstream::start_on(socket).await;
        mock.push(Reply::chat("up now"));
        let status = request.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(status, 200, "{path:?}");
        assert_eq!(mock.requests().len(), 1, "{path:?}");
        // The backoff was waited for: not a loop of tries until one connects.
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(1400), "{path:?}: retried after {waited:?}, before its backoff");

        // Without retries the same refused connection is the client's 502.
        let dead = format!("http://127.0.0.1:{}/v1", crate::common::free_port());
        let proxy = match path {
            Path::ToolLoop => start_proxy_with_tools(&dead, "echo", &[("UPSTREAM_RETRIES", "0")]),
            Path::Transparent => start_proxy(&dead, &[("UPSTREAM_RETRIES", "0")]),
        };
        assert_eq!(post(&proxy, false).await.status(), 502, "{path:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_retried_once_the_answer_has_started() {
    for path in BOTH {
        let mock = MockUpstream::start().await;
        let proxy = start(path, &mock, &[]);
        mock.push(
            Reply::sse()
                .event(chunk(json!({"role": "assistant", "content": "partial"}), None))
                .sleep(Duration::from_millis(100))
                .drop_connection(),
        );
        mock.push(Reply::chat_stream(&["a second answer"], Duration::ZERO));
        let resp = post(&proxy, true).await;
        assert_eq!(resp.status(), 200, "{path:?}");
        let text = resp.text().await.unwrap_or_default();
        assert!(!text.contains("second answer") && !text.contains("[DONE]"), "{path:?}: {text}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(mock.requests().len(), 1, "{path:?}: no second call after the first byte");
    }
}
