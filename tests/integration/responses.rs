//! `/v1/responses` over a chat-completions upstream, at the HTTP level:
//! what the upstream is asked, the output items, the event stream, stored
//! responses and the approval flow. (The real SDKs: `responses_sdk.rs`.)

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::mock_upstream::{chunk, MockUpstream, Reply};
use crate::common::{self, start_proxy, start_proxy_with_tools, Proxy};

async fn post(proxy: &Proxy, body: Value) -> (u16, Value) {
    let r = common::client()
        .post(format!("{}/responses", proxy.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /v1/responses: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// A streamed response's events, each checked to carry the next sequence number.
async fn post_stream(proxy: &Proxy, mut body: Value) -> Vec<Value> {
    body["stream"] = json!(true);
    let r = common::client()
        .post(format!("{}/responses", proxy.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /v1/responses: {e}"));
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let events: Vec<Value> = common::sse_data(r)
        .await
        .iter()
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("{e}: {d}")))
        .collect();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], json!(i), "event {i} out of sequence: {e}");
    }
    events
}

fn types(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["type"].as_str()).collect()
}

fn item_types(response: &Value) -> Vec<&str> {
    response["output"].as_array().into_iter().flatten().filter_map(|i| i["type"].as_str()).collect()
}

fn output_text(response: &Value) -> String {
    let items = response["output"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["text"].as_str().map(str::to_string))
        .collect()
}

fn proxy_with_tools(mock: &MockUpstream) -> Proxy {
    start_proxy_with_tools(&mock.base_url(), "echo,add", &[])
}

#[tokio::test]
async fn a_plain_response_over_a_chat_upstream() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat("Paris."));
    let (status, r) = post(
        &proxy,
        json!({"model": "m", "instructions": "Be brief.", "input": "Capital of France?", "max_output_tokens": 50,
               "temperature": 0.2, "metadata": {"k": "v"}, "service_tier": "flex"}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["object"], "response");
    assert!(r["id"].as_str().is_some_and(|id| id.starts_with("resp_")));
    assert_eq!(r["status"], "completed");
    assert_eq!(item_types(&r), ["message"]);
    assert_eq!(output_text(&r), "Paris.");
    assert_eq!(
        r["usage"],
        json!({"input_tokens": 5, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 7,
                                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 12})
    );
    assert_eq!(r["metadata"], json!({"k": "v"}));
    let sent = mock.requests()[0].json();
    assert_eq!(mock.requests()[0].path, "/v1/chat/completions");
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}])
    );
    assert_eq!((sent["max_tokens"].clone(), sent["temperature"].clone()), (json!(50), json!(0.2)));
    assert_eq!(sent["service_tier"], "flex", "a field the proxy does not know is passed on");
    assert!(sent.get("metadata").is_none() && sent.get("input").is_none() && sent.get("store").is_none());
}

#[tokio::test]
async fn an_mcp_round_gives_list_tools_call_and_message_items() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::tool_calls(&[("c1", "add", json!({"a": 20, "b": 22}))]));
    mock.push(Reply::chat("42."));
    let (status, r) = post(&proxy, json!({"model": "m", "input": "20+22?"})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(item_types(&r), ["mcp_list_tools", "mcp_call", "message"]);
    let list = &r["output"][0];
    assert_eq!(list["server_label"], "test");
    let names: Vec<&str> = list["tools"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(names, ["add", "echo"]);
    let call = &r["output"][1];
    assert_eq!((call["server_label"].as_str(), call["name"].as_str()), (Some("test"), Some("add")));
    assert_eq!(call["output"], "42");
    assert_eq!(call["error"], Value::Null);
    assert_eq!(
        serde_json::from_str::<Value>(call["arguments"].as_str().unwrap_or("")).ok(),
        Some(json!({"a": 20, "b": 22}))
    );
    assert_eq!(output_text(&r), "42.");
    assert_eq!(r["usage"]["total_tokens"], 13 + 12, "usage summed over both rounds");
    let second = mock.requests()[1].json();
    assert_eq!(second["messages"][2], json!({"role": "tool", "content": "42", "tool_call_id": "c1"}));
}

#[tokio::test]
async fn streamed_an_mcp_round_shows_its_events_and_ends_with_the_output_as_streamed() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::turn(true, "Adding.", &[("c1", "add", json!({"a": 1, "b": 2}))]));
    mock.push(Reply::turn(true, "It is 3.", &[]));
    let events = post_stream(&proxy, json!({"model": "m", "input": "1+2?"})).await;
    let t = types(&events);
    assert_eq!(&t[..2], ["response.created", "response.in_progress"]);
    assert_eq!(t.last(), Some(&"response.completed"));
    for needed in [
        "response.mcp_list_tools.in_progress",
        "response.mcp_list_tools.completed",
        "response.mcp_call.in_progress",
        "response.mcp_call_arguments.delta",
        "response.mcp_call_arguments.done",
        "response.mcp_call.completed",
        "response.content_part.added",
        "response.output_text.done",
        "response.content_part.done",
    ] {
        assert!(t.contains(&needed), "no {needed} in {t:?}");
    }
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .filter_map(|e| e["delta"].as_str())
        .collect();
    assert_eq!(deltas, "Adding.It is 3.");
    let done: Vec<Value> =
        events.iter().filter(|e| e["type"] == "response.output_item.done").map(|e| e["item"].clone()).collect();
    let last = &events[events.len() - 1]["response"];
    assert_eq!(last["status"], "completed");
    assert_eq!(item_types(last), ["mcp_list_tools", "message", "mcp_call", "message"]);
    assert_eq!(last["output"].as_array().cloned().unwrap_or_default(), done, "the final output is what was streamed");
    assert_eq!(last["output"][2]["output"], "3");
}

