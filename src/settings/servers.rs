//! `servers_config.json`, in Claude Desktop's format:
//!
//! ```json
//! {"mcpServers": {
//!   "files":  {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/data"], "env": {}},
//!   "search": {"type": "sse", "url": "https://mcp.example/sse", "headers": {"Cookie": "${SEARCH_COOKIE}"}},
//!   "db":     {"type": "streamable-http", "url": "http://127.0.0.1:9000/mcp",
//!              "oauth": {"token_url": "https://auth.example/token", "client_id": "proxy",
//!                        "client_secret": "${DB_SECRET}"}}
//! }}
//! ```
//!
//! A remote server may carry an `oauth` block (see [`super::oauth`]).
//!
//! `${VAR}` in any string is taken from the environment, so secrets stay out
//! of the file. Unknown keys are errors that name the server and the key.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

pub use super::oauth::OAuthConfig;

/// How to reach one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    /// The legacy HTTP+SSE protocol (2024-11-05).
    Sse {
        url: String,
        headers: BTreeMap<String, String>,
        oauth: Option<OAuthConfig>,
    },
    StreamableHttp {
        url: String,
        headers: BTreeMap<String, String>,
        oauth: Option<OAuthConfig>,
    },
}

impl Transport {
    pub fn kind(&self) -> &'static str {
        match self {
            Transport::Stdio { .. } => "stdio",
            Transport::Sse { .. } => "sse",
            Transport::StreamableHttp { .. } => "streamable-http",
        }
    }

    pub fn oauth(&self) -> Option<&OAuthConfig> {
        match self {
            Transport::Stdio { .. } => None,
            Transport::Sse { oauth, .. } | Transport::StreamableHttp { oauth, .. } => oauth.as_ref(),
        }
    }
}

/// One enabled server, validated and with variables expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    pub name: String,
    pub transport: Transport,
    /// Per-call timeout (`timeout_seconds`, default from the hub settings).
    pub call_timeout: Option<Duration>,
    /// Retries of a call that failed in transport (`retries`).
    pub retries: Option<u32>,
    /// Cap on a result's text (`max_result_bytes`).
    pub max_result_bytes: Option<usize>,
    /// Calls this server runs at once (`max_concurrent_calls`); a server
    /// that is slow or single-threaded can ask for fewer than the hub default.
    pub max_concurrent_calls: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(rename = "mcpServers", default)]
    mcp_servers: BTreeMap<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(rename = "type")]
    kind: Option<String>,
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    disabled: bool,
    timeout_seconds: Option<u64>,
    retries: Option<u32>,
    max_result_bytes: Option<usize>,
    max_concurrent_calls: Option<usize>,
    /// Kept raw so its errors can say they are about `oauth`.
    oauth: Option<Value>,
}

/// Reads and validates the file. `env` supplies `${VAR}` values.
pub fn load(path: &Path, env: &HashMap<String, String>) -> Result<Vec<ServerConfig>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text, env).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses the file's text; servers come out sorted by name, disabled ones left out.
pub fn parse(text: &str, env: &HashMap<String, String>) -> Result<Vec<ServerConfig>, String> {
    let raw: RawFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let mut servers = Vec::new();
    for (name, value) in raw.mcp_servers {
        if name.trim().is_empty() {
            return Err("a server has an empty name".into());
        }
        let raw: RawServer = serde_json::from_value(value).map_err(|e| format!("server {name:?}: {e}"))?;
        if raw.disabled {
            continue;
        }
        servers.push(validate(&name, raw, env).map_err(|e| format!("server {name:?}: {e}"))?);
    }
    Ok(servers)
}

