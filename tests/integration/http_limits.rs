//! Requests the proxy refuses before it reads a body or calls the upstream:
//! a head over the cap (431), ambiguous body framing (400), a body over the
//! cap (413), more requests than it may serve at once (503). Each answer is
//! OpenAI-shaped; refusals of a malformed request close the connection and
//! forward nothing.

use crate::common;

use std::time::Duration;

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::raw_http::{closed_within, connect, read_response, send};
use crate::common::{client, start_proxy};
use tokio::io::AsyncWriteExt;

fn assert_openai_error(v: &serde_json::Value, code: &str) {
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(v["error"]["type"].as_str().is_some(), "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
}

/// Sends `request` raw, expects `status` with an OpenAI error `code`, the
/// connection closed after it, and nothing sent to the upstream.
async fn assert_refused(extra: &[(&str, &str)], request: &[u8], status: u16, code: &str) -> serde_json::Value {
    let mock = MockUpstream::start().await;
    mock.push(Reply::json(200, serde_json::json!({"forwarded": true})));
    let proxy = start_proxy(&mock.base_url(), extra);
    let mut s = connect(proxy.port).await;
    send(&mut s, request).await;
    let r = read_response(&mut s).await;
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    let v = r.json();
    assert_openai_error(&v, code);
    assert!(closed_within(&mut s, Duration::from_secs(10)).await, "the connection stays open after the refusal");
    assert_eq!(mock.connections(), 0, "the upstream was contacted: {:?}", mock.requests());
    v
}

#[tokio::test]
async fn a_head_over_the_cap_is_431() {
    let big = "a".repeat(8 * 1024);
    let request = format!("GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    assert_refused(&[("LIMITS_MAX_HEADER_BYTES", "4096")], request.as_bytes(), 431, "request_header_too_large").await;
}

#[tokio::test]
async fn content_length_with_transfer_encoding_is_400() {
    let request = b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    let v = assert_refused(&[], request, 400, "invalid_request").await;
    assert_eq!(v["error"]["param"], "transfer-encoding");
}

#[tokio::test]
async fn equal_duplicate_content_lengths_are_400() {
    let request = b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}";
    let v = assert_refused(&[], request, 400, "invalid_request").await;
    assert_eq!(v["error"]["param"], "content-length");
}

#[tokio::test]
async fn a_content_length_over_the_cap_is_413_before_the_body() {
    // Only the head is sent: the answer must not wait for the body.
    let request = b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
Content-Length: 2097152\r\n\r\n";
    assert_refused(&[("LIMITS_MAX_BODY_BYTES", "1048576")], request, 413, "request_too_large").await;
}

#[tokio::test]
async fn a_chunked_upload_over_the_cap_is_cut_early() {
    const ATTEMPT: usize = 200 * 1024 * 1024;
    let mock = MockUpstream::start().await;
    mock.push(Reply::json(200, serde_json::json!({"forwarded": true})));
    let proxy = start_proxy(&mock.base_url(), &[("LIMITS_MAX_BODY_BYTES", "1048576")]);
    let s = connect(proxy.port).await;
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let head = "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut sent = 0;
        if wr.write_all(head.as_bytes()).await.is_err() {
            return sent;
        }
        let piece = [b'x'; 64 * 1024];
        let chunk = [format!("{:x}\r\n", piece.len()).as_bytes(), &piece[..], b"\r\n"].concat();
        while sent < ATTEMPT {
            if wr.write_all(&chunk).await.is_err() {
                break;
            }
            sent += piece.len();
        }
        sent
    });
    let r = read_response(&mut rd).await;
    assert_eq!(r.status, 413, "{r:?}");
    assert_openai_error(&r.json(), "request_too_large");
    let sent = tokio::time::timeout(Duration::from_secs(60), writer)
        .await
        .unwrap_or_else(|_| panic!("the upload was not cut: still writing after 60 s"))
        .unwrap_or_else(|e| panic!("writer: {e}"));
    // Socket buffers on both sides take some megabytes before a write fails.
    assert!(sent < ATTEMPT / 4, "{sent} of {ATTEMPT} bytes went out before the upload was cut");
}

#[tokio::test]
async fn over_the_in_flight_limit_is_503_with_retry_after() {
    let mock = MockUpstream::start().await;
    mock.push(Reply::hang());
    mock.push(Reply::hang());
    mock.always("/v1/models", serde_json::json!({"object": "list", "data": []}));
    let proxy = start_proxy(&mock.base_url(), &[("LIMITS_MAX_IN_FLIGHT", "2"), ("LIMITS_RETRY_AFTER_SECONDS", "7")]);
    let url = format!("{}/embeddings", proxy.base_url());
    let hanging: Vec<_> = (0..2)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { client().post(url).json(&serde_json::json!({"input": "x"})).send().await })
        })
        .collect();
    mock.wait_requests(2).await;

    let started = std::time::Instant::now();
    let r = client().get(format!("{}/models", proxy.base_url())).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(5), "the 503 was not immediate: {:?}", started.elapsed());
    assert_eq!(r.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("7"));
    assert_openai_error(&r.json().await.unwrap_or_default(), "overloaded");

    let health = client().get(format!("{}/healthz", proxy.url)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(health.status(), 200, "/healthz must answer when the proxy is full");

    for h in hanging {
        h.abort();
    }
    // Once the hanging requests are gone, requests are served again.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = client().get(format!("{}/models", proxy.base_url())).send().await.unwrap_or_else(|e| panic!("{e}"));
        if r.status() == 200 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {} after the hanging requests ended", r.status());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The tool loop and `/chat` read the body themselves (pingora's body filter
/// does not see it): a body over the cap is refused there too, by declared
/// length and, without one, as it is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_loop_and_chat_refuse_bodies_over_the_cap_too() {
    let mock = MockUpstream::start().await;
    let proxy = common::start_proxy_with_tools(&mock.base_url(), "echo", &[("LIMITS_MAX_BODY_BYTES", "65536")]);
    let content = "x".repeat(128 * 1024);
    let body = serde_json::json!({"model": "m", "messages": [{"role": "user", "content": content}]}).to_string();
    for path in ["/v1/chat/completions", "/chat"] {
        let declared = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let chunked = format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        );
        for request in [declared, chunked] {
            let mut s = connect(proxy.port).await;
            send(&mut s, request.as_bytes()).await;
            let r = read_response(&mut s).await;
            assert_eq!(r.status, 413, "{path}: {r:?}");
            assert_openai_error(&r.json(), "request_too_large");
        }
    }
    assert_eq!(mock.connections(), 0, "the upstream was contacted: {:?}", mock.requests());
}
