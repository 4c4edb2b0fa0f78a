//! Streamed and non-streamed answers agree: the same scripted replies, sent
//! once with `stream: true` and once without, give the client the same text,
//! the same finish reason and the same tool rounds. Every round's visible text
//! is part of the answer (a stream cannot take back what it has sent), rounds
//! joined by a blank line; a tool call itself never reaches the client.

use crate::common::mock_upstream::{chunk, MockUpstream, Reply};
use crate::common::{client, read_to_end, read_until, start_proxy_with_tools, Proxy};
use serde_json::{json, Value};

const TOOLS: &str = "echo,add";

/// What a client saw of one answer.
#[derive(Debug, PartialEq)]
struct Seen {
    content: String,
    finish_reason: Value,
    /// Upstream calls the answer took.
    rounds: usize,
}

/// One model turn: its text and its native tool calls.
type Turn<'a> = (&'a str, Vec<(&'a str, &'a str, Value)>);

async fn ask(proxy: &Proxy, mode: &str, stream: bool, text: &str) -> (Value, String) {
    let body = json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": text}]});
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .header("x-mcp-tool-mode", mode)
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    let raw = r.text().await.unwrap_or_default();
    if stream {
        return (Value::Null, raw);
    }
    (serde_json::from_str(&raw).unwrap_or_else(|e| panic!("{e}: {raw}")), raw)
}

/// The chunks of a raw SSE body, without `[DONE]`.
fn chunks(raw: &str) -> Vec<Value> {
    raw.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect()
}

fn streamed(raw: &str) -> (String, Value) {
    let chunks = chunks(raw);
    let content = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    let finish = chunks.iter().map(|c| c["choices"][0]["finish_reason"].clone()).find(|f| !f.is_null());
    assert_eq!(raw.matches("data: [DONE]").count(), 1, "one [DONE]: {raw}");
    (content, finish.unwrap_or(Value::Null))
}

