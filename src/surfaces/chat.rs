//! The Chat Completions surface: the tool loop's events as OpenAI's
//! `chat.completion.chunk` SSE stream, and its answer as a `chat.completion`.
//!
//! One `id`, `created` and `model` across every round (the first upstream
//! reply's), the role once, each round's text as it comes (rounds joined by
//! a blank line), fields the proxy does not read passed on, tool rounds
//! visible only as `: …` comment lines, then the client's own tool calls,
//! one finish chunk, the summed usage when asked for, and one `[DONE]`.

use bytes::Bytes;
use serde_json::{json, Map, Value};

use super::StreamEncoder;
use crate::error::ProxyError;
use crate::openai::chat::{ChatCompletion, Choice, Message, ToolCall};
use crate::tool_loop::events::{Delta, Joiner};
use crate::tool_loop::{Answer, Event, Identity};

/// Encodes one answer's events as a chat-completions stream.
#[derive(Debug, Default)]
pub struct ChatStream {
    identity: Option<Identity>,
    role_sent: bool,
    include_usage: bool,
    text: Joiner,
    reasoning: Joiner,
}

impl ChatStream {
    /// `include_usage`: the request's `stream_options.include_usage`.
    pub fn new(include_usage: bool) -> Self {
        Self { include_usage, ..Self::default() }
    }

    /// The end of a finished answer: the client's own tool calls, the finish
    /// reason, the summed usage when asked for, and `[DONE]`.
    pub fn finish(&mut self, answer: &Answer) -> Bytes {
        self.finish_with(answer, None)
    }

    /// [`ChatStream::finish`] with one more event (`/chat`'s session) right before `[DONE]`.
    pub fn finish_with(&mut self, answer: &Answer, last_event: Option<&Value>) -> Bytes {
        let mut out = String::new();
        if self.identity.is_none() {
            self.identity = Some(answer.identity.clone());
        }
        if !answer.client_calls.is_empty() {
            let deltas: Vec<Value> =
                answer.client_calls.iter().enumerate().map(|(i, c)| tool_call_delta(i, c)).collect();
            out.push_str(&self.chunk(json!({"tool_calls": deltas}), Map::new(), Value::Null));
        }
        let mut last = self.chunk_value(json!({}), Map::new(), json!(answer.finish_reason));
        if let Some(reason) = answer.stopped {
            last["mcp_proxy"] = json!({"stopped": reason.as_str()});
        }
        out.push_str(&format!("data: {last}\n\n"));
        if self.include_usage {
            let mut usage = self.chunk_value(json!({}), Map::new(), Value::Null);
            usage["choices"] = json!([]);
            usage["usage"] = serde_json::to_value(answer.usage.clone().unwrap_or_default()).unwrap_or_default();
            out.push_str(&format!("data: {usage}\n\n"));
        }
        if let Some(event) = last_event {
            out.push_str(&format!("data: {event}\n\n"));
        }
        out.push_str("data: [DONE]\n\n");
        Bytes::from(out)
    }

    /// An error after the stream started: one error event and no `[DONE]`,
    /// so clients raise instead of taking a cut answer as complete.
    pub fn error(err: &ProxyError) -> Bytes {
        err.sse_event()
    }

    fn delta(&mut self, d: &Delta) -> Option<String> {
        let mut delta = Map::new();
        let text = self.text.push(d.round, &d.text);
        if !text.is_empty() {
            delta.insert("content".into(), Value::String(text.into_owned()));
        }
        if let Some(r) = &d.reasoning {
            let text = self.reasoning.push(d.round, &r.text);
            delta.insert(r.field.clone(), Value::String(text.into_owned()));
        }
        for (k, v) in &d.extra_delta {
            delta.entry(k.clone()).or_insert_with(|| v.clone());
        }
        if delta.is_empty() && d.extra_choice.is_empty() {
            return None;
        }
        Some(self.chunk(Value::Object(delta), d.extra_choice.clone(), Value::Null))
    }

