//! The client's tools of a Messages request as chat function tools, and
//! which of them the upstream is offered. Anthropic lets a tool be declared
//! and offered later: `defer_loading: true` keeps it back until a
//! `tool_reference` block in a tool result names it (Claude Code's
//! `ToolSearch` works this way), and a `role: "system"` message's
//! `tool_addition` / `tool_removal` blocks offer or withdraw one from that
//! point on. Chat completions has one `tools` list per request, so the
//! upstream is offered the set as it stands after the last message: what
//! Anthropic's model would be offered for its next turn.

use serde_json::{json, Value};

use crate::error::ProxyError;

fn bad(message: impl Into<String>, param: &str) -> ProxyError {
    ProxyError::bad_request(message, Some(param))
}

/// One declared tool: its chat form and whether it is offered now.
#[derive(Debug, Clone)]
struct Declared {
    name: String,
    function: Value,
    offered: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Toolset {
    declared: Vec<Declared>,
}

impl Toolset {
    /// The request's `tools`: each a client tool (`name`, `input_schema`,
    /// optional `description`, `defer_loading`, `cache_control`); server
    /// tools (`web_search_…` and the like) are refused by place.
    pub fn decode(tools: Option<Value>) -> Result<Self, ProxyError> {
        let list = match tools {
            None | Some(Value::Null) => return Ok(Self::default()),
            Some(Value::Array(list)) => list,
            Some(_) => return Err(bad("tools must be an array", "tools")),
        };
        let mut set = Self::default();
        for (i, tool) in list.iter().enumerate() {
            set.declare(tool, &format!("tools[{i}]"))?;
        }
        Ok(set)
    }

    fn declare(&mut self, tool: &Value, at: &str) -> Result<(), ProxyError> {
        match tool.get("type").and_then(Value::as_str) {
            None | Some("custom") => {}
            Some(other) => return Err(bad(format!("{at}: the {other:?} tool is not supported by this proxy"), at)),
        }
        let name = tool.get("name").and_then(Value::as_str).filter(|n| !n.is_empty());
        let name = name.ok_or_else(|| bad(format!("{at}.name is required"), at))?;
        let schema = tool.get("input_schema").filter(|s| s.is_object());
        let schema = schema.ok_or_else(|| bad(format!("{at}.input_schema must be a JSON schema object"), at))?;
        let mut function = json!({"name": name, "parameters": schema});
        if let Some(d) = tool.get("description").and_then(Value::as_str) {
            function["description"] = json!(d);
        }
        let offered = tool.get("defer_loading").and_then(Value::as_bool) != Some(true);
        self.declared.retain(|d| d.name != name);
        self.declared.push(Declared { name: name.to_string(), function, offered });
        Ok(())
    }

    fn find(&mut self, name: &str, at: &str) -> Result<&mut Declared, ProxyError> {
        self.declared
            .iter_mut()
            .find(|d| d.name == name)
            .ok_or_else(|| bad(format!("{at}: no tool named {name:?} is declared in tools"), at))
    }

    /// A `tool_reference` in a tool result: the tool is offered from now
    /// on, and the model reads its definition where the reference stood
    /// (as Anthropic's API expands it).
    pub fn load(&mut self, name: &str, at: &str) -> Result<String, ProxyError> {
        let found = self.find(name, at)?;
        found.offered = true;
        Ok(format!("<function>{}</function>", found.function))
    }

    /// A system message's `tool_addition` (by reference or, inline, by
    /// definition) or `tool_removal` block.
    pub fn change(&mut self, block: &Value, at: &str) -> Result<(), ProxyError> {
        let adding = block.get("type").and_then(Value::as_str) == Some("tool_addition");
        let tool = &block["tool"];
        match tool.get("type").and_then(Value::as_str) {
            Some("tool_reference") => {
                let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
                self.find(name, at)?.offered = adding;
                Ok(())
            }
            Some("tool_definition") if adding => self.declare(&tool["definition"], &format!("{at}.tool.definition")),
            Some(other @ ("mcp_tool_reference" | "mcp_toolset_reference")) => Err(bad(
                format!(
                    "{at}: {other} needs mcp_servers, which this proxy does not take; its own MCP tools are offered"
                ),
                at,
            )),
            _ => Err(bad(format!("{at}.tool must be a tool_reference or, to add, a tool_definition"), at)),
        }
    }

    /// The tools offered to the upstream, in declaration order.
    pub fn offered(&self) -> Vec<Value> {
        self.declared
            .iter()
            .filter(|d| d.offered)
            .map(|d| json!({"type": "function", "function": d.function}))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(set: &Toolset) -> Vec<String> {
        set.offered().iter().filter_map(|t| t["function"]["name"].as_str().map(str::to_string)).collect()
    }

    #[test]
    fn deferred_tools_wait_for_a_reference_and_changes_apply_in_order() {
        let mut set = Toolset::decode(Some(json!([
            {"name": "Read", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
            {"name": "Grep", "description": "search", "input_schema": {"type": "object"}, "defer_loading": true},
            {"name": "DeferredToolPlaceholder", "input_schema": {"type": "object"}, "defer_loading": true}
        ])))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&set), ["Read"]);
        let shown = set.load("Grep", "m").unwrap_or_else(|e| panic!("{e}"));
        assert!(shown.starts_with("<function>{") && shown.contains("\"search\""), "{shown}");
        assert_eq!(names(&set), ["Read", "Grep"]);
        let removal = json!({"type": "tool_removal", "tool": {"type": "tool_reference", "name": "Read"}});
        set.change(&removal, "m").unwrap_or_else(|e| panic!("{e}"));
        let inline = json!({"type": "tool_addition", "tool": {"type": "tool_definition",
            "definition": {"name": "Note", "input_schema": {"type": "object"}}}});
        set.change(&inline, "m").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(names(&set), ["Grep", "Note"]);
    }

    #[test]
    fn unknown_references_and_server_tools_are_named() {
        let mut set = Toolset::decode(Some(json!([{"name": "Read", "input_schema": {"type": "object"}}])))
            .unwrap_or_else(|e| panic!("{e}"));
        let e = set.load("Nope", "messages[3].content[0]").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("messages[3].content[0]") && e.contains("Nope"), "{e}");
        let mcp =
            json!({"type": "tool_addition", "tool": {"type": "mcp_tool_reference", "name": "x", "server_name": "s"}});
        let e = set.change(&mcp, "messages[1].content[0]").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("mcp_tool_reference"), "{e}");
        let server = Toolset::decode(Some(json!([{"type": "web_search_20250305", "name": "web_search"}])));
        assert!(server.err().map(|e| e.to_string()).unwrap_or_default().contains("tools[0]"));
    }
}
