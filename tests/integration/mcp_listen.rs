//! `/mcp` subscriptions (`subscriptions/listen`, MCP 2026-07-28, no
//! session): a client hears `notifications/tools/list_changed` when the tools
//! its key sees change, never for tools it cannot see, and shutdown ends a
//! subscription gracefully instead of waiting for its client to leave.

use std::time::Duration;

use rmcp::model::{ProtocolVersion, ServerNotification, SubscriptionFilter};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, Subscription, SubscriptionEnd};
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::StreamableHttpClientTransport;
use serde_json::json;

use crate::common::binary::{start_binary, wait_exit};
use crate::common::mock_upstream::MockUpstream;
use crate::common::scratch::ScratchFile;
use crate::common::start_proxy_with_tools;
use crate::mcp_serve::{call, names, text_of, Client, WAIT};

/// A client that starts with `server/discover` (MCP 2026-07-28, no handshake):
/// `subscriptions/listen` needs it. `serve` alone does the `initialize` handshake.
async fn connect_modern(base: &str, key: &str) -> Client {
    let config = StreamableHttpClientTransportConfig::with_uri(format!("{base}/mcp")).auth_header(key);
    let transport = StreamableHttpClientTransport::from_config(config);
    let lifecycle = ClientLifecycleMode::Discover { preferred_versions: vec![ProtocolVersion::V_2026_07_28] };
    let client = tokio::time::timeout(WAIT, ().serve_with_lifecycle(transport, lifecycle)).await;
    match client {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => panic!("discover: {e}"),
        Err(_) => panic!("discover took too long"),
    }
}

/// A `subscriptions/listen` for tool list changes, acknowledged.
async fn listen(client: &Client) -> Subscription {
    let filter = SubscriptionFilter::builder().tools_list_changed().build();
    let sub = tokio::time::timeout(WAIT, client.peer().listen(filter)).await;
    sub.unwrap_or_else(|_| panic!("listen took too long")).unwrap_or_else(|e| panic!("listen: {e}"))
}

/// `subscriptions/listen` (no session needed): a client hears
/// `notifications/tools/list_changed` when its own view of the catalog
/// changes, and a key that cannot see the changed tool hears nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listening_client_hears_when_its_tools_change() {
    let keys = ScratchFile::new(
        "keys.toml",
        "[[key]]\nname = \"full\"\nkey = \"full-key-0401\"\n\n\
         [[key]]\nname = \"echo\"\nkey = \"echo-key-0402\"\ntools = [\"test__echo\", \"test__toggle_extra\"]\n",
    );
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo,toggle_extra", &[("AUTH_KEYS_FILE", keys.as_str())]);
    let full = connect_modern(&proxy.url, "full-key-0401").await;
    let narrow = connect_modern(&proxy.url, "echo-key-0402").await;
    let mut full_sub = listen(&full).await;
    let mut narrow_sub = listen(&narrow).await;
    assert_eq!(full_sub.acknowledged().tools_list_changed, Some(true));
    assert!(!names(&full).await.contains(&"extra".to_string()));

    let toggled = call(&full, "toggle_extra", json!({})).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(text_of(&toggled).0, "extra on");
    let heard = tokio::time::timeout(WAIT, full_sub.next()).await.unwrap_or_else(|_| panic!("no list_changed"));
    assert!(
        matches!(heard, Ok(Some(ServerNotification::ToolListChangedNotification(_)))),
        "expected tools/list_changed, got {heard:?}"
    );
    assert!(names(&full).await.contains(&"extra".to_string()), "the new tool is listed after the notification");
    let nothing = tokio::time::timeout(Duration::from_secs(1), narrow_sub.next()).await;
    assert!(nothing.is_err(), "a key that cannot see `extra` was told of it: {nothing:?}");
    let _ = full_sub.cancel().await;
    let _ = narrow_sub.cancel().await;
}

/// A subscription lasts until its client leaves; SIGTERM ends it with the
/// final listen result instead of letting it hold the drain for the whole
/// grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_a_subscription_and_does_not_wait_out_the_grace_period() {
    let mock = MockUpstream::start().await;
    let mut proxy = start_binary(&mock.base_url(), &[("SERVER_GRACE_PERIOD_SECONDS", "30"), ("AUTH_KEYS", "key-0501")]);
    let mcp = connect_modern(&proxy.url(), "key-0501").await;
    let mut sub = listen(&mcp).await;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(proxy.child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let started = std::time::Instant::now();
    let ended = tokio::time::timeout(WAIT, sub.next()).await.unwrap_or_else(|_| panic!("the subscription went on"));
    assert!(matches!(ended, Ok(None)), "{ended:?}");
    assert!(matches!(sub.end(), Some(SubscriptionEnd::Graceful(_))), "ended with the final result: {:?}", sub.end());
    assert_eq!(wait_exit(&mut proxy.child, Duration::from_secs(10)), Some(0));
    assert!(started.elapsed() < Duration::from_secs(15), "sat out the grace period");
}