    fn chunk(&mut self, delta: Value, choice_extra: Map<String, Value>, finish_reason: Value) -> String {
        format!("data: {}\n\n", self.chunk_value(delta, choice_extra, finish_reason))
    }

    fn chunk_value(&mut self, mut delta: Value, choice_extra: Map<String, Value>, finish_reason: Value) -> Value {
        if !self.role_sent {
            delta["role"] = json!("assistant");
            self.role_sent = true;
        }
        let identity = self.identity.get_or_insert_with(made_up_identity);
        let mut choice = json!({"index": 0, "delta": delta, "finish_reason": finish_reason});
        for (k, v) in choice_extra {
            choice[k.as_str()] = v;
        }
        json!({
            "id": identity.id,
            "object": "chat.completion.chunk",
            "created": identity.created,
            "model": identity.model,
            "choices": [choice],
        })
    }
}

impl StreamEncoder for ChatStream {
    fn event(&mut self, event: &Event) -> Option<Bytes> {
        match event {
            Event::Started(identity) => {
                let mut identity = identity.clone();
                if identity.id.is_empty() {
                    identity = Identity { model: identity.model, ..made_up_identity() };
                }
                self.identity = Some(identity);
                None
            }
            Event::Delta(d) => self.delta(d).map(Bytes::from),
            // A comment line every SSE client ignores; keeps idle connections open.
            Event::Waiting { what } => Some(Bytes::from(format!(": {}\n\n", what.replace(['\n', '\r'], " ")))),
            Event::ToolsStarted { .. } | Event::ToolFinished { .. } => None,
        }
    }
}

fn made_up_identity() -> Identity {
    Identity { id: format!("chatcmpl-{}", uuid::Uuid::new_v4().simple()), created: now(), model: String::new() }
}

fn tool_call_delta(index: usize, call: &ToolCall) -> Value {
    let mut v = serde_json::to_value(call).unwrap_or_default();
    v["index"] = json!(index);
    v
}

/// The non-streamed answer: the last round's completion (fields the proxy
/// does not read kept), with the first round's identity, every round's
/// text, the client's own tool calls, the finish reason and summed usage.
pub fn completion(answer: &Answer) -> Value {
    let mut completion = answer.last.clone().unwrap_or_else(|| ChatCompletion {
        id: String::new(),
        created: 0,
        model: answer.identity.model.clone(),
        choices: Vec::new(),
        usage: None,
        rest: Map::new(),
    });
    if !answer.identity.id.is_empty() {
        (completion.id, completion.created) = (answer.identity.id.clone(), answer.identity.created);
    }
    if completion.choices.is_empty() {
        completion.choices.push(Choice {
            index: 0,
            message: Message::text("assistant", ""),
            finish_reason: None,
            rest: Map::new(),
        });
    }
    let text = answer.text();
    if let Some(choice) = completion.choices.first_mut() {
        let message = &mut choice.message;
        let has_calls = !answer.client_calls.is_empty();
        message.content = if text.is_empty() && has_calls { None } else { Some(Value::String(text)) };
        message.tool_calls = has_calls.then(|| answer.client_calls.clone());
        for field in crate::tool_loop::events::REASONING_FIELDS {
            message.rest.remove(field);
        }
        if let Some(r) = answer.reasoning_text() {
            message.rest.insert(r.field, Value::String(r.text));
        }
        choice.finish_reason = Some(answer.finish_reason.clone());
    }
    if answer.usage.is_some() {
        completion.usage = answer.usage.clone();
    }
    if let Some(reason) = answer.stopped {
        completion.rest.insert("mcp_proxy".into(), json!({"stopped": reason.as_str()}));
    }
    completion.rest.entry("object").or_insert(json!("chat.completion"));
    serde_json::to_value(completion).unwrap_or_default()
}

