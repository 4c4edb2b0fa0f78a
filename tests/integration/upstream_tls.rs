//! An https upstream: rustls, SNI and certificate check against the URL's
//! host, for both the transparent path (pingora) and the tool loop (reqwest).

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{client, start_proxy, start_proxy_with_tools};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_requests_reach_an_https_upstream_with_a_private_ca() {
    let (mock, ca) = MockUpstream::start_tls().await;
    let base = format!("https://localhost:{}/v1", mock.addr.port());
    let proxy = start_proxy(&base, &[("UPSTREAM_CA_FILE", ca.as_str()), ("OPENAI_API_KEY", "sk-tls")]);
    mock.push(Reply::chat("over TLS"));
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap_or_default();
    assert_eq!(v["choices"][0]["message"]["content"], "over TLS");
    let seen = &mock.requests()[0];
    assert_eq!(seen.header("host"), Some(format!("localhost:{}", mock.addr.port())));
    assert_eq!(seen.header("authorization").as_deref(), Some("Bearer sk-tls"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tool_loop_reaches_an_https_upstream_too() {
    let (mock, ca) = MockUpstream::start_tls().await;
    let base = format!("https://localhost:{}/v1", mock.addr.port());
    let proxy = start_proxy_with_tools(&base, "echo", &[("UPSTREAM_CA_FILE", ca.as_str())]);
    mock.push(Reply::tool_calls(&[("c", "echo", json!({"text": "secure"}))]));
    mock.push(Reply::chat("done securely"));
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let v: Value = r.json().await.unwrap_or_default();
    assert_eq!(v["choices"][0]["message"]["content"], "done securely", "{v}");
    assert_eq!(mock.requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_certificate_is_refused_with_a_502() {
    let (mock, _ca) = MockUpstream::start_tls().await;
    let base = format!("https://localhost:{}/v1", mock.addr.port());
    let proxy = start_proxy(&base, &[]);
    mock.push(Reply::chat("must not be seen"));
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .json(&json!({"model": "m", "messages": []}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 502);
    let v: Value = r.json().await.unwrap_or_default();
    assert_eq!(v["error"]["code"], "upstream_unreachable");
    assert!(mock.requests().is_empty());
}
