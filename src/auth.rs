//! Client keys: who may call the proxy, and which MCP tools each key may use.
//!
//! Keys come from `[auth] keys` (every tool) and from a keys file with a
//! tool allow-list per key:
//!
//! ```toml
//! [[key]]
//! name = "support-bot"
//! key = "${SUPPORT_BOT_KEY}"
//! tools = ["files", "search__query"]   # server names or server__tool; "*" or absent: all
//! ```
//!
//! The allow-list is enforced twice: the catalog a request sees holds only
//! allowed tools, and a call to any other tool, even a guessed one, is
//! refused as a tool error before it reaches an MCP server.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use crate::mcp::{Catalog, CatalogTool, ToolOutput};
use crate::tool_loop::ToolRunner;

/// One client key.
#[derive(Clone)]
pub struct ClientKey {
    pub name: String,
    secret: String,
    allow: AllowList,
}

impl std::fmt::Debug for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientKey").field("name", &self.name).field("allow", &self.allow).finish()
    }
}

impl ClientKey {
    pub fn allow(&self) -> &AllowList {
        &self.allow
    }
}

/// Which tools a key may use: `None` means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Option<Vec<String>>);

impl AllowList {
    pub fn all() -> Self {
        Self(None)
    }

    pub fn is_restricted(&self) -> bool {
        self.0.is_some()
    }

    /// Whether `tool` (by its server and its name there) is allowed.
    pub fn permits(&self, tool: &CatalogTool) -> bool {
        let Some(patterns) = &self.0 else { return true };
        let full = format!("{}__{}", tool.server, tool.original);
        patterns.iter().any(|p| match p.strip_suffix('*') {
            _ if p == "*" || *p == tool.server || *p == full => true,
            Some(prefix) => full.starts_with(prefix),
            None => false,
        })
    }
}

/// The configured keys; empty means "no client keys" (open proxy).
#[derive(Debug, Clone, Default)]
pub struct Keys {
    keys: Vec<ClientKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    key: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    name: String,
    key: String,
    tools: Option<Vec<String>>,
}

impl Keys {
    /// `plain`: keys with every tool; `file`: a keys file (optional).
    /// `${VAR}` in a key comes from `env`.
    pub fn load(plain: &[String], file: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, String> {
        let mut keys = Vec::new();
        for (i, k) in plain.iter().enumerate() {
            let secret = crate::mcp::config::expand(k, env).map_err(|e| format!("key #{}: {e}", i + 1))?;
            keys.push(ClientKey { name: format!("key-{}", i + 1), secret, allow: AllowList::all() });
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let raw: RawFile = toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
            for k in raw.key {
                let secret = crate::mcp::config::expand(&k.key, env).map_err(|e| format!("key {:?}: {e}", k.name))?;
                let allow = match k.tools {
                    Some(t) if !t.iter().any(|p| p == "*") => AllowList(Some(t)),
                    _ => AllowList::all(),
                };
                keys.push(ClientKey { name: k.name, secret, allow });
            }
        }
        if let Some(k) = keys.iter().find(|k| k.secret.trim().len() < 8) {
            return Err(format!("client key {:?} is shorter than 8 characters", k.name));
        }
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key presented in `authorization` (`Bearer …`), if it is one of ours.
    pub fn check(&self, authorization: Option<&str>) -> Option<&ClientKey> {
        let token =
            authorization?.trim().strip_prefix("Bearer ").or_else(|| authorization?.trim().strip_prefix("bearer "))?;
        self.keys.iter().find(|k| constant_time_eq(k.secret.as_bytes(), token.trim().as_bytes()))
    }
}

/// Compares without stopping at the first difference, so timing tells an
/// attacker nothing about how much of a key they have right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The hub as one key sees it.
pub struct AllowedTools {
    pub inner: Arc<dyn ToolRunner>,
    pub allow: AllowList,
}

#[async_trait]
impl ToolRunner for AllowedTools {
    fn catalog(&self) -> Arc<Catalog> {
        let full = self.inner.catalog();
        Arc::new(full.filtered(|t| self.allow.permits(t)))
    }

    async fn call(&self, name: &str, arguments: Value) -> ToolOutput {
        let full = self.inner.catalog();
        match full.get(name) {
            Some(t) if self.allow.permits(t) => self.inner.call(name, arguments).await,
            Some(_) => ToolOutput::error(format!("tool {name:?} is not allowed for this API key")),
            None => self.inner.call(name, arguments).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(server: &str, name: &str) -> CatalogTool {
        CatalogTool {
            name: name.into(),
            server: server.into(),
            original: name.into(),
            description: String::new(),
            input_schema: serde_json::json!({}),
        }
    }

    #[test]
    fn patterns_match_servers_tools_and_prefixes() {
        let allow = AllowList(Some(vec!["files".into(), "search__query".into(), "db__read_*".into()]));
        assert!(allow.permits(&tool("files", "delete")));
        assert!(allow.permits(&tool("search", "query")));
        assert!(!allow.permits(&tool("search", "index")));
        assert!(allow.permits(&tool("db", "read_rows")));
        assert!(!allow.permits(&tool("db", "write_rows")));
        assert!(AllowList::all().permits(&tool("any", "thing")));
    }

    #[test]
    fn keys_check_exactly() {
        let env = [("K".to_string(), "secret-from-env".to_string())].into_iter().collect();
        let keys = Keys::load(&["${K}".into()], None, &env).unwrap_or_default();
        assert!(keys.check(Some("Bearer secret-from-env")).is_some());
        assert!(keys.check(Some("Bearer secret-from-en")).is_none());
        assert!(keys.check(None).is_none());
        assert!(Keys::load(&["short".into()], None, &env).is_err());
    }
}
