//! The tool catalog: every tool of every server under a name the model can
//! use, and the way back from that name to (server, tool).
//!
//! Naming rules, chosen so names never flap:
//! - a tool name used by one server only keeps its name;
//! - a name two or more servers use becomes `server__tool` for each of them;
//! - every exposed name matches `^[a-zA-Z0-9_-]{1,64}$`: other characters
//!   become `_`, and a name that is too long, or that sanitising made clash
//!   with another, is cut and given a short hash of its origin;
//! - whether a name collides is decided over every server that ever listed
//!   tools, so a server going down does not rename the others' tools.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

const MAX_NAME: usize = 64;

/// One tool as a server listed it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerTool {
    pub name: String,
    pub description: String,
    /// The JSON schema of the arguments (an object schema).
    pub input_schema: Value,
}

/// One tool as the model sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct CatalogTool {
    /// The name exposed to the model.
    pub name: String,
    pub server: String,
    /// The name on the server.
    pub original: String,
    pub description: String,
    pub input_schema: Value,
}

/// An immutable snapshot; the hub swaps in a new one when tools change.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    tools: Vec<CatalogTool>,
    by_name: HashMap<String, usize>,
}

impl Catalog {
    /// Builds the catalog of `available` servers' tools, naming them against
    /// `known` (every server's last listing, including servers now down).
    pub fn build(known: &BTreeMap<String, Vec<ServerTool>>, available: &[&str]) -> Arc<Catalog> {
        let names = exposed_names(known);
        let mut tools = Vec::new();
        for (server, list) in known {
            if !available.contains(&server.as_str()) {
                continue;
            }
            for tool in list {
                let Some(name) = names.get(&(server.clone(), tool.name.clone())) else { continue };
                tools.push(CatalogTool {
                    name: name.clone(),
                    server: server.clone(),
                    original: tool.name.clone(),
                    description: tool.description.clone(),
                    input_schema: tool.input_schema.clone(),
                });
            }
        }
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        let by_name = tools.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Arc::new(Catalog { tools, by_name })
    }

    /// The catalog of only the tools `keep` accepts (names unchanged).
    pub fn filtered(&self, keep: impl Fn(&CatalogTool) -> bool) -> Catalog {
        let tools: Vec<CatalogTool> = self.tools.iter().filter(|t| keep(t)).cloned().collect();
        let by_name = tools.iter().enumerate().map(|(i, t)| (t.name.clone(), i)).collect();
        Catalog { tools, by_name }
    }

    pub fn tools(&self) -> &[CatalogTool] {
        &self.tools
    }

    pub fn get(&self, name: &str) -> Option<&CatalogTool> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// What the model reads when it calls `name`, which this catalog lacks:
    /// the names it may call instead (the first 50).
    pub fn unknown_tool(&self, name: &str) -> String {
        let known: Vec<&str> = self.tools.iter().take(50).map(|t| t.name.as_str()).collect();
        format!("unknown tool {name:?}; the available tools are: {}", known.join(", "))
    }
}

/// (server, tool) → exposed name, for every known tool.
fn exposed_names(known: &BTreeMap<String, Vec<ServerTool>>) -> HashMap<(String, String), String> {
    let mut users: HashMap<&str, usize> = HashMap::new();
    for list in known.values() {
        let mut seen = std::collections::HashSet::new();
        for t in list {
            if seen.insert(t.name.as_str()) {
                *users.entry(t.name.as_str()).or_default() += 1;
            }
        }
    }
    // First pass: the wanted name of each tool.
    let mut wanted: Vec<((String, String), String)> = Vec::new();
    for (server, list) in known {
        for t in list {
            let raw = if users.get(t.name.as_str()).copied().unwrap_or(0) > 1 {
                format!("{server}__{}", t.name)
            } else {
                t.name.clone()
            };
            wanted.push(((server.clone(), t.name.clone()), raw));
        }
    }
    // Second pass: sanitise; a name that is too long, or that clashes with
    // another and is not the tool's own, gets a hash of its origin (stable).
    let mut clean_count: HashMap<String, usize> = HashMap::new();
    for (_, raw) in &wanted {
        *clean_count.entry(sanitize(raw)).or_default() += 1;
    }
    wanted
        .into_iter()
        .map(|((server, tool), raw)| {
            let clean = sanitize(&raw);
            // On a clash, the tool whose own name this is keeps it; names the
            // proxy made (a server prefix, sanitising) give way.
            let clashes = clean_count[&clean] > 1 && clean != tool;
            let needs_hash = clean.len() > MAX_NAME || clashes || clean.is_empty();
            let name = if needs_hash { hashed(&clean, &server, &tool) } else { clean };
            ((server, tool), name)
        })
        .collect()
}

