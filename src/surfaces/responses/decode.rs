//! A Responses request in the tool loop's terms: input items become chat
//! messages (after the stored conversation of `previous_response_id`), the
//! client's `function` tools become chat tools, `mcp` tools select
//! configured servers and set which calls wait for approval, and approval
//! answers become calls to run (or refusals the model reads).

use std::collections::{BTreeSet, HashMap};

use serde_json::{json, Map, Value};

use super::record::{Awaiting, Stored};
use super::request::Request;
use crate::error::ProxyError;
use crate::mcp::Catalog;
use crate::openai::chat::{ChatRequest, Message, ToolCall};
use crate::settings::servers::{ServerConfig, Transport};
use crate::tool_loop::policy::Rule;
use crate::tool_loop::{Approval, Selection};

/// What decoding reads besides the request.
pub struct Context<'a> {
    /// The tools the client's key may use.
    pub catalog: &'a Catalog,
    /// The configured MCP servers: the only ones a request may name.
    pub servers: &'a [ServerConfig],
    pub default_model: &'a str,
    /// False when the client turned MCP tools off (`x-mcp-tools: off`).
    pub mcp: bool,
}

/// The request, decoded.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub chat: ChatRequest,
    /// False when `tool_choice` is `none`: no MCP tools this time.
    pub mcp: bool,
    pub selection: Option<Selection>,
    pub approval: Approval,
    pub approved: Vec<ToolCall>,
    /// The conversation before this response's output, without instructions.
    pub conversation: Vec<Message>,
    /// Servers whose tools this response lists (first time in the conversation).
    pub to_list: Vec<String>,
    /// Servers listed in the conversation once this response is done.
    pub listed: BTreeSet<String>,
    /// The input items with ids, as `input_items` returns them.
    pub input_items: Vec<Value>,
}

fn bad(message: impl Into<String>, param: &str) -> ProxyError {
    ProxyError::bad_request(message, Some(param))
}

/// The `mcp_approval_request` id for a call, and back.
pub fn approval_request_id(call_id: &str) -> String {
    format!("mcpr_{call_id}")
}

fn call_id_of(request_id: &str) -> String {
    request_id.strip_prefix("mcpr_").unwrap_or(request_id).to_string()
}

pub fn decode(req: &Request, previous: Option<&Stored>, cx: &Context<'_>) -> Result<Decoded, ProxyError> {
    let tools = tools(&req.tools, cx)?;
    let mut conv = Converter { cx, messages: Vec::new(), slots: Vec::new(), decisions: HashMap::new() };
    let mut listed = BTreeSet::new();
    if let Some(p) = previous {
        conv.messages = p.conversation.clone();
        listed = p.listed.clone();
        for waiting in &p.awaiting {
            conv.slot(waiting.clone());
        }
    }
    let known: BTreeSet<String> = conv.slots.iter().map(|(_, w)| w.request_id.clone()).collect();
    let mut input_items = Vec::new();
    for (i, item) in req.input.iter().enumerate() {
        conv.item(item, i, &known, &mut listed)?;
        input_items.push(with_id(item));
    }
    let approved = conv.decide();
    let selection = tools.selection.clone();
    let (tool_choice, mcp) = tool_choice(req.tool_choice.as_ref(), cx.catalog)?;
    let mcp = mcp && cx.mcp;
    let in_play = if mcp { servers_in_play(cx.catalog, selection.as_ref()) } else { Vec::new() };
    let to_list: Vec<String> = in_play.into_iter().filter(|s| !listed.contains(s)).collect();
    listed.extend(to_list.iter().cloned());
    let conversation = conv.messages;
    let mut messages = Vec::with_capacity(conversation.len() + 1);
    if let Some(instructions) = req.instructions.as_deref().filter(|i| !i.is_empty()) {
        messages.push(Message::text("system", instructions));
    }
    messages.extend(conversation.iter().cloned());
    let chat = ChatRequest {
        model: req.model.clone().unwrap_or_else(|| cx.default_model.to_string()),
        messages,
        stream: Some(req.stream),
        tools: (!tools.chat.is_empty()).then_some(tools.chat),
        tool_choice,
        stream_options: req.stream.then(|| json!({"include_usage": true})),
        rest: chat_fields(req)?,
    };
    Ok(Decoded { chat, mcp, selection, approval: tools.approval, approved, conversation, to_list, listed, input_items })
}

