//! Client keys at work: which configured key a request presents, and the
//! MCP tools as one key may see and call them. The keys themselves, with
//! their allow-lists, are configuration ([`crate::settings::keys`]).
//!
//! The allow-list is enforced twice: the catalog a request sees holds only
//! allowed tools, and a call to any other tool, even a guessed one, is
//! refused as a tool error before it reaches an MCP server.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::mcp::{Catalog, ToolOutput};
use crate::metrics::{CallOutcome, ToolMetrics};
use crate::settings::keys::{AllowList, ClientKey, Keys};
use crate::tool_loop::ToolRunner;

/// The key a request presents: the token of `Authorization: Bearer` (the
/// scheme in any case, RFC 9110), or else `x-api-key`, as Anthropic clients send it.
pub fn presented_key(headers: &http::HeaderMap) -> Option<&str> {
    match headers.get(http::header::AUTHORIZATION) {
        Some(authorization) => bearer_token(authorization.to_str().ok()?),
        None => x_api_key(headers),
    }
}

/// The `x-api-key` header, as Anthropic clients send their key.
pub fn x_api_key(headers: &http::HeaderMap) -> Option<&str> {
    headers.get("x-api-key")?.to_str().ok().map(str::trim).filter(|k| !k.is_empty())
}

/// The client key `token` is, if it is one of ours.
pub fn authenticate<'k>(keys: &'k Keys, token: Option<&str>) -> Option<&'k ClientKey> {
    let token = token?;
    keys.iter().find(|k| constant_time_eq(k.secret().as_bytes(), token.as_bytes()))
}

/// The token of a `Bearer` credential.
fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
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
    /// Where a refused call is counted (the hub's, so `/metrics` shows it).
    pub metrics: ToolMetrics,
    /// Who narrowed the tools, as the model reads it in a refusal: "this API key", "this request".
    pub by: &'static str,
}

impl AllowedTools {
    fn allowed(&self, full: &Catalog) -> Catalog {
        full.filtered(|t| self.allow.permits(&t.server, &t.original))
    }
}

#[async_trait]
impl ToolRunner for AllowedTools {
    fn catalog(&self) -> Arc<Catalog> {
        Arc::new(self.allowed(&self.inner.catalog()))
    }

    async fn call(&self, name: &str, arguments: Value) -> ToolOutput {
        let full = self.inner.catalog();
        match full.get(name) {
            Some(t) if self.allow.permits(&t.server, &t.original) => self.inner.call(name, arguments).await,
            Some(t) => {
                self.metrics.record(&t.server, &t.name, CallOutcome::Refused, Duration::ZERO);
                ToolOutput::error(format!("tool {name:?} is not allowed for {}", self.by))
            }
            // Unknown: the model hears which tools it may use, never the rest of the catalog.
            None => {
                self.metrics.unknown(Duration::ZERO);
                ToolOutput::error(self.allowed(&full).unknown_tool(name))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_in_any_case() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bEaReR   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn keys_match_exactly() {
        let env = Default::default();
        let keys = Keys::load(&["secret-from-conf".into()], None, &env).unwrap_or_default();
        assert!(authenticate(&keys, Some("secret-from-conf")).is_some());
        assert!(authenticate(&keys, Some("secret-from-con")).is_none());
        assert!(authenticate(&keys, Some("secret-from-conf2")).is_none());
        assert!(authenticate(&keys, None).is_none());
    }

    #[test]
    fn the_key_is_the_bearer_token_or_else_x_api_key() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = http::HeaderMap::new();
            for (name, value) in pairs {
                h.insert(*name, http::HeaderValue::from_static(value));
            }
            h
        };
        assert_eq!(presented_key(&headers(&[("authorization", "BEARER abc")])), Some("abc"));
        assert_eq!(presented_key(&headers(&[("x-api-key", " abc ")])), Some("abc"));
        let both = headers(&[("authorization", "Bearer abc"), ("x-api-key", "xyz")]);
        assert_eq!(presented_key(&both), Some("abc"));
        // A credential of another scheme is not made up for by x-api-key.
        assert_eq!(presented_key(&headers(&[("authorization", "Basic abc"), ("x-api-key", "xyz")])), None);
        assert_eq!(presented_key(&headers(&[("x-api-key", "")])), None);
        assert_eq!(presented_key(&headers(&[])), None);
    }
}