#[tokio::test]
async fn streamed_and_not_give_the_same_items() {
    let mut shapes = Vec::new();
    for stream in [false, true] {
        let mock = MockUpstream::start().await;
        let proxy = proxy_with_tools(&mock);
        mock.push(Reply::turn(stream, "Let me echo.", &[("c1", "echo", json!({"text": "hi"}))]));
        mock.push(Reply::turn(stream, "It said hi.", &[]));
        let body = json!({"model": "m", "input": "echo hi"});
        let response = if stream {
            post_stream(&proxy, body).await.last().map(|e| e["response"].clone()).unwrap_or_default()
        } else {
            post(&proxy, body).await.1
        };
        let items: Vec<Value> = response["output"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| json!([i["type"], i["status"], i["output"], i["content"][0]["text"]]))
            .collect();
        shapes.push(items);
    }
    assert_eq!(shapes[0], shapes[1]);
}

#[tokio::test]
async fn a_server_the_operator_did_not_configure_is_a_400_naming_it() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    let cases = [
        (json!({"type": "mcp", "server_label": "elsewhere"}), "tools[0].server_label", "elsewhere"),
        (
            json!({"type": "mcp", "server_label": "test", "server_url": "https://mcp.example.com/sse"}),
            "tools[0].server_url",
            "https://mcp.example.com/sse",
        ),
        (json!({"type": "web_search"}), "tools[0].type", "web_search"),
    ];
    for (tool, param, named) in cases {
        let (status, r) = post(&proxy, json!({"model": "m", "input": "x", "tools": [tool]})).await;
        assert_eq!(status, 400, "{r}");
        assert_eq!(r["error"]["param"], param);
        assert!(r["error"]["message"].as_str().is_some_and(|m| m.contains(named)), "{r}");
    }
    assert!(mock.requests().is_empty(), "nothing reached the upstream");
}

#[tokio::test]
async fn a_selected_server_with_allowed_tools_offers_only_those() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::chat("ok"));
    let tool = json!({"type": "mcp", "server_label": "test", "allowed_tools": ["echo"], "require_approval": "never"});
    let fun = json!({"type": "function", "name": "local", "parameters": {"type": "object", "properties": {}}});
    let (status, r) = post(&proxy, json!({"model": "m", "input": "x", "tools": [tool, fun]})).await;
    assert_eq!(status, 200, "{r}");
    let sent = mock.requests()[0].json();
    let offered: Vec<&str> =
        sent["tools"].as_array().into_iter().flatten().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert_eq!(offered, ["local", "echo"]);
    assert_eq!(r["output"][0]["tools"].as_array().map(Vec::len), Some(1), "{r}");
}