/// The request's sampling and format fields in chat-completions terms, and
/// every field this proxy does not know, unchanged.
fn chat_fields(req: &Request) -> Result<Map<String, Value>, ProxyError> {
    let mut rest = req.rest.clone();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            rest.insert(k.to_string(), v);
        }
    };
    put("parallel_tool_calls", req.parallel_tool_calls.map(Value::Bool));
    put("max_tokens", req.max_output_tokens.map(Value::from));
    put("temperature", req.temperature.map(Value::from));
    put("top_p", req.top_p.map(Value::from));
    put("user", req.user.clone().map(Value::String));
    put("top_logprobs", req.top_logprobs.map(Value::from));
    put("logprobs", (req.logprobs || req.top_logprobs.is_some()).then_some(Value::Bool(true)));
    put("reasoning_effort", req.reasoning.as_ref().and_then(|r| r.get("effort")).filter(|e| !e.is_null()).cloned());
    if let Some(text) = &req.text {
        put("verbosity", text.get("verbosity").filter(|v| !v.is_null()).cloned());
        put("response_format", response_format(text.get("format"))?);
    }
    Ok(rest)
}

fn response_format(format: Option<&Value>) -> Result<Option<Value>, ProxyError> {
    let Some(format) = format.filter(|f| !f.is_null()) else { return Ok(None) };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(json!({"type": "json_object"}))),
        Some("json_schema") => {
            let mut schema = Map::new();
            for key in ["name", "schema", "strict", "description"] {
                if let Some(v) = format.get(key).filter(|v| !v.is_null()) {
                    schema.insert(key.into(), v.clone());
                }
            }
            Ok(Some(json!({"type": "json_schema", "json_schema": schema})))
        }
        _ => Err(bad("'text.format.type' must be text, json_object or json_schema", "text.format.type")),
    }
}

/// The request's tools, sorted: the client's functions, and its MCP choices.
struct Tools {
    chat: Vec<Value>,
    selection: Option<Selection>,
    approval: Approval,
}

fn tools(given: &[Value], cx: &Context<'_>) -> Result<Tools, ProxyError> {
    let mut out = Tools { chat: Vec::new(), selection: None, approval: Approval::default() };
    for (i, tool) in given.iter().enumerate() {
        let at = |field: &str| format!("tools[{i}].{field}");
        match tool.get("type").and_then(Value::as_str) {
            Some("function") => {
                let Some(name) = tool.get("name").and_then(Value::as_str) else {
                    return Err(bad("a function tool needs a string 'name'", &at("name")));
                };
                let mut function = json!({"name": name});
                for key in ["description", "parameters", "strict"] {
                    if let Some(v) = tool.get(key).filter(|v| !v.is_null()) {
                        function[key] = v.clone();
                    }
                }
                out.chat.push(json!({"type": "function", "function": function}));
            }
            Some("mcp") => {
                let (server, allowed, rule) = mcp_tool(tool, cx, &at)?;
                out.selection.get_or_insert_with(Selection::default).add(&server, allowed);
                out.approval.set(&server, rule);
            }
            Some(other) => {
                return Err(bad(
                    format!("tools of type {other:?} are not supported: this proxy runs function and mcp tools"),
                    &at("type"),
                ))
            }
            None => return Err(bad("every tool needs a 'type'", &at("type"))),
        }
    }
    Ok(out)
}