fn validate(name: &str, raw: RawServer, env: &HashMap<String, String>) -> Result<ServerConfig, String> {
    let x = |s: &str| expand(s, env);
    let map = |m: &BTreeMap<String, String>| -> Result<BTreeMap<String, String>, String> {
        m.iter().map(|(k, v)| Ok((k.clone(), x(v)?))).collect()
    };
    let kind = raw.kind.as_deref().unwrap_or(if raw.url.is_some() { "" } else { "stdio" });
    let transport = match kind {
        "stdio" => {
            if raw.url.is_some() {
                return Err("a stdio server takes \"command\", not \"url\"".into());
            }
            if raw.oauth.is_some() {
                return Err("\"oauth\" is for sse and streamable-http servers, not stdio".into());
            }
            let command = raw.command.as_deref().ok_or("missing \"command\"")?;
            Transport::Stdio {
                command: x(command)?,
                args: raw.args.iter().map(|a| x(a)).collect::<Result<_, _>>()?,
                env: map(&raw.env)?,
                cwd: raw.cwd.as_deref().map(x).transpose()?.map(PathBuf::from),
            }
        }
        "sse" | "streamable-http" | "http" | "streamableHttp" => {
            if raw.command.is_some() {
                return Err(format!("a {kind} server takes \"url\", not \"command\""));
            }
            let url = x(raw.url.as_deref().ok_or("missing \"url\"")?)?;
            check_url(&url)?;
            let headers = map(&raw.headers)?;
            let oauth = raw.oauth.clone().map(|v| super::oauth::parse(v, env)).transpose()?;
            if oauth.is_some() && headers.keys().any(|k| k.eq_ignore_ascii_case("authorization")) {
                return Err("\"oauth\" sets Authorization itself: remove it from \"headers\"".into());
            }
            if kind == "sse" {
                Transport::Sse { url, headers, oauth }
            } else {
                Transport::StreamableHttp { url, headers, oauth }
            }
        }
        "" => return Err("a server with \"url\" needs \"type\": \"sse\" or \"streamable-http\"".into()),
        other => return Err(format!("unknown \"type\" {other:?} (expected stdio, sse or streamable-http)")),
    };
    if raw.timeout_seconds == Some(0) {
        return Err("\"timeout_seconds\" must be at least 1".into());
    }
    if raw.max_concurrent_calls == Some(0) {
        return Err("\"max_concurrent_calls\" must be at least 1".into());
    }
    Ok(ServerConfig {
        name: name.to_string(),
        transport,
        call_timeout: raw.timeout_seconds.map(Duration::from_secs),
        retries: raw.retries,
        max_result_bytes: raw.max_result_bytes,
        max_concurrent_calls: raw.max_concurrent_calls,
    })
}

fn check_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("\"url\" is not a URL ({e})"))?;
    match parsed.scheme() {
        "http" | "https" => Ok(()),
        other => Err(format!("\"url\" scheme {other:?} is not http or https")),
    }
}

