//! MCP tool rounds shown live in a chat-completions stream, for a client that
//! asks with `x-mcp-progress: on` (a playground showing each call as it runs).
//!
//! [`Progress`] wraps the surface's own encoder. With progress on, the loop's
//! tool events, which the chat stream otherwise shows as nothing, become named
//! SSE events: one `mcp.tool_call.started` per call of a round as the round
//! starts, one `mcp.tool_call.done` per call as it finishes. Their data carry
//! `"object"` and `"choices": []` because the openai SDK yields every event
//! of a chat stream as a chunk: an empty `choices` adds nothing to the answer.
//! With progress off every event goes to the inner encoder unchanged, so the
//! stream is byte for byte what it is without the header.
//!
//! Only the calls the proxy runs come here (the loop never reports the
//! client's own tools as run), and nothing but the call, its result and its
//! timing is written: no key or header ever reaches these events.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use super::StreamEncoder;
use crate::mcp::Catalog;
use crate::openai::chat::ToolCall;
use crate::tool_loop::Event;

/// How much of a tool's output a `done` event carries; its full length is given beside it.
pub const OUTPUT_PREVIEW_BYTES: usize = 4096;

/// A stream encoder with the tool rounds shown, or not.
pub struct Progress<E> {
    /// The surface's encoder, for everything that is not a tool event (and
    /// for the end of the stream, which is the surface's).
    pub inner: E,
    /// With progress on, the catalog the request was offered: which server each tool is on.
    catalog: Option<Arc<Catalog>>,
}

impl<E: StreamEncoder> Progress<E> {
    /// `catalog`: `Some` shows the tool rounds (naming each tool's server from it), `None` does not.
    pub fn new(inner: E, catalog: Option<Arc<Catalog>>) -> Self {
        Self { inner, catalog }
    }

    fn started(catalog: &Catalog, round: u32, calls: &[ToolCall]) -> String {
        let mut out = String::new();
        for call in calls {
            let mut data = json!({
                "object": STARTED,
                "choices": [],
                "round": round,
                "id": call.id,
                "tool": call.function.name,
                "arguments": call.function.arguments,
            });
            if let Some(tool) = catalog.get(&call.function.name) {
                data["server"] = json!(tool.server);
            }
            out.push_str(&named_event(STARTED, &data));
        }
        out
    }
}

const STARTED: &str = "mcp.tool_call.started";
const DONE: &str = "mcp.tool_call.done";

impl<E: StreamEncoder> StreamEncoder for Progress<E> {
    fn event(&mut self, event: &Event) -> Option<Bytes> {
        let Some(catalog) = &self.catalog else {
            return self.inner.event(event);
        };
        match event {
            Event::ToolsStarted { round, calls } => Some(Bytes::from(Self::started(catalog, *round, calls))),
            Event::ToolFinished { round, call_id, name, output, is_error, elapsed } => {
                let data = done(*round, call_id, name, output, *is_error, *elapsed);
                Some(Bytes::from(named_event(DONE, &data)))
            }
            other => self.inner.event(other),
        }
    }
}

/// The data of a `done` event: the output's head, its full length, and how the call went.
fn done(round: u32, call_id: &str, name: &str, output: &str, is_error: bool, elapsed: Duration) -> Value {
    let preview = head(output, OUTPUT_PREVIEW_BYTES);
    json!({
        "object": DONE,
        "choices": [],
        "round": round,
        "id": call_id,
        "tool": name,
        "output": preview,
        "length": output.len(),
        "truncated": preview.len() < output.len(),
        "is_error": is_error,
        "duration_ms": u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
    })
}

