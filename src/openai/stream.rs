//! Assembling streamed tool calls: OpenAI sends each call's id and name once
//! and its arguments in pieces, keyed by `index`; parallel calls interleave.

use std::collections::BTreeMap;

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
            if let Some(f) = &d.function {
                if let Some(name) = &f.name {
                    // Some servers resend the name with every piece; others send it in parts.
                    if !call.name.ends_with(name.as_str()) || call.name.is_empty() {
                        call.name.push_str(name);
                    }
                }
                if let Some(args) = &f.arguments {
                    if call.arguments.len() + args.len() <= MAX_ARGUMENTS {
                        call.arguments.push_str(args);
                    }
                }
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
                function: FunctionCall { name: p.name, arguments: p.arguments },
            })
            .collect()
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
            function: Some(FunctionDelta { name: name.map(str::to_string), arguments: args.map(str::to_string) }),
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
    fn a_call_without_an_id_gets_one() {
        let mut acc = ToolCallAccumulator::default();
        acc.push(&[delta(0, None, Some("echo"), Some("{}"))]);
        assert!(acc.finish()[0].id.starts_with("call_0_"));
    }
}