/// One `mcp` tool: a configured server (never a new place to connect to),
/// the tools it allows, and its approval rule.
fn mcp_tool(
    tool: &Value,
    cx: &Context<'_>,
    at: &dyn Fn(&str) -> String,
) -> Result<(String, Option<Vec<String>>, Rule), ProxyError> {
    let Some(label) = tool.get("server_label").and_then(Value::as_str) else {
        return Err(bad("an mcp tool needs a string 'server_label'", &at("server_label")));
    };
    let Some(server) = cx.servers.iter().find(|s| s.name == label) else {
        let names: Vec<&str> = cx.servers.iter().map(|s| s.name.as_str()).collect();
        return Err(bad(
            format!(
                "no MCP server {label:?} is configured on this proxy; the configured ones are: {}",
                names.join(", ")
            ),
            &at("server_label"),
        ));
    };
    if let Some(url) = tool.get("server_url").and_then(Value::as_str) {
        let configured = match &server.transport {
            Transport::Sse { url, .. } | Transport::StreamableHttp { url, .. } => Some(url.as_str()),
            Transport::Stdio { .. } => None,
        };
        if configured != Some(url) {
            return Err(bad(
                format!(
                    "server_url {url:?} is not the configured address of {label:?}: this proxy connects only to the \
                     MCP servers its operator configured; send server_label alone"
                ),
                &at("server_url"),
            ));
        }
    }
    for field in ["connector_id", "headers", "authorization"] {
        if tool.get(field).is_some_and(|v| !v.is_null()) {
            return Err(bad(
                format!("'{field}' is not supported: the proxy's MCP servers and their credentials are configured by its operator"),
                &at(field),
            ));
        }
    }
    let allowed = match tool.get("allowed_tools") {
        None | Some(Value::Null) => None,
        Some(Value::Array(names)) => Some(strings(names, &at("allowed_tools"))?),
        Some(Value::Object(filter)) => {
            if filter.get("read_only").and_then(Value::as_bool) == Some(true) {
                return Err(bad("allowed_tools.read_only is not supported; name the tools", &at("allowed_tools")));
            }
            match filter.get("tool_names") {
                Some(Value::Array(names)) => Some(strings(names, &at("allowed_tools.tool_names"))?),
                _ => None,
            }
        }
        Some(_) => return Err(bad("'allowed_tools' must be an array of tool names", &at("allowed_tools"))),
    };
    Ok((label.to_string(), allowed, approval_rule(tool.get("require_approval"), at)?))
}

fn strings(values: &[Value], at: &str) -> Result<Vec<String>, ProxyError> {
    values.iter().map(|v| v.as_str().map(str::to_string).ok_or_else(|| bad("tool names must be strings", at))).collect()
}

/// `require_approval`: `always` (OpenAI's default), `never`, or per tool.
fn approval_rule(given: Option<&Value>, at: &dyn Fn(&str) -> String) -> Result<Rule, ProxyError> {
    let names = |v: Option<&Value>| -> Result<Option<BTreeSet<String>>, ProxyError> {
        match v.and_then(|v| v.get("tool_names")) {
            Some(Value::Array(n)) => Ok(Some(strings(n, &at("require_approval"))?.into_iter().collect())),
            _ => Ok(v.map(|_| BTreeSet::new())),
        }
    };
    match given {
        None | Some(Value::Null) => Ok(Rule::always()),
        Some(Value::String(s)) if s == "always" => Ok(Rule::always()),
        Some(Value::String(s)) if s == "never" => Ok(Rule::never()),
        Some(Value::Object(o)) => {
            let (always, never) = (names(o.get("always"))?, names(o.get("never"))?);
            Ok(match (always, never) {
                (Some(always), None) => Rule { by_default: false, except: always },
                (_, Some(never)) => Rule { by_default: true, except: never },
                (None, None) => Rule::always(),
            })
        }
        Some(_) => Err(bad(
            "'require_approval' must be always, never, or {always|never: {tool_names}}",
            &at("require_approval"),
        )),
    }
}

/// `tool_choice` in chat terms, and whether MCP tools are offered at all.
fn tool_choice(given: Option<&Value>, catalog: &Catalog) -> Result<(Option<Value>, bool), ProxyError> {
    let Some(choice) = given else { return Ok((None, true)) };
    match choice {
        Value::String(s) if s == "none" => Ok((Some(choice.clone()), false)),
        Value::String(s) if s == "auto" || s == "required" => Ok((Some(choice.clone()), true)),
        Value::Object(o) => match o.get("type").and_then(Value::as_str) {
            Some("function") => match o.get("name").and_then(Value::as_str) {
                Some(name) => Ok((Some(json!({"type": "function", "function": {"name": name}})), true)),
                None => Err(bad("a function tool_choice needs a 'name'", "tool_choice.name")),
            },
            Some("mcp") => {
                let label = o.get("server_label").and_then(Value::as_str).unwrap_or_default();
                let Some(name) = o.get("name").and_then(Value::as_str) else {
                    return Ok((Some(json!("required")), true));
                };
                match catalog.tools().iter().find(|t| t.server == label && t.original == name) {
                    Some(t) => Ok((Some(json!({"type": "function", "function": {"name": t.name}})), true)),
                    None => Err(bad(format!("no tool {name:?} on MCP server {label:?} for this key"), "tool_choice")),
                }
            }
            _ => Err(bad("tool_choice must be auto, none, required, a function or an mcp tool", "tool_choice")),
        },
        _ => Err(bad("tool_choice must be auto, none, required, a function or an mcp tool", "tool_choice")),
    }
}

