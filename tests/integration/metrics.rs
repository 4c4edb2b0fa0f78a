//! `/metrics`: read with promtool and the Prometheus Python parser, the
//! counters move by exactly what the requests did (requests, upstream
//! attempts and retries, rounds, tokens, tool calls by outcome); label
//! values are the configuration's, never a client's input or a secret; the
//! route can be turned off or moved to a listener of its own; and a real
//! Prometheus server scrapes the proxy.

use std::time::Duration;

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::prometheus::{scrape, Prometheus, Scrape};
use crate::common::scratch::ScratchFile;
use crate::common::{client, free_port, mcp, start_proxy, write_servers, Proxy};
use serde_json::{json, Value};

const KEY: &str = "metrics-client-key-0001";
const UPSTREAM_KEY: &str = "sk-upstream-secret-0002";
const BEARER: &str = "Bearer metrics-client-key-0001";

/// Our test MCP server as `test` (a 1 s call timeout), and a server that
/// can never start as `broken`.
fn proxy(mock: &MockUpstream, extra: &[(&str, &str)]) -> (Proxy, ScratchFile) {
    let servers = write_servers(json!({
        "test": {"command": mcp::test_server(), "args": ["stdio", "--tools", "echo,add,fail,sleep"], "timeout_seconds": 1},
        "broken": {"command": "/nonexistent/mcp-server"},
    }));
    let mut env = vec![
        ("MCP_SERVERS_CONFIG", servers.as_str()),
        ("AUTH_KEYS", KEY),
        ("OPENAI_API_KEY", UPSTREAM_KEY),
        ("UPSTREAM_RETRY_BACKOFF_MS", "10"),
    ];
    env.extend_from_slice(extra);
    (start_proxy(&mock.base_url(), &env), servers)
}

async fn post(proxy: &Proxy, path: &str, body: Value) -> (u16, Value) {
    let r = client()
        .post(format!("{}{path}", proxy.url))
        .header("authorization", BEARER)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

fn ask(text: &str) -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": text}]})
}