/// Replaces every `${NAME}` with the variable's value; an undefined variable
/// is an error naming it. `$` not followed by `{` stays as it is.
pub fn expand(s: &str, env: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unclosed \"${{\" in {s:?}"))?;
        let var = &after[..end];
        let value = env.get(var).ok_or_else(|| format!("environment variable {var} is not defined"))?;
        out.push_str(value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Variables a child inherits from the proxy's environment; everything else
/// must be given in its config.
pub const INHERITED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "TERM",
    "XDG_CACHE_HOME",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_RUNTIME_DIR",
    "NODE_PATH",
    "NPM_CONFIG_CACHE",
    "NPM_CONFIG_REGISTRY",
    "PYTHONPATH",
    "VIRTUAL_ENV",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> HashMap<String, String> {
        [("TOKEN".to_string(), "t0k".to_string())].into_iter().collect()
    }

    #[test]
    fn all_three_transports_and_disabled() {
        let text = r#"{"mcpServers": {
            "b": {"command": "npx", "args": ["-y", "pkg"], "env": {"K": "${TOKEN}"}},
            "a": {"type": "sse", "url": "http://127.0.0.1:1/sse", "headers": {"Cookie": "c=${TOKEN}"}},
            "c": {"type": "http", "url": "http://127.0.0.1:2/mcp", "timeout_seconds": 5, "max_concurrent_calls": 1},
            "d": {"command": "x", "disabled": true}
        }}"#;
        let servers = parse(text, &env()).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<_> = servers.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(servers[0].transport.kind(), "sse");
        assert!(matches!(&servers[1].transport, Transport::Stdio { env, .. } if env["K"] == "t0k"));
        assert_eq!(servers[2].transport.kind(), "streamable-http");
        assert_eq!(servers[2].call_timeout, Some(Duration::from_secs(5)));
        assert_eq!(servers[2].max_concurrent_calls, Some(1));
        assert_eq!(servers[1].max_concurrent_calls, None);
    }

    #[test]
    fn unknown_keys_and_variables_are_named() {
        let e = parse(r#"{"mcpServers": {"s": {"comand": "x"}}}"#, &env()).err().unwrap_or_default();
        assert!(e.contains("\"s\"") && e.contains("comand"), "{e}");
        let e = parse(r#"{"mcpServers": {"s": {"command": "x", "env": {"A": "${NOPE}"}}}}"#, &env())
            .err()
            .unwrap_or_default();
        assert!(e.contains("\"s\"") && e.contains("NOPE"), "{e}");
        let e = parse(r#"{"mcpServers": {"s": {"command": "x", "max_concurrent_calls": 0}}}"#, &env())
            .err()
            .unwrap_or_default();
        assert!(e.contains("\"s\"") && e.contains("max_concurrent_calls"), "{e}");
        let e = parse(r#"{"servers": {}}"#, &env()).err().unwrap_or_default();
        assert!(e.contains("servers"), "{e}");
    }

    #[test]
    fn oauth_only_on_remote_servers_and_errors_name_server_and_key() {
        let oauth = r#""oauth": {"token_url": "https://a/t", "client_id": "p", "client_secret": "${TOKEN}"}"#;
        let ok = format!(r#"{{"mcpServers": {{"s": {{"type": "http", "url": "http://127.0.0.1:2/mcp", {oauth}}}}}}}"#);
        let servers = parse(&ok, &env()).unwrap_or_else(|e| panic!("{e}"));
        let Transport::StreamableHttp { oauth: Some(o), .. } = &servers[0].transport else { panic!("{servers:?}") };
        assert_eq!(o.client_secret.expose(), "t0k");
        let stdio = format!(r#"{{"mcpServers": {{"s": {{"command": "x", {oauth}}}}}}}"#);
        let e = parse(&stdio, &env()).err().unwrap_or_default();
        assert!(e.contains("\"s\"") && e.contains("oauth") && e.contains("stdio"), "{e}");
        let unknown = r#"{"mcpServers": {"s": {"type": "sse", "url": "http://h/sse",
            "oauth": {"token_url": "https://a/t", "client_id": "p", "client_secret": "x", "scope": "a"}}}}"#;
        let e = parse(unknown, &env()).err().unwrap_or_default();
        assert!(e.contains("\"s\"") && e.contains("oauth") && e.contains("`scope`"), "{e}");
        let missing = ok.replace("${TOKEN}", "${MCP_SECRET}");
        let e = parse(&missing, &env()).err().unwrap_or_default();
        assert!(e.contains("\"s\"") && e.contains("client_secret") && e.contains("MCP_SECRET"), "{e}");
        let both = ok.replace(r#""oauth""#, r#""headers": {"authorization": "Bearer x"}, "oauth""#);
        let e = parse(&both, &env()).err().unwrap_or_default();
        assert!(e.contains("Authorization"), "{e}");
    }

    #[test]
    fn expansion_keeps_lone_dollars() {
        assert_eq!(expand("a$b ${TOKEN}-$", &env()), Ok("a$b t0k-$".to_string()));
        assert!(expand("${TOKEN", &env()).is_err());
    }
}
