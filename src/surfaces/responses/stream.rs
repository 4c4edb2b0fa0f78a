//! The loop's events as the Responses event stream: `response.created`,
//! `response.in_progress`, each output item opened (`output_item.added`),
//! filled (`output_text.delta`, `mcp_call_arguments.*`, …) and closed
//! (`output_item.done`) as it happens, every round's text as it comes,
//! then `response.completed` (or `.incomplete`, `.failed`) with the output
//! exactly as streamed. Every event has the next `sequence_number`.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::output::{self, Meta};
use crate::error::ProxyError;
use crate::mcp::Catalog;
use crate::openai::chat::ToolCall;
use crate::surfaces::StreamEncoder;
use crate::tool_loop::{Answer, Event};

/// An item still being written: a round's text or reasoning.
#[derive(Debug)]
struct Open {
    index: usize,
    id: String,
    round: u32,
    reasoning: bool,
    text: String,
}

pub struct ResponsesStream {
    meta: Meta,
    catalog: Arc<Catalog>,
    to_list: Vec<String>,
    sequence: u64,
    started: bool,
    output: Vec<Value>,
    open: Option<Open>,
    /// Running MCP calls: call id → output index.
    calls: HashMap<String, usize>,
}

impl ResponsesStream {
    pub fn new(meta: Meta, catalog: Arc<Catalog>, to_list: Vec<String>) -> Self {
        Self {
            meta,
            catalog,
            to_list,
            sequence: 0,
            started: false,
            output: Vec::new(),
            open: None,
            calls: HashMap::new(),
        }
    }

    fn emit(&mut self, out: &mut String, kind: &str, mut body: Value) {
        body["type"] = json!(kind);
        body["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        out.push_str(&format!("event: {kind}\ndata: {body}\n\n"));
    }

    /// `response.created` and `.in_progress`, then the tools listed (once).
    fn start(&mut self, out: &mut String) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.meta.response("in_progress", &[], None);
        self.emit(out, "response.created", json!({"response": response}));
        self.emit(out, "response.in_progress", json!({"response": response}));
        for server in std::mem::take(&mut self.to_list) {
            let id = output::new_id("mcpl");
            let done = output::list_tools_item(&id, &server, &self.catalog);
            let failed = !done["error"].is_null();
            let mut added = done.clone();
            added["tools"] = json!([]);
            let index = self.add(out, added);
            self.emit(out, "response.mcp_list_tools.in_progress", json!({"item_id": id, "output_index": index}));
            let end = if failed { "response.mcp_list_tools.failed" } else { "response.mcp_list_tools.completed" };
            self.emit(out, end, json!({"item_id": id, "output_index": index}));
            self.done(out, index, done);
        }
    }

    fn add(&mut self, out: &mut String, item: Value) -> usize {
        let index = self.output.len();
        self.output.push(item.clone());
        self.emit(out, "response.output_item.added", json!({"output_index": index, "item": item}));
        index
    }

    fn done(&mut self, out: &mut String, index: usize, item: Value) {
        self.output[index] = item.clone();
        self.emit(out, "response.output_item.done", json!({"output_index": index, "item": item}));
    }

    /// Opens the item for `round`'s text or reasoning, closing another.
    fn open(&mut self, out: &mut String, round: u32, reasoning: bool) -> (usize, String) {
        if let Some(o) = &self.open {
            if o.round == round && o.reasoning == reasoning {
                return (o.index, o.id.clone());
            }
        }
        self.close(out);
        let (id, item, part) = if reasoning {
            let id = output::new_id("rs");
            (id.clone(), json!({"type": "reasoning", "id": id, "summary": [], "content": []}), None)
        } else {
            let id = output::new_id("msg");
            let item =
                json!({"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []});
            (id, item, Some(json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []})))
        };
        let index = self.add(out, item);
        if let Some(part) = part {
            self.emit(
                out,
                "response.content_part.added",
                json!({"item_id": id, "output_index": index, "content_index": 0, "part": part}),
            );
        }
        self.open = Some(Open { index, id: id.clone(), round, reasoning, text: String::new() });
        (index, id)
    }

