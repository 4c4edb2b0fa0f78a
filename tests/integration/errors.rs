//! Errors the proxy itself produces are OpenAI-shaped with the right status,
//! and every response carries a request id.

use crate::common;

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{client, free_port, start_proxy};
use serde_json::{json, Value};

async fn post_chat(proxy: &common::Proxy) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn assert_openai_error(v: &Value, code: &str) {
    assert!(v["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(v["error"]["type"].as_str().is_some(), "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let proxy = start_proxy(&format!("http://127.0.0.1:{}/v1", free_port()), &[]);
    let r = post_chat(&proxy).await;
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_openai_error(&r.json().await.unwrap_or_default(), "upstream_unreachable");
}

#[tokio::test]
async fn silent_upstream_is_504_after_the_read_timeout() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("UPSTREAM_FIRST_BYTE_TIMEOUT_SECONDS", "1")]);
    mock.push(Reply::hang());
    let r = post_chat(&proxy).await;
    assert_eq!(r.status(), 504);
    assert_openai_error(&r.json().await.unwrap_or_default(), "upstream_timeout");
}

#[tokio::test]
async fn unresolvable_upstream_host_is_502() {
    let proxy = start_proxy("http://no-such-host.invalid/v1", &[]);
    let r = post_chat(&proxy).await;
    assert_eq!(r.status(), 502);
    assert_openai_error(&r.json().await.unwrap_or_default(), "upstream_unreachable");
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    let r = client().get(format!("{}/admin", proxy.url)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 404);
    assert_openai_error(&r.json().await.unwrap_or_default(), "unknown_url");
    let r = client().delete(format!("{}/healthz", proxy.url)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 405);
    assert_openai_error(&r.json().await.unwrap_or_default(), "method_not_allowed");
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn a_malformed_request_is_400() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap_or_else(|e| panic!("{e}"));
    s.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    assert!(mock.requests().is_empty(), "nothing is forwarded");
}

#[tokio::test]
async fn request_ids_are_echoed_or_made_and_sent_upstream() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat("a"));
    mock.push(Reply::chat("b"));
    let c = client();
    let url = format!("{}/chat/completions", proxy.base_url());
    let mine =
        c.post(&url).header("x-request-id", "trace-42").json(&json!({})).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(mine.headers()["x-request-id"], "trace-42");
    let made = c.post(&url).json(&json!({})).send().await.unwrap_or_else(|e| panic!("{e}"));
    let id = made.headers()["x-request-id"].to_str().unwrap_or("").to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let seen = mock.requests();
    assert_eq!(seen[0].header("x-request-id").as_deref(), Some("trace-42"));
    assert_eq!(seen[1].header("x-request-id"), Some(id));

    let local = c.get(format!("{}/healthz", proxy.url)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(local.headers().get("x-request-id").is_some());
    let err = c.get(format!("{}/nope", proxy.url)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(err.headers().get("x-request-id").is_some());
}

#[tokio::test]
async fn welcome_and_health_answer_locally() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    let v: Value =
        client().get(&proxy.url).send().await.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or_default();
    assert!(v["message"].as_str().is_some_and(|m| m.contains("mcp-chat-proxy")));
    let h: Value = client()
        .get(format!("{}/healthz", proxy.url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    assert_eq!(h["status"], "ok");
    assert!(mock.requests().is_empty());
}

/// An error answer's `Connection` header tells the truth: a client that
/// reuses a connection the proxy said it keeps must not lose its next request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answer_says_whether_the_connection_stays_open() {
    use common::raw_http::{closed_within, connect, read_response, send};
    let request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
        Content-Length: 55\r\n\r\n{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\"}]}";
    let mock = MockUpstream::start().await;
    let quick = [("UPSTREAM_RETRIES", "0"), ("UPSTREAM_FIRST_BYTE_TIMEOUT_SECONDS", "1")];
    let dead = start_proxy(&format!("http://127.0.0.1:{}/v1", free_port()), &quick);
    let plain = start_proxy(&mock.base_url(), &quick);
    let tools = common::start_proxy_with_tools(&mock.base_url(), "echo", &quick);
    let cases = [
        (&dead, None, 502, "transparent path, no upstream"),
        (&plain, Some(Reply::hang()), 504, "transparent path, silent upstream"),
        (&tools, Some(Reply::error(502, "bad gateway", "server_error")), 502, "tool loop, upstream 502"),
        (&tools, Some(Reply::hang()), 504, "tool loop, silent upstream"),
    ];
    for (proxy, reply, status, what) in cases {
        if let Some(reply) = reply {
            mock.push(reply);
        }
        mock.push(Reply::chat("second"));
        let mut s = connect(proxy.port).await;
        send(&mut s, request).await;
        let first = read_response(&mut s).await;
        assert_eq!(first.status, status, "{what}: {first:?}");
        if first.header("connection").as_deref() == Some("close") {
            assert!(closed_within(&mut s, std::time::Duration::from_secs(5)).await, "{what}: said close, stayed open");
        } else {
            send(&mut s, request).await;
            let second = read_response(&mut s).await;
            assert_eq!(second.status, 200, "{what}: said keep-alive, then lost the next request: {second:?}");
            let body: Value = serde_json::from_slice(&second.body).unwrap_or_default();
            assert_eq!(body["choices"][0]["message"]["content"], "second", "{what}: {second:?}");
        }
        mock.clear();
    }
}
