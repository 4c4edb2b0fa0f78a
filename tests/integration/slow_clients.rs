//! Clients that hold connections by being slow: dripping a request head
//! (slowloris), stalling mid-body, idling between keep-alive requests,
//! not reading a stream. Each is cut after its timeout, and the others are
//! served meanwhile.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::raw_http::{closed_within, connect, read_response, send};
use crate::common::{client, start_proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Twenty `/v1/models` requests one after another; the slowest one's time.
async fn slowest_of_twenty(proxy: &common::Proxy) -> Duration {
    let mut slowest = Duration::ZERO;
    for _ in 0..20 {
        let t = Instant::now();
        let r = client().get(format!("{}/models", proxy.base_url())).send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 200);
        slowest = slowest.max(t.elapsed());
    }
    slowest
}

/// A slowloris connection: sends a request line, then one header byte every
/// 300 ms (or nothing at all when `silent`); returns how long the proxy
/// took to close it, or `None` if it was still open after 20 s.
async fn slowloris(port: u16, silent: bool) -> Option<Duration> {
    let opened = Instant::now();
    let (mut rd, mut wr) = connect(port).await.into_split();
    if !silent {
        let _ = wr.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
    }
    let mut buf = [0u8; 1024];
    while opened.elapsed() < Duration::from_secs(20) {
        tokio::select! {
            n = rd.read(&mut buf) => if matches!(n, Ok(0) | Err(_)) { return Some(opened.elapsed()) },
            _ = tokio::time::sleep(Duration::from_millis(300)) => if !silent { let _ = wr.write_all(b"a").await; },
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_and_others_are_served() {
    let mock = MockUpstream::start().await;
    mock.always("/v1/models", serde_json::json!({"object": "list", "data": []}));
    let proxy = start_proxy(&mock.base_url(), &[("LIMITS_HEADER_TIMEOUT_SECONDS", "2")]);
    let before = slowest_of_twenty(&proxy).await;

    let slow: Vec<_> = (0..200).map(|i| tokio::spawn(slowloris(proxy.port, i % 2 == 0))).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = slowest_of_twenty(&proxy).await;
    assert!(
        during < before * 20 + Duration::from_millis(500),
        "with 200 slow clients the slowest request took {during:?}, against {before:?} before"
    );

    for (i, s) in slow.into_iter().enumerate() {
        let closed = s.await.unwrap_or_else(|e| panic!("{e}"));
        let closed = closed.unwrap_or_else(|| panic!("slow connection {i} is still open after 20 s"));
        assert!(closed < Duration::from_secs(12), "slow connection {i} closed only after {closed:?}");
    }
}

#[tokio::test]
async fn a_second_request_head_on_a_kept_alive_connection_has_a_deadline_too() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("LIMITS_HEADER_TIMEOUT_SECONDS", "1")]);
    let mut s = connect(proxy.port).await;
    send(&mut s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(read_response(&mut s).await.status, 200);

    // Idle for longer than the header timeout: the clock starts with the next request's first byte.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    send(&mut s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    let started = Instant::now();
    let (mut rd, mut wr) = s.into_split();
    let drip = tokio::spawn(async move {
        while wr.write_all(b"X-Slow: a\r\n").await.is_ok() {
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    assert!(closed_within(&mut rd, Duration::from_secs(10)).await, "the dripped second head was never cut");
    assert!(started.elapsed() >= Duration::from_millis(500), "cut before its deadline: {:?}", started.elapsed());
    drip.abort();
}

#[tokio::test]
async fn an_idle_kept_alive_connection_is_closed() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("SERVER_KEEPALIVE_SECONDS", "1")]);
    let mut s = connect(proxy.port).await;
    send(&mut s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(read_response(&mut s).await.status, 200);
    let idle = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(10)).await, "an idle keep-alive connection stays open");
    assert!(idle.elapsed() >= Duration::from_millis(800), "closed before its idle time: {:?}", idle.elapsed());

    // Within the idle time the connection is kept for the next request.
    let mut s = connect(proxy.port).await;
    send(&mut s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(read_response(&mut s).await.status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    send(&mut s, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(read_response(&mut s).await.status, 200, "a kept-alive connection was closed early");
}

#[tokio::test]
async fn a_stalled_body_is_cut_after_the_body_timeout() {
    let mock = MockUpstream::start().await;
    mock.push(Reply::json(200, serde_json::json!({"forwarded": true})));
    let proxy = start_proxy(&mock.base_url(), &[("LIMITS_BODY_TIMEOUT_SECONDS", "1")]);
    let mut s = connect(proxy.port).await;
    send(
        &mut s,
        b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n",
    )
    .await;
    send(&mut s, b"{\"input\": ").await;
    let stalled = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(10)).await, "a body stalled after 10 of 100 bytes was never cut");
    assert!(stalled.elapsed() >= Duration::from_millis(800), "cut before the body timeout: {:?}", stalled.elapsed());
    // The mock records a broken body as what arrived: never a complete one.
    assert!(mock.requests().iter().all(|r| r.body.len() < 100), "the upstream got a complete body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_stream_is_cut_with_its_upstream() {
    let mock = MockUpstream::start().await;
    mock.push(Reply::endless_sse());
    let proxy = start_proxy(&mock.base_url(), &[("LIMITS_WRITE_TIMEOUT_SECONDS", "2")]);
    let mut s = connect(proxy.port).await;
    let body = br#"{"model": "m", "input": "x", "stream": true}"#;
    let head = format!(
        "POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    send(&mut s, &[head.as_bytes(), body].concat()).await;

    // The client never reads: the upstream must be cut off within the write timeout (and a margin).
    let started = Instant::now();
    while !mock.endless_ended() {
        assert!(started.elapsed() < Duration::from_secs(15), "the upstream is still streaming after 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = mock.endless_sent();
    // Socket buffers hold a few megabytes; an unread loopback stream would be gigabytes by now.
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes left the upstream for a client that reads nothing");
    assert!(closed_within(&mut s, Duration::from_secs(10)).await, "the client connection stays open");
}