/// The servers whose tools this request offers.
fn servers_in_play(catalog: &Catalog, selection: Option<&Selection>) -> Vec<String> {
    match selection {
        Some(s) => s.servers().map(str::to_string).collect(),
        None => catalog.tools().iter().map(|t| t.server.clone()).collect::<BTreeSet<_>>().into_iter().collect(),
    }
}

/// An input item as `input_items` lists it: with an id (the client may
/// have sent none), a message's text as a content part.
fn with_id(item: &Value) -> Value {
    let mut item = item.clone();
    let kind = item.get("type").and_then(Value::as_str).unwrap_or("message").to_string();
    item["type"] = json!(kind);
    if kind == "message" {
        if let Some(text) = item.get("content").and_then(Value::as_str).map(str::to_string) {
            let part = if item["role"] == "assistant" { "output_text" } else { "input_text" };
            item["content"] = json!([{"type": part, "text": text}]);
        }
        if item.get("status").is_none() {
            item["status"] = json!("completed");
        }
    }
    if item.get("id").and_then(Value::as_str).is_none() {
        let prefix = match kind.as_str() {
            "message" => "msg",
            "function_call_output" => "fco",
            "mcp_approval_response" => "mcpa",
            _ => "item",
        };
        item["id"] = json!(format!("{prefix}_{}", uuid::Uuid::new_v4().simple()));
    }
    item
}

/// Input items → chat messages, with the tool messages that answer calls
/// waiting for approval kept as slots until every answer is read.
struct Converter<'c, 'a> {
    cx: &'c Context<'a>,
    messages: Vec<Message>,
    slots: Vec<(usize, Awaiting)>,
    decisions: HashMap<String, (bool, Option<String>)>,
}

impl Converter<'_, '_> {
    fn slot(&mut self, waiting: Awaiting) {
        let mut m = Message::text("tool", "");
        m.tool_call_id = Some(waiting.call.id.clone());
        self.messages.push(m);
        self.slots.push((self.messages.len() - 1, waiting));
    }

    /// The exposed name of `name` on `server`, for the conversation.
    fn exposed(&self, server: &str, name: &str) -> String {
        let found = self.cx.catalog.tools().iter().find(|t| t.server == server && t.original == name);
        found.map_or_else(|| name.to_string(), |t| t.name.clone())
    }

    /// Adds a call to the assistant message it belongs to.
    fn call(&mut self, call: ToolCall) {
        match self.messages.last_mut() {
            Some(m) if m.role == "assistant" => m.tool_calls.get_or_insert_with(Vec::new).push(call),
            _ => {
                let mut m = Message::text("assistant", "");
                m.tool_calls = Some(vec![call]);
                self.messages.push(m);
            }
        }
    }

    fn tool_result(&mut self, call_id: &str, text: String) {
        let mut m = Message::text("tool", text);
        m.tool_call_id = Some(call_id.to_string());
        self.messages.push(m);
    }

