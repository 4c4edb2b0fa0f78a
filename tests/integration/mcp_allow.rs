//! `x-mcp-allow`: a request narrows the MCP tools it is offered (the
//! console's playground turns tools on and off with it). It only ever takes
//! tools away from what the key may use, a tool left out cannot be called
//! even if the model names it, and a list that can name nothing is a 400.

use serde_json::{json, Value};

use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::{client, start_proxy_with_tools, Proxy};

fn ask() -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
}

async fn post(proxy: &Proxy, allow: &str, key: Option<&str>) -> reqwest::Response {
    let mut req = client().post(format!("{}/chat/completions", proxy.base_url())).header("x-mcp-allow", allow);
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    req.json(&ask()).send().await.unwrap_or_else(|e| panic!("{e}"))
}

/// The MCP tools the upstream was offered in the `n`th request.
fn offered(mock: &MockUpstream, n: usize) -> Vec<String> {
    let body = mock.requests()[n].json();
    body["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str())
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_listed_tools_are_offered_and_callable() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo,add,big", &[]);
    mock.push(Reply::tool_calls(&[("c1", "add", json!({"a": 1, "b": 2}))]));
    mock.push(Reply::chat("done"));
    let r = post(&proxy, " test__echo , test__big", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(offered(&mock, 0), ["big", "echo"]);
    // The model named a tool it was not offered: refused as a tool error, not run.
    let result = mock.requests()[1].json()["messages"].to_string();
    assert!(result.contains("not allowed"), "{result}");

    mock.push(Reply::chat("all of them"));
    assert_eq!(post(&proxy, "test", None).await.status(), 200);
    assert_eq!(offered(&mock, 2), ["add", "big", "echo"], "a server's name allows all its tools");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn it_never_widens_what_the_key_may_use() {
    let mock = MockUpstream::start().await;
    let keys = crate::common::scratch::ScratchFile::new(
        "keys.toml",
        "[[key]]\nname = \"adder\"\nkey = \"adder-key-0001\"\ntools = [\"test__add\"]\n",
    );
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo,add", &[("AUTH_KEYS_FILE", keys.as_str())]);
    mock.push(Reply::chat("with add"));
    assert_eq!(post(&proxy, "test", Some("adder-key-0001")).await.status(), 200);
    assert_eq!(offered(&mock, 0), ["add"]);
    // Nothing of the key's is left: the request goes to the upstream as it is, without MCP tools.
    mock.push(Reply::chat("without tools"));
    assert_eq!(post(&proxy, "test__echo", Some("adder-key-0001")).await.status(), 200);
    assert!(offered(&mock, 1).is_empty(), "{:?}", mock.requests()[1].json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_names_nothing_is_a_400_naming_the_header() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo", &[]);
    for bad in ["", " , ", "test,,echo", "te st", "a/b"] {
        let r = post(&proxy, bad, None).await;
        assert_eq!(r.status(), 400, "{bad:?}");
        let err: Value = r.json().await.unwrap_or_default();
        assert_eq!(err["error"]["param"], "x-mcp-allow", "{bad:?}: {err}");
        assert!(err["error"]["message"].as_str().is_some_and(|m| m.contains("x-mcp-allow")), "{err}");
    }
    assert!(mock.requests().is_empty(), "refused before the upstream is asked");
}
