//! Bearer tokens for remote MCP servers, by the OAuth 2.1 client-credentials
//! grant (RFC 6749 §4.4): one [`TokenSource`] per server, shared by all its
//! connections, so a reconnect reuses a token that is still good.
//!
//! Not rmcp's `auth` module: its client-credentials flow needs the
//! authorization server's metadata discovered from the MCP server, and when
//! a token expires it only tries a refresh-token grant (client-credentials
//! tokens usually come without one) instead of asking again. Here the token
//! URL is the configured one only, and an expired token is simply replaced.
//!
//! A token is replaced before it expires (when 80% of its lifetime is gone,
//! at most a minute early) and when the server rejects it. The cache sits
//! behind one async mutex held across the fetch, so requests that need a
//! new token at the same time wait for one fetch instead of each making one.

use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use crate::settings::oauth::{ClientAuth, OAuthConfig, Secret};

/// Largest token-endpoint answer read; a real one is well under a kilobyte.
const MAX_BODY: usize = 64 * 1024;
/// Longest `error_description` kept in an error.
const MAX_DESCRIPTION: usize = 200;
/// How early a token is replaced: a fifth of its lifetime, at most this.
const MAX_MARGIN: Duration = Duration::from_secs(60);

/// Why no token could be had; names the token URL and the OAuth error code,
/// never a secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("OAuth token request to {url} failed: {reason}")]
pub struct TokenError {
    url: String,
    reason: String,
}

#[derive(Debug)]
pub struct TokenSource {
    config: OAuthConfig,
    http: reqwest::Client,
    current: tokio::sync::Mutex<Option<Cached>>,
}

#[derive(Debug)]
struct Cached {
    token: Secret,
    /// When to fetch a new one; `None` when the server gave no `expires_in`.
    refresh_at: Option<Instant>,
}

impl Cached {
    fn fresh(&self) -> bool {
        self.refresh_at.is_none_or(|at| Instant::now() < at)
    }
}

impl TokenSource {
    pub fn new(config: OAuthConfig) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            // A redirect would take the client's credentials somewhere the operator did not configure.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the OAuth HTTP client: {e}"))?;
        Ok(Self { config, http, current: tokio::sync::Mutex::new(None) })
    }

    /// The token to send now: the cached one while it is fresh, else a new one.
    pub async fn token(&self) -> Result<Secret, TokenError> {
        let mut current = self.current.lock().await;
        if let Some(cached) = current.as_ref().filter(|c| c.fresh()) {
            return Ok(cached.token.clone());
        }
        *current = None;
        let fetched = self.fetch().await?;
        let token = fetched.token.clone();
        *current = Some(fetched);
        Ok(token)
    }

    /// The server answered 401 to `sent`: a new token, unless another
    /// request has already replaced `sent` while this one waited.
    pub async fn rejected(&self, sent: &Secret) -> Result<Secret, TokenError> {
        let mut current = self.current.lock().await;
        if let Some(cached) = current.as_ref().filter(|c| &c.token != sent && c.fresh()) {
            return Ok(cached.token.clone());
        }
        tracing::info!(target: "mcp", token_url = %self.config.token_url, "the server rejected the OAuth token; fetching a new one");
        *current = None;
        let fetched = self.fetch().await?;
        let token = fetched.token.clone();
        *current = Some(fetched);
        Ok(token)
    }

    async fn fetch(&self) -> Result<Cached, TokenError> {
        let c = &self.config;
        let scope = c.scopes.join(" ");
        let mut form = vec![("grant_type", "client_credentials")];
        if !scope.is_empty() {
            form.push(("scope", &scope));
        }
        if let Some(resource) = &c.resource {
            form.push(("resource", resource));
        }
        let mut request = self.http.post(&c.token_url).header(http::header::ACCEPT, "application/json");
        match c.client_auth {
            // RFC 6749 §2.3.1: each part is form-encoded before they are joined and base64-encoded.
            ClientAuth::Basic => {
                request = request.basic_auth(form_encode(&c.client_id), Some(form_encode(c.client_secret.expose())))
            }
            ClientAuth::Post => {
                form.push(("client_id", &c.client_id));
                form.push(("client_secret", c.client_secret.expose()));
            }
        }
        let started = Instant::now();
        let response = request.form(&form).send().await.map_err(|e| self.error(e.without_url().to_string()))?;
        let status = response.status();
        let body = read_capped(response).await.map_err(|e| self.error(e))?;
        if !status.is_success() {
            return Err(self.error(rejection(status, &body)));
        }
        let (token, lifetime) = grant(&body).map_err(|e| self.error(e))?;
        tracing::info!(target: "mcp", token_url = %c.token_url, expires_in = ?lifetime.map(|l| l.as_secs()), "fetched an OAuth token");
        let refresh_at = lifetime.map(|l| started + l - (l / 5).min(MAX_MARGIN));
        Ok(Cached { token, refresh_at })
    }

    fn error(&self, reason: String) -> TokenError {
        TokenError { url: self.config.token_url.clone(), reason }
    }
}

fn form_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn read_capped(mut response: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.without_url().to_string())? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("the answer is larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The reason of a refused token request: the OAuth `error` code (RFC 6749
/// §5.2) with its description, or the HTTP status when there is none.
fn rejection(status: reqwest::StatusCode, body: &[u8]) -> String {
    let json: Value = serde_json::from_slice(body).unwrap_or_default();
    let Some(code) = json["error"].as_str() else {
        return format!("HTTP {}", status.as_u16());
    };
    let code: String = code.chars().filter(|c| !c.is_control()).take(64).collect();
    match json["error_description"].as_str() {
        Some(d) => {
            let d: String = d.chars().filter(|c| !c.is_control()).take(MAX_DESCRIPTION).collect();
            format!("{code} ({d}; HTTP {})", status.as_u16())
        }
        None => format!("{code} (HTTP {})", status.as_u16()),
    }
}

/// The token and its lifetime from a successful answer (RFC 6749 §5.1).
/// Errors never quote the body: it holds the token.
fn grant(body: &[u8]) -> Result<(Secret, Option<Duration>), String> {
    let json: Value = serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_string())?;
    let token = json["access_token"].as_str().filter(|t| !t.is_empty()).ok_or("the answer has no access_token")?;
    if let Some(kind) = json["token_type"].as_str() {
        if !kind.eq_ignore_ascii_case("bearer") {
            return Err(format!("token_type {:?} is not Bearer", kind.chars().take(32).collect::<String>()));
        }
    }
    // Some servers send the number as a string.
    let expires_in = match &json["expires_in"] {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    Ok((Secret::new(token.to_string()), expires_in.map(Duration::from_secs)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejections_name_the_oauth_error() {
        let body = br#"{"error": "invalid_client", "error_description": "bad\nsecret"}"#;
        assert_eq!(rejection(reqwest::StatusCode::UNAUTHORIZED, body), "invalid_client (badsecret; HTTP 401)");
        assert_eq!(rejection(reqwest::StatusCode::BAD_GATEWAY, b"<html>"), "HTTP 502");
    }

    #[test]
    fn grants_take_string_lifetimes_and_refuse_other_token_types() {
        let (token, life) = grant(br#"{"access_token": "t", "token_type": "bearer", "expires_in": "60"}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((token.expose(), life), ("t", Some(Duration::from_secs(60))));
        let e = grant(br#"{"access_token": "t", "token_type": "mac"}"#).err().unwrap_or_default();
        assert!(e.contains("mac") && !e.contains("\"t\""), "{e}");
        assert!(grant(br#"{"token_type": "Bearer"}"#).is_err());
    }
}