fn sanitize(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// `clean` cut to fit, then `_` and 8 hex digits of a hash of the origin.
fn hashed(clean: &str, server: &str, tool: &str) -> String {
    let hash = fnv1a(format!("{server}\u{0}{tool}").as_bytes());
    let keep = MAX_NAME - 9;
    let head: String = clean.chars().take(keep).collect();
    let head = if head.is_empty() { "tool".to_string() } else { head };
    format!("{head}_{hash:08x}")
}

/// FNV-1a, 32 bits: tiny, stable across versions and platforms.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, b| (h ^ u32::from(*b)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> ServerTool {
        ServerTool { name: name.into(), description: String::new(), input_schema: serde_json::json!({}) }
    }

    fn known(spec: &[(&str, &[&str])]) -> BTreeMap<String, Vec<ServerTool>> {
        spec.iter().map(|(s, ts)| (s.to_string(), ts.iter().map(|t| tool(t)).collect())).collect()
    }

    fn names(c: &Catalog) -> Vec<&str> {
        c.tools().iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn unique_names_stay_and_collisions_get_the_server_prefix() {
        let k = known(&[("alpha", &["echo", "add"]), ("beta", &["echo", "sleep"])]);
        let c = Catalog::build(&k, &["alpha", "beta"]);
        assert_eq!(names(&c), ["add", "alpha__echo", "beta__echo", "sleep"]);
        let t = c.get("beta__echo").unwrap_or_else(|| panic!("missing"));
        assert_eq!((t.server.as_str(), t.original.as_str()), ("beta", "echo"));
    }

    #[test]
    fn adding_a_server_that_does_not_collide_renames_nothing() {
        let before = Catalog::build(&known(&[("a", &["x", "y"])]), &["a"]);
        let after = Catalog::build(&known(&[("a", &["x", "y"]), ("b", &["z"])]), &["a", "b"]);
        assert_eq!(names(&before), ["x", "y"]);
        assert_eq!(names(&after), ["x", "y", "z"]);
    }

    #[test]
    fn a_server_that_is_down_keeps_the_others_names() {
        let k = known(&[("a", &["echo"]), ("b", &["echo"])]);
        let c = Catalog::build(&k, &["a"]);
        assert_eq!(names(&c), ["a__echo"]);
    }

    #[test]
    fn names_are_sanitised_shortened_and_still_distinct() {
        let long = "t".repeat(100);
        let k = known(&[("my server", &["read.file", "read_file", long.as_str(), "ünï"])]);
        let c = Catalog::build(&k, &["my server"]);
        let re_ok = |n: &str| {
            !n.is_empty() && n.len() <= 64 && n.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-')
        };
        for t in c.tools() {
            assert!(re_ok(&t.name), "{}", t.name);
        }
        assert_eq!(c.len(), 4, "{:?}", names(&c));
        assert!(c.get("read_file").is_some_and(|t| t.original == "read_file"));
        assert!(c.tools().iter().any(|t| t.original == "read.file" && t.name.starts_with("read_file_")));
        // Stable: the same input gives the same names.
        assert_eq!(names(&c), names(&Catalog::build(&k, &["my server"])));
    }

    #[test]
    fn a_tool_literally_named_like_a_prefixed_one_keeps_its_name_and_loses_no_tool() {
        // Found by fuzz/chat_request: `other__echo` was given to two tools and one was lost.
        let k = known(&[("mcp", &["echo", "other__echo"]), ("other", &["echo"])]);
        let c = Catalog::build(&k, &["mcp", "other"]);
        assert_eq!(c.len(), 3, "{:?}", names(&c));
        let mut unique = names(&c);
        unique.dedup();
        assert_eq!(unique.len(), 3, "{:?}", names(&c));
        let literal = c.get("other__echo").unwrap_or_else(|| panic!("{:?}", names(&c)));
        assert_eq!((literal.server.as_str(), literal.original.as_str()), ("mcp", "other__echo"));
        assert!(c.tools().iter().any(|t| t.server == "other" && t.original == "echo"), "{:?}", names(&c));
    }
}
