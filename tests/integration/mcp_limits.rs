//! Per MCP server, calls run at most `max_concurrent_calls` at once; the
//! excess waits in a queue of `max_queued_calls`, and a call beyond that is
//! told at once, as a tool error, that the server is busy. Observed on our
//! test server, whose `sleep` counts how many run at once (`most_sleeping`).

use std::sync::Arc;
use std::time::Duration;

use crate::common::mcp::{eventually, hub, quick_settings, stdio_entry, test_server};
use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{client, start_proxy, write_servers};
use mcp_chat_proxy::mcp::{Hub, HubSettings, ToolOutput};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Long enough to wait for anything that should happen.
const WAIT: Duration = Duration::from_secs(10);

fn limited(max_concurrent_calls: usize, max_queued_calls: usize) -> HubSettings {
    HubSettings { max_concurrent_calls, max_queued_calls, ..quick_settings() }
}

/// Starts a call in its own task; it yields the output and when it came.
fn spawn_call(hub: &Arc<Hub>, tool: &str, arguments: Value) -> JoinHandle<(ToolOutput, Instant)> {
    let (hub, tool) = (hub.clone(), tool.to_string());
    tokio::spawn(async move {
        let out = hub.call(&tool, arguments).await;
        (out, Instant::now())
    })
}

