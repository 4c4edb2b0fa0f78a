//! The OpenAI Agents SDK (PyPI `openai-agents`) as a real client: an agent
//! whose model is the proxy (`OpenAIResponsesModel` with a client pointed at
//! it) and a `HostedMCPTool` naming a configured server; the proxy runs the
//! MCP round inside one Responses call.

use std::time::Duration;

use serde_json::json;

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{self, start_proxy_with_tools};

async fn run_agent(stream: bool) -> (serde_json::Value, Vec<serde_json::Value>) {
    common::require_python_module("agents", "openai-agents");
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo,add", &[]);
    mock.push(Reply::turn(stream, "", &[("c1", "add", json!({"a": 20, "b": 22}))]));
    if stream {
        mock.push(Reply::chat_stream(&["20 + 22 ", "is 42."], Duration::from_millis(5)));
    } else {
        mock.push(Reply::chat("20 + 22 is 42."));
    }
    let base = proxy.base_url();
    let out = common::run_python("agents_client.py", &[base.as_str(), if stream { "stream" } else { "run" }]).await;
    (out, mock.requests().iter().map(|r| r.json()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_with_a_hosted_mcp_tool_runs_through_the_proxy() {
    let (out, sent) = run_agent(false).await;
    assert_eq!(out["final_output"], "20 + 22 is 42.", "{out}");
    assert_eq!(out["call_outputs"], json!(["42"]), "the agent saw the proxy's mcp_call: {out}");
    assert_eq!(sent.len(), 2, "one Responses call: both rounds ran in the proxy");
    let offered: Vec<&str> =
        sent[0]["tools"].as_array().into_iter().flatten().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert_eq!(offered, ["add", "echo"]);
    assert_eq!(sent[0]["messages"][0], json!({"role": "system", "content": "Use the tools to answer."}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_agent_streamed() {
    let (out, sent) = run_agent(true).await;
    assert_eq!(out["final_output"], "20 + 22 is 42.", "{out}");
    assert_eq!(out["deltas"], "20 + 22 is 42.");
    assert_eq!(out["call_outputs"], json!(["42"]), "{out}");
    let kinds: Vec<&str> = out["kinds"].as_array().into_iter().flatten().filter_map(|k| k.as_str()).collect();
    assert!(kinds.contains(&"response.mcp_call.completed"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"response.completed"));
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0]["stream"], true);
}
