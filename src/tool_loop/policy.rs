//! What a request may ask of the MCP tools beyond the key's allow-list:
//! which servers and tools it wants ([`Selection`]: Responses' `mcp` tools,
//! Anthropic's `mcp_servers`), and which calls wait for a person's yes
//! ([`Approval`]). Both name tools as their server does, never by the
//! exposed (possibly prefixed) name, so a rule survives a catalog change.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::ToolRunner;
use crate::mcp::{Catalog, ToolOutput};

/// The servers a request selected, each with all its tools or only some.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    servers: BTreeMap<String, Option<BTreeSet<String>>>,
}

impl Selection {
    /// Adds `server`, with only `tools` when given. Selecting a server twice
    /// widens it (all of it if either selection was all).
    pub fn add(&mut self, server: &str, tools: Option<Vec<String>>) {
        let entry = self.servers.entry(server.to_string()).or_insert_with(|| Some(BTreeSet::new()));
        match (entry.as_mut(), tools) {
            (Some(known), Some(tools)) => known.extend(tools),
            (Some(_), None) => *entry = None,
            (None, _) => {}
        }
    }

    pub fn permits(&self, server: &str, tool: &str) -> bool {
        match self.servers.get(server) {
            Some(None) => true,
            Some(Some(tools)) => tools.contains(tool),
            None => false,
        }
    }

    /// The catalog of only the selected tools.
    pub fn narrow(&self, catalog: &Catalog) -> Catalog {
        catalog.filtered(|t| self.permits(&t.server, &t.original))
    }

    pub fn servers(&self) -> impl Iterator<Item = &str> {
        self.servers.keys().map(String::as_str)
    }
}

/// The tools as a request with a [`Selection`] sees and calls them.
pub struct Selected<'a> {
    pub inner: &'a dyn ToolRunner,
    pub selection: &'a Selection,
}

#[async_trait]
impl ToolRunner for Selected<'_> {
    fn catalog(&self) -> Arc<Catalog> {
        Arc::new(self.selection.narrow(&self.inner.catalog()))
    }

    async fn call(&self, name: &str, arguments: Value) -> ToolOutput {
        let full = self.inner.catalog();
        match full.get(name) {
            Some(t) if self.selection.permits(&t.server, &t.original) => self.inner.call(name, arguments).await,
            _ => ToolOutput::error(self.selection.narrow(&full).unknown_tool(name)),
        }
    }
}

/// Whether a call waits for approval, per server.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Approval {
    servers: BTreeMap<String, Rule>,
}

/// One server's rule: approval for every tool but `except`, or for none but `except`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub by_default: bool,
    pub except: BTreeSet<String>,
}

impl Rule {
    pub fn always() -> Self {
        Self { by_default: true, except: BTreeSet::new() }
    }

    pub fn never() -> Self {
        Self { by_default: false, except: BTreeSet::new() }
    }
}

impl Approval {
    pub fn set(&mut self, server: &str, rule: Rule) {
        self.servers.insert(server.to_string(), rule);
    }

    /// Whether a call of `tool` on `server` must be approved first. A server
    /// without a rule needs none (as on the chat path).
    pub fn needed(&self, server: &str, tool: &str) -> bool {
        self.servers.get(server).is_some_and(|r| r.by_default != r.except.contains(tool))
    }

    pub fn is_empty(&self) -> bool {
        self.servers.values().all(|r| !r.by_default && r.except.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_is_widened_never_narrowed_by_a_second_entry() {
        let mut s = Selection::default();
        s.add("files", Some(vec!["read".into()]));
        assert!(s.permits("files", "read"));
        assert!(!s.permits("files", "write"));
        assert!(!s.permits("other", "read"));
        s.add("files", Some(vec!["write".into()]));
        assert!(s.permits("files", "write"));
        s.add("files", None);
        assert!(s.permits("files", "anything"));
        s.add("files", Some(vec![]));
        assert!(s.permits("files", "anything"), "all stays all");
    }

    #[test]
    fn approval_rules_with_exceptions() {
        let mut a = Approval::default();
        assert!(a.is_empty());
        a.set("files", Rule { by_default: true, except: ["read".to_string()].into() });
        a.set("math", Rule { by_default: false, except: ["delete".to_string()].into() });
        assert!(a.needed("files", "write"));
        assert!(!a.needed("files", "read"));
        assert!(a.needed("math", "delete"));
        assert!(!a.needed("math", "add"));
        assert!(!a.needed("unruled", "x"));
        assert!(!a.is_empty());
    }
}
