//! The Redis session store against a real `redis-server` that each test
//! starts on its own loopback port: history, owners, expiry, turn numbers
//! under concurrency, the cross-instance session lock, and `/chat` turns of
//! one session through two proxies sharing that Redis.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::mock_upstream::{completion, MockUpstream, Reply};
use crate::common::redis::RedisServer;
use mcp_chat_proxy::openai::chat::Message;
use mcp_chat_proxy::sessions::{open, SessionStore};
use serde_json::{json, Value};

const TTL: Duration = Duration::from_secs(60);

fn texts(messages: &[Message]) -> Vec<String> {
    messages.iter().map(|m| format!("{}:{}", m.role, m.content_text())).collect()
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn turns_are_stored_in_order_and_complete_atomically() {
    let redis = RedisServer::start();
    let store = redis.store(TTL).await;
    let id = ok(store.create("alice").await);
    assert!(uuid::Uuid::parse_str(&id).is_ok_and(|u| u.get_version_num() == 4), "{id}");
    let empty = ok(store.load(&id, "alice").await).unwrap_or_else(|| panic!("the new session loads"));
    assert!(empty.turns.is_empty());
    assert!(empty.created > 0 && empty.updated >= empty.created);

    assert_eq!(ok(store.begin_turn(&id, &Message::text("user", "one")).await), 1);
    ok(store.complete_turn(&id, 1, &[Message::text("assistant", "first")]).await);
    assert_eq!(ok(store.begin_turn(&id, &Message::text("user", "two")).await), 2);
    let mut call = Message::text("assistant", "");
    call.tool_calls = Some(vec![]);
    call.rest.insert("x-kept".into(), serde_json::json!({"unknown": "fields survive"}));
    let mut result = Message::text("tool", "42");
    result.tool_call_id = Some("c1".into());
    let answer = [call.clone(), result.clone(), Message::text("assistant", "second")];
    ok(store.complete_turn(&id, 2, &answer).await);
    assert_eq!(ok(store.begin_turn(&id, &Message::text("user", "three")).await), 3);

    let history = ok(store.load(&id, "alice").await).unwrap_or_else(|| panic!("still there"));
    let summary: Vec<(u64, bool, Vec<String>)> =
        history.turns.iter().map(|t| (t.number, t.complete, texts(&t.messages))).collect();
    assert_eq!(
        summary,
        [
            (1, true, vec!["user:one".to_string(), "assistant:first".into()]),
            (2, true, vec!["user:two".into(), "assistant:".into(), "tool:42".into(), "assistant:second".into()]),
            (3, false, vec!["user:three".into()]),
        ]
    );
    assert_eq!(history.turns[1].messages[1..], answer, "messages round-trip exactly, unknown fields included");

    let again = store.complete_turn(&id, 2, &[Message::text("assistant", "twice")]).await;
    assert!(again.is_err_and(|e| e.to_string().contains("already complete")));
    assert!(store.complete_turn(&id, 9, &[]).await.is_err(), "no turn 9");
    assert!(store.begin_turn("no-such-session", &Message::text("user", "x")).await.is_err());
    let unchanged = ok(store.load(&id, "alice").await).unwrap_or_else(|| panic!("still there"));
    assert_eq!(unchanged.turns, history.turns, "refused writes change nothing");
}

#[tokio::test]
async fn sessions_belong_to_their_owner() {
    let redis = RedisServer::start();
    let store = redis.store(TTL).await;
    let id = ok(store.create("alice").await);
    ok(store.begin_turn(&id, &Message::text("user", "secret")).await);

    assert_eq!(ok(store.load(&id, "mallory").await), None);
    assert_eq!(ok(store.load(&id, "").await), None);
    assert!(!ok(store.delete(&id, "mallory").await));
    assert!(ok(store.load(&id, "alice").await).is_some(), "a stranger's delete removed nothing");
    assert_eq!(ok(store.load(&uuid::Uuid::new_v4().to_string(), "alice").await), None);

    assert!(ok(store.delete(&id, "alice").await));
    assert_eq!(ok(store.load(&id, "alice").await), None);
    assert!(!ok(store.delete(&id, "alice").await), "already gone");
    assert_eq!(redis.keys_with(&id), Vec::<String>::new(), "delete leaves no key behind");

    let anonymous = ok(store.create("").await);
    assert!(ok(store.load(&anonymous, "").await).is_some(), "clients without a token own sessions too");
    assert_eq!(ok(store.load(&anonymous, "alice").await), None);
}

#[tokio::test]
async fn idle_sessions_expire_and_use_keeps_them() {
    let redis = RedisServer::start();
    let ttl = Duration::from_millis(1500);
    let store = redis.store(ttl).await;
    let id = ok(store.create("alice").await);
    ok(store.begin_turn(&id, &Message::text("user", "hi")).await);
    ok(store.complete_turn(&id, 1, &[Message::text("assistant", "hello")]).await);

    // Each load moves the expiry forward, so a session in use outlives its ttl.
    let started = Instant::now();
    while started.elapsed() < ttl * 2 {
        assert!(ok(store.load(&id, "alice").await).is_some(), "expired while in use");
        tokio::time::sleep(ttl / 5).await;
    }

    let idle = Instant::now();
    // Watched from outside: a load would refresh the expiry.
    while !redis.keys_with(&id).is_empty() {
        assert!(idle.elapsed() < ttl * 5, "the idle session never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(idle.elapsed() >= ttl / 2, "expired too early: {:?}", idle.elapsed());
    assert_eq!(ok(store.load(&id, "alice").await), None);
    assert_eq!(redis.keys_with(&id), Vec::<String>::new(), "every key of the session expired");
}

#[tokio::test]
async fn concurrent_turns_get_distinct_numbers_across_instances() {
    let redis = RedisServer::start();
    let (a, b) = (redis.store(TTL).await, redis.store(TTL).await);
    let id = ok(a.create("alice").await);
    let mut tasks = Vec::new();
    for k in 0..20 {
        let store = if k % 2 == 0 { a.clone() } else { b.clone() };
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            let n = ok(store.begin_turn(&id, &Message::text("user", format!("m{k}"))).await);
            (n, format!("user:m{k}"))
        }));
    }
    let mut numbered = Vec::new();
    for t in tasks {
        numbered.push(ok(t.await));
    }
    let mut numbers: Vec<u64> = numbered.iter().map(|(n, _)| *n).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=20).collect::<Vec<u64>>());

    let history = ok(b.load(&id, "alice").await).unwrap_or_else(|| panic!("loads"));
    assert_eq!(history.turns.len(), 20);
    for (n, text) in numbered {
        let turn = &history.turns[usize::try_from(n - 1).unwrap_or(0)];
        assert_eq!((turn.number, turn.complete, texts(&turn.messages)), (n, false, vec![text]));
    }
}