pub fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::chat::Usage;
    use crate::tool_loop::events::{Reasoning, StopReason};

    fn events() -> Vec<Event> {
        let delta = |round, text: &str| Event::Delta(Delta { round, text: text.into(), ..Delta::default() });
        vec![
            Event::Started(Identity { id: "chatcmpl-1".into(), created: 7, model: "m".into() }),
            delta(1, "Let me "),
            delta(1, "look."),
            Event::ToolsStarted { round: 1, calls: vec![ToolCall::new("c1", "echo", "{}")] },
            Event::Waiting { what: "tool echo\nrunning".into() },
            Event::Delta(Delta {
                round: 2,
                text: "Done.".into(),
                reasoning: Some(Reasoning { field: "reasoning_content".into(), text: "ok".into() }),
                extra_choice: [("logprobs".to_string(), json!({"content": []}))].into_iter().collect(),
                ..Delta::default()
            }),
        ]
    }

    fn answer() -> Answer {
        Answer {
            identity: Identity { id: "chatcmpl-1".into(), created: 7, model: "m".into() },
            texts: vec!["Let me look.".into(), "Done.".into()],
            finish_reason: "stop".into(),
            usage: Some(Usage { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5, ..Usage::default() }),
            stopped: Some(StopReason::RoundLimit),
            ..Answer::default()
        }
    }

    /// The bytes an SDK parses: every `data:` line a chunk of one id, the
    /// role once, the text as the non-streamed answer has it, one `[DONE]`.
    #[test]
    fn a_stream_is_what_openai_sends() {
        let mut enc = ChatStream::new(true);
        let mut raw = String::new();
        for e in events() {
            if let Some(b) = enc.event(&e) {
                raw.push_str(&String::from_utf8_lossy(&b));
            }
        }
        raw.push_str(&String::from_utf8_lossy(&enc.finish(&answer())));
        assert!(raw.contains(": tool echo running\n\n"), "{raw}");
        assert!(raw.ends_with("data: [DONE]\n\n"));
        let chunks: Vec<Value> = raw
            .split("\n\n")
            .filter_map(|e| e.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .map(|d| serde_json::from_str(d).unwrap_or_default())
            .collect();
        assert!(chunks.iter().all(|c| c["id"] == "chatcmpl-1" && c["object"] == "chat.completion.chunk"));
        assert_eq!(chunks.iter().filter(|c| c["choices"][0]["delta"].get("role").is_some()).count(), 1);
        let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
        assert_eq!(text, answer().text());
        assert_eq!(chunks[2]["choices"][0]["logprobs"], json!({"content": []}));
        assert_eq!(chunks[2]["choices"][0]["delta"]["reasoning_content"], "ok");
        let finish: Vec<&Value> =
            chunks.iter().map(|c| &c["choices"][0]["finish_reason"]).filter(|f| !f.is_null()).collect();
        assert_eq!(finish, [&json!("stop")]);
        let usage = chunks.last().map(|c| c["usage"]["total_tokens"].clone());
        assert_eq!(usage, Some(json!(5)));
    }

    #[test]
    fn the_client_tool_calls_end_the_stream_and_the_completion() {
        let mut a = answer();
        a.client_calls = vec![ToolCall::new("c9", "mine", "{\"x\":1}")];
        a.finish_reason = "tool_calls".into();
        a.texts = vec![String::new()];
        let raw = String::from_utf8_lossy(&ChatStream::new(false).finish(&a)).to_string();
        assert!(raw.contains(r#""tool_calls":[{"function":{"arguments":"{\"x\":1}","name":"mine"},"id":"c9","index":0,"type":"function"}]"#), "{raw}");
        let done = completion(&a);
        assert_eq!(done["choices"][0]["message"]["tool_calls"][0]["id"], "c9");
        assert_eq!(done["choices"][0]["message"]["content"], Value::Null);
        assert_eq!(done["choices"][0]["finish_reason"], "tool_calls");
        assert_eq!(done["mcp_proxy"]["stopped"], "round_limit");
        assert_eq!(done["object"], "chat.completion");
    }
}
