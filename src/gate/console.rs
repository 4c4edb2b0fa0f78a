//! The web console (`/ui`): its static files, compiled into the binary, and
//! `/ui/status`, the JSON it polls.
//!
//! The files need no key (they hold nothing but code); the status is under
//! the client-key check like every other route and shows only the tools the
//! presented key may see. Neither ever carries the upstream key: the
//! upstream is shown as `host:port` and whether it accepts a connection.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result;
use serde_json::{json, Value};

use super::{cors, respond, Gate, RequestCtx, REQUEST_ID};
use crate::mcp::Catalog;

/// How long one answer of the upstream probe is reused, so a console polling
/// every second does not open a connection to the upstream every second.
const PROBE_TTL: Duration = Duration::from_secs(3);
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Only our own files, scripts and styles; no inline code, no framing.
const CSP: &str =
    "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

struct Asset {
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset =
    Asset { content_type: "text/html; charset=utf-8", body: include_str!("../../assets/ui/index.html") };
const APP_JS: Asset =
    Asset { content_type: "text/javascript; charset=utf-8", body: include_str!("../../assets/ui/app.js") };
const STYLE: Asset = Asset { content_type: "text/css; charset=utf-8", body: include_str!("../../assets/ui/style.css") };

fn asset(path: &str) -> Option<&'static Asset> {
    match path {
        "/ui" | "/ui/" => Some(&INDEX),
        "/ui/app.js" => Some(&APP_JS),
        "/ui/style.css" => Some(&STYLE),
        _ => None,
    }
}

/// A strong validator for a file: it changes exactly when the file does
/// (FNV-1a over its bytes; the files are fixed for the binary's life).
fn etag(body: &str) -> String {
    let hash = body.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("\"{hash:016x}\"")
}

/// Whether the client asked for a page rather than JSON (a browser at `/`).
pub fn wants_html(session: &Session) -> bool {
    let accept = session.req_header().headers.get("accept").and_then(|v| v.to_str().ok()).unwrap_or("");
    accept.split(',').any(|part| part.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html")))
}

/// `GET /` from a browser: to the console. `Vary` keeps a cache from giving
/// the redirect to API clients.
pub async fn redirect(session: &mut Session, ctx: &mut RequestCtx, gate: &Gate) -> Result<bool> {
    let mut resp = head(302, &ctx.request_id)?;
    resp.insert_header("location", "/ui")?;
    resp.insert_header("content-length", "0")?;
    cors::decorate(&mut resp, &gate.settings.cors, ctx.allow_origin.as_ref());
    ctx.wrote_head(302);
    session.write_response_header(Box::new(resp), true).await?;
    Ok(true)
}

/// One of the console's files, or 304 when the client's copy is current.
pub async fn serve_asset(session: &mut Session, ctx: &mut RequestCtx, gate: &Gate) -> Result<bool> {
    let Some(file) = asset(session.req_header().uri.path()) else {
        // Route::classify sends only the paths above here; never proxy one that is not.
        let req = session.req_header();
        let err = super::routes::route_error(super::Route::NotFound, &req.method, req.uri.path());
        respond::send(session, ctx, &gate.settings, respond::Answer::error(&err)).await?;
        return Ok(true);
    };
    let tag = etag(file.body);
    let current = session.req_header().headers.get("if-none-match").is_some_and(|v| v.as_bytes() == tag.as_bytes());
    let status = if current { 304 } else { 200 };
    let mut resp = head(status, &ctx.request_id)?;
    resp.insert_header("etag", tag)?;
    // Always revalidate: a new binary serves new files at once.
    resp.insert_header("cache-control", "no-cache")?;
    resp.insert_header("content-security-policy", CSP)?;
    resp.insert_header("referrer-policy", "no-referrer")?;
    if !current {
        resp.insert_header("content-type", file.content_type)?;
        resp.insert_header("content-length", file.body.len().to_string())?;
    }
    ctx.wrote_head(status);
    let head_only = current || session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(resp), head_only).await?;
    if !head_only {
        session.write_response_body(Some(Bytes::from_static(file.body.as_bytes())), true).await?;
    }
    Ok(true)
}

fn head(status: u16, request_id: &str) -> Result<ResponseHeader> {
    let mut resp = ResponseHeader::build(status, Some(10))?;
    resp.insert_header(REQUEST_ID, super::request_id_value(request_id)?)?;
    resp.insert_header("x-content-type-options", "nosniff")?;
    resp.insert_header("vary", "accept")?;
    Ok(resp)
}

/// The body of `/ui/status`: every server with its state and those of its
/// tools this request may see, and the upstream.
pub async fn status(gate: &Gate, ctx: &RequestCtx) -> Value {
    let catalog = gate.tools_for(ctx).catalog();
    let servers: Vec<Value> = gate
        .hub
        .status()
        .into_iter()
        .map(|s| {
            let mut server = json!(s);
            server["tools"] = json!(tools_of(&catalog, &s.name));
            server
        })
        .collect();
    let u = &gate.settings.upstream;
    json!({
        "servers": servers,
        "upstream": {
            "address": u.address(),
            "tls": u.tls,
            "reachable": gate.probe.reachable(&gate.upstream).await,
        },
        "keys": !gate.live.keys().is_empty(),
        "default_model": gate.settings.default_model,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

fn tools_of(catalog: &Catalog, server: &str) -> Vec<Value> {
    catalog
        .tools()
        .iter()
        .filter(|t| t.server == server)
        .map(|t| {
            json!({
                "name": t.name,
                "original": t.original,
                "description": t.description,
                "input_schema": t.input_schema,
            })
        })
        .collect()
}

/// Whether the upstream accepts a TCP connection, asked at most once per
/// [`PROBE_TTL`].
#[derive(Default)]
pub struct Probe {
    last: Mutex<Option<(Instant, bool)>>,
}

impl Probe {
    pub async fn reachable(&self, upstream: &super::UpstreamTarget) -> bool {
        if let Some((at, up)) = *self.last.lock().unwrap_or_else(|p| p.into_inner()) {
            if at.elapsed() < PROBE_TTL {
                return up;
            }
        }
        let up = match upstream.address().await {
            Ok(addr) => {
                matches!(tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect(addr)).await, Ok(Ok(_)))
            }
            Err(_) => false,
        };
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), up));
        up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_its_type_and_a_stable_tag() {
        for path in ["/ui", "/ui/", "/ui/app.js", "/ui/style.css"] {
            let file = asset(path).unwrap_or_else(|| panic!("{path}"));
            assert!(!file.body.is_empty());
            assert_eq!(etag(file.body), etag(file.body));
        }
        assert!(asset("/ui/status").is_none());
        assert_ne!(etag(APP_JS.body), etag(STYLE.body));
        assert!(INDEX.content_type.starts_with("text/html"));
    }

    #[test]
    fn no_file_reaches_outside_the_binary() {
        for file in [&INDEX, &APP_JS, &STYLE] {
            assert!(!file.body.contains("http://") && !file.body.contains("https://"), "no CDN, no remote fetch");
        }
    }
}