#[tokio::test]
async fn a_client_function_call_comes_back_and_its_output_continues_the_response() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::tool_calls(&[("fc1", "weather", json!({"city": "Oslo"}))]));
    mock.push(Reply::chat("Cold."));
    let fun = json!({"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}});
    let (_, first) = post(&proxy, json!({"model": "m", "input": "Weather in Oslo?", "tools": [fun.clone()]})).await;
    let call = first["output"].as_array().into_iter().flatten().find(|i| i["type"] == "function_call").cloned();
    let call = call.unwrap_or_else(|| panic!("no function_call: {first}"));
    assert_eq!((call["call_id"].as_str(), call["name"].as_str()), (Some("fc1"), Some("weather")));
    let (status, second) = post(
        &proxy,
        json!({"model": "m", "previous_response_id": first["id"], "tools": [fun],
               "input": [{"type": "function_call_output", "call_id": "fc1", "output": "-5 C"}]}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(output_text(&second), "Cold.");
    let sent = mock.requests()[1].json();
    let roles: Vec<&str> =
        sent["messages"].as_array().into_iter().flatten().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "tool"]);
    assert_eq!(sent["messages"][1]["tool_calls"][0]["id"], "fc1");
    assert_eq!(sent["messages"][2], json!({"role": "tool", "content": "-5 C", "tool_call_id": "fc1"}));
    assert!(!item_types(&second).contains(&"mcp_list_tools"), "listed once per conversation: {second}");
}

#[tokio::test]
async fn stored_responses_are_retrieved_listed_and_deleted_by_their_owner_only() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat("Hello."));
    let (_, r) = post(
        &proxy,
        json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}]}),
    )
    .await;
    let id = r["id"].as_str().unwrap_or_default().to_string();
    let url = format!("{}/responses/{id}", proxy.base_url());
    assert_eq!(common::get_json(&url).await, r, "GET returns the response as it was");
    let items = common::get_json(&format!("{url}/input_items")).await;
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"][0]["content"][0]["text"], "Hi");
    assert!(items["data"][0]["id"].is_string());
    let other = common::client().get(&url).bearer_auth("someone-else").send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(other.status(), 404, "another owner does not see it");
    let deleted = common::client().delete(&url).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(deleted.status(), 200);
    let body: Value = deleted.json().await.unwrap_or_default();
    assert_eq!(body, json!({"id": id, "object": "response", "deleted": true}));
    let gone = common::client().get(&url).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gone.status(), 404);
    let body: Value = gone.json().await.unwrap_or_default();
    assert_eq!(body["error"]["message"], format!("Response with id '{id}' not found."));
    let (status, r) = post(&proxy, json!({"model": "m", "input": "again", "previous_response_id": id})).await;
    assert_eq!((status, r["error"]["param"].as_str()), (400, Some("previous_response_id")));
}

#[tokio::test]
async fn store_false_keeps_nothing() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat("Hello."));
    let (_, r) = post(&proxy, json!({"model": "m", "input": "Hi", "store": false})).await;
    assert_eq!(r["store"], false);
    let got = common::client()
        .get(format!("{}/responses/{}", proxy.base_url(), r["id"].as_str().unwrap_or_default()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(got.status(), 404);
}

/// The approval flow over previous_response_id: `approve` decides whether
/// the call reaches the MCP server.
async fn approval_round(approve: bool, stream: bool) -> (Value, Vec<Value>) {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::turn(stream, "", &[("c1", "echo", json!({"text": "secret"}))]));
    mock.push(Reply::turn(stream, "Done.", &[]));
    let tool = json!({"type": "mcp", "server_label": "test", "require_approval": {"never": {"tool_names": ["add"]}}});
    let first_body = json!({"model": "m", "input": "echo secret", "tools": [tool.clone()]});
    let first = if stream {
        post_stream(&proxy, first_body).await.last().map(|e| e["response"].clone()).unwrap_or_default()
    } else {
        post(&proxy, first_body).await.1
    };
    assert_eq!(item_types(&first), ["mcp_list_tools", "mcp_approval_request"], "{first}");
    let request = &first["output"][1];
    assert_eq!((request["server_label"].as_str(), request["name"].as_str()), (Some("test"), Some("echo")));
    assert_eq!(mock.requests().len(), 1, "the loop stopped for the approval");
    let answer = json!({"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": approve, "reason": "not today"});
    let second_body = json!({"model": "m", "previous_response_id": first["id"], "tools": [tool], "input": [answer]});
    let second = if stream {
        post_stream(&proxy, second_body).await.last().map(|e| e["response"].clone()).unwrap_or_default()
    } else {
        post(&proxy, second_body).await.1
    };
    (second, mock.requests().iter().map(|r| r.json()).collect())
}

