//! A Responses request's `tools` and `tool_choice` in the loop's terms:
//! the client's functions as chat tools, `mcp` tools as a selection of
//! configured servers with their approval rules.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::decode::{bad, Context};
use crate::error::ProxyError;
use crate::mcp::Catalog;
use crate::settings::servers::Transport;
use crate::tool_loop::policy::Rule;
use crate::tool_loop::{Approval, Selection};

/// The request's tools, sorted: the client's functions, and its MCP choices.
pub struct Tools {
    pub chat: Vec<Value>,
    pub selection: Option<Selection>,
    pub approval: Approval,
}

pub fn tools(given: &[Value], cx: &Context<'_>) -> Result<Tools, ProxyError> {
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
pub fn tool_choice(given: Option<&Value>, catalog: &Catalog) -> Result<(Option<Value>, bool), ProxyError> {
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
