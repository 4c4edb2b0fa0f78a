//! The `oauth` block of a remote server in `servers_config.json`: OAuth 2.1
//! client credentials the hub uses to get a bearer token for that server.
//!
//! ```json
//! "oauth": {"token_url": "https://auth.example/token", "client_id": "proxy",
//!           "client_secret": "${MCP_SECRET}", "scopes": ["tools:read"],
//!           "resource": "https://mcp.example/mcp", "client_auth": "basic"}
//! ```
//!
//! `scopes`, `resource` (RFC 8707, which MCP's authorization spec asks
//! clients to send) and `client_auth` (`basic`, the default, or `post`) are
//! optional. The token URL comes only from here: the hub never discovers
//! one from what a server answers.

use std::collections::HashMap;
use std::fmt;

use serde::Deserialize;
use serde_json::Value;

use super::servers::expand;

/// A string that must never reach a log or an error: `Debug` prints
/// `<redacted>`, and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }

    /// The value, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the client authenticates at the token endpoint (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic (`client_secret_basic`): the one every authorization
    /// server must support, and it keeps the secret out of the body.
    Basic,
    /// Form fields (`client_secret_post`), for servers that accept only that.
    Post,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: Secret,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    pub client_auth: ClientAuth,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth {
    token_url: String,
    client_id: String,
    client_secret: String,
    #[serde(default)]
    scopes: Vec<String>,
    resource: Option<String>,
    client_auth: Option<String>,
}

/// Validates the `oauth` value of a server; errors name the key (the caller
/// adds the server's name).
pub fn parse(value: Value, env: &HashMap<String, String>) -> Result<OAuthConfig, String> {
    // Not `{e}` of the value itself: serde's message names the key, never the secret.
    let raw: RawOAuth = serde_json::from_value(value).map_err(|e| format!("\"oauth\": {e}"))?;
    let x = |key: &str, s: &str| expand(s, env).map_err(|e| format!("\"oauth\".{key}: {e}"));
    let token_url = x("token_url", &raw.token_url)?;
    let parsed = url::Url::parse(&token_url).map_err(|e| format!("\"oauth\".token_url is not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("\"oauth\".token_url scheme {:?} is not http or https", parsed.scheme()));
    }
    let client_id = x("client_id", &raw.client_id)?;
    if client_id.is_empty() {
        return Err("\"oauth\".client_id is empty".into());
    }
    let client_secret = Secret(x("client_secret", &raw.client_secret)?);
    let scopes = raw.scopes.iter().map(|s| x("scopes", s)).collect::<Result<Vec<_>, _>>()?;
    if let Some(bad) = scopes.iter().find(|s| s.is_empty() || s.contains(' ')) {
        return Err(format!("\"oauth\".scopes: {bad:?} is not one scope (no spaces, not empty)"));
    }
    let resource = raw.resource.as_deref().map(|r| x("resource", r)).transpose()?;
    let client_auth = match raw.client_auth.as_deref() {
        None | Some("basic") | Some("client_secret_basic") => ClientAuth::Basic,
        Some("post") | Some("client_secret_post") => ClientAuth::Post,
        Some(other) => return Err(format!("\"oauth\".client_auth {other:?} is not \"basic\" or \"post\"")),
    };
    Ok(OAuthConfig { token_url, client_id, client_secret, scopes, resource, client_auth })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env() -> HashMap<String, String> {
        [("SECRET".to_string(), "s3cr3t".to_string())].into_iter().collect()
    }

    fn err(value: Value) -> String {
        parse(value, &env()).err().unwrap_or_default()
    }

    #[test]
    fn a_full_block_and_the_defaults() {
        let full = json!({"token_url": "https://auth.example/token", "client_id": "proxy",
            "client_secret": "${SECRET}", "scopes": ["a", "b"], "resource": "https://mcp.example/mcp",
            "client_auth": "post"});
        let c = parse(full, &env()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.client_secret.expose(), "s3cr3t");
        assert_eq!((c.scopes.len(), c.client_auth), (2, ClientAuth::Post));
        assert_eq!(c.resource.as_deref(), Some("https://mcp.example/mcp"));
        let least = json!({"token_url": "http://127.0.0.1:1/t", "client_id": "p", "client_secret": "x"});
        let c = parse(least, &env()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((c.scopes.len(), c.resource, c.client_auth), (0, None, ClientAuth::Basic));
    }

    #[test]
    fn errors_name_the_key_and_never_the_secret() {
        let base = || json!({"token_url": "https://a/t", "client_id": "p", "client_secret": "s3cr3t"});
        let mut v = base();
        v["audiance"] = json!("x");
        let e = err(v);
        assert!(e.contains("audiance") && !e.contains("s3cr3t"), "{e}");
        let mut v = base();
        v["client_secret"] = json!("${NOPE}");
        assert!(err(v).contains("client_secret") && err(base()).is_empty());
        let mut v = base();
        v["token_url"] = json!("file:///etc/passwd");
        assert!(err(v).contains("token_url"));
        let mut v = base();
        v["scopes"] = json!(["a b"]);
        assert!(err(v).contains("scopes"));
        let e = err(json!({"token_url": "https://a/t", "client_secret": "s3cr3t"}));
        assert!(e.contains("client_id") && !e.contains("s3cr3t"), "{e}");
    }

    #[test]
    fn debug_redacts_the_secret() {
        let c = parse(json!({"token_url": "https://a/t", "client_id": "p", "client_secret": "${SECRET}"}), &env());
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cr3t") && shown.contains("<redacted>"), "{shown}");
    }
}
