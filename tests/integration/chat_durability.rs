//! "Nothing lost": a `/chat` turn the client saw complete survives `kill -9`
//! of the proxy at any moment; an interrupted turn is absent or marked
//! incomplete, never corrupt; the SQLite file passes `PRAGMA integrity_check`.

use crate::common;

use std::time::Duration;

use crate::common::binary::{scratch_dir, start_binary_in, Running};
use crate::common::client;
use crate::common::mock_upstream::{MockUpstream, Reply};
use futures_util::StreamExt;
use serde_json::{json, Value};

fn store(dir: &std::path::Path) -> String {
    format!("sqlite:{}/sessions.db", dir.display())
}

async fn turn(proxy: &Running, message: &str, session: Option<&str>) -> Value {
    let mut body = json!({"message": message});
    if let Some(id) = session {
        body["session_id"] = json!(id);
    }
    let r = client().post(format!("{}/chat", proxy.url())).json(&body).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    r.json().await.unwrap_or_default()
}

async fn history(proxy: &Running, id: &str) -> Vec<Value> {
    let r = client().get(format!("{}/chat/{id}", proxy.url())).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200, "the session survived");
    let v: Value = r.json().await.unwrap_or_default();
    v["messages"].as_array().cloned().unwrap_or_default()
}

/// (role, content, incomplete) of each stored message.
fn summary(messages: &[Value]) -> Vec<(String, String, bool)> {
    messages
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or("").to_string();
            (s("role"), s("content"), m["incomplete"] == true)
        })
        .collect()
}

fn owned(v: &[(&str, &str, bool)]) -> Vec<(String, String, bool)> {
    v.iter().map(|(r, c, i)| (r.to_string(), c.to_string(), *i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_turns_survive_kill_9_at_every_point() {
    let mock = MockUpstream::start().await;
    let dir = scratch_dir();
    let env = [("SESSION_STORE", store(&dir))];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();

    // 1. Two complete turns, then kill -9 while idle.
    let mut proxy = start_binary_in(&dir, &mock.base_url(), &env);
    mock.push(Reply::chat("answer one"));
    let id = turn(&proxy, "one", None).await["session_id"].as_str().unwrap_or_default().to_string();
    mock.push(Reply::chat_stream(&["answer ", "two"], Duration::from_millis(5)));
    let r = client()
        .post(format!("{}/chat", proxy.url()))
        .json(&json!({"message": "two", "session_id": id, "stream": true}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let streamed = r.text().await.unwrap_or_default();
    assert!(streamed.trim_end().ends_with("[DONE]"), "{streamed}");
    proxy.kill9();

    let mut proxy = start_binary_in(&dir, &mock.base_url(), &env);
    let expected_two = owned(&[
        ("user", "one", false),
        ("assistant", "answer one", false),
        ("user", "two", false),
        ("assistant", "answer two", false),
    ]);
    assert_eq!(summary(&history(&proxy, &id).await), expected_two);

    // 2. kill -9 while the upstream is thinking: the user's message was
    //    stored before the upstream was called; the turn is marked incomplete.
    mock.push(Reply::chat("never delivered").head_delay(Duration::from_secs(30)));
    let pending = tokio::spawn({
        let (url, id) = (proxy.url(), id.clone());
        async move {
            client()
                .post(format!("{url}/chat"))
                .json(&json!({"message": "three", "session_id": id}))
                .send()
                .await
                .map(|r| r.status())
        }
    });
    mock.wait_requests(3).await;
    proxy.kill9();
    assert!(pending.await.ok().and_then(Result::ok).is_none(), "the client saw no answer");

    let mut proxy = start_binary_in(&dir, &mock.base_url(), &env);
    let mut expected = expected_two.clone();
    expected.push(("user".into(), "three".into(), true));
    assert_eq!(summary(&history(&proxy, &id).await), expected);

    // 3. kill -9 in the middle of a streamed answer.
    let (release, gate) = tokio::sync::oneshot::channel::<()>();
    mock.push(
        Reply::sse()
            .event(common::mock_upstream::chunk(json!({"role": "assistant", "content": "half"}), None))
            .gate(gate),
    );
    let r = client()
        .post(format!("{}/chat", proxy.url()))
        .json(&json!({"message": "four", "session_id": id, "stream": true}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut body = r.bytes_stream();
    let first = body.next().await;
    assert!(first.is_some_and(|c| c.is_ok()), "the stream had started");
    proxy.kill9();
    drop(release);
    let rest: Vec<_> = body.collect().await;
    assert!(
        rest.iter().any(Result::is_err) || !rest.iter().flatten().any(|b| b.windows(6).any(|w| w == b"[DONE]")),
        "no [DONE] for a killed stream"
    );

    // 4. After every crash: completed turns intact, interrupted ones marked,
    //    the session still usable, and the file consistent.
    let proxy = start_binary_in(&dir, &mock.base_url(), &env);
    expected.push(("user".into(), "four".into(), true));
    assert_eq!(summary(&history(&proxy, &id).await), expected);
    mock.push(Reply::chat("answer five"));
    let five = turn(&proxy, "five", Some(&id)).await;
    assert_eq!(five["response"], "answer five");
    let last = mock.requests().last().map(|r| r.json()).unwrap_or_default();
    let sent: Vec<&str> = last["messages"]
        .as_array()
        .map(|m| m.iter().filter_map(|x| x["content"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        sent.contains(&"answer two") && !sent.contains(&"three"),
        "incomplete turns stay out of the context: {sent:?}"
    );
    drop(proxy);

    let conn = rusqlite::Connection::open(dir.join("sessions.db")).unwrap_or_else(|e| panic!("{e}"));
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check, "ok");
}