    fn close(&mut self, out: &mut String) {
        let Some(o) = self.open.take() else { return };
        let at = json!({"item_id": o.id, "output_index": o.index, "content_index": 0});
        if o.reasoning {
            let mut done = at.clone();
            done["text"] = json!(o.text);
            self.emit(out, "response.reasoning_text.done", done);
            self.done(out, o.index, output::reasoning_item(&o.id, &o.text));
        } else {
            let mut done = at.clone();
            done["text"] = json!(o.text);
            done["logprobs"] = json!([]);
            self.emit(out, "response.output_text.done", done);
            let mut part = at;
            part["part"] = json!({"type": "output_text", "text": o.text, "annotations": [], "logprobs": []});
            self.emit(out, "response.content_part.done", part);
            self.done(out, o.index, output::message_item(&o.id, &o.text, "completed"));
        }
    }

    fn text(&mut self, out: &mut String, round: u32, delta: &str, reasoning: bool) {
        if delta.is_empty() {
            return;
        }
        let (index, id) = self.open(out, round, reasoning);
        if let Some(o) = self.open.as_mut() {
            o.text.push_str(delta);
        }
        let kind = if reasoning { "response.reasoning_text.delta" } else { "response.output_text.delta" };
        let mut body = json!({"item_id": id, "output_index": index, "content_index": 0, "delta": delta});
        if !reasoning {
            body["logprobs"] = json!([]);
        }
        self.emit(out, kind, body);
    }

    fn tools_started(&mut self, out: &mut String, round: u32, calls: &[ToolCall]) {
        self.close(out);
        for call in calls {
            let item = output::mcp_call_item(call, None, round == 0, &self.catalog);
            let id = output::mcp_call_id(call);
            let index = self.add(out, item);
            self.calls.insert(call.id.clone(), index);
            let at = json!({"item_id": id, "output_index": index});
            self.emit(out, "response.mcp_call.in_progress", at.clone());
            let mut delta = at.clone();
            delta["delta"] = json!(call.function.arguments);
            self.emit(out, "response.mcp_call_arguments.delta", delta);
            let mut done = at;
            done["arguments"] = json!(call.function.arguments);
            self.emit(out, "response.mcp_call_arguments.done", done);
        }
    }

    fn tool_finished(&mut self, out: &mut String, call_id: &str, text: &str, is_error: bool) {
        let Some(&index) = self.calls.get(call_id) else { return };
        let mut item = self.output[index].clone();
        if is_error {
            item["error"] = json!(text);
            item["status"] = json!("failed");
        } else {
            item["output"] = json!(text);
            item["status"] = json!("completed");
        }
        let at = json!({"item_id": item["id"], "output_index": index});
        self.emit(out, if is_error { "response.mcp_call.failed" } else { "response.mcp_call.completed" }, at);
        self.done(out, index, item);
    }

    /// The end of a finished answer: the client's calls, the approval
    /// requests, and `response.completed` (or `.incomplete`). Returns the
    /// final response object too, to be stored before the bytes are sent.
    pub fn finish(&mut self, answer: &Answer) -> (Value, Bytes) {
        let mut out = String::new();
        self.start(&mut out);
        self.close(&mut out);
        for call in &answer.client_calls {
            let index = self.add(&mut out, output::function_call_item(call, "in_progress"));
            let at = json!({"item_id": format!("fc_{}", call.id), "output_index": index});
            let mut delta = at.clone();
            delta["delta"] = json!(call.function.arguments);
            self.emit(&mut out, "response.function_call_arguments.delta", delta);
            let mut done = at;
            done["arguments"] = json!(call.function.arguments);
            done["name"] = json!(call.function.name);
            self.emit(&mut out, "response.function_call_arguments.done", done);
            self.done(&mut out, index, output::function_call_item(call, "completed"));
        }
        for call in &answer.awaiting_approval {
            let item = output::approval_request_item(call, &self.catalog);
            let index = self.add(&mut out, item.clone());
            self.done(&mut out, index, item);
        }
        let response = self.meta.finished(answer, &self.output);
        let kind = if response["status"] == "incomplete" { "response.incomplete" } else { "response.completed" };
        self.emit(&mut out, kind, json!({"response": response}));
        (response, Bytes::from(out))
    }

    /// A failure after the stream started: `response.failed` with the error.
    pub fn failed(&mut self, err: &ProxyError) -> Bytes {
        let mut out = String::new();
        self.start(&mut out);
        self.close(&mut out);
        let response = self.meta.failed(err, &self.output);
        self.emit(&mut out, "response.failed", json!({"response": response}));
        Bytes::from(out)
    }

