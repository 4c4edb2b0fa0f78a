//! A small OAuth 2.1 token endpoint on a loopback port, for the client-credentials grant.
//!
//! It checks the client's credentials (HTTP Basic), issues `tok-1`, `tok-2`, … and
//! records every request. The tokens it has issued and not yet seen expire or
//! revoked are the lines of its bearer file, which the test MCP server reads on
//! every request (`--bearer-file`): that file is how the two agree on what is valid.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// One token request as the endpoint saw it.
#[derive(Debug, Clone)]
pub struct TokenRequest {
    pub at: Instant,
    /// The client id and secret of the `Authorization: Basic` header.
    pub basic: Option<(String, String)>,
    pub form: HashMap<String, String>,
    /// The token issued, if the request was granted.
    pub issued: Option<String>,
}

struct State {
    client_id: String,
    client_secret: String,
    expires_in: Option<u64>,
    requests: Vec<TokenRequest>,
    valid: Vec<String>,
    bearer_file: PathBuf,
}

impl State {
    fn write_file(&self) {
        let mut text = self.valid.join("\n");
        text.push('\n');
        std::fs::write(&self.bearer_file, text).unwrap_or_else(|e| panic!("bearer file: {e}"));
    }
}

pub struct TokenServer {
    pub port: u16,
    state: Arc<Mutex<State>>,
    _dir: tempfile::TempDir,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl TokenServer {
    /// Accepts `client_id`/`client_secret`; tokens live `expires_in` seconds
    /// (they are then dropped from the bearer file), or forever with `None`.
    pub async fn start(client_id: &str, client_secret: &str, expires_in: Option<u64>) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let state = Arc::new(Mutex::new(State {
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            expires_in,
            requests: Vec::new(),
            valid: Vec::new(),
            bearer_file: dir.path().join("bearer-tokens"),
        }));
        lock(&state).write_file();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("bind: {e}"));
        let port = listener.local_addr().unwrap_or_else(|e| panic!("{e}")).port();
        let st = state.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| handle(st.clone(), req));
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
                });
            }
        });
        Self { port, state, _dir: dir }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/token", self.port)
    }

    /// The file to give the test MCP server as `--bearer-file`.
    pub fn bearer_file(&self) -> String {
        lock(&self.state).bearer_file.display().to_string()
    }

    pub fn requests(&self) -> Vec<TokenRequest> {
        lock(&self.state).requests.clone()
    }

    /// The MCP server stops accepting every token issued so far.
    pub fn revoke_all(&self) {
        let mut st = lock(&self.state);
        st.valid.clear();
        st.write_file();
    }
}

async fn handle(
    state: Arc<Mutex<State>>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let basic = req.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(decode_basic);
    let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let mut st = lock(&state);
    let mut record = TokenRequest { at: Instant::now(), basic: basic.clone(), form: form.clone(), issued: None };
    let reply = if basic != Some((st.client_id.clone(), st.client_secret.clone())) {
        answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "client authentication failed"}),
        )
    } else if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        answer(StatusCode::BAD_REQUEST, json!({"error": "unsupported_grant_type"}))
    } else {
        let token = format!("tok-{}", st.requests.iter().filter(|r| r.issued.is_some()).count() + 1);
        st.valid.push(token.clone());
        st.write_file();
        if let Some(secs) = st.expires_in {
            tokio::spawn(expire(state.clone(), token.clone(), Duration::from_secs(secs)));
        }
        record.issued = Some(token.clone());
        let mut grant = json!({"access_token": token, "token_type": "Bearer"});
        if let Some(secs) = st.expires_in {
            grant["expires_in"] = json!(secs);
        }
        answer(StatusCode::OK, grant)
    };
    st.requests.push(record);
    Ok(reply)
}

async fn expire(state: Arc<Mutex<State>>, token: String, after: Duration) {
    tokio::time::sleep(after).await;
    let mut st = lock(&state);
    st.valid.retain(|t| *t != token);
    st.write_file();
}

fn answer(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    response
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1) back to its parts.
fn decode_basic(header: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(header.strip_prefix("Basic ")?).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| url::form_urlencoded::parse(format!("x={s}").as_bytes()).next().map(|(_, v)| v.into_owned());
    Some((decode(id)?, decode(secret)?))
}
