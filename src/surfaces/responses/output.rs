//! The response object and its output items, as OpenAI returns them:
//! `mcp_list_tools`, `reasoning`, `message` (one per round that wrote
//! text), `mcp_call`, `function_call` for the client's tools, and
//! `mcp_approval_request` for calls waiting for a yes.

use serde_json::{json, Value};

use super::decode::approval_request_id;
use super::request::Request;
use crate::error::ProxyError;
use crate::mcp::Catalog;
use crate::openai::chat::{ToolCall, Usage};
use crate::tool_loop::events::ToolRun;
use crate::tool_loop::Answer;

/// What every response object of one request repeats of the request.
#[derive(Debug, Clone)]
pub struct Meta {
    pub id: String,
    pub created_at: u64,
    pub model: String,
    echo: Value,
}

impl Meta {
    pub fn new(req: &Request, model: &str) -> Self {
        let format = req.text.as_ref().and_then(|t| t.get("format")).cloned().unwrap_or(json!({"type": "text"}));
        let echo = json!({
            "background": false,
            "instructions": req.instructions,
            "max_output_tokens": req.max_output_tokens,
            "metadata": req.metadata,
            "parallel_tool_calls": req.parallel_tool_calls.unwrap_or(true),
            "previous_response_id": req.previous_response_id,
            "reasoning": {
                "effort": req.reasoning.as_ref().and_then(|r| r.get("effort")).cloned(),
                "summary": req.reasoning.as_ref().and_then(|r| r.get("summary")).cloned(),
            },
            "store": req.store,
            "temperature": req.temperature.unwrap_or(1.0),
            "text": {"format": format},
            "tool_choice": req.tool_choice.clone().unwrap_or(json!("auto")),
            "tools": req.tools,
            "top_p": req.top_p.unwrap_or(1.0),
            "truncation": req.truncation.as_deref().unwrap_or("disabled"),
            "user": req.user,
        });
        Self { id: format!("resp_{}", uuid::Uuid::new_v4().simple()), created_at: now(), model: model.into(), echo }
    }

    /// The response object in `status`.
    pub fn response(&self, status: &str, output: &[Value], usage: Option<&Usage>) -> Value {
        let mut r = self.echo.clone();
        r["id"] = json!(self.id);
        r["object"] = json!("response");
        r["created_at"] = json!(self.created_at);
        r["model"] = json!(self.model);
        r["status"] = json!(status);
        r["error"] = Value::Null;
        r["incomplete_details"] = Value::Null;
        r["output"] = json!(output);
        r["usage"] = usage.map_or(Value::Null, responses_usage);
        r
    }

    /// The finished response: `completed`, or `incomplete` with the reason
    /// when a limit ended it.
    pub fn finished(&self, answer: &Answer, output: &[Value]) -> Value {
        let reason = match (answer.stopped, answer.finish_reason.as_str()) {
            (_, "length") => Some("max_output_tokens"),
            (_, "content_filter") => Some("content_filter"),
            (Some(stopped), _) => Some(stopped.as_str()),
            (None, _) => None,
        };
        let mut r =
            self.response(if reason.is_some() { "incomplete" } else { "completed" }, output, answer.usage.as_ref());
        if let Some(reason) = reason {
            r["incomplete_details"] = json!({"reason": reason});
        }
        r
    }

    /// The response of a run that failed.
    pub fn failed(&self, err: &ProxyError, output: &[Value]) -> Value {
        let mut r = self.response("failed", output, None);
        let body: Value = serde_json::from_slice(&err.openai_body()).unwrap_or_default();
        r["error"] = json!({"code": body["error"]["code"], "message": body["error"]["message"]});
        r
    }
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Chat-completions usage in Responses terms.
pub fn responses_usage(u: &Usage) -> Value {
    let detail = |outer: &str, inner: &str| u.rest.get(outer).and_then(|d| d.get(inner)).and_then(Value::as_u64);
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": detail("prompt_tokens_details", "cached_tokens").unwrap_or(0)},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": detail("completion_tokens_details", "reasoning_tokens").unwrap_or(0)},
        "total_tokens": u.total_tokens,
    })
}

pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// The server and the server's own name of an exposed tool name.
pub fn tool_of<'c>(catalog: &'c Catalog, exposed: &'c str) -> (&'c str, &'c str) {
    catalog.get(exposed).map_or(("", exposed), |t| (t.server.as_str(), t.original.as_str()))
}

pub fn list_tools_item(id: &str, server: &str, catalog: &Catalog) -> Value {
    let tools: Vec<Value> = catalog
        .tools()
        .iter()
        .filter(|t| t.server == server)
        .map(|t| json!({"name": t.original, "description": t.description, "input_schema": t.input_schema, "annotations": null}))
        .collect();
    let error = tools.is_empty().then(|| format!("MCP server {server:?} offers no tools right now"));
    json!({"type": "mcp_list_tools", "id": id, "server_label": server, "tools": tools, "error": error})
}

pub fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

pub fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"type": "reasoning", "id": id, "summary": [], "content": [{"type": "reasoning_text", "text": text}]})
}

pub fn mcp_call_id(call: &ToolCall) -> String {
    format!("mcp_{}", call.id)
}

/// An `mcp_call` item: running (no output yet), or finished.
pub fn mcp_call_item(call: &ToolCall, result: Option<(&str, bool)>, approved: bool, catalog: &Catalog) -> Value {
    let (server, name) = tool_of(catalog, &call.function.name);
    let (output, error, status) = match result {
        None => (Value::Null, Value::Null, "in_progress"),
        Some((text, false)) => (json!(text), Value::Null, "completed"),
        Some((text, true)) => (Value::Null, json!(text), "failed"),
    };
    json!({
        "type": "mcp_call", "id": mcp_call_id(call), "server_label": server, "name": name,
        "arguments": call.function.arguments, "output": output, "error": error, "status": status,
        "approval_request_id": if approved { json!(approval_request_id(&call.id)) } else { Value::Null },
    })
}

pub fn function_call_item(call: &ToolCall, status: &str) -> Value {
    json!({"type": "function_call", "id": format!("fc_{}", call.id), "call_id": call.id,
           "name": call.function.name, "arguments": call.function.arguments, "status": status})
}

pub fn approval_request_item(call: &ToolCall, catalog: &Catalog) -> Value {
    let (server, name) = tool_of(catalog, &call.function.name);
    json!({"type": "mcp_approval_request", "id": approval_request_id(&call.id), "server_label": server,
           "name": name, "arguments": call.function.arguments})
}

fn run_item(run: &ToolRun, catalog: &Catalog) -> Value {
    mcp_call_item(&run.call, Some((&run.output, run.is_error)), run.round == 0, catalog)
}

/// The output of a non-streamed answer, in the order a stream shows it.
pub fn output(answer: &Answer, to_list: &[String], catalog: &Catalog) -> Vec<Value> {
    let mut out: Vec<Value> = to_list.iter().map(|s| list_tools_item(&new_id("mcpl"), s, catalog)).collect();
    out.extend(answer.tool_runs.iter().filter(|r| r.round == 0).map(|r| run_item(r, catalog)));
    for (i, text) in answer.texts.iter().enumerate() {
        let round = i as u32 + 1;
        for (_, r) in answer.reasoning.iter().filter(|(n, _)| *n == round) {
            out.push(reasoning_item(&new_id("rs"), &r.text));
        }
        if !text.is_empty() {
            out.push(message_item(&new_id("msg"), text, "completed"));
        }
        out.extend(answer.tool_runs.iter().filter(|r| r.round == round).map(|r| run_item(r, catalog)));
    }
    out.extend(answer.client_calls.iter().map(|c| function_call_item(c, "completed")));
    out.extend(answer.awaiting_approval.iter().map(|c| approval_request_item(c, catalog)));
    out
}
