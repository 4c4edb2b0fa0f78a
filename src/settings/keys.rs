//! Client keys as configured: `[auth] keys` (every tool) and a keys file
//! with a tool allow-list per key:
//!
//! ```toml
//! [[key]]
//! name = "support-bot"
//! key = "${SUPPORT_BOT_KEY}"
//! tools = ["files", "search__query"]   # server names or server__tool; "*" or absent: all
//! ```
//!
//! Plain configuration: checking a presented key and enforcing an allow-list
//! is [`crate::auth`]'s.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::servers::expand;

/// One client key.
#[derive(Clone)]
pub struct ClientKey {
    pub name: String,
    secret: super::Secret,
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

    /// The key itself, for the one place that compares it ([`crate::auth`]).
    pub fn secret(&self) -> &str {
        self.secret.expose()
    }
}

/// Which tools a key may use: `None` means all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowList(Option<Vec<String>>);

impl AllowList {
    pub fn all() -> Self {
        Self(None)
    }

    /// Only the tools `patterns` name (server names, `server__tool`, `prefix*`).
    pub fn only(patterns: Vec<String>) -> Self {
        Self(Some(patterns))
    }

    pub fn is_restricted(&self) -> bool {
        self.0.is_some()
    }

    /// Whether the tool `tool` of the server `server` (its name there) is allowed.
    pub fn permits(&self, server: &str, tool: &str) -> bool {
        let Some(patterns) = &self.0 else { return true };
        let full = format!("{server}__{tool}");
        patterns.iter().any(|p| match p.strip_suffix('*') {
            _ if p == "*" || *p == server || *p == full => true,
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
            let secret = expand(k, env).map_err(|e| format!("key #{}: {e}", i + 1))?;
            keys.push(ClientKey {
                name: format!("key-{}", i + 1),
                secret: super::Secret(secret),
                allow: AllowList::all(),
            });
        }
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let raw: RawFile = toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
            for k in raw.key {
                let secret = expand(&k.key, env).map_err(|e| format!("key {:?}: {e}", k.name))?;
                let allow = match k.tools {
                    Some(t) if !t.iter().any(|p| p == "*") => AllowList(Some(t)),
                    _ => AllowList::all(),
                };
                keys.push(ClientKey { name: k.name, secret: super::Secret(secret), allow });
            }
        }
        if let Some(k) = keys.iter().find(|k| k.secret().trim().len() < 8) {
            return Err(format!("client key {:?} is shorter than 8 characters", k.name));
        }
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &ClientKey> {
        self.keys.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_servers_tools_and_prefixes() {
        let allow = AllowList(Some(vec!["files".into(), "search__query".into(), "db__read_*".into()]));
        assert!(allow.permits("files", "delete"));
        assert!(allow.permits("search", "query"));
        assert!(!allow.permits("search", "index"));
        assert!(allow.permits("db", "read_rows"));
        assert!(!allow.permits("db", "write_rows"));
        assert!(AllowList::all().permits("any", "thing"));
    }

    #[test]
    fn keys_come_from_the_environment_and_must_not_be_short() {
        let env = [("K".to_string(), "secret-from-env".to_string())].into_iter().collect();
        let keys = Keys::load(&["${K}".into()], None, &env).unwrap_or_default();
        assert_eq!(keys.iter().map(ClientKey::secret).collect::<Vec<_>>(), ["secret-from-env"]);
        assert!(Keys::load(&["short".into()], None, &env).is_err());
    }
}
