//! The loop's events as Anthropic's Messages stream: `message_start`, then
//! content blocks as they come (`thinking` with `thinking_delta`, `text` with
//! `text_delta`; a block closes when the other kind starts), `ping` while
//! tools run, and at the end the client's own calls as `tool_use` blocks
//! (their input as one `input_json_delta`), `message_delta` with the stop
//! reason and the usage summed over rounds, and `message_stop`. Rounds'
//! text is joined as on the other surfaces; MCP rounds show only as pings.

use bytes::Bytes;
use serde_json::{json, Value};

use super::output::{message_id, stop, tool_use_id, usage};
use crate::error::ProxyError;
use crate::surfaces::StreamEncoder;
use crate::tool_loop::events::Joiner;
use crate::tool_loop::{Answer, Event};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    Thinking,
    Text,
}

/// Encodes one answer's events as a Messages stream.
#[derive(Debug, Default)]
pub struct MessagesStream {
    started: bool,
    /// The block open now and its index.
    open: Option<(Block, usize)>,
    next_index: usize,
    text: Joiner,
    thinking: Joiner,
}

fn event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

impl MessagesStream {
    pub fn new() -> Self {
        Self::default()
    }

    fn start(&mut self, id: &str, model: &str) -> String {
        self.started = true;
        let message = json!({
            "id": message_id(id), "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 0, "output_tokens": 0},
        });
        event("message_start", &json!({"type": "message_start", "message": message}))
    }

    fn close(&mut self) -> String {
        match self.open.take() {
            Some((_, index)) => event("content_block_stop", &json!({"type": "content_block_stop", "index": index})),
            None => String::new(),
        }
    }

    /// Opens a new block (closing the one open), and returns its index.
    fn open_block(&mut self, out: &mut String, block: Value, kind: Option<Block>) -> usize {
        out.push_str(&self.close());
        let index = self.next_index;
        self.next_index += 1;
        out.push_str(&event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        ));
        self.open = kind.map(|k| (k, index));
        index
    }

    fn piece(&mut self, kind: Block, text: &str) -> String {
        let mut out = String::new();
        if text.is_empty() {
            return out;
        }
        let index = match self.open {
            Some((open, index)) if open == kind => index,
            _ => {
                let block = match kind {
                    Block::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
                    Block::Text => json!({"type": "text", "text": ""}),
                };
                self.open_block(&mut out, block, Some(kind))
            }
        };
        let delta = match kind {
            Block::Thinking => json!({"type": "thinking_delta", "thinking": text}),
            Block::Text => json!({"type": "text_delta", "text": text}),
        };
        out.push_str(&event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index, "delta": delta}),
        ));
        out
    }

    /// The end of a finished answer: the client's calls, the stop reason,
    /// the usage, `message_stop`.
    pub fn finish(&mut self, answer: &Answer) -> Bytes {
        let mut out = String::new();
        if !self.started {
            out.push_str(&self.start(&answer.identity.id, &answer.identity.model));
        }
        out.push_str(&self.close());
        for call in &answer.client_calls {
            let block =
                json!({"type": "tool_use", "id": tool_use_id(&call.id), "name": call.function.name, "input": {}});
            let index = self.open_block(&mut out, block, None);
            let partial =
                if call.function.arguments.trim().is_empty() { "{}" } else { call.function.arguments.as_str() };
            let delta = json!({"type": "input_json_delta", "partial_json": partial});
            out.push_str(&event(
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": index, "delta": delta}),
            ));
            out.push_str(&event("content_block_stop", &json!({"type": "content_block_stop", "index": index})));
        }
        let (reason, sequence) = stop(answer);
        out.push_str(&event(
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence}, "usage": usage(answer)}),
        ));
        out.push_str(&event("message_stop", &json!({"type": "message_stop"})));
        Bytes::from(out)
    }

    /// An error after the stream started: Anthropic's `error` event; the
    /// stream ends without `message_stop`, so clients raise.
    pub fn error(err: &ProxyError) -> Bytes {
        err.anthropic_sse_event()
    }
}