type Log = Arc<Mutex<Vec<String>>>;

fn note(log: &Log, line: String) {
    log.lock().unwrap_or_else(|p| p.into_inner()).push(line);
}

/// Takes the session's lock on `store`, notes it in `log`, holds it for
/// `hold`, notes the release, then drops the lock.
async fn hold_lock(store: Arc<dyn SessionStore>, id: String, name: &'static str, hold: Duration, log: Log) {
    let lock = ok(store.lock(&id).await);
    note(&log, format!("{name} acquired"));
    tokio::time::sleep(hold).await;
    note(&log, format!("{name} released"));
    drop(lock);
}

#[tokio::test]
async fn no_two_turns_overlap_across_instances() {
    let redis = RedisServer::start();
    let stores = [redis.store(TTL).await, redis.store(TTL).await];
    let id = ok(stores[0].create("alice").await);
    let log = Log::default();
    let names = ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"];
    let tasks: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            tokio::spawn(hold_lock(stores[i % 2].clone(), id.clone(), name, Duration::from_millis(30), log.clone()))
        })
        .collect();
    for t in tasks {
        ok(ok(tokio::time::timeout(Duration::from_secs(20), t).await.map_err(|_| "a turn never got the lock")));
    }
    let log = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(log.len(), 16);
    for pair in log.chunks(2) {
        let name = pair[0].trim_end_matches(" acquired");
        assert_eq!(pair, [format!("{name} acquired"), format!("{name} released")], "overlap in {log:?}");
    }
}