    fn item(
        &mut self,
        item: &Value,
        i: usize,
        known: &BTreeSet<String>,
        listed: &mut BTreeSet<String>,
    ) -> Result<(), ProxyError> {
        let at = |field: &str| format!("input[{i}].{field}");
        let text = |field: &str| item.get(field).and_then(Value::as_str).unwrap_or_default().to_string();
        let kind = item.get("type").and_then(Value::as_str).unwrap_or("message");
        match kind {
            "message" => {
                let role = match item.get("role").and_then(Value::as_str) {
                    Some("developer") | Some("system") => "system",
                    Some(r @ ("user" | "assistant")) => r,
                    _ => return Err(bad("a message needs a role: user, assistant, system or developer", &at("role"))),
                };
                let content = content(item.get("content"), &at("content"))?;
                let mut m = Message::text(role, "");
                m.content = Some(content);
                self.messages.push(m);
            }
            "function_call" => {
                let call_id = item
                    .get("call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("needs a call_id", &at("call_id")))?;
                self.call(ToolCall::new(call_id, text("name"), text("arguments")));
            }
            "function_call_output" => {
                let call_id = item
                    .get("call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("needs a call_id", &at("call_id")))?;
                let output = output_text(item.get("output"), &at("output"))?;
                self.tool_result(call_id, output);
            }
            "mcp_call" => {
                let id = text("id");
                let name = self.exposed(&text("server_label"), &text("name"));
                self.call(ToolCall::new(id.clone(), name, text("arguments")));
                let output = match item.get("error").and_then(Value::as_str) {
                    Some(e) => e.to_string(),
                    None => text("output"),
                };
                self.tool_result(&id, output);
            }
            "mcp_list_tools" => {
                listed.insert(text("server_label"));
            }
            "mcp_approval_request" => {
                let request_id = text("id");
                if !known.contains(&request_id) {
                    let (server_label, name) = (text("server_label"), text("name"));
                    let call =
                        ToolCall::new(call_id_of(&request_id), self.exposed(&server_label, &name), text("arguments"));
                    self.call(call.clone());
                    self.slot(Awaiting { request_id, server_label, name, call });
                }
            }
            "mcp_approval_response" => {
                let Some(id) = item.get("approval_request_id").and_then(Value::as_str) else {
                    return Err(bad("needs an approval_request_id", &at("approval_request_id")));
                };
                let Some(approve) = item.get("approve").and_then(Value::as_bool) else {
                    return Err(bad("needs approve: true or false", &at("approve")));
                };
                let reason = item.get("reason").and_then(Value::as_str).map(str::to_string);
                self.decisions.insert(id.to_string(), (approve, reason));
            }
            // The model's earlier thinking is not sent again (as chat templates do).
            "reasoning" => {}
            other => {
                return Err(bad(format!("input items of type {other:?} are not supported by this proxy"), &at("type")))
            }
        }
        Ok(())
    }

    /// Fills each slot: an approved call is to run (its result goes in the
    /// slot), a denied or unanswered one tells the model it did not run.
    fn decide(&mut self) -> Vec<ToolCall> {
        let mut approved = Vec::new();
        for (index, waiting) in &self.slots {
            let text = match self.decisions.get(&waiting.request_id) {
                Some((true, _)) => {
                    approved.push(waiting.call.clone());
                    continue;
                }
                Some((false, reason)) => match reason {
                    Some(r) => format!("The user denied this tool call: {r}"),
                    None => "The user denied this tool call.".to_string(),
                },
                None => "Not run: the call was not approved.".to_string(),
            };
            if let Some(m) = self.messages.get_mut(*index) {
                m.content = Some(Value::String(text));
            }
        }
        approved
    }
}

/// A message's content in chat terms: text stays a string, images become
/// `image_url` parts.
fn content(given: Option<&Value>, at: &str) -> Result<Value, ProxyError> {
    let parts = match given {
        None | Some(Value::Null) => return Ok(Value::String(String::new())),
        Some(Value::String(s)) => return Ok(Value::String(s.clone())),
        Some(Value::Array(parts)) => parts,
        Some(_) => return Err(bad("content must be a string or an array of parts", at)),
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let here = format!("{at}[{j}]");
        let text = |field: &str| part.get(field).and_then(Value::as_str).map(str::to_string);
        match part.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => {
                out.push(json!({"type": "text", "text": text("text").unwrap_or_default()}))
            }
            Some("refusal") => out.push(json!({"type": "text", "text": text("refusal").unwrap_or_default()})),
            Some("input_image") => {
                let Some(url) = text("image_url") else {
                    return Err(bad("input_image needs an image_url (file_id is not supported by this proxy)", &here));
                };
                let mut image = json!({"url": url});
                if let Some(detail) = text("detail") {
                    image["detail"] = json!(detail);
                }
                out.push(json!({"type": "image_url", "image_url": image}));
            }
            other => {
                return Err(bad(
                    format!("content parts of type {:?} are not supported by this proxy", other.unwrap_or("")),
                    &here,
                ))
            }
        }
    }
    if out.iter().all(|p| p["type"] == "text") {
        let texts: Vec<&str> = out.iter().filter_map(|p| p["text"].as_str()).collect();
        return Ok(Value::String(texts.join("\n")));
    }
    Ok(Value::Array(out))
}

/// A `function_call_output`'s output as the tool message's text.
fn output_text(given: Option<&Value>, at: &str) -> Result<String, ProxyError> {
    match given {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut texts = Vec::new();
            for part in parts {
                match (part.get("type").and_then(Value::as_str), part.get("text").and_then(Value::as_str)) {
                    (Some("input_text" | "output_text"), Some(t)) => texts.push(t),
                    _ => return Err(bad("a function_call_output may hold text parts only", at)),
                }
            }
            Ok(texts.join("\n"))
        }
        _ => Err(bad("a function_call_output needs an output string", at)),
    }
}
