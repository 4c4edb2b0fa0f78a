//! Streams pass through frame by frame: each SSE event reaches the client
//! before the upstream sends the next, and a broken stream never looks complete.

use std::time::Duration;

use crate::common::mock_upstream::{chunk, MockUpstream, Reply};
use crate::common::{client, sse_data, start_proxy};
use futures_util::StreamExt;
use serde_json::json;
use tokio::sync::oneshot;

#[tokio::test]
async fn each_event_arrives_before_the_upstream_sends_the_next() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    let (release, gate) = oneshot::channel();
    mock.push(
        Reply::sse()
            .event(chunk(json!({"role": "assistant", "content": "first"}), None))
            .gate(gate)
            .event(chunk(json!({"content": " second"}), Some("stop")))
            .done(),
    );

    let resp = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&json!({"model": "m", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let mut body = resp.bytes_stream();

    // The mock holds chunk 2 until we release it: chunk 1 must get here alone.
    let mut seen = String::new();
    while !seen.contains("first") {
        let piece = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .unwrap_or_else(|_| panic!("chunk 1 did not arrive while the upstream held chunk 2; got {seen:?}"));
        let piece = piece.unwrap_or_else(|| panic!("stream ended early")).unwrap_or_else(|e| panic!("{e}"));
        seen.push_str(&String::from_utf8_lossy(&piece));
    }
    assert!(!seen.contains("second"));
    let _ = release.send(());

    while let Some(piece) = body.next().await {
        seen.push_str(&String::from_utf8_lossy(&piece.unwrap_or_else(|e| panic!("{e}"))));
    }
    assert!(seen.contains("second"));
    assert!(seen.trim_end().ends_with("data: [DONE]"));
}

#[tokio::test]
async fn a_stream_with_delays_arrives_whole() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat_stream(&["a", "b", "c", "d"], Duration::from_millis(30)));
    let resp = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&json!({"model": "m", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let data = sse_data(resp).await;
    assert_eq!(data.len(), 7, "role + 4 pieces + finish + [DONE]: {data:?}");
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn an_upstream_that_drops_mid_stream_gives_the_client_an_error_not_a_short_answer() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(
        Reply::sse()
            .event(chunk(json!({"role": "assistant", "content": "partial"}), None))
            .sleep(Duration::from_millis(50))
            .drop_connection(),
    );
    let resp = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&json!({"model": "m", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    let result = resp.text().await;
    assert!(result.is_err(), "a cut stream must not read as complete: {result:?}");
}

#[tokio::test]
async fn a_client_that_hangs_up_closes_the_upstream_stream() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    let pieces: Vec<String> = (0..200).map(|i| format!("p{i}")).collect();
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    mock.push(Reply::chat_stream(&refs, Duration::from_millis(20)));

    let resp = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&json!({"model": "m", "stream": true, "messages": []}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut body = resp.bytes_stream();
    let _ = body.next().await;
    drop(body);
    mock.wait_aborted(1).await;
}
