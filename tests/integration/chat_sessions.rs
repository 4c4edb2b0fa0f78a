//! `POST /chat` with server-side sessions (SQLite): multi-turn memory,
//! tool results remembered, history, delete, 404s, expiry, serialised turns
//! and streaming.

use crate::common;

use std::time::Duration;

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{client, start_proxy, start_proxy_with_tools};
use serde_json::{json, Value};

async fn post(proxy: &common::Proxy, body: Value) -> (u16, Value) {
    let r = client().post(format!("{}/chat", proxy.url)).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_two_sees_turn_ones_tool_result() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo,add", &[("DEFAULT_MODEL", "the-default")]);
    mock.push(Reply::tool_calls(&[("c1", "add", json!({"a": 19, "b": 23}))]));
    mock.push(Reply::chat("19 + 23 = 42."));
    let (status, first) = post(&proxy, json!({"message": "What is 19 + 23?"})).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["response"], "19 + 23 = 42.");
    let id = first["session_id"].as_str().unwrap_or_default().to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok_and(|u| u.get_version_num() == 4), "{id}");

    mock.push(Reply::chat("Doubled, that is 84."));
    let (status, second) = post(&proxy, json!({"message": "Double the tool's result.", "session_id": id})).await;
    assert_eq!((status, second["session_id"].as_str()), (200, Some(id.as_str())), "{second}");

    let seen = mock.requests();
    assert_eq!(seen[0].json()["model"], "the-default");
    let turn2 = seen[2].json();
    let msgs = turn2["messages"].as_array().cloned().unwrap_or_default();
    let roles: Vec<&str> = msgs.iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "assistant", "user"], "{turn2}");
    assert_eq!(msgs[3]["content"], "42", "the earlier tool result is in the context");
    assert_eq!(msgs[4]["content"], "19 + 23 = 42.");
    assert_eq!(msgs[5]["content"], "Double the tool's result.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_delete_and_unknown_ids() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat("hello!"));
    let (_, first) = post(&proxy, json!({"message": "hi"})).await;
    let id = first["session_id"].as_str().unwrap_or_default().to_string();

    let h: Value = client()
        .get(format!("{}/chat/{id}", proxy.url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let msgs = h["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(msgs.len(), 2, "{h}");
    assert_eq!((msgs[0]["role"].as_str(), msgs[0]["content"].as_str()), (Some("user"), Some("hi")));
    assert_eq!((msgs[1]["role"].as_str(), msgs[1]["content"].as_str()), (Some("assistant"), Some("hello!")));

    let (status, err) =
        post(&proxy, json!({"message": "hi", "session_id": "00000000-0000-4000-8000-000000000000"})).await;
    assert_eq!(status, 404, "an unknown id is never silently a new session");
    assert_eq!(err["error"]["code"], "session_not_found");
    assert_eq!(mock.requests().len(), 1);

    let del = client().delete(format!("{}/chat/{id}", proxy.url)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(del.status(), 204);
    let gone = client().get(format!("{}/chat/{id}", proxy.url)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gone.status(), 404);
    let (status, _) = post(&proxy, json!({"message": "still there?", "session_id": id})).await;
    assert_eq!(status, 404);

    let (status, bad) = post(&proxy, json!({"msg": "typo"})).await;
    assert_eq!(status, 400, "{bad}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_belongs_to_the_key_that_made_it() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat("mine"));
    let r = client()
        .post(format!("{}/chat", proxy.url))
        .bearer_auth("key-a")
        .json(&json!({"message": "hi"}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let id = r.json::<Value>().await.unwrap_or_default()["session_id"].as_str().unwrap_or_default().to_string();
    let other = client()
        .get(format!("{}/chat/{id}", proxy.url))
        .bearer_auth("key-b")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other.status(), 404);
    let own = client()
        .get(format!("{}/chat/{id}", proxy.url))
        .bearer_auth("key-a")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(own.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sessions_expire() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("SESSION_TTL_SECONDS", "1")]);
    mock.push(Reply::chat("soon gone"));
    let (_, first) = post(&proxy, json!({"message": "hi"})).await;
    let id = first["session_id"].as_str().unwrap_or_default().to_string();
    let url = format!("{}/chat/{id}", proxy.url);
    assert_eq!(client().get(&url).send().await.map(|r| r.status().as_u16()).unwrap_or(0), 200);
    let mut expired = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if client().get(&url).send().await.map(|r| r.status().as_u16()).unwrap_or(0) == 404 {
            expired = true;
            break;
        }
    }
    // Each GET refreshes the expiry, so the loop above must outlast a full idle TTL.
    if !expired {
        tokio::time::sleep(Duration::from_millis(2100)).await;
        expired = client().get(&url).send().await.map(|r| r.status().as_u16()).unwrap_or(0) == 404;
    }
    assert!(expired, "the session should expire after 1 s idle");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_turns_on_one_session_are_serialised() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat("first"));
    let (_, first) = post(&proxy, json!({"message": "start"})).await;
    let id = first["session_id"].as_str().unwrap_or_default().to_string();

    // Turn A answers slowly; turn B must wait for it and see it.
    mock.push(Reply::chat("answer A").head_delay(Duration::from_millis(600)));
    mock.push(Reply::chat("answer B"));
    let a = tokio::spawn({
        let (url, id) = (proxy.url.clone(), id.clone());
        async move {
            client()
                .post(format!("{url}/chat"))
                .json(&json!({"message": "A", "session_id": id}))
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let (status_b, b) = post(&proxy, json!({"message": "B", "session_id": id})).await;
    assert_eq!(status_b, 200, "{b}");
    assert_eq!(a.await.ok().and_then(Result::ok), Some(200));

    let seen = mock.requests();
    let last = seen[2].json();
    let texts: Vec<String> = last["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|m| m["content"].as_str().map(str::to_string))
        .collect();
    assert!(texts.contains(&"A".to_string()) && texts.contains(&"answer A".to_string()), "B saw A's turn: {texts:?}");
    assert_eq!(texts.last().map(String::as_str), Some("B"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_chat_ends_with_the_session_id() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo", &[]);
    mock.push(Reply::tool_calls_stream(&[("c", "echo", json!({"text": "x"}))]));
    mock.push(Reply::chat_stream(&["Hi ", "there"], Duration::from_millis(5)));
    let r = client()
        .post(format!("{}/chat", proxy.url))
        .json(&json!({"message": "hi", "stream": true}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap_or_default();
    let data: Vec<&str> = text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect();
    assert_eq!(data.last().copied(), Some("[DONE]"));
    let session: Value = serde_json::from_str(data[data.len() - 2]).unwrap_or_default();
    assert_eq!(session["object"], "chat.session");
    let id = session["session_id"].as_str().unwrap_or_default().to_string();
    let content: String = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_string))
        .collect();
    assert_eq!(content, "Hi there");
    let h: Value = client()
        .get(format!("{}/chat/{id}", proxy.url))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or_default();
    let roles: Vec<&str> =
        h["messages"].as_array().map(|m| m.iter().filter_map(|x| x["role"].as_str()).collect()).unwrap_or_default();
    assert_eq!(roles, ["user", "assistant", "tool", "assistant"], "{h}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_checks_the_mcp_headers_as_the_openai_routes_do() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo", &[]);
    for (name, value) in [("x-mcp-tool-mode", "nativ"), ("x-mcp-tools", "maybe")] {
        let r = client()
            .post(format!("{}/chat", proxy.url))
            .header(name, value)
            .json(&json!({"message": "hi"}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 400, "{name}: {value}");
        let v: Value = r.json().await.unwrap_or_default();
        assert_eq!(v["error"]["param"], name, "{v}");
    }
    assert!(mock.requests().is_empty(), "nothing reached the upstream");
    // Values are case-insensitive, as on /v1.
    for (name, value, tools_sent) in [("x-mcp-tools", "OFF", false), ("x-mcp-tool-mode", "Prompt", false)] {
        mock.push(Reply::chat("ok"));
        let r = client()
            .post(format!("{}/chat", proxy.url))
            .header(name, value)
            .json(&json!({"message": "hi"}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 200, "{name}: {value}");
        let sent = mock.requests().pop().map(|r| r.json()).unwrap_or_default();
        assert_eq!(sent.get("tools").is_some(), tools_sent, "{name}: {value}: {sent}");
        let system = sent["messages"][0]["content"].as_str().unwrap_or("").to_string();
        assert_eq!(system.contains("## echo"), value == "Prompt", "{name}: {value}: {system}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_answer_is_marked_so_clients_can_say_so() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat(""));
    let (status, v) = post(&proxy, json!({"message": "hi"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["response"], "");
    assert_eq!(v["empty"], true, "{v}");

    mock.push(Reply::chat_stream(&[""], Duration::ZERO));
    let r = client()
        .post(format!("{}/chat", proxy.url))
        .json(&json!({"message": "hi", "stream": true}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let text = r.text().await.unwrap_or_default();
    let session = text
        .split("\n\n")
        .filter_map(|e| e.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|v| v["object"] == "chat.session")
        .unwrap_or_else(|| panic!("no chat.session event: {text}"));
    assert_eq!(session["empty"], true, "{session}");

    mock.push(Reply::chat("Something."));
    let (_, v) = post(&proxy, json!({"message": "hi"})).await;
    assert!(v.get("empty").is_none_or(|e| e == false), "{v}");
}