/// Runs `turns` (the same script) streamed and not, in `mode`; both outcomes.
async fn both_ways(mode: &str, turns: &[Turn<'_>]) -> (Seen, Seen, String) {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    let mut seen = Vec::new();
    let mut raw_stream = String::new();
    for stream in [false, true] {
        let before = mock.requests().len();
        for (content, calls) in turns {
            mock.push(Reply::turn(stream, content, calls));
        }
        let (json, raw) = ask(&proxy, mode, stream, "go").await;
        let (content, finish_reason) = if stream {
            raw_stream = raw.clone();
            streamed(&raw)
        } else {
            let message = &json["choices"][0]["message"];
            (message["content"].as_str().unwrap_or("").to_string(), json["choices"][0]["finish_reason"].clone())
        };
        seen.push(Seen { content, finish_reason, rounds: mock.requests().len() - before });
        mock.clear();
    }
    let streamed = seen.pop().unwrap_or_else(|| panic!("no streamed run"));
    let plain = seen.pop().unwrap_or_else(|| panic!("no plain run"));
    (plain, streamed, raw_stream)
}

fn expect(content: &str, rounds: usize) -> Seen {
    Seen { content: content.into(), finish_reason: json!("stop"), rounds }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_text_before_a_tool_call_is_kept_in_both() {
    let turns = [("Let me look that up.", vec![("c1", "echo", json!({"text": "hi"}))]), ("It said hi.", vec![])];
    let (plain, streamed, _) = both_ways("native", &turns).await;
    assert_eq!(plain, expect("Let me look that up.\n\nIt said hi.", 2), "not streamed");
    assert_eq!(streamed, plain, "streamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_rounds_without_text_give_only_the_answer() {
    let turns = [("", vec![("c1", "add", json!({"a": 1, "b": 2}))]), ("It is 3.", vec![])];
    let (plain, streamed, _) = both_ways("native", &turns).await;
    assert_eq!(plain, expect("It is 3.", 2), "not streamed");
    assert_eq!(streamed, plain, "streamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_a_call_after_prose_runs_in_both() {
    let call = r#"{"tool": "echo", "arguments": {"text": "hi"}}"#;
    let first = format!("Let me check.\n{call}");
    let turns = [(first.as_str(), vec![]), ("It said hi.", vec![])];
    let (plain, streamed, raw) = both_ways("prompt", &turns).await;
    assert_eq!(plain, expect("Let me check.\n\nIt said hi.", 2), "not streamed");
    assert_eq!(streamed, plain, "streamed");
    assert!(!raw.contains(r#"\"tool\""#), "the call's JSON reached the streaming client: {raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_a_call_after_thinking_runs_in_both() {
    let first = "<think>The user wants an echo.</think>\n{\"tool\": \"echo\", \"arguments\": {\"text\": \"hi\"}}";
    let turns = [(first, vec![]), ("It said hi.", vec![])];
    let (plain, streamed, raw) = both_ways("prompt", &turns).await;
    assert_eq!(plain, expect("<think>The user wants an echo.</think>\n\nIt said hi.", 2), "not streamed");
    assert_eq!(streamed, plain, "streamed");
    assert!(!raw.contains(r#"\"arguments\""#), "the call's JSON reached the streaming client: {raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_a_fenced_call_after_prose_shows_neither_fence_nor_call() {
    let first = "I will add them.\n```json\n{\"tool\": \"add\", \"arguments\": {\"a\": 40, \"b\": 2}}\n```";
    let turns = [(first, vec![]), ("It is 42.", vec![])];
    let (plain, streamed, raw) = both_ways("prompt", &turns).await;
    assert_eq!(plain, expect("I will add them.\n\nIt is 42.", 2), "not streamed");
    assert_eq!(streamed, plain, "streamed");
    assert!(!raw.contains("```"), "the fence reached the streaming client: {raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_json_that_is_no_call_is_the_answer_in_both() {
    let answer = "Here it is: {\"name\": \"Alice\", \"age\": 30} and {\"tool\": \"unknown-x\"}.";
    let (plain, streamed, _) = both_ways("prompt", &[(answer, vec![])]).await;
    assert_eq!(plain, expect(answer, 1), "not streamed");
    assert_eq!(streamed, plain, "streamed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_a_code_answer_streams_before_the_upstream_has_finished() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    let (release, gate) = tokio::sync::oneshot::channel();
    mock.push(
        Reply::sse()
            .event(chunk(json!({"role": "assistant", "content": "```python\n"}), None))
            .event(chunk(json!({"content": "print(1)\n"}), None))
            .gate(gate)
            .event(chunk(json!({"content": "```"}), Some("stop")))
            .done(),
    );
    let body = json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "code"}]});
    let r = client()
        .post(format!("{}/chat/completions", proxy.base_url()))
        .header("x-mcp-tool-mode", "prompt")
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    read_until(&mut body, &mut seen, "print(1)").await;
    let _ = release.send(());
    read_to_end(&mut body, &mut seen).await;
    let (content, _) = streamed(&seen);
    assert_eq!(content, "```python\nprint(1)\n```");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prompt_mode_keeps_reasoning_while_it_holds_a_call_back() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    let call = r#"{"tool": "echo", "arguments": {"text": "x"}}"#;
    for stream in [false, true] {
        if stream {
            mock.push(
                Reply::sse()
                    .event(chunk(json!({"role": "assistant", "reasoning_content": "I need the echo."}), None))
                    .event(chunk(json!({"content": &call[..10]}), None))
                    .event(chunk(json!({"reasoning_content": " Still thinking."}), None))
                    .event(chunk(json!({"content": &call[10..]}), Some("stop")))
                    .done(),
            );
        } else {
            let mut first = mock_completion(call);
            first["choices"][0]["message"]["reasoning_content"] = json!("I need the echo. Still thinking.");
            mock.push(Reply::json(200, first));
        }
        mock.push(Reply::turn(stream, "Done.", &[]));
        let (json, raw) = ask(&proxy, "prompt", stream, "go").await;
        let reasoning: String = if stream {
            chunks(&raw).iter().filter_map(|c| c["choices"][0]["delta"]["reasoning_content"].as_str()).collect()
        } else {
            json["choices"][0]["message"]["reasoning_content"].as_str().unwrap_or("").to_string()
        };
        assert_eq!(reasoning, "I need the echo. Still thinking.", "stream {stream}: {raw}");
        mock.clear();
    }
}

fn mock_completion(content: &str) -> Value {
    crate::common::mock_upstream::completion(content)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_upstream_ends_without_done_is_an_error_not_a_short_answer() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    mock.push(
        Reply::sse()
            .event(chunk(json!({"role": "assistant", "content": "The first half"}), None))
            .event(chunk(json!({"content": " and"}), None)),
    );
    let (_, raw) = ask(&proxy, "native", true, "go").await;
    assert!(!raw.contains("data: [DONE]"), "a [DONE] the upstream never sent: {raw}");
    let last: Value = chunks(&raw).pop().unwrap_or_default();
    assert!(last["error"]["message"].as_str().is_some_and(|m| m.contains("[DONE]")), "{raw}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_answer_after_the_round_limit_keeps_the_tools_with_tool_choice_none() {
    for stream in [false, true] {
        let mock = MockUpstream::start().await;
        let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[("TOOL_MAX_ROUNDS", "1")]);
        mock.push(Reply::turn(stream, "", &[("c1", "echo", json!({"text": "one"}))]));
        mock.push(Reply::turn(stream, "", &[("c2", "echo", json!({"text": "two"}))]));
        mock.push(Reply::turn(stream, "Enough.", &[]));
        let (json, raw) = ask(&proxy, "native", stream, "go").await;
        let seen = mock.requests();
        assert_eq!(seen.len(), 3, "stream {stream}: one tool round, one refused, one final answer");
        let first = seen[0].json();
        let last = seen[2].json();
        let history = last["messages"].as_array().cloned().unwrap_or_default();
        let results: Vec<&Value> = history.iter().filter(|m| m["role"] == "tool").map(|m| &m["content"]).collect();
        assert_eq!(results, [&json!("one")], "stream {stream}: the first round's call ran, the second's did not");
        assert_eq!(last["tools"], first["tools"], "stream {stream}: the tools stay (the history holds tool calls)");
        assert_eq!(last["tool_choice"], "none", "stream {stream}");
        let content = if stream {
            streamed(&raw).0
        } else {
            json["choices"][0]["message"]["content"].as_str().unwrap_or("").to_string()
        };
        assert_eq!(content, "Enough.", "stream {stream}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resent_assistant_turn_with_tool_calls_has_a_content_key() {
    for stream in [false, true] {
        let mock = MockUpstream::start().await;
        let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
        mock.push(Reply::turn(stream, "", &[("c1", "echo", json!({"text": "hi"}))]));
        mock.push(Reply::turn(stream, "ok", &[]));
        ask(&proxy, "native", stream, "go").await;
        let second = mock.requests()[1].json();
        let assistant = second["messages"]
            .as_array()
            .and_then(|m| m.iter().find(|m| m["role"] == "assistant").cloned())
            .unwrap_or_default();
        // llama.cpp's and other Jinja chat templates read `message.content` unconditionally.
        assert_eq!(assistant.get("content"), Some(&json!("")), "stream {stream}: {assistant}");
        assert_eq!(assistant["tool_calls"][0]["id"], "c1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_of_the_wire_structs_the_proxy_does_not_know_are_kept() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), TOOLS, &[]);
    let mut first = crate::common::mock_upstream::tool_calls_completion(&[("c1", "echo", json!({"text": "hi"}))]);
    first["choices"][0]["message"]["tool_calls"][0]["extra_content"] = json!({"google": {"thought_signature": "sig"}});
    first["usage"]["prompt_tokens_details"] = json!({"cached_tokens": 2});
    let mut second = mock_completion("Done.");
    second["usage"]["prompt_tokens_details"] = json!({"cached_tokens": 3});
    second["usage"]["completion_tokens_details"] = json!({"reasoning_tokens": 4});
    mock.push(Reply::json(200, first));
    mock.push(Reply::json(200, second));
    let (json, _) = ask(&proxy, "native", false, "go").await;
    let resent = mock.requests()[1].json();
    let call = resent["messages"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["role"] == "assistant").cloned())
        .unwrap_or_default();
    assert_eq!(call["tool_calls"][0]["extra_content"]["google"]["thought_signature"], "sig", "{call}");
    assert_eq!(json["usage"]["prompt_tokens_details"]["cached_tokens"], 5, "summed over rounds: {json}");
    assert_eq!(json["usage"]["completion_tokens_details"]["reasoning_tokens"], 4, "{json}");
}