fn named_event(name: &str, data: &Value) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// The longest start of `text` of at most `max` bytes that ends on a character boundary.
fn head(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::mcp::catalog::ServerTool;
    use crate::surfaces::chat::ChatStream;
    use crate::tool_loop::events::Delta;
    use crate::tool_loop::Identity;

    fn catalog() -> Arc<Catalog> {
        let echo = ServerTool { name: "echo".into(), description: "Echo".into(), input_schema: json!({}) };
        let known: BTreeMap<String, Vec<ServerTool>> = [("t".to_string(), vec![echo])].into();
        Catalog::build(&known, &["t"])
    }

    fn events(output: &str) -> Vec<Event> {
        vec![
            Event::Started(Identity { id: "chatcmpl-1".into(), created: 7, model: "m".into() }),
            Event::ToolsStarted {
                round: 1,
                calls: vec![ToolCall::new("c1", "echo", r#"{"text":"hi"}"#), ToolCall::new("c2", "gone", "{}")],
            },
            Event::Waiting { what: "tool echo running".into() },
            Event::ToolFinished {
                round: 1,
                call_id: "c1".into(),
                name: "echo".into(),
                output: output.into(),
                is_error: false,
                elapsed: Duration::from_millis(12),
            },
            Event::Delta(Delta { round: 2, text: "It said hi.".into(), ..Delta::default() }),
        ]
    }

    fn encode(enc: &mut impl StreamEncoder, events: &[Event]) -> String {
        events.iter().filter_map(|e| enc.event(e)).map(|b| String::from_utf8_lossy(&b).into_owned()).collect()
    }

    /// `(event name, data)` of each named event.
    fn named(raw: &str) -> Vec<(String, Value)> {
        raw.split("\n\n")
            .filter_map(|e| e.strip_prefix("event: "))
            .filter_map(|e| e.split_once("\ndata: "))
            .map(|(name, data)| (name.to_string(), serde_json::from_str(data).unwrap_or_default()))
            .collect()
    }

    #[test]
    fn off_is_the_chat_stream_itself() {
        let plain = encode(&mut ChatStream::new(false), &events("hi"));
        let wrapped = encode(&mut Progress::new(ChatStream::new(false), None), &events("hi"));
        assert_eq!(plain, wrapped);
        assert!(!wrapped.contains("event:"), "{wrapped}");
    }

    #[test]
    fn on_shows_each_call_starting_and_finishing_around_the_chat_chunks() {
        let raw = encode(&mut Progress::new(ChatStream::new(false), Some(catalog())), &events("hi"));
        let seen = named(&raw);
        let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [STARTED, STARTED, DONE]);
        for (name, data) in &seen {
            assert_eq!((data["object"].as_str(), &data["choices"]), (Some(name.as_str()), &json!([])));
        }
        let (started, unknown, done) = (&seen[0].1, &seen[1].1, &seen[2].1);
        assert_eq!(started["id"], "c1");
        assert_eq!((started["round"].as_u64(), started["tool"].as_str()), (Some(1), Some("echo")));
        assert_eq!(started["server"], "t");
        assert_eq!(started["arguments"], r#"{"text":"hi"}"#);
        assert!(unknown.get("server").is_none(), "a tool not in the catalog names no server: {unknown}");
        assert_eq!(done["output"], "hi");
        assert_eq!((done["length"].as_u64(), done["truncated"].as_bool()), (Some(2), Some(false)));
        assert_eq!((done["is_error"].as_bool(), done["duration_ms"].as_u64()), (Some(false), Some(12)));
        assert!(raw.contains(": tool echo running\n\n"), "the other events still go to the chat stream: {raw}");
        let answer = raw.find("It said hi.").unwrap_or(0);
        assert!(raw.find(DONE).is_some_and(|d| d < answer), "{raw}");
    }

    #[test]
    fn a_long_output_is_cut_on_a_character_boundary() {
        // 4095 bytes of ASCII, then a 2-byte character across the 4096th byte.
        let output = format!("{}é{}", "a".repeat(OUTPUT_PREVIEW_BYTES - 1), "b".repeat(100));
        let raw = encode(&mut Progress::new(ChatStream::new(false), Some(catalog())), &events(&output));
        let done = &named(&raw)[2].1;
        assert_eq!(done["output"].as_str().map(str::len), Some(OUTPUT_PREVIEW_BYTES - 1));
        assert_eq!(done["length"].as_u64(), Some(output.len() as u64));
        assert_eq!(done["truncated"], true);
    }

    #[test]
    fn head_never_splits_a_character() {
        let text = "aé€😀";
        let cuts: Vec<&str> = (0..=text.len() + 1).map(|max| head(text, max)).collect();
        assert_eq!(cuts, ["", "a", "a", "aé", "aé", "aé", "aé€", "aé€", "aé€", "aé€", "aé€😀", "aé€😀"]);
        assert_eq!(head("", 4096), "");
        assert_eq!(head("short", 4096), "short");
    }
}
