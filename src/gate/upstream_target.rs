//! Where transparent requests go: the upstream's address (resolved and cached,
//! never on the request path's blocking resolver), the peer options for
//! pingora's pool, and the path and header rewrite.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pingora::http::RequestHeader;
use pingora::prelude::HttpPeer;
use pingora::{Error, ErrorType, Result};

use crate::settings::{Secret, Settings, UpstreamTimeouts, UpstreamUrl};

/// How long a resolved upstream address is reused before it is looked up again.
const DNS_TTL: Duration = Duration::from_secs(30);

pub struct UpstreamTarget {
    url: UpstreamUrl,
    host_header: http::HeaderValue,
    /// `Bearer <key>`, marked sensitive so no `Debug` of the headers shows it.
    bearer: Option<http::HeaderValue>,
    timeouts: UpstreamTimeouts,
    resolved: Mutex<Option<(Instant, SocketAddr)>>,
}

impl UpstreamTarget {
    pub fn new(settings: &Settings) -> Self {
        let literal = settings.upstream.host.parse::<std::net::IpAddr>().ok();
        Self {
            url: settings.upstream.clone(),
            host_header: http::HeaderValue::from_str(&settings.upstream.host_header())
                .unwrap_or_else(|_| http::HeaderValue::from_static("localhost")),
            bearer: settings.openai_api_key.as_ref().and_then(bearer),
            timeouts: settings.upstream_timeouts.clone(),
            // An IP literal never needs a lookup: cache it forever.
            resolved: Mutex::new(literal.map(|ip| (far_future(), SocketAddr::new(ip, settings.upstream.port)))),
        }
    }

    /// The peer for one request, with the configured timeouts. Keep-alive
    /// reuse comes from pingora's pool, keyed by the peer.
    pub async fn peer(&self) -> Result<Box<HttpPeer>> {
        let addr = self.address().await?;
        let mut peer = HttpPeer::new(addr, self.url.tls, self.url.host.clone());
        let opts = &mut peer.options;
        opts.connection_timeout = Some(self.timeouts.connect);
        // Pingora 0.9 copies this into the upstream session once and applies it
        // to every read, head and body alike, and no hook reaches that session
        // after the head arrived (cloudflare/pingora#992). So one per-read
        // limit serves both here: the first-byte one, which is kept exactly,
        // and which (300 s by default) also bounds a stalled stream. The tool
        // loop's client keeps the idle gap apart.
        opts.read_timeout = Some(self.timeouts.first_byte);
        opts.write_timeout = Some(self.timeouts.write);
        opts.idle_timeout = Some(self.timeouts.pool_idle);
        Ok(Box::new(peer))
    }

    pub(super) async fn address(&self) -> Result<SocketAddr> {
        if let Ok(guard) = self.resolved.lock() {
            if let Some((at, addr)) = *guard {
                if at.elapsed() < DNS_TTL {
                    return Ok(addr);
                }
            }
        }
        let target = (self.url.host.as_str(), self.url.port);
        // Prefer IPv4: `localhost` often lists ::1 first while servers listen on 127.0.0.1.
        let found = tokio::net::lookup_host(target).await.ok().and_then(|addrs| {
            let all: Vec<SocketAddr> = addrs.collect();
            all.iter().find(|a| a.is_ipv4()).or(all.first()).copied()
        });
        match found {
            Some(addr) => {
                if let Ok(mut guard) = self.resolved.lock() {
                    *guard = Some((Instant::now(), addr));
                }
                Ok(addr)
            }
            None => Error::e_explain(ErrorType::ConnectNoRoute, "upstream host name did not resolve"),
        }
    }

    /// Rewrites a client request for the upstream: `/v1/<rest>` becomes
    /// `<base path>/<rest>`, `Host` names the upstream, and the client's
    /// `Authorization` is replaced by the configured key (kept when none is
    /// configured: bring-your-own-key).
    pub fn rewrite(&self, req: &mut RequestHeader, client_keys: bool) -> Result<()> {
        // The usual base URL ends in /v1, like the client's path: nothing to rewrite.
        if self.url.path_prefix != "/v1" {
            let path = req.uri.path();
            let rest = path.strip_prefix("/v1").unwrap_or(path);
            let mut target = format!("{}{}", self.url.path_prefix, rest);
            if let Some(q) = req.uri.query() {
                target.push('?');
                target.push_str(q);
            }
            let uri = target
                .parse::<http::Uri>()
                .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "rewriting the request path", e))?;
            req.set_uri(uri);
        }
        req.insert_header(http::header::HOST, self.host_header.clone())?;
        match &self.bearer {
            Some(bearer) => {
                req.insert_header(http::header::AUTHORIZATION, bearer.clone())?;
            }
            // The client's key is ours to check, never the upstream's to see.
            None if client_keys => {
                req.remove_header(&http::header::AUTHORIZATION);
            }
            None => {}
        }
        if client_keys {
            // Anthropic clients send their key (ours) as `x-api-key`.
            req.remove_header("x-api-key");
        }
        Ok(())
    }
}

fn bearer(key: &Secret) -> Option<http::HeaderValue> {
    let mut value = http::HeaderValue::from_str(&format!("Bearer {}", key.expose())).ok()?;
    value.set_sensitive(true);
    Some(value)
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(60 * 60 * 24 * 365 * 30)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn target(base: &str, key: Option<&str>) -> UpstreamTarget {
        let mut env: HashMap<String, String> = [("OPENAI_BASE_URL", base), ("CONFIG_FILE", "/dev/null")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(k) = key {
            env.insert("OPENAI_API_KEY".into(), k.into());
        }
        UpstreamTarget::new(&Settings::from_sources(&env).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn path_prefix_replaces_v1_and_query_is_kept() {
        let t = target("https://gw.example/api/openai/v1", Some("sk-up"));
        let mut req = RequestHeader::build("GET", b"/v1/models?limit=2", None).unwrap_or_else(|e| panic!("{e}"));
        req.insert_header("authorization", "Bearer client").unwrap_or_else(|e| panic!("{e}"));
        t.rewrite(&mut req, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(req.uri.to_string(), "/api/openai/v1/models?limit=2");
        assert_eq!(req.headers["host"], "gw.example");
        assert_eq!(req.headers["authorization"], "Bearer sk-up");
    }

    #[test]
    fn without_a_key_the_client_header_passes() {
        let t = target("http://127.0.0.1:9/v1", None);
        let mut req = RequestHeader::build("GET", b"/v1/models", None).unwrap_or_else(|e| panic!("{e}"));
        req.insert_header("authorization", "Bearer client").unwrap_or_else(|e| panic!("{e}"));
        t.rewrite(&mut req, false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(req.headers["authorization"], "Bearer client");
        assert_eq!(req.headers["host"], "127.0.0.1:9");
    }
}
