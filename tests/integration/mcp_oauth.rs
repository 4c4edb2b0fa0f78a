//! OAuth client credentials to remote MCP servers: the hub fetches a token
//! from the configured token endpoint, sends it on every request, replaces it
//! before it expires and once when the server rejects it, and a refused
//! token request leaves the server failed with a clear error, secret unsaid.
//!
//! Real components only: our test MCP server accepts the tokens listed in a
//! file (`--bearer-file`) that the in-process token endpoint keeps current.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::mcp::{eventually, hub, quick_settings, start_remote, url, Remote};
use crate::common::mock_upstream::MockUpstream;
use crate::common::oauth::TokenServer;
use crate::common::{client, start_proxy, write_servers};
use mcp_chat_proxy::mcp::{Hub, Phase};

const SECRET: &str = "s3cr3t-value";

fn server_entry(mode: &str, kind: &str, remote: &Remote, tokens: &TokenServer, secret: &str) -> Value {
    json!({"type": kind, "url": url(mode, remote.port), "oauth": {
        "token_url": tokens.url(), "client_id": "proxy", "client_secret": secret,
        "scopes": ["tools:read", "tools:call"]}})
}

/// The remote server behind `tokens`, and a hub connected to it.
async fn protected(mode: &str, kind: &str, tokens: &TokenServer) -> (Remote, std::sync::Arc<Hub>) {
    let remote = start_remote(mode, 0, &["--bearer-file", &tokens.bearer_file()]);
    let hub = hub(json!({"r": server_entry(mode, kind, &remote, tokens, SECRET)}), quick_settings()).await;
    assert_eq!(hub.status()[0].state, Phase::Connected, "{:?}", hub.status());
    (remote, hub)
}

async fn echo(hub: &Hub, text: &str) {
    let out = hub.call("echo", json!({"text": text})).await;
    assert_eq!((out.text.as_str(), out.is_error), (text, false), "{:?}", hub.status());
}

async fn one_fetch_then_calls(mode: &str, kind: &str) {
    let tokens = TokenServer::start("proxy", SECRET, None).await;
    let (remote, hub) = protected(mode, kind, &tokens).await;
    for i in 0..5 {
        echo(&hub, &format!("call {i}")).await;
    }
    let seen = tokens.requests();
    assert_eq!(seen.len(), 1, "one token request for the connection and all its calls: {seen:?}");
    assert_eq!(seen[0].basic, Some(("proxy".to_string(), SECRET.to_string())), "client_secret_basic");
    assert_eq!(seen[0].form.get("grant_type").map(String::as_str), Some("client_credentials"));
    assert_eq!(seen[0].form.get("scope").map(String::as_str), Some("tools:read tools:call"));
    assert!(!seen[0].form.contains_key("client_secret"), "the secret goes in the header only");
    hub.shutdown().await;

    // The server really is protected: without the token, no connection.
    let bare = hub_without_oauth(mode, kind, &remote).await;
    assert_ne!(bare.status()[0].state, Phase::Connected, "{:?}", bare.status());
    bare.shutdown().await;
}

