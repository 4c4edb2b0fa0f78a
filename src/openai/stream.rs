//! Assembling streamed tool calls: OpenAI sends each call's id and name once
//! and its arguments in pieces, keyed by `index`; parallel calls interleave.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::chat::{FunctionCall, ToolCall, ToolCallDelta};

/// Largest arguments text one call may accumulate.
const MAX_ARGUMENTS: usize = 4 * 1024 * 1024;

#[derive(Debug, Default)]
pub struct ToolCallAccumulator {
    calls: BTreeMap<u32, Partial>,
}

#[derive(Debug, Default)]
struct Partial {
    id: String,
    name: String,
    arguments: String,
    /// Whether an `arguments` piece has arrived (after it, a name equal to
    /// the name so far is the name resent, not a piece of it).
    arguments_seen: bool,
    /// Vendor fields of the call and of its function, first value wins.
    rest: Map<String, Value>,
    function_rest: Map<String, Value>,
}

impl ToolCallAccumulator {
    /// Adds one chunk's tool-call deltas. Arguments beyond the cap are dropped
    /// (the call then fails to parse and the model is told so).
    pub fn push(&mut self, deltas: &[ToolCallDelta]) {
        for d in deltas {
            let call = self.calls.entry(d.index).or_default();
            if let Some(id) = &d.id {
                if call.id.is_empty() {
                    call.id = id.clone();
                }
            }
            keep_first(&mut call.rest, &d.rest);
            if let Some(f) = &d.function {
                if let Some(name) = &f.name {
                    // Most servers send the name once; some send it in pieces, some
                    // resend it whole with every piece of the arguments.
                    let resent = call.arguments_seen && *name == call.name;
                    if !resent {
                        call.name.push_str(name);
                    }
                }
                if let Some(args) = &f.arguments {
                    call.arguments_seen = true;
                    if call.arguments.len() + args.len() <= MAX_ARGUMENTS {
                        call.arguments.push_str(args);
                    }
                }
                keep_first(&mut call.function_rest, &f.rest);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// The assembled calls in index order; calls without an id get one.
    pub fn finish(self) -> Vec<ToolCall> {
        self.calls
            .into_iter()
            .map(|(index, p)| ToolCall {
                id: if p.id.is_empty() { format!("call_{index}_{}", short_id()) } else { p.id },
                kind: "function".into(),
                function: FunctionCall { name: p.name, arguments: p.arguments, rest: p.function_rest },
                rest: p.rest,
            })
            .collect()
    }
}

fn keep_first(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (key, value) in from {
        into.entry(key.clone()).or_insert_with(|| value.clone());
    }
}

fn short_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::chat::FunctionDelta;

    fn delta(index: u32, id: Option<&str>, name: Option<&str>, args: Option<&str>) -> ToolCallDelta {
        ToolCallDelta {
            index,
            id: id.map(str::to_string),
            kind: id.map(|_| "function".to_string()),
            function: Some(FunctionDelta {
                name: name.map(str::to_string),
                arguments: args.map(str::to_string),
                rest: Default::default(),
            }),
            rest: Default::default(),
        }
    }

    #[test]
    fn parallel_calls_are_kept_apart_by_index() {
        let mut acc = ToolCallAccumulator::default();
        acc.push(&[delta(0, Some("call_a"), Some("echo"), Some(""))]);
        acc.push(&[delta(1, Some("call_b"), Some("add"), Some("{\"a\":"))]);
        acc.push(&[delta(0, None, None, Some("{\"text\":"))]);
        acc.push(&[delta(1, None, None, Some("1,\"b\":2}"))]);
        acc.push(&[delta(0, None, None, Some("\"hi\"}"))]);
        let calls = acc.finish();
        assert_eq!(calls.len(), 2);
        assert_eq!((calls[0].id.as_str(), calls[0].function.name.as_str()), ("call_a", "echo"));
        assert_eq!(calls[0].function.arguments, "{\"text\":\"hi\"}");
        assert_eq!(calls[1].function.arguments, "{\"a\":1,\"b\":2}");
    }

    #[test]
    fn arguments_split_at_every_position_assemble_the_same() {
        let args = "{\"text\":\"a } b \\\" {\",\"n\":[1,2]}";
        for split in 0..=args.len() {
            if !args.is_char_boundary(split) {
                continue;
            }
            let mut acc = ToolCallAccumulator::default();
            acc.push(&[delta(0, Some("c"), Some("echo"), Some(&args[..split]))]);
            acc.push(&[delta(0, None, None, Some(&args[split..]))]);
            assert_eq!(acc.finish()[0].function.arguments, args);
        }
    }

    #[test]
    fn a_name_sent_in_pieces_is_joined_even_when_a_piece_ends_it_already() {
        let mut acc = ToolCallAccumulator::default();
        acc.push(&[delta(0, Some("c"), Some("ad"), None)]);
        acc.push(&[delta(0, None, Some("d"), Some("{}"))]);
        assert_eq!(acc.finish()[0].function.name, "add");
    }

    #[test]
    fn a_name_resent_whole_with_every_piece_is_kept_once() {
        let mut acc = ToolCallAccumulator::default();
        acc.push(&[delta(0, Some("c"), Some("echo"), Some("{\"a\""))]);
        acc.push(&[delta(0, None, Some("echo"), Some(":1}"))]);
        let call = &acc.finish()[0];
        assert_eq!((call.function.name.as_str(), call.function.arguments.as_str()), ("echo", "{\"a\":1}"));
    }

    #[test]
    fn a_call_without_an_id_gets_one() {
        let mut acc = ToolCallAccumulator::default();
        acc.push(&[delta(0, None, Some("echo"), Some("{}"))]);
        assert!(acc.finish()[0].id.starts_with("call_0_"));
    }
}
