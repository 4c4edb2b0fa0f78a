//! The loop's answer as an Anthropic `message`: `thinking` (the rounds'
//! reasoning), `text` (every round's visible text, joined as on the other
//! surfaces) and one `tool_use` block per call of the client's own tools;
//! the stop reason and usage summed over the rounds in Anthropic's names.
//! MCP calls ran in the proxy and do not appear.

use serde_json::{json, Value};

use crate::openai::chat::ToolCall;
use crate::tool_loop::Answer;

/// An id Anthropic clients accept for a message (`msg_…`): the answer's own
/// id when it already is one, else one derived from it (stable across the
/// stream and the final message).
pub fn message_id(id: &str) -> String {
    prefixed("msg_", id)
}

/// A tool call's id as a `tool_use` id (`toolu_…`). The client sends it back
/// in its `tool_result`, and the conversation carries it to the upstream as
/// the call's id both ways, so no table is needed.
pub fn tool_use_id(id: &str) -> String {
    prefixed("toolu_", id)
}

fn prefixed(prefix: &str, id: &str) -> String {
    if id.starts_with(prefix) {
        return id.to_string();
    }
    let clean: String = id.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
    if clean.is_empty() {
        format!("{prefix}{}", uuid::Uuid::new_v4().simple())
    } else {
        format!("{prefix}{clean}")
    }
}

/// The chat finish reason in Anthropic's terms.
pub fn stop_reason(finish_reason: &str, client_calls: bool) -> &'static str {
    match finish_reason {
        _ if client_calls => "tool_use",
        "length" => "max_tokens",
        "tool_calls" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// The answer's `stop_reason` and `stop_sequence`: `stop_sequence` when the
/// upstream named the sequence that ended it (vLLM does; most upstreams only
/// say `stop`, and then it is `end_turn`).
pub fn stop(answer: &Answer) -> (&'static str, Option<&str>) {
    match answer.stop_sequence.as_deref() {
        Some(sequence) if answer.client_calls.is_empty() => ("stop_sequence", Some(sequence)),
        _ => (stop_reason(&answer.finish_reason, !answer.client_calls.is_empty()), None),
    }
}

/// A client tool call as a `tool_use` block (its arguments parsed; text
/// that is not JSON is kept under `_raw` rather than lost).
pub fn tool_use(call: &ToolCall) -> Value {
    let input =
        serde_json::from_str::<Value>(&call.function.arguments).ok().filter(Value::is_object).unwrap_or_else(|| {
            if call.function.arguments.trim().is_empty() {
                json!({})
            } else {
                json!({"_raw": call.function.arguments})
            }
        });
    json!({"type": "tool_use", "id": tool_use_id(&call.id), "name": call.function.name, "input": input})
}

pub fn usage(answer: &Answer) -> Value {
    let (input, output) = answer.usage.as_ref().map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
    json!({"input_tokens": input, "output_tokens": output})
}

/// The whole `message` of a non-streamed answer.
pub fn message(answer: &Answer) -> Value {
    let mut content = Vec::new();
    if let Some(reasoning) = answer.reasoning_text().filter(|r| !r.text.is_empty()) {
        content.push(json!({"type": "thinking", "thinking": reasoning.text, "signature": ""}));
    }
    let text = answer.text();
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    content.extend(answer.client_calls.iter().map(tool_use));
    let (stop_reason, stop_sequence) = stop(answer);
    json!({
        "id": message_id(&answer.identity.id),
        "type": "message",
        "role": "assistant",
        "model": answer.identity.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "usage": usage(answer),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::chat::Usage;
    use crate::tool_loop::events::Reasoning;
    use crate::tool_loop::Identity;

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        serde_json::from_value(
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": arguments}}),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn answer() -> Answer {
        let mut a = Answer {
            identity: Identity { id: "chatcmpl-abc123".into(), created: 1, model: "m".into() },
            texts: vec!["Looking it up.".into(), "It is cold.".into()],
            reasoning: vec![(1, Reasoning { field: "reasoning_content".into(), text: "hm".into() })],
            client_calls: Vec::new(),
            awaiting_approval: Vec::new(),
            finish_reason: "stop".into(),
            stop_sequence: None,
            usage: None,
            stopped: None,
            tool_runs: Vec::new(),
            transcript: Vec::new(),
            last: None,
        };
        a.usage = serde_json::from_value::<Usage>(json!({"prompt_tokens": 25, "completion_tokens": 13})).ok();
        a
    }

    #[test]
    fn an_answer_is_a_message_with_summed_usage() {
        let m = message(&answer());
        assert_eq!(m["id"], "msg_chatcmpl-abc123");
        assert_eq!(m["type"], "message");
        assert_eq!(m["content"][0], json!({"type": "thinking", "thinking": "hm", "signature": ""}));
        assert_eq!(m["content"][1], json!({"type": "text", "text": "Looking it up.\n\nIt is cold."}));
        assert_eq!(m["stop_reason"], "end_turn");
        assert_eq!(m["usage"], json!({"input_tokens": 25, "output_tokens": 13}));
    }

    #[test]
    fn client_calls_are_tool_use_blocks_with_toolu_ids() {
        let mut a = answer();
        a.reasoning.clear();
        a.client_calls = vec![call("call_9", "weather", r#"{"city":"Oslo"}"#), call("toolu_7", "clock", "")];
        a.finish_reason = "tool_calls".into();
        let m = message(&a);
        assert_eq!(m["stop_reason"], "tool_use");
        assert_eq!(
            m["content"][1],
            json!({"type": "tool_use", "id": "toolu_call_9", "name": "weather", "input": {"city": "Oslo"}})
        );
        assert_eq!(m["content"][2], json!({"type": "tool_use", "id": "toolu_7", "name": "clock", "input": {}}));
        assert_eq!(tool_use(&call("c", "x", "not json"))["input"], json!({"_raw": "not json"}));
    }

    #[test]
    fn finish_reasons_map_to_stop_reasons() {
        assert_eq!(stop_reason("length", false), "max_tokens");
        assert_eq!(stop_reason("stop", false), "end_turn");
        assert_eq!(stop_reason("stop", true), "tool_use");
        assert_eq!(stop_reason("content_filter", false), "refusal");
    }

    #[test]
    fn a_named_stop_sequence_is_reported() {
        let mut a = answer();
        a.stop_sequence = Some("END".into());
        let m = message(&a);
        assert_eq!((&m["stop_reason"], &m["stop_sequence"]), (&json!("stop_sequence"), &json!("END")));
        a.client_calls = vec![call("c", "weather", "{}")];
        assert_eq!(stop(&a), ("tool_use", None), "the client's calls decide");
    }
}
