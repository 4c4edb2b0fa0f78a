//! Tool names across several servers: unique names kept, collisions
//! prefixed, and each name reaching the right server.

use crate::common::mcp::{hub, quick_settings, start_remote, stdio_entry, url};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colliding_names_get_a_server_prefix_and_reach_their_own_server() {
    let remote = start_remote("http", 0, &["--tools", "echo,add,pid"]);
    let servers = json!({
        "local": stdio_entry(&["--tools", "echo,sleep,pid"]),
        "remote": {"type": "streamable-http", "url": url("http", remote.port)},
    });
    let hub = hub(servers, quick_settings()).await;
    let names: Vec<String> = hub.catalog().tools().iter().map(|t| t.name.clone()).collect();
    assert_eq!(names, ["add", "local__echo", "local__pid", "remote__echo", "remote__pid", "sleep"]);

    let local_pid = hub.call("local__pid", json!({})).await.text;
    let remote_pid = hub.call("remote__pid", json!({})).await.text;
    assert_eq!(remote_pid, remote.child.id().to_string());
    assert_ne!(local_pid, remote_pid);
    assert_eq!(hub.call("remote__echo", json!({"text": "r"})).await.text, "r");
    assert!(hub.call("echo", json!({"text": "x"})).await.is_error, "the bare colliding name is not exposed");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_server_that_does_not_collide_keeps_every_name() {
    let one = hub(json!({"a": stdio_entry(&["--tools", "echo,add"])}), quick_settings()).await;
    let before: Vec<String> = one.catalog().tools().iter().map(|t| t.name.clone()).collect();
    one.shutdown().await;
    let two = hub(
        json!({"a": stdio_entry(&["--tools", "echo,add"]), "b": stdio_entry(&["--tools", "sleep"])}),
        quick_settings(),
    )
    .await;
    let after: Vec<String> = two.catalog().tools().iter().map(|t| t.name.clone()).collect();
    assert_eq!(before, ["add", "echo"]);
    assert_eq!(after, ["add", "echo", "sleep"]);
    two.shutdown().await;
}