/// `(running, queued)` of the server at `index`, as `/healthz` shows them.
fn load(hub: &Hub, index: usize) -> (usize, usize) {
    let s = &hub.status()[index];
    (s.running, s.queued)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_run_two_wait_and_the_rest_hear_at_once_that_the_server_is_busy() {
    let hub = hub(json!({"t": stdio_entry(&[])}), limited(2, 2)).await;
    let calls: Vec<_> = (0..6).map(|_| spawn_call(&hub, "sleep", json!({"ms": 1500}))).collect();
    let mut outcomes = Vec::new();
    for call in calls {
        outcomes.push(call.await.unwrap_or_else(|e| panic!("call task: {e}")));
    }
    let (mut slept, busy): (Vec<_>, Vec<_>) = outcomes.iter().partition(|(out, _)| !out.is_error);
    assert_eq!((slept.len(), busy.len()), (4, 2), "{outcomes:?}");
    assert!(slept.iter().all(|(out, _)| out.text == "slept 1500ms"), "{outcomes:?}");
    for (out, _) in &busy {
        let expected = "MCP server \"t\" is busy: 2 calls running and 2 waiting; try again later";
        assert_eq!(out.text, expected);
    }
    slept.sort_by_key(|(_, at)| *at);
    let first_done = slept[0].1;
    assert!(busy.iter().all(|(_, at)| *at < first_done), "the refused calls are answered before any sleep ends");
    // The two that waited started only when a slot came free, so they end a whole sleep later.
    assert!(slept[2].1 >= first_done + Duration::from_millis(1000), "{outcomes:?}");
    assert_eq!(hub.call("most_sleeping", json!({})).await.text, "2", "the server never ran more than 2 at once");
    assert_eq!(load(&hub, 0), (0, 0));
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_hangs_up_gives_back_its_place_in_the_queue_and_its_slot() {
    let hub = hub(json!({"t": stdio_entry(&[])}), limited(1, 1)).await;
    let running = spawn_call(&hub, "sleep", json!({"ms": 60_000}));
    assert!(eventually(WAIT, || load(&hub, 0) == (1, 0)).await, "{:?}", hub.status());
    let waiting = spawn_call(&hub, "sleep", json!({"ms": 10}));
    assert!(eventually(WAIT, || load(&hub, 0) == (1, 1)).await, "{:?}", hub.status());
    let turned_away = hub.call("echo", json!({"text": "full"})).await;
    assert!(turned_away.is_error && turned_away.text.contains("is busy"), "{}", turned_away.text);

    // The waiting caller hangs up (its request is dropped): its place is free again.
    waiting.abort();
    assert!(eventually(WAIT, || load(&hub, 0) == (1, 0)).await, "the place stays taken: {:?}", hub.status());
    let next = spawn_call(&hub, "echo", json!({"text": "my turn"}));
    assert!(eventually(WAIT, || load(&hub, 0) == (1, 1)).await, "{:?}", hub.status());

    // The running caller hangs up: its slot goes to the one waiting, long before the sleep would end.
    running.abort();
    let (out, _) = next.await.unwrap_or_else(|e| panic!("call task: {e}"));
    assert_eq!((out.text.as_str(), out.is_error), ("my turn", false));
    assert_eq!(load(&hub, 0), (0, 0));
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_servers_own_max_concurrent_calls_overrides_the_hub_default() {
    let mut entry = stdio_entry(&[]);
    entry["max_concurrent_calls"] = json!(1);
    let hub = hub(json!({"one_at_a_time": entry}), limited(4, 8)).await;
    let calls: Vec<_> = (0..3).map(|_| spawn_call(&hub, "sleep", json!({"ms": 300}))).collect();
    for call in calls {
        let (out, _) = call.await.unwrap_or_else(|e| panic!("call task: {e}"));
        assert_eq!((out.text.as_str(), out.is_error), ("slept 300ms", false));
    }
    assert_eq!(hub.call("most_sleeping", json!({})).await.text, "1");
    assert_eq!(hub.status()[0].max_concurrent_calls, 1, "/healthz shows the server's own limit");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_server_does_not_hold_up_another_servers_calls() {
    let servers = json!({"fast": stdio_entry(&["--tools", "echo"]), "slow": stdio_entry(&["--tools", "sleep"])});
    let hub = hub(servers, limited(1, 1)).await;
    let slow = [spawn_call(&hub, "sleep", json!({"ms": 60_000})), spawn_call(&hub, "sleep", json!({"ms": 60_000}))];
    let both = || load(&hub, 0).0 + load(&hub, 1).0 == 1 && load(&hub, 0).1 + load(&hub, 1).1 == 1;
    assert!(eventually(WAIT, both).await, "one sleep runs, one waits: {:?}", hub.status());
    let refused = hub.call("sleep", json!({"ms": 1})).await;
    assert!(refused.is_error && refused.text.contains("\"slow\" is busy"), "{}", refused.text);

    let out = hub.call("echo", json!({"text": "not blocked"})).await;
    assert_eq!((out.text.as_str(), out.is_error), ("not blocked", false));
    assert_eq!((load(&hub, 0), load(&hub, 1)), ((0, 0), (1, 1)), "the load is counted where it is");
    slow.iter().for_each(JoinHandle::abort);
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wait_in_the_queue_counts_against_the_call_timeout() {
    let mut entry = stdio_entry(&[]);
    entry["timeout_seconds"] = json!(3);
    let hub = hub(json!({"t": entry}), limited(1, 4)).await;
    let started = Instant::now();
    let first = spawn_call(&hub, "sleep", json!({"ms": 60_000}));
    assert!(eventually(WAIT, || load(&hub, 0) == (1, 0)).await, "{:?}", hub.status());
    let queued_at = Instant::now();
    let queued = hub.call("sleep", json!({"ms": 60_000})).await;
    let queued_took = queued_at.elapsed();
    let (first, first_done) = first.await.unwrap_or_else(|e| panic!("call task: {e}"));
    let first_took = first_done - started;

    assert!(first.is_error && first.text.contains("within 3 s"), "{}", first.text);
    assert!(queued.is_error && queued.text.contains("within 3 s"), "{}", queued.text);
    // Had the wait not counted, the queued call would have had 3 s more after its wait.
    assert!(queued_took < first_took + Duration::from_millis(1500), "queued {queued_took:?}, first {first_took:?}");
    hub.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_tool_loop_the_model_reads_which_calls_were_turned_away() {
    let mock = MockUpstream::start().await;
    let file = write_servers(json!({
        "t": {"command": test_server(), "args": ["stdio", "--tools", "sleep,most_sleeping"], "timeout_seconds": 20}
    }));
    let env = [("MCP_SERVERS_CONFIG", file.as_str()), ("MCP_MAX_CONCURRENT_CALLS", "2"), ("MCP_MAX_QUEUED_CALLS", "2")];
    let proxy = start_proxy(&mock.base_url(), &env);
    let ids: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    let six: Vec<_> = ids.iter().map(|id| (id.as_str(), "sleep", json!({"ms": 1000}))).collect();
    mock.push(Reply::tool_calls(&six));
    mock.push(Reply::tool_calls(&[("m", "most_sleeping", json!({}))]));
    mock.push(Reply::chat("done"));

    let body = json!({"model": "m", "messages": [{"role": "user", "content": "sleep six times"}]});
    let request = client().post(format!("{}/chat/completions", proxy.base_url())).json(&body).send();
    let request = tokio::spawn(request);
    let health = || async {
        let r = client().get(format!("{}/healthz", proxy.url)).send().await.unwrap_or_else(|e| panic!("{e}"));
        r.json::<Value>().await.unwrap_or_default()
    };
    let mut seen = Value::Null;
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline && !(seen["running"] == 2 && seen["queued"] == 2) {
        seen = health().await["mcp_servers"][0].clone();
    }
    assert_eq!((&seen["running"], &seen["queued"]), (&json!(2), &json!(2)), "/healthz shows the load: {seen}");

    let response = request.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status(), 200);
    let out: Value = response.json().await.unwrap_or_default();
    assert_eq!(out["choices"][0]["message"]["content"], "done", "{out}");
    let seen = mock.requests();
    let results: Vec<String> = tool_results(&seen[1].json());
    assert_eq!(results.iter().filter(|t| t.as_str() == "slept 1000ms").count(), 4, "{results:?}");
    let busy = results.iter().filter(|t| t.contains("\"t\" is busy: 2 calls running and 2 waiting")).count();
    assert_eq!(busy, 2, "{results:?}");
    assert_eq!(tool_results(&seen[2].json()).last().map(String::as_str), Some("2"), "never more than 2 at once");
}

/// The contents of the `tool` messages of an upstream request.
fn tool_results(request: &Value) -> Vec<String> {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    messages.iter().filter(|m| m["role"] == "tool").map(|m| m["content"].as_str().unwrap_or("").to_string()).collect()
}