impl StreamEncoder for MessagesStream {
    fn event(&mut self, ev: &Event) -> Option<Bytes> {
        let out = match ev {
            Event::Started(identity) => self.start(&identity.id, &identity.model),
            Event::Delta(d) => {
                let mut out = String::new();
                if let Some(r) = &d.reasoning {
                    let text = self.thinking.push(d.round, &r.text).into_owned();
                    out.push_str(&self.piece(Block::Thinking, &text));
                }
                let text = self.text.push(d.round, &d.text).into_owned();
                out.push_str(&self.piece(Block::Text, &text));
                out
            }
            Event::Waiting { .. } => event("ping", &json!({"type": "ping"})),
            Event::ToolsStarted { .. } | Event::ToolFinished { .. } => String::new(),
        };
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::chat::{ToolCall, Usage};
    use crate::tool_loop::events::{Delta, Reasoning};
    use crate::tool_loop::Identity;

    fn delta(round: u32, text: &str, thinking: Option<&str>) -> Event {
        Event::Delta(Delta {
            round,
            text: text.into(),
            reasoning: thinking.map(|t| Reasoning { field: "reasoning_content".into(), text: t.into() }),
            ..Delta::default()
        })
    }

    /// Every event of `bytes` as (name, data).
    fn events(bytes: &str) -> Vec<(String, Value)> {
        bytes
            .split("\n\n")
            .filter(|e| !e.is_empty())
            .map(|e| {
                let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default().to_string();
                let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or_default();
                (name, serde_json::from_str(data).unwrap_or_default())
            })
            .collect()
    }

    #[test]
    fn rounds_blocks_pings_and_the_end_in_anthropics_order() {
        let identity = Identity { id: "chatcmpl-1".into(), created: 1, model: "m".into() };
        let mut s = MessagesStream::new();
        let mut out = String::new();
        for ev in [
            Event::Started(identity.clone()),
            delta(1, "", Some("let me")),
            delta(1, "Looking", None),
            Event::Waiting { what: "tools running".into() },
            delta(2, "Cold.", None),
        ] {
            out.push_str(&String::from_utf8_lossy(&s.event(&ev).unwrap_or_default()));
        }
        let call: ToolCall = serde_json::from_value(
            json!({"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Oslo\"}"}}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let answer = Answer {
            identity,
            texts: vec!["Looking".into(), "Cold.".into()],
            reasoning: Vec::new(),
            client_calls: vec![call],
            awaiting_approval: Vec::new(),
            finish_reason: "tool_calls".into(),
            stop_sequence: None,
            usage: serde_json::from_value::<Usage>(json!({"prompt_tokens": 9, "completion_tokens": 4})).ok(),
            stopped: None,
            tool_runs: Vec::new(),
            transcript: Vec::new(),
            last: None,
        };
        out.push_str(&String::from_utf8_lossy(&s.finish(&answer)));
        let evs = events(&out);
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "ping",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        for (name, data) in &evs {
            assert_eq!(data["type"], name.as_str(), "each event's data names its type");
        }
        assert_eq!(evs[0].1["message"]["id"], "msg_chatcmpl-1");
        assert_eq!(evs[1].1["content_block"]["type"], "thinking");
        assert_eq!(evs[2].1["delta"], json!({"type": "thinking_delta", "thinking": "let me"}));
        assert_eq!(evs[4].1["index"], 1);
        assert_eq!(
            evs[7].1["delta"],
            json!({"type": "text_delta", "text": "\n\nCold."}),
            "rounds joined by a blank line"
        );
        assert_eq!(
            evs[9].1["content_block"],
            json!({"type": "tool_use", "id": "toolu_call_1", "name": "weather", "input": {}})
        );
        assert_eq!(evs[10].1["delta"], json!({"type": "input_json_delta", "partial_json": "{\"city\":\"Oslo\"}"}));
        assert_eq!(evs[12].1["delta"]["stop_reason"], "tool_use");
        assert_eq!(evs[12].1["usage"], json!({"input_tokens": 9, "output_tokens": 4}));
    }

    #[test]
    fn an_error_is_anthropics_error_event() {
        let out =
            String::from_utf8_lossy(&MessagesStream::error(&ProxyError::UpstreamTimeout("x".into()))).into_owned();
        let evs = events(&out);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].0, "error");
        assert_eq!(evs[0].1["error"]["type"], "api_error");
    }
}
