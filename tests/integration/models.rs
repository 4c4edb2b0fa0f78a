//! `GET /v1/models`: the upstream's list when it has one, a list holding
//! `DEFAULT_MODEL` when it cannot answer, so clients that list models on start
//! keep working; auth errors still surface.

use crate::common;

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{client, free_port, start_proxy};
use serde_json::{json, Value};

async fn models(proxy: &common::Proxy) -> (u16, Value) {
    let r = client().get(format!("{}/models", proxy.base_url())).send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_upstream_list_is_passed_through() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("DEFAULT_MODEL", "fallback-model")]);
    let list = json!({"object": "list", "data": [{"id": "real-1", "object": "model", "created": 1, "owned_by": "x"}]});
    mock.push(Reply::json(200, list.clone()));
    assert_eq!(models(&proxy).await, (200, list));
}

#[tokio::test]
async fn a_failing_upstream_gives_the_default_model() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("DEFAULT_MODEL", "llama-3-8b")]);
    mock.push(Reply::error(500, "boom", "server_error"));
    mock.push(Reply::status(404).bytes("not here"));
    for (i, what) in ["500", "404"].iter().enumerate() {
        let (status, v) = models(&proxy).await;
        assert_eq!(status, 200, "after a {what}");
        let ids: Vec<&str> =
            v["data"].as_array().map(|d| d.iter().filter_map(|m| m["id"].as_str()).collect()).unwrap_or_default();
        assert_eq!((v["object"].as_str(), ids), (Some("list"), vec!["llama-3-8b"]), "after a {what}: {v}");
        assert_eq!(v["data"][0]["object"], "model", "{v}");
        assert_eq!(mock.requests().len(), i + 1, "the upstream was asked first");
    }
}

#[tokio::test]
async fn an_unreachable_upstream_gives_the_default_model() {
    let dead = format!("http://127.0.0.1:{}/v1", free_port());
    let proxy = start_proxy(&dead, &[("DEFAULT_MODEL", "offline-model")]);
    let (status, v) = models(&proxy).await;
    assert_eq!(status, 200);
    assert_eq!(v["data"][0]["id"], "offline-model");
}

#[tokio::test]
async fn a_bad_key_still_surfaces_as_401() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::error(401, "Incorrect API key provided", "invalid_request_error"));
    let (status, v) = models(&proxy).await;
    assert_eq!(status, 401);
    assert_eq!(v["error"]["message"], "Incorrect API key provided");
}