#[tokio::test]
async fn an_approved_call_runs_and_the_loop_goes_on() {
    for stream in [false, true] {
        let (second, sent) = approval_round(true, stream).await;
        assert_eq!(item_types(&second), ["mcp_call", "message"], "stream {stream}: {second}");
        assert_eq!(second["output"][0]["output"], "secret");
        assert_eq!(second["output"][0]["approval_request_id"], "mcpr_c1");
        assert_eq!(sent[1]["messages"][2], json!({"role": "tool", "content": "secret", "tool_call_id": "c1"}));
        assert_eq!(output_text(&second), "Done.");
    }
}

#[tokio::test]
async fn a_denied_call_never_runs_and_the_model_is_told() {
    for stream in [false, true] {
        let (second, sent) = approval_round(false, stream).await;
        assert_eq!(item_types(&second), ["message"], "stream {stream}: {second}");
        let told = &sent[1]["messages"][2];
        assert_eq!(told["role"], "tool");
        assert_eq!(told["content"], "The user denied this tool call: not today");
        assert!(!serde_json::to_string(&sent[1]).unwrap_or_default().contains("\"content\":\"secret\""));
    }
}

#[tokio::test]
async fn a_failure_after_the_first_byte_is_response_failed() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::tool_calls_stream(&[("c1", "echo", json!({"text": "x"}))]));
    mock.push(Reply::cut_stream("half an"));
    let events = post_stream(&proxy, json!({"model": "m", "input": "x"})).await;
    let last = events.last().cloned().unwrap_or_default();
    assert_eq!(last["type"], "response.failed", "{:?}", types(&events));
    assert_eq!(last["response"]["status"], "failed");
    assert!(last["response"]["error"]["message"].as_str().is_some_and(|m| m.contains("upstream")), "{last}");
    assert!(!types(&events).contains(&"response.completed"));
}

#[tokio::test]
async fn the_round_limit_makes_the_response_incomplete() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo", &[("TOOL_MAX_ROUNDS", "1")]);
    mock.push(Reply::tool_calls(&[("c1", "echo", json!({"text": "1"}))]));
    mock.push(Reply::tool_calls(&[("c2", "echo", json!({"text": "2"}))]));
    mock.push(Reply::chat("Stopping."));
    let (_, r) = post(&proxy, json!({"model": "m", "input": "x"})).await;
    assert_eq!(r["status"], "incomplete", "{r}");
    assert_eq!(r["incomplete_details"]["reason"], "round_limit");
    assert_eq!(output_text(&r), "Stopping.");
}

#[tokio::test]
async fn bad_input_is_a_400_naming_the_field() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    for (body, param) in [
        (json!({"model": "m", "input": "x", "background": true}), "background"),
        (json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}), "input[0].type"),
        (json!({"model": "m", "input": [{"role": "robot", "content": "x"}]}), "input[0].role"),
        (
            json!({"model": "m", "input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}),
            "input[0].content[0]",
        ),
    ] {
        let (status, r) = post(&proxy, body).await;
        assert_eq!((status, r["error"]["param"].as_str()), (400, Some(param)), "{r}");
        assert_eq!(r["error"]["type"], "invalid_request_error");
    }
    assert!(mock.requests().is_empty());
}