/// Two proxies' stores; A holds the lock for several leases, renewing it, and
/// B, already waiting, gets it only after A lets go.
#[tokio::test]
async fn a_session_lock_serialises_two_instances_for_longer_than_its_lease() {
    let redis = RedisServer::start();
    let lease = Duration::from_millis(600);
    let a: Arc<dyn SessionStore> = Arc::new(redis.store_with_lease(lease).await);
    let b: Arc<dyn SessionStore> = Arc::new(redis.store_with_lease(lease).await);
    let id = ok(a.create("alice").await);
    let log = Log::default();

    let holder = tokio::spawn(hold_lock(a.clone(), id.clone(), "A", lease * 4, log.clone()));
    while log.lock().unwrap_or_else(|p| p.into_inner()).is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let waiter = hold_lock(b.clone(), id.clone(), "B", Duration::ZERO, log.clone());
    ok(tokio::time::timeout(Duration::from_secs(10), waiter).await.map_err(|_| "B never got the lock"));
    ok(holder.await);
    let order = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
    assert_eq!(order, ["A acquired", "A released", "B acquired", "B released"]);

    // Another session's lock is independent.
    let other = ok(a.create("alice").await);
    let _held = ok(a.lock(&id).await);
    ok(ok(tokio::time::timeout(Duration::from_secs(5), b.lock(&other))
        .await
        .map_err(|_| "blocked by another session")));
}

#[tokio::test]
async fn the_lock_of_a_vanished_instance_lapses_after_its_lease() {
    let redis = RedisServer::start();
    let lease = Duration::from_millis(800);
    let crashed = redis.store_with_lease(lease).await;
    let survivor = redis.store_with_lease(lease).await;
    let id = ok(crashed.create("alice").await);

    let taken = Instant::now();
    // Neither released nor renewed again: forgetting the guard skips its
    // release, dropping the store stops its renewals.
    std::mem::forget(ok(crashed.lock(&id).await));
    drop(crashed);
    let lock = ok(tokio::time::timeout(Duration::from_secs(10), survivor.lock(&id)).await.map_err(|_| "never lapsed"));
    assert!(taken.elapsed() >= lease, "taken over after {:?}, before the lease ended", taken.elapsed());
    drop(lock);
}

#[tokio::test]
async fn an_unreachable_redis_fails_at_once_naming_the_host_not_the_password() {
    let port = common::free_port();
    let started = Instant::now();
    let result =
        tokio::time::timeout(Duration::from_secs(10), open(&format!("redis://user:hunter2@127.0.0.1:{port}/0"), TTL))
            .await
            .unwrap_or_else(|_| panic!("open did not give up"));
    let Err(e) = result else { panic!("opened a store on a closed port") };
    let message = e.to_string();
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
    assert!(!message.contains("hunter2"), "{message}");
}

/// Two proxies sharing `redis`'s sessions, both in front of `mock`.
fn two_proxies(redis: &RedisServer, mock: &MockUpstream) -> (common::Proxy, common::Proxy) {
    let url = redis.url();
    let env = [("SESSION_STORE", url.as_str())];
    (common::start_proxy(&mock.base_url(), &env), common::start_proxy(&mock.base_url(), &env))
}