    /// The output as streamed so far.
    pub fn output(&self) -> &[Value] {
        &self.output
    }
}

impl StreamEncoder for ResponsesStream {
    fn event(&mut self, event: &Event) -> Option<Bytes> {
        let mut out = String::new();
        match event {
            Event::Started(_) => self.start(&mut out),
            Event::Delta(d) => {
                self.start(&mut out);
                if let Some(r) = &d.reasoning {
                    self.text(&mut out, d.round, &r.text, true);
                }
                self.text(&mut out, d.round, &d.text, false);
            }
            Event::ToolsStarted { round, calls } => {
                self.start(&mut out);
                self.tools_started(&mut out, *round, calls);
            }
            Event::ToolFinished { call_id, output, is_error, .. } => {
                self.tool_finished(&mut out, call_id, output, *is_error);
            }
            // A comment line every SSE client ignores; keeps idle connections open.
            Event::Waiting { what } => out.push_str(&format!(": {}\n\n", what.replace(['\n', '\r'], " "))),
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::mcp::catalog::ServerTool;
    use crate::tool_loop::events::{Delta, Identity};

    fn catalog() -> Arc<Catalog> {
        let echo = ServerTool { name: "echo".into(), description: "Echo".into(), input_schema: json!({}) };
        let known: BTreeMap<String, Vec<ServerTool>> = [("t".to_string(), vec![echo])].into();
        Catalog::build(&known, &["t"])
    }

    fn parse(bytes: &[Bytes]) -> Vec<Value> {
        let text: String = bytes.iter().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
        text.split("\n\n")
            .filter(|e| !e.trim().is_empty() && !e.starts_with(':'))
            .map(|e| {
                let (kind, data) = e.split_once('\n').unwrap_or_default();
                let v: Value = serde_json::from_str(data.trim_start_matches("data: ")).unwrap_or_default();
                assert_eq!(kind.trim_start_matches("event: "), v["type"], "the event line names the data's type");
                v
            })
            .collect()
    }

    #[test]
    fn a_tool_round_streams_as_items_and_completes_with_the_output_as_streamed() {
        let req = super::super::request::Request { store: true, ..Default::default() };
        let mut enc = ResponsesStream::new(Meta::new(&req, "m"), catalog(), vec!["t".into()]);
        let call = ToolCall::new("c1", "echo", r#"{"text":"hi"}"#);
        let delta = |round, text: &str| Event::Delta(Delta { round, text: text.into(), ..Delta::default() });
        let events = [
            Event::Started(Identity::default()),
            delta(1, "Let me "),
            delta(1, "check."),
            Event::ToolsStarted { round: 1, calls: vec![call.clone()] },
            Event::Waiting { what: "tool echo running".into() },
            Event::ToolFinished {
                round: 1,
                call_id: "c1".into(),
                name: "echo".into(),
                output: "hi".into(),
                is_error: false,
                elapsed: Duration::ZERO,
            },
            delta(2, "It said hi."),
        ];
        let mut bytes: Vec<Bytes> = events.iter().filter_map(|e| enc.event(e)).collect();
        let answer = Answer { texts: vec!["Let me check.".into(), "It said hi.".into()], ..Answer::default() };
        let (response, last) = enc.finish(&answer);
        bytes.push(last);
        let parsed = parse(&bytes);
        for (i, e) in parsed.iter().enumerate() {
            assert_eq!(e["sequence_number"], json!(i));
        }
        let kinds: Vec<&str> = parsed.iter().filter_map(|e| e["type"].as_str()).collect();
        assert_eq!(
            &kinds[..4],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.mcp_list_tools.in_progress"
            ]
        );
        assert_eq!(kinds.last(), Some(&"response.completed"));
        let done: Vec<Value> =
            parsed.iter().filter(|e| e["type"] == "response.output_item.done").map(|e| e["item"].clone()).collect();
        assert_eq!(response["output"], json!(done));
        let types: Vec<&str> = done.iter().filter_map(|i| i["type"].as_str()).collect();
        assert_eq!(types, ["mcp_list_tools", "message", "mcp_call", "message"]);
        assert_eq!(done[1]["content"][0]["text"], "Let me check.");
        assert_eq!((done[2]["server_label"].as_str(), done[2]["output"].as_str()), (Some("t"), Some("hi")));
        assert_eq!(response["status"], "completed");
    }
}