async fn post_with(proxy: &Proxy, body: Value, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = common::client().post(format!("{}/responses", proxy.base_url())).json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.unwrap_or_else(|e| panic!("POST /v1/responses: {e}"));
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn prompt_mode_runs_the_same_loop_behind_responses() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::chat(r#"{"tool": "add", "arguments": {"a": 2, "b": 3}}"#));
    mock.push(Reply::chat("It is 5."));
    let (status, r) = post_with(&proxy, json!({"model": "m", "input": "2+3?"}), &[("x-mcp-tool-mode", "prompt")]).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(item_types(&r), ["mcp_list_tools", "mcp_call", "message"], "{r}");
    assert_eq!(r["output"][1]["output"], "5");
    assert_eq!(output_text(&r), "It is 5.", "the call's JSON is not shown as text");
    let first = mock.requests()[0].json();
    assert!(first.get("tools").is_none(), "prompt mode sends no tools field");
    assert!(first["messages"][0]["content"].as_str().is_some_and(|s| s.contains("add")));
}

#[tokio::test]
async fn a_keys_allow_list_narrows_what_responses_lists_offers_and_forces() {
    let file = common::scratch::ScratchFile::new(
        "keys.toml",
        "[[key]]\nname = \"limited\"\nkey = \"limited-key-0009\"\ntools = [\"test__echo\"]\n",
    );
    let mock = MockUpstream::start().await;
    let proxy = start_proxy_with_tools(&mock.base_url(), "echo,add", &[("AUTH_KEYS_FILE", file.as_str())]);
    mock.push(Reply::chat("ok"));
    let auth = [("authorization", "Bearer limited-key-0009")];
    let mcp = json!({"type": "mcp", "server_label": "test", "require_approval": "never"});
    let (status, r) = post_with(&proxy, json!({"model": "m", "input": "x", "tools": [mcp.clone()]}), &auth).await;
    assert_eq!(status, 200, "{r}");
    let listed: Vec<&str> =
        r["output"][0]["tools"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(listed, ["echo"]);
    let offered: Vec<String> = mock.requests()[0].json()["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_string))
        .collect();
    assert_eq!(offered, ["echo"]);
    let force = json!({"type": "mcp", "server_label": "test", "name": "add"});
    let (status, r) =
        post_with(&proxy, json!({"model": "m", "input": "x", "tools": [mcp], "tool_choice": force}), &auth).await;
    assert_eq!((status, r["error"]["param"].as_str()), (400, Some("tool_choice")), "{r}");
    let (status, _) = post_with(&proxy, json!({"model": "m", "input": "x"}), &[]).await;
    assert_eq!(status, 401, "keys apply to /v1/responses");
}

#[tokio::test]
async fn reasoning_text_becomes_a_reasoning_item_streamed_and_not() {
    for stream in [false, true] {
        let mock = MockUpstream::start().await;
        let proxy = start_proxy(&mock.base_url(), &[]);
        if stream {
            mock.push(
                Reply::sse()
                    .event(chunk(json!({"role": "assistant", "reasoning_content": "Think"}), None))
                    .event(chunk(json!({"reasoning_content": "ing."}), None))
                    .event(chunk(json!({"content": "Answer."}), None))
                    .event(chunk(json!({}), Some("stop")))
                    .done(),
            );
        } else {
            let mut body = crate::common::mock_upstream::completion("Answer.");
            body["choices"][0]["message"]["reasoning_content"] = json!("Thinking.");
            mock.push(Reply::json(200, body));
        }
        let body = json!({"model": "m", "input": "why?"});
        let r = if stream {
            let events = post_stream(&proxy, body).await;
            assert!(types(&events).contains(&"response.reasoning_text.delta"));
            events.last().map(|e| e["response"].clone()).unwrap_or_default()
        } else {
            post(&proxy, body).await.1
        };
        assert_eq!(item_types(&r), ["reasoning", "message"], "stream {stream}: {r}");
        assert_eq!(r["output"][0]["content"][0], json!({"type": "reasoning_text", "text": "Thinking."}));
        assert_eq!(output_text(&r), "Answer.");
    }
}

#[tokio::test]
async fn a_streamed_client_function_call_has_its_argument_events() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::tool_calls_stream(&[("fc1", "weather", json!({"city": "Oslo"}))]));
    let fun = json!({"type": "function", "name": "weather", "parameters": {"type": "object", "properties": {}}});
    let events = post_stream(&proxy, json!({"model": "m", "input": "x", "tools": [fun]})).await;
    let t = types(&events);
    assert!(
        t.contains(&"response.function_call_arguments.delta") && t.contains(&"response.function_call_arguments.done"),
        "{t:?}"
    );
    let last = &events[events.len() - 1]["response"];
    let call = &last["output"][1];
    assert_eq!(
        (call["type"].as_str(), call["call_id"].as_str(), call["name"].as_str()),
        (Some("function_call"), Some("fc1"), Some("weather"))
    );
    assert_eq!(mock.requests().len(), 1, "the client's call goes back to the client");
}

#[tokio::test]
async fn without_tools_in_play_pass_through_sends_responses_to_the_upstream_unchanged() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("RESPONSES_PASSTHROUGH_WITHOUT_TOOLS", "true")]);
    mock.push(Reply::json(200, json!({"id": "resp_upstream", "object": "response", "output": []})));
    mock.push(Reply::json(200, json!({"id": "resp_upstream", "object": "response"})));
    let body = json!({"model": "m", "input": "hi", "tools": [{"type": "web_search"}]});
    let (status, r) = post(&proxy, body.clone()).await;
    assert_eq!((status, r["id"].as_str()), (200, Some("resp_upstream")));
    let seen = mock.requests();
    assert_eq!(seen[0].path, "/v1/responses");
    assert_eq!(seen[0].json(), body, "unchanged");
    let got = common::get_json(&format!("{}/responses/resp_upstream", proxy.base_url())).await;
    assert_eq!(got["id"], "resp_upstream", "an id the proxy does not hold is the upstream's");
    assert_eq!(mock.requests()[1].path, "/v1/responses/resp_upstream");
}