/// `after - before` of one series.
fn moved(before: &Scrape, after: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(name, labels) - before.value(name, labels)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_by_exactly_what_the_requests_did() {
    let mock = MockUpstream::start().await;
    let (proxy, _servers) = proxy(&mock, &[]);
    let url = format!("{}/metrics", proxy.url);
    let before = scrape(&url, Some(BEARER)).await;

    // One tool-loop request of three rounds (the first one answered 503
    // first, and repeated): echo (ok) and fail (tool error) at once, then
    // sleep past its 1 s timeout, then the answer.
    mock.push(Reply::error(503, "busy", "server_error").header("retry-after", "0"));
    mock.push(Reply::tool_calls(&[("c1", "echo", json!({"text": "hi"})), ("c2", "fail", json!({"message": "no"}))]));
    mock.push(Reply::tool_calls(&[("c3", "sleep", json!({"ms": 3000}))]));
    mock.push(Reply::chat("done"));
    let (status, out) = post(&proxy, "/v1/chat/completions", ask("go")).await;
    assert_eq!((status, out["choices"][0]["message"]["content"].as_str()), (200, Some("done")), "{out}");
    // One passthrough request that the upstream first answers 503: repeated once.
    mock.push(Reply::error(503, "busy", "server_error").header("retry-after", "0"));
    mock.push(Reply::json(200, json!({"object": "list", "data": []})));
    let (status, _) = post(&proxy, "/v1/embeddings", json!({"model": "e", "input": "x"})).await;
    assert_eq!(status, 200);
    // One local 404.
    let r = client().get(format!("{}/nowhere", proxy.url)).header("authorization", BEARER).send().await;
    assert_eq!(r.map(|r| r.status().as_u16()).unwrap_or(0), 404);

    let after = scrape(&url, Some(BEARER)).await;
    let m = |name: &str, labels: &[(&str, &str)]| moved(&before, &after, name, labels);
    let calls = "mcp_chat_proxy_tool_calls_total";
    assert_eq!(m(calls, &[("server", "test"), ("tool", "echo"), ("outcome", "ok")]), 1.0);
    assert_eq!(m(calls, &[("server", "test"), ("tool", "fail"), ("outcome", "tool_error")]), 1.0);
    assert_eq!(m(calls, &[("server", "test"), ("tool", "sleep"), ("outcome", "timeout")]), 1.0);
    assert_eq!(m(calls, &[]), 3.0, "no other call was counted");
    let took = "mcp_chat_proxy_tool_call_duration_seconds";
    assert_eq!(m(&format!("{took}_count"), &[("tool", "sleep")]), 1.0);
    assert!(m(&format!("{took}_sum"), &[("tool", "sleep")]) >= 1.0, "the timed-out call took its second");

    let requests = "mcp_chat_proxy_http_requests_total";
    let chat = [("route", "chat_completions"), ("surface", "chat_completions"), ("handled", "tool_loop")];
    assert_eq!(m(requests, &[chat[0], chat[1], chat[2], ("status", "2xx")]), 1.0);
    assert_eq!(m(requests, &[("route", "proxy"), ("handled", "passthrough"), ("status", "2xx")]), 1.0);
    assert_eq!(m(requests, &[("route", "not_found"), ("handled", "local"), ("status", "4xx")]), 1.0);
    // The first scrape finished before the second began; the second is still running.
    assert_eq!(m(requests, &[("route", "metrics")]), 1.0);
    assert_eq!(m(requests, &[]), 4.0);
    let duration = "mcp_chat_proxy_http_request_duration_seconds_count";
    assert_eq!(m(duration, &chat), 1.0);
    assert_eq!(m("mcp_chat_proxy_http_time_to_first_byte_seconds_count", &chat), 1.0);

    let attempts = "mcp_chat_proxy_upstream_attempts_total";
    assert_eq!(m(attempts, &[("path", "tool_loop"), ("status", "200")]), 3.0);
    assert_eq!(m(attempts, &[("path", "passthrough"), ("status", "503")]), 1.0);
    assert_eq!(m(attempts, &[("path", "passthrough"), ("status", "200")]), 1.0);
    assert_eq!(m("mcp_chat_proxy_upstream_retries_total", &[("path", "passthrough")]), 1.0);
    assert_eq!(m(attempts, &[("path", "tool_loop"), ("status", "503")]), 1.0);
    assert_eq!(m("mcp_chat_proxy_upstream_retries_total", &[("path", "tool_loop")]), 1.0);
    assert_eq!(m(attempts, &[]), 6.0);

    assert_eq!(m("mcp_chat_proxy_tool_loop_rounds_count", &[("surface", "chat_completions")]), 1.0);
    assert_eq!(m("mcp_chat_proxy_tool_loop_rounds_sum", &[("surface", "chat_completions")]), 3.0);
    // The mock reports 10 in / 3 out for a tool-call round and 5 / 7 for an answer.
    assert_eq!(m("mcp_chat_proxy_tokens_total", &[("direction", "input")]), 25.0);
    assert_eq!(m("mcp_chat_proxy_tokens_total", &[("direction", "output")]), 13.0);

    let state = "mcp_chat_proxy_mcp_server_state";
    assert_eq!(after.value(state, &[("server", "test"), ("state", "connected")]), 1.0);
    assert_eq!(after.value(state, &[("server", "test")]), 1.0, "one state at a time");
    assert_eq!(after.value(state, &[("server", "broken"), ("state", "failed")]), 1.0);
    assert_eq!(after.value("mcp_chat_proxy_mcp_server_tools", &[("server", "test"), ("transport", "stdio")]), 4.0);
    assert_eq!(after.value("mcp_chat_proxy_http_requests_in_flight", &[]), 1.0, "only the scrape itself");
    assert_eq!(after.value("mcp_chat_proxy_http_open_streams", &[]), 0.0);

    assert_eq!(after.kind("mcp_chat_proxy_tool_calls"), Some("counter"));
    assert_eq!(after.kind("mcp_chat_proxy_http_request_duration_seconds"), Some("histogram"));
    assert_eq!(after.kind("mcp_chat_proxy_mcp_server_state"), Some("gauge"));
    for secret in [KEY, UPSTREAM_KEY] {
        assert!(!after.text.contains(secret), "a secret in /metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_unknown_calls_are_counted_without_the_models_names() {
    let keys = ScratchFile::new(
        "keys.toml",
        "[[key]]\nname = \"limited\"\nkey = \"limited-key-0003\"\ntools = [\"test__echo\"]\n",
    );
    let mock = MockUpstream::start().await;
    let (proxy, _servers) = proxy(&mock, &[("AUTH_KEYS", ""), ("AUTH_KEYS_FILE", keys.as_str())]);
    let url = format!("{}/metrics", proxy.url);
    let limited = "Bearer limited-key-0003";
    let before = scrape(&url, Some(limited)).await;
    mock.push(Reply::tool_calls(&[("c1", "add", json!({"a": 1, "b": 2})), ("c2", "launch_rockets_9f3", json!({}))]));
    mock.push(Reply::chat("cannot"));
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("authorization", limited)
        .json(&ask("add"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    let after = scrape(&url, Some(limited)).await;
    let calls = "mcp_chat_proxy_tool_calls_total";
    let m = |labels: &[(&str, &str)]| moved(&before, &after, calls, labels);
    assert_eq!(m(&[("server", "test"), ("tool", "add"), ("outcome", "refused")]), 1.0);
    assert_eq!(m(&[("server", "(unknown)"), ("tool", "(unknown)"), ("outcome", "refused")]), 1.0);
    assert_eq!(m(&[]), 2.0, "neither reached the server");
    assert!(!after.text.contains("launch_rockets_9f3"), "a name the model made up became a label");
    assert!(!after.text.contains("limited-key-0003"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_is_counted_while_it_streams() {
    let mock = MockUpstream::start().await;
    let (proxy, _servers) = proxy(&mock, &[]);
    let url = format!("{}/metrics", proxy.url);
    let streams = "mcp_chat_proxy_http_open_streams";
    for (path, label) in [("/v1/chat/completions", "tool_loop"), ("/v1/completions", "passthrough")] {
        mock.push(Reply::chat_stream(&["one", "two"], Duration::from_millis(1500)));
        let mut body = ask("stream");
        body["stream"] = json!(true);
        let mut resp = client()
            .post(format!("{}{path}", proxy.url))
            .header("authorization", BEARER)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(resp.status(), 200);
        let first = resp.chunk().await.unwrap_or_else(|e| panic!("{e}"));
        assert!(first.is_some(), "{label}: the stream started");
        let during = scrape(&url, Some(BEARER)).await;
        assert_eq!(during.value(streams, &[]), 1.0, "{label}: one stream open");
        assert_eq!(
            during.value("mcp_chat_proxy_http_requests_in_flight", &[]),
            2.0,
            "{label}: the stream and the scrape"
        );
        while let Ok(Some(_)) = resp.chunk().await {}
        drop(resp);
        // The request's end is counted when its log line is written, just after its last byte.
        let mut after = scrape(&url, Some(BEARER)).await;
        for _ in 0..20 {
            if after.value(streams, &[]) == 0.0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            after = scrape(&url, Some(BEARER)).await;
        }
        assert_eq!(after.value(streams, &[]), 0.0, "{label}: the stream closed");
        let done = [("handled", label), ("status", "2xx")];
        assert_eq!(after.value("mcp_chat_proxy_http_requests_total", &done), 1.0, "{label}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_route_needs_a_key_can_move_to_its_own_listener_or_be_off() {
    let mock = MockUpstream::start().await;
    let c = client();
    let status = |r: Result<reqwest::Response, reqwest::Error>| r.map(|r| r.status().as_u16()).unwrap_or(0);

    let (main, _s1) = proxy(&mock, &[]);
    assert_eq!(status(c.get(format!("{}/metrics", main.url)).send().await), 401, "keys are configured");
    assert_eq!(status(c.get(format!("{}/metrics", main.url)).header("authorization", BEARER).send().await), 200);
    assert_eq!(status(c.post(format!("{}/metrics", main.url)).header("authorization", BEARER).send().await), 405);

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let (own, _s2) = proxy(&mock, &[("METRICS_LISTEN", listen.as_str())]);
    let r = c.get(format!("{}/metrics", own.url)).header("authorization", BEARER).send().await;
    assert_eq!(status(r), 404, "not on the main port once it has its own");
    let scraped = scrape(&format!("http://{listen}/metrics"), None).await;
    assert_eq!(scraped.value("mcp_chat_proxy_mcp_server_state", &[("server", "test"), ("state", "connected")]), 1.0);
    assert_eq!(status(c.get(format!("http://{listen}/")).send().await), 404);
    let welcome: Value =
        c.get(&own.url).send().await.unwrap_or_else(|e| panic!("{e}")).json().await.unwrap_or_default();
    assert!(!welcome["endpoints"].to_string().contains("/metrics"), "{welcome}");

    let (off, _s3) = proxy(&mock, &[("METRICS_ENABLED", "false")]);
    let r = c.get(format!("{}/metrics", off.url)).header("authorization", BEARER).send().await;
    assert_eq!(status(r), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_tool_call_counter() {
    let mock = MockUpstream::start().await;
    let listen = format!("127.0.0.1:{}", free_port());
    let (proxy, _servers) = proxy(&mock, &[("METRICS_LISTEN", listen.as_str())]);
    let prometheus = Prometheus::start(&listen);
    let up = prometheus.query_until("up{job=\"proxy\"}", Duration::from_secs(60), |v| v == 1.0).await;
    assert_eq!(up, 1.0);

    mock.push(Reply::tool_calls(&[("c1", "echo", json!({"text": "scraped"}))]));
    mock.push(Reply::chat("echoed"));
    let (status, _) = post(&proxy, "/v1/chat/completions", ask("echo")).await;
    assert_eq!(status, 200);
    let query = "mcp_chat_proxy_tool_calls_total{server=\"test\",tool=\"echo\",outcome=\"ok\"}";
    let value = prometheus.query_until(query, Duration::from_secs(30), |v| v >= 1.0).await;
    assert_eq!(value, 1.0, "Prometheus reads the one call");
}
