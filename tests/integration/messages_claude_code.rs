//! Claude Code itself (`@anthropic-ai/claude-code`, pinned in
//! tests/node/package.json) pointed at the proxy with `ANTHROPIC_BASE_URL`,
//! run headless (`claude -p`) against the scripted upstream: the model
//! calls an MCP tool, which the proxy runs, then Claude Code's own `Read`,
//! which goes back to Claude Code and whose result comes back in the next
//! request, then answers. Claude Code sends what the SDKs do not: system
//! messages inside `messages`, deferred tools, adaptive thinking,
//! `output_config`, `context_management`, `cache_control` everywhere.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::mock_upstream::{chunk, MockUpstream, Reply};
use crate::common::scratch::Scratch;
use crate::common::{start_proxy_with_tools, Proxy};

fn claude_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/node/node_modules/.bin/claude");
    assert!(bin.exists(), "Claude Code is missing: run `npm ci --prefix tests/node` (tests/run does)");
    bin
}

/// What `claude -p PROMPT --output-format stream-json` printed: its JSON
/// lines, and the exit status.
async fn claude(proxy: &Proxy, key: &str, prompt: &str, home: &Scratch, within: Duration) -> (Vec<Value>, bool) {
    let home = home.path();
    // Claude Code keeps sockets and caches under TMPDIR: inside the scratch
    // directory they go when the test ends.
    let tmp = home.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("{e}"));
    let run = tokio::process::Command::new(claude_bin())
        .args(["-p", prompt, "--output-format", "stream-json", "--verbose", "--model", "local-model"])
        .args(["--allowedTools", "Read"])
        .current_dir(home)
        .env("HOME", home)
        .env("TMPDIR", &tmp)
        .env("CLAUDE_CONFIG_DIR", home.join(".claude"))
        .env("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1")
        .env("ANTHROPIC_BASE_URL", &proxy.url)
        .env("ANTHROPIC_API_KEY", key)
        .env_remove("ANTHROPIC_AUTH_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(within, run)
        .await
        .unwrap_or_else(|_| panic!("claude did not finish in {within:?}"))
        .unwrap_or_else(|e| panic!("claude did not start: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines = stdout.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    (lines, out.status.success())
}

fn result(lines: &[Value]) -> Value {
    let found = lines.iter().find(|l| l["type"] == "result").cloned();
    found.unwrap_or_else(|| panic!("no result line in {lines:?}"))
}

/// A streamed upstream turn (reasoning, text, then calls) that ends with
/// its usage: 10 tokens in, 3 out.
fn turn(reasoning: &str, content: &str, calls: &[(&str, &str, Value)]) -> Reply {
    let mut r = Reply::sse();
    if !reasoning.is_empty() {
        r = r.event(chunk(json!({"role": "assistant", "reasoning_content": reasoning}), None));
    }
    r = r.event(chunk(json!({"role": "assistant", "content": content}), None));
    for (i, (id, name, args)) in calls.iter().enumerate() {
        let call = json!({"index": i, "id": id, "type": "function", "function": {"name": name, "arguments": args.to_string()}});
        r = r.event(chunk(json!({"tool_calls": [call]}), None));
    }
    let mut usage = chunk(json!({}), None);
    usage["choices"] = json!([]);
    usage["usage"] = json!({"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13});
    r.event(chunk(json!({}), Some(if calls.is_empty() { "stop" } else { "tool_calls" }))).event(usage).done()
}

fn tool_names(req: &Value) -> Vec<String> {
    let tools = req["tools"].as_array().cloned().unwrap_or_default();
    tools.iter().filter_map(|t| t["function"]["name"].as_str().map(str::to_string)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_runs_mcp_tools_in_the_proxy_and_its_own_tools_itself() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo", &[("AUTH_KEYS", "cc-client-key-0001")]);
    let home = Scratch::new();
    let secret = home.write("token.txt", "the token is walnut-7\n");
    mock.push(turn("", "", &[("call_1", "echo", json!({"text": "hello from the proxy"}))]));
    let read = [("call_2", "Read", json!({"file_path": secret.as_str()}))];
    mock.push(turn("The file will say.", "Reading.", &read));
    mock.push(turn("", "The token is walnut-7.", &[]));

    let within = Duration::from_secs(120);
    let (lines, ok) = claude(&proxy, "cc-client-key-0001", "What is the token?", &home, within).await;
    let done = result(&lines);
    assert!(ok && done["is_error"] == false, "{done}");
    assert_eq!(done["result"], "The token is walnut-7.", "{done}");
    let usage = (&done["usage"]["input_tokens"], &done["usage"]["output_tokens"]);
    assert_eq!(usage, (&json!(30), &json!(9)), "usage summed over the three rounds: {done}");

    let sent = mock.requests();
    assert_eq!(sent.len(), 3, "one upstream request a round and nothing else: {:?}", sent.len());
    let first = sent[0].json();
    let names = tool_names(&first);
    for tool in ["Read", "Bash", "Edit", "Write", "echo"] {
        assert!(names.iter().any(|n| n == tool), "{tool} is offered: {names:?}");
    }
    assert!(!names.iter().any(|n| n == "DeferredToolPlaceholder"), "a deferred tool waits: {names:?}");
    assert_eq!(first["messages"][0]["role"], "system");
    assert!(
        first["messages"][0]["content"].as_str().is_some_and(|s| s.contains("Primary working directory")),
        "Claude Code's environment message is folded into the system prompt"
    );
    assert_eq!(first["messages"].as_array().map(|m| m.iter().filter(|m| m["role"] == "system").count()), Some(1));
    let echoed = sent[1].json();
    let answers: Vec<&Value> =
        echoed["messages"].as_array().into_iter().flatten().filter(|m| m["role"] == "tool").collect();
    assert_eq!(answers.len(), 1);
    assert!(answers[0]["content"].as_str().is_some_and(|c| c.contains("hello from the proxy")), "{answers:?}");
    for r in &sent {
        assert_eq!(r.header("x-api-key"), None, "the client's key never goes upstream");
        assert!(!String::from_utf8_lossy(&r.body).contains("cc-client-key-0001"));
    }
    // Claude Code saw the tool it ran and not the MCP call, which stayed in the proxy.
    let uses: Vec<&Value> = lines
        .iter()
        .filter(|l| l["type"] == "assistant")
        .flat_map(|l| l["message"]["content"].as_array().into_iter().flatten())
        .filter(|b| b["type"] == "tool_use")
        .collect();
    assert_eq!(uses.iter().map(|b| b["name"].as_str()).collect::<Vec<_>>(), [Some("Read")], "{uses:?}");
    let id = uses[0]["id"].as_str().unwrap_or_default();
    assert!(id.starts_with("toolu_"), "{uses:?}");
    // Its result, read by Claude Code from the file, reached the upstream as that call's answer.
    let last = sent[2].json();
    let read = last["messages"].as_array().into_iter().flatten().find(|m| m["tool_call_id"] == id).cloned();
    let read = read.unwrap_or_else(|| panic!("no answer to {id} in the last request"));
    assert!(read["content"].to_string().contains("walnut-7"), "{read}");
    // The thinking Claude Code was shown came back with its turn, as reasoning.
    let asked = last["messages"].as_array().into_iter().flatten().find(|m| m["tool_calls"][0]["id"] == id).cloned();
    let asked = asked.unwrap_or_else(|| panic!("no assistant turn calling {id} in the last request"));
    assert_eq!(asked["reasoning_content"], "The file will say.", "{asked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_with_a_wrong_key_says_so() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo", &[("AUTH_KEYS", "cc-client-key-0001")]);
    let home = Scratch::new();
    // Without `x-should-retry: false` Claude Code retries a 401 for two minutes.
    let (lines, ok) = claude(&proxy, "not-the-key-0002", "hi", &home, Duration::from_secs(30)).await;
    let done = result(&lines);
    assert!(!ok || done["is_error"] == true, "{done}");
    assert_eq!(done["api_error_status"], 401, "{done}");
    assert!(done["result"].as_str().is_some_and(|r| r.contains("Invalid API key")), "{done}");
    assert!(mock.requests().is_empty(), "a wrong key reaches no upstream");
}