#[tokio::test]
async fn stored_responses_expire_with_the_session_ttl() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("SESSION_TTL_SECONDS", "1")]);
    mock.push(Reply::chat("Hello."));
    let (_, r) = post(&proxy, json!({"model": "m", "input": "Hi"})).await;
    let url = format!("{}/responses/{}", proxy.base_url(), r["id"].as_str().unwrap_or_default());
    assert_eq!(common::get_json(&url).await["id"], r["id"]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let gone = common::client().get(&url).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gone.status(), 404, "expired");
}

#[tokio::test]
async fn an_mcp_tool_without_require_approval_asks_first_as_openai_does() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::tool_calls(&[("c1", "echo", json!({"text": "x"}))]));
    let tool = json!({"type": "mcp", "server_label": "test"});
    let (_, r) = post(&proxy, json!({"model": "m", "input": "x", "tools": [tool]})).await;
    assert_eq!(item_types(&r), ["mcp_list_tools", "mcp_approval_request"], "{r}");
    // Without any mcp tool the key's catalog runs as on the chat path, unasked.
    mock.push(Reply::tool_calls(&[("c2", "echo", json!({"text": "y"}))]));
    mock.push(Reply::chat("y"));
    let (_, r) = post(&proxy, json!({"model": "m", "input": "x"})).await;
    assert_eq!(item_types(&r), ["mcp_list_tools", "mcp_call", "message"], "{r}");
}

#[tokio::test]
async fn without_store_the_client_sends_the_items_back_and_the_conversation_continues() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::tool_calls(&[("c1", "add", json!({"a": 1, "b": 2}))]));
    mock.push(Reply::chat("3."));
    let user = json!({"role": "user", "content": "1+2?"});
    let (_, first) = post(&proxy, json!({"model": "m", "input": [user.clone()], "store": false})).await;
    mock.push(Reply::chat("6."));
    let mut input = vec![user];
    input.extend(first["output"].as_array().cloned().unwrap_or_default());
    input.push(json!({"role": "user", "content": "Double it."}));
    let (status, second) = post(&proxy, json!({"model": "m", "input": input, "store": false})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(item_types(&second), ["message"], "the servers were listed in the items sent back: {second}");
    let sent = mock.requests()[2].json();
    let shape: Vec<Value> = sent["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| json!([m["role"], m["content"], m["tool_calls"][0]["function"]["name"]]))
        .collect();
    assert_eq!(
        shape,
        [
            json!(["user", "1+2?", null]),
            json!(["assistant", "", "add"]),
            json!(["tool", "3", null]),
            json!(["assistant", "3.", null]),
            json!(["user", "Double it.", null]),
        ]
    );
}

#[tokio::test]
async fn an_approval_answered_in_the_input_without_a_stored_response() {
    let mock = MockUpstream::start().await;
    let proxy = proxy_with_tools(&mock);
    mock.push(Reply::tool_calls(&[("c1", "echo", json!({"text": "ok"}))]));
    let tool = json!({"type": "mcp", "server_label": "test", "require_approval": "always"});
    let user = json!({"role": "user", "content": "echo ok"});
    let (_, first) =
        post(&proxy, json!({"model": "m", "input": [user.clone()], "tools": [tool.clone()], "store": false})).await;
    let request = first["output"][1].clone();
    assert_eq!(request["type"], "mcp_approval_request", "{first}");
    mock.push(Reply::chat("It said ok."));
    let input = json!([user, first["output"][0], request,
                       {"type": "mcp_approval_response", "approval_request_id": request["id"], "approve": true}]);
    let (status, second) = post(&proxy, json!({"model": "m", "input": input, "tools": [tool], "store": false})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(item_types(&second), ["mcp_call", "message"], "{second}");
    assert_eq!(second["output"][0]["output"], "ok");
    let sent = mock.requests()[1].json();
    assert_eq!(sent["messages"][1]["tool_calls"][0]["function"]["name"], "echo");
    assert_eq!(sent["messages"][2], json!({"role": "tool", "content": "ok", "tool_call_id": "c1"}));
}