async fn hub_without_oauth(mode: &str, kind: &str, remote: &Remote) -> std::sync::Arc<Hub> {
    hub(json!({"r": {"type": kind, "url": url(mode, remote.port)}}), quick_settings()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_fetches_one_token_and_calls_work() {
    one_fetch_then_calls("http", "streamable-http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sse_fetches_one_token_and_calls_work() {
    one_fetch_then_calls("sse", "sse").await;
}

/// Tokens live 5 s; the hub replaces one once 80% of that is gone, on the
/// next request, so the MCP server never sees it expire.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_is_replaced_before_it_expires() {
    const LIFETIME: Duration = Duration::from_secs(5);
    let tokens = TokenServer::start("proxy", SECRET, Some(LIFETIME.as_secs())).await;
    let (_remote, hub) = protected("http", "streamable-http", &tokens).await;
    let issued = tokens.requests()[0].at;
    echo(&hub, "fresh").await;
    // Past the refresh point (4 s), before the expiry (5 s).
    tokio::time::sleep((issued + Duration::from_millis(4400)).saturating_duration_since(Instant::now())).await;
    echo(&hub, "near the end").await;
    let seen = tokens.requests();
    assert_eq!(seen.len(), 2, "a second token was fetched: {seen:?}");
    assert!(seen[1].at < issued + LIFETIME, "before the first expired: {:?}", seen[1].at - issued);
    // tok-1 is gone now; tok-2 is still good.
    tokio::time::sleep((issued + Duration::from_millis(5500)).saturating_duration_since(Instant::now())).await;
    echo(&hub, "after the first expired").await;
    assert_eq!(tokens.requests().len(), 2, "{:?}", tokens.requests());
    hub.shutdown().await;
}

/// The server revokes the token: the next calls (ten at once) get 401, and
/// share one new token and one retry each.
async fn a_rejected_token_is_replaced_once(mode: &str, kind: &str) {
    let tokens = TokenServer::start("proxy", SECRET, None).await;
    let (_remote, hub) = protected(mode, kind, &tokens).await;
    echo(&hub, "before").await;
    tokens.revoke_all();
    echo(&hub, "after the revocation").await;
    assert_eq!(tokens.requests().len(), 2, "exactly one refetch: {:?}", tokens.requests());
    tokens.revoke_all();
    let calls: Vec<_> = (0..10)
        .map(|i| {
            let hub = hub.clone();
            tokio::spawn(async move { echo(&hub, &format!("at once {i}")).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(tokens.requests().len(), 3, "ten rejected calls, one refetch: {:?}", tokens.requests());
    assert_eq!(hub.status()[0].restarts, 0, "no reconnection: {:?}", hub.status());
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamable_http_replaces_a_rejected_token_once() {
    a_rejected_token_is_replaced_once("http", "streamable-http").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_sse_replaces_a_rejected_token_once() {
    a_rejected_token_is_replaced_once("sse", "sse").await;
}

/// A wrong secret: the server is failed, its error names the token URL and
/// `invalid_client` but not the secret, it is retried, and `/healthz` says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_secret_fails_the_server_clearly() {
    const WRONG: &str = "wrong-s3cr3t";
    let tokens = TokenServer::start("proxy", SECRET, None).await;
    let remote = start_remote("http", 0, &["--bearer-file", &tokens.bearer_file()]);
    let entry = server_entry("http", "streamable-http", &remote, &tokens, WRONG);
    let hub = hub(json!({"r": entry.clone()}), quick_settings()).await;
    let status = hub.status()[0].clone();
    let error = status.error.clone().unwrap_or_default();
    assert_eq!(status.state, Phase::Failed, "{status:?}");
    assert!(error.contains(&tokens.url()) && error.contains("invalid_client"), "{error}");
    assert!(!error.contains(WRONG) && !format!("{status:?}").contains(WRONG), "{error}");
    assert!(eventually(Duration::from_secs(5), || tokens.requests().len() >= 3).await, "retried with backoff");
    hub.shutdown().await;

    let mock = MockUpstream::start().await;
    let file = write_servers(json!({"r": entry}));
    let proxy = start_proxy(&mock.base_url(), &[("MCP_SERVERS_CONFIG", file.as_str())]);
    let health = format!("{}/healthz", proxy.url);
    let h: Value =
        client().get(&health).send().await.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or_default();
    let server = &h["mcp_servers"][0];
    assert_eq!((h["status"].as_str(), server["state"].as_str()), (Some("degraded"), Some("failed")), "{h}");
    let error = server["error"].as_str().unwrap_or_default();
    assert!(error.contains("invalid_client") && error.contains(&tokens.url()), "{h}");
    assert!(!h.to_string().contains(WRONG), "{h}");
}