/// `POST /chat` on `proxy` as the holder of `key`: the status and the body.
async fn chat(proxy: &common::Proxy, key: &str, body: Value) -> (u16, Value) {
    let r = common::client().post(format!("{}/chat", proxy.url)).bearer_auth(key).json(&body).send().await;
    let r = r.unwrap_or_else(|e| panic!("{e}"));
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// A `/chat` turn of session `id` running in the background.
fn spawn_turn(proxy: &common::Proxy, id: &str, message: &str) -> tokio::task::JoinHandle<u16> {
    let (url, body) = (proxy.url.clone(), json!({"message": message, "session_id": id}));
    tokio::spawn(async move {
        let r = common::client().post(format!("{url}/chat")).bearer_auth("k").json(&body).send().await;
        r.map(|r| r.status().as_u16()).unwrap_or(0)
    })
}

/// `GET` or `DELETE /chat/{id}` on `proxy`: the status and the body.
async fn item(proxy: &common::Proxy, method: http::Method, key: &str, id: &str) -> (u16, Value) {
    let r = common::client().request(method, format!("{}/chat/{id}", proxy.url)).bearer_auth(key).send().await;
    let r = r.unwrap_or_else(|e| panic!("{e}"));
    (r.status().as_u16(), r.json().await.unwrap_or_default())
}

/// `role:content` of each message an upstream request carried.
fn contents(request: &Value) -> Vec<String> {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    messages
        .iter()
        .map(|m| format!("{}:{}", m["role"].as_str().unwrap_or(""), m["content"].as_str().unwrap_or("")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_begun_on_one_proxy_continues_on_another() {
    let redis = RedisServer::start();
    let mock = MockUpstream::start().await;
    let (a, b) = two_proxies(&redis, &mock);

    mock.push(Reply::chat("Noted: your number is 7."));
    let (status, first) = chat(&a, "key-1", json!({"message": "Remember the number 7."})).await;
    assert_eq!(status, 200, "{first}");
    let id = first["session_id"].as_str().unwrap_or_default().to_string();

    mock.push(Reply::chat("It was 7."));
    let (status, second) = chat(&b, "key-1", json!({"message": "Which number?", "session_id": id})).await;
    assert_eq!((status, second["session_id"].as_str()), (200, Some(id.as_str())), "{second}");
    assert_eq!(second["response"], "It was 7.");
    let sent = contents(&mock.requests()[1].json());
    let tail: Vec<&str> = sent.iter().rev().take(3).rev().map(String::as_str).collect();
    assert_eq!(tail, ["user:Remember the number 7.", "assistant:Noted: your number is 7.", "user:Which number?"]);

    let (status, history) = item(&a, http::Method::GET, "key-1", &id).await;
    assert_eq!((status, history["messages"].as_array().map(Vec::len)), (200, Some(4)), "{history}");
    assert_eq!(item(&b, http::Method::GET, "key-2", &id).await.0, 404, "another key sees nothing on any proxy");
    assert_eq!(item(&b, http::Method::DELETE, "key-1", &id).await.0, 204);
    assert_eq!(item(&a, http::Method::GET, "key-1", &id).await.0, 404, "deleted through B, gone on A");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_on_one_session_through_two_proxies_take_turns() {
    let redis = RedisServer::start();
    let mock = MockUpstream::start().await;
    let (a, b) = two_proxies(&redis, &mock);
    mock.push(Reply::chat("first"));
    let (_, first) = chat(&a, "k", json!({"message": "start"})).await;
    let id = first["session_id"].as_str().unwrap_or_default().to_string();

    // A's turn holds the session (its upstream call waits on a gate) while B's turn arrives.
    let (open_gate, gate) = tokio::sync::oneshot::channel();
    let json = ("content-type", "application/json");
    mock.push(Reply::status(200).header(json.0, json.1).gate(gate).bytes(completion("answer A").to_string()));
    mock.push(Reply::chat("answer B"));
    let turn_a = spawn_turn(&a, &id, "A");
    mock.wait_requests(2).await;
    let turn_b = spawn_turn(&b, &id, "B");
    // Room for B to reach the upstream if the lock failed to hold it back.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(mock.requests().len(), 2, "B's turn ran while A's held the session");
    let _ = open_gate.send(());
    assert_eq!((ok(turn_a.await), ok(turn_b.await)), (200, 200));

    let sent = contents(&mock.requests()[2].json());
    assert!(sent.contains(&"user:A".to_string()) && sent.contains(&"assistant:answer A".to_string()), "{sent:?}");
    assert_eq!(sent.last().map(String::as_str), Some("user:B"));
}

/// The store failing while a streamed turn is under way: the answer has
/// started, so the client gets an error event in the stream (no `[DONE]`:
/// the turn was not stored) and never a second response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_fails_during_a_streamed_turn_is_an_error_event() {
    let mut redis = RedisServer::start();
    let mock = MockUpstream::start().await;
    let url = redis.url();
    let proxy = common::start_proxy(&mock.base_url(), &[("SESSION_STORE", url.as_str())]);
    let (release, gate) = tokio::sync::oneshot::channel();
    mock.push(
        Reply::sse()
            .event(crate::common::mock_upstream::chunk(json!({"role": "assistant", "content": "Half"}), None))
            .gate(gate)
            .event(crate::common::mock_upstream::chunk(json!({"content": " done."}), Some("stop")))
            .done(),
    );
    let r = common::client()
        .post(format!("{}/chat", proxy.url))
        .json(&json!({"message": "hi", "stream": true}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    common::read_until(&mut body, &mut seen, "Half").await;
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    let _ = release.send(());
    common::read_to_end(&mut body, &mut seen).await;
    assert!(!seen.contains("data: [DONE]"), "a turn that was not stored was told complete: {seen}");
    let last = seen.trim_end().rsplit("\n\n").next().unwrap_or_default();
    assert!(last.starts_with("data: {\"error\"") && last.contains("session store"), "{seen}");
    assert!(!seen.contains("HTTP/1.1"), "a second response inside the first: {seen}");
}
