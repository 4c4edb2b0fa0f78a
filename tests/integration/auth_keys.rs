//! Client keys: without a valid key every route but `/` and `/healthz` is a
//! 401 in OpenAI's shape; a key's tool allow-list limits both what the model
//! is offered and what it can call; the client's key never goes upstream.

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::scratch::ScratchFile;
use crate::common::{client, start_proxy, start_proxy_with_tools};
use serde_json::{json, Value};

fn keys_file(body: &str) -> ScratchFile {
    ScratchFile::new("keys.toml", body)
}

async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_welcome_and_health_needs_a_key() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("AUTH_KEYS", "client-key-0001"), ("OPENAI_API_KEY", "sk-upstream")]);
    let c = client();
    let base = proxy.base_url();
    let cases = [
        c.get(format!("{base}/models")),
        c.post(format!("{base}/chat/completions")).json(&json!({"model": "m", "messages": []})),
        c.post(format!("{base}/embeddings")).json(&json!({"model": "m", "input": "x"})),
        c.post(format!("{}/chat", proxy.url)).json(&json!({"message": "hi"})),
        c.get(format!("{}/chat/some-id", proxy.url)),
    ];
    for req in cases {
        for auth in [None, Some("Bearer wrong-key-123"), Some("client-key-0001")] {
            let req = req.try_clone().unwrap_or_else(|| panic!("clone"));
            let req = match auth {
                Some(a) => req.header("authorization", a),
                None => req,
            };
            let (status, v) = send(req).await;
            assert_eq!(status, 401, "{auth:?}: {v}");
            assert_eq!(v["error"]["code"], "invalid_api_key");
            assert_eq!(v["error"]["type"], "invalid_request_error");
            assert!(!v.to_string().contains("wrong-key-123"), "the presented key is not echoed");
        }
    }
    assert!(mock.requests().is_empty(), "nothing reached the upstream");
    assert_eq!(c.get(&proxy.url).send().await.map(|r| r.status().as_u16()).unwrap_or(0), 200);
    assert_eq!(c.get(format!("{}/healthz", proxy.url)).send().await.map(|r| r.status().as_u16()).unwrap_or(0), 200);

    mock.push(Reply::chat("welcome"));
    let (status, v) = send(
        c.post(format!("{base}/chat/completions"))
            .bearer_auth("client-key-0001")
            .json(&json!({"model": "m", "messages": []})),
    )
    .await;
    assert_eq!((status, v["choices"][0]["message"]["content"].as_str()), (200, Some("welcome")));
    assert_eq!(mock.requests()[0].header("authorization").as_deref(), Some("Bearer sk-upstream"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_keys_and_no_upstream_key_the_client_key_is_not_forwarded() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("AUTH_KEYS", "client-key-0002")]);
    mock.push(Reply::chat("ok"));
    let (status, _) = send(
        client()
            .post(format!("{}/chat/completions", proxy.base_url()))
            .bearer_auth("client-key-0002")
            .json(&json!({"model": "m", "messages": []})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(mock.requests()[0].header("authorization"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_allow_list_limits_the_catalog_and_the_calls() {
    let file = keys_file(
        "[[key]]\nname = \"limited\"\nkey = \"${LIMITED_KEY_FOR_TEST}\"\ntools = [\"test__echo\"]\n\n[[key]]\nname = \"full\"\nkey = \"full-key-0004\"\n",
    );
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(
        &mock.base_url(),
        "echo,add,pid",
        &[("AUTH_KEYS_FILE", file.as_str()), ("LIMITED_KEY_FOR_TEST", "limited-key-0003")],
    );

    // The limited key is offered echo only, and a guessed `add` is refused.
    mock.push(Reply::tool_calls(&[("a", "add", json!({"a": 1, "b": 2})), ("e", "echo", json!({"text": "fine"}))]));
    mock.push(Reply::chat("done"));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _) = send(
        client().post(format!("{}/chat/completions", proxy.base_url())).bearer_auth("limited-key-0003").json(&body),
    )
    .await;
    assert_eq!(status, 200);
    let seen = mock.requests();
    let offered: Vec<String> = seen[0].json()["tools"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(offered, ["echo"]);
    let results: Vec<Value> = seen[1].json()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    assert!(results[0]["content"].as_str().unwrap_or("").contains("not allowed"), "{results:?}");
    assert_eq!(results[1]["content"], "fine");

    // The full key sees every tool.
    mock.push(Reply::chat("all"));
    let (status, _) =
        send(client().post(format!("{}/chat/completions", proxy.base_url())).bearer_auth("full-key-0004").json(&body))
            .await;
    assert_eq!(status, 200);
    let offered = mock.requests()[2].json()["tools"].as_array().map(Vec::len).unwrap_or(0);
    assert_eq!(offered, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_sessions_belong_to_their_key() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("AUTH_KEYS", "key-one-0005,key-two-0006")]);
    mock.push(Reply::chat("hello"));
    let (_, v) =
        send(client().post(format!("{}/chat", proxy.url)).bearer_auth("key-one-0005").json(&json!({"message": "hi"})))
            .await;
    let id = v["session_id"].as_str().unwrap_or_default().to_string();
    let (status, _) = send(client().get(format!("{}/chat/{id}", proxy.url)).bearer_auth("key-two-0006")).await;
    assert_eq!(status, 404);
    let (status, _) = send(
        client()
            .post(format!("{}/chat", proxy.url))
            .bearer_auth("key-two-0006")
            .json(&json!({"message": "x", "session_id": id})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(client().get(format!("{}/chat/{id}", proxy.url)).bearer_auth("key-one-0005")).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_key_calling_an_unknown_tool_learns_only_the_tools_it_may_use() {
    let file = keys_file("[[key]]\nname = \"limited\"\nkey = \"limited-key-0007\"\ntools = [\"test__echo\"]\n");
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo,add,pid", &[("AUTH_KEYS_FILE", file.as_str())]);
    mock.push(Reply::tool_calls(&[("u", "launch_rockets", json!({}))]));
    mock.push(Reply::chat("cannot"));
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    let (status, _) = send(
        client().post(format!("{}/chat/completions", proxy.base_url())).bearer_auth("limited-key-0007").json(&body),
    )
    .await;
    assert_eq!(status, 200);
    let second = mock.requests()[1].json();
    let result = second["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "tool"))
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(result.contains("unknown tool") && result.contains("echo"), "{result}");
    assert!(!result.contains("add") && !result.contains("pid"), "tools the key may not use were named: {result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_scheme_is_case_insensitive() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("AUTH_KEYS", "client-key-0008")]);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        mock.push(Reply::json(200, json!({"object": "list", "data": []})));
        let (status, v) = send(
            client()
                .get(format!("{}/models", proxy.base_url()))
                .header("authorization", format!("{scheme} client-key-0008")),
        )
        .await;
        assert_eq!(status, 200, "{scheme}: {v}");
    }
    let (status, _) =
        send(client().get(format!("{}/models", proxy.base_url())).header("authorization", "Basic client-key-0008"))
            .await;
    assert_eq!(status, 401, "another scheme is no key");
}
