//! Transparent proxying: what the client sends reaches the upstream with only
//! the address, Host and key changed, and what the upstream answers reaches
//! the client unchanged.

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{client, start_proxy};
use serde_json::json;

#[tokio::test]
async fn chat_completion_round_trips_unchanged() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("OPENAI_API_KEY", "sk-upstream")]);
    mock.push(Reply::chat("hello from upstream").header("x-upstream-extra", "kept"));

    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "some_new_field": {"a": 1}});
    let resp = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .bearer_auth("client-key")
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream-extra"], "kept");
    let v: serde_json::Value = resp.json().await.unwrap_or_default();
    assert_eq!(v["choices"][0]["message"]["content"], "hello from upstream");

    let seen = &mock.requests()[0];
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.json(), body, "the body, unknown fields included, reaches the upstream as sent");
    assert_eq!(seen.header("authorization").as_deref(), Some("Bearer sk-upstream"));
    assert_eq!(seen.header("host"), Some(mock.addr.to_string()));
}

#[tokio::test]
async fn base_url_path_prefix_and_query_are_honoured() {
    let mock = MockUpstream::start().await;
    let base = format!("http://{}/api/openai/v1", mock.addr);
    let proxy = start_proxy(&base, &[]);
    mock.push(Reply::json(200, json!({"object": "list", "data": []})));

    let resp = client()
        .get(format!("{}/files?purpose=batch&limit=2", proxy.base_url()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(mock.requests()[0].path, "/api/openai/v1/files?purpose=batch&limit=2");
}

#[tokio::test]
async fn upstream_errors_pass_through_unchanged() {
    let mock = MockUpstream::start().await;
    // What the upstream answers once retries are spent (see tests/upstream_faults.rs).
    let proxy = start_proxy(&mock.base_url(), &[("UPSTREAM_RETRIES", "0")]);
    let upstream_body = json!({"error": {"message": "model `x` does not exist", "type": "invalid_request_error", "param": "model", "code": "model_not_found"}});
    mock.push(Reply::json(404, upstream_body.clone()));
    mock.push(
        Reply::json(503, json!({"error": {"message": "overloaded", "type": "server_error"}}))
            .header("retry-after", "7"),
    );

    let c = client();
    let url = format!("{}/chat/completions", proxy.base_url());
    let r1 = c.post(&url).json(&json!({"model": "x", "messages": []})).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r1.status(), 404);
    assert_eq!(r1.json::<serde_json::Value>().await.unwrap_or_default(), upstream_body);

    let r2 = c.post(&url).json(&json!({"model": "x", "messages": []})).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r2.status(), 503);
    assert_eq!(r2.headers()["retry-after"], "7");
}

#[tokio::test]
async fn bring_your_own_key_passes_the_client_header() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat("ok"));
    let resp = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .bearer_auth("sk-client-own")
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(resp.status(), 200);
    assert_eq!(mock.requests()[0].header("authorization").as_deref(), Some("Bearer sk-client-own"));
}

#[tokio::test]
async fn keep_alive_connections_to_the_upstream_are_reused() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    let c = client();
    for _ in 0..5 {
        mock.push(Reply::chat("ok"));
        let r = c
            .post(format!("{}/chat/completions", proxy.base_url()))
            .json(&json!({"model": "m", "messages": []}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 200);
        let _ = r.bytes().await;
    }
    assert_eq!(mock.connections(), 1, "five sequential requests should share one upstream connection");
}

#[tokio::test]
async fn http2_cleartext_clients_are_served_too() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat("over h2c"));
    let h2 = reqwest::Client::builder().http2_prior_knowledge().build().unwrap_or_else(|e| panic!("{e}"));
    let r = h2
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    assert_eq!(v["choices"][0]["message"]["content"], "over h2c");
}
