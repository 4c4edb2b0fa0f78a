//! CORS: preflights are answered by the proxy; by default any origin may call
//! without credentials; a configured list lets only its origins in.

use crate::common;

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{client, start_proxy};
use serde_json::json;

async fn preflight(proxy: &common::Proxy, origin: &str) -> reqwest::Response {
    client()
        .request(reqwest::Method::OPTIONS, format!("{}/chat/completions", proxy.base_url()))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization, content-type, x-mcp-tool-mode")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn default_policy_allows_any_origin_without_credentials() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    let r = preflight(&proxy, "https://anywhere.example").await;
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(r.headers()["access-control-allow-methods"].to_str().unwrap_or("").contains("POST"));
    assert_eq!(r.headers()["access-control-allow-headers"], "authorization, content-type, x-mcp-tool-mode");
    assert!(r.headers().get("access-control-allow-credentials").is_none());
    assert!(mock.requests().is_empty(), "a preflight never reaches the upstream");
}

#[tokio::test]
async fn a_configured_list_admits_only_its_origins() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("CORS_ALLOWED_ORIGINS", "https://app.example")]);
    let ok = preflight(&proxy, "https://app.example").await;
    assert_eq!(ok.status(), 204);
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://app.example");

    let denied = preflight(&proxy, "https://evil.example").await;
    assert_eq!(denied.status(), 403);
    assert!(denied.headers().get("access-control-allow-origin").is_none());
    let v: serde_json::Value = denied.json().await.unwrap_or_default();
    assert_eq!(v["error"]["code"], "origin_not_allowed");
}

#[tokio::test]
async fn proxied_responses_carry_the_proxy_policy_not_the_upstreams() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("CORS_ALLOWED_ORIGINS", "https://app.example")]);
    mock.push(Reply::chat("hi").header("access-control-allow-origin", "*"));
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .header("origin", "https://app.example")
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.headers()["access-control-allow-origin"], "https://app.example");
    assert_eq!(r.headers().get_all("access-control-allow-origin").iter().count(), 1);
    assert!(r.headers()["access-control-expose-headers"].to_str().unwrap_or("").contains("x-request-id"));
}
