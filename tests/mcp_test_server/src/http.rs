//! The HTTP plumbing both network modes share (a loopback listener announced on stderr, a
//! hyper HTTP/1 accept loop), and the streamable HTTP mode, which is rmcp's own service.

use std::convert::Infallible;
use std::error::Error;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::server::conn::http1;
use hyper::service::{service_fn, Service};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;

use crate::server::{ServerSpec, TestServer};

type BoxError = Box<dyn Error + Send + Sync>;

/// Binds 127.0.0.1:`port` (0 picks a free one) and prints `LISTENING <port>` on stderr,
/// which is how tests learn the port.
pub async fn bind_loopback(port: u16) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await?;
    eprintln!("LISTENING {}", listener.local_addr()?.port());
    Ok(listener)
}

/// Serves HTTP/1.1 connections until the process is killed; one task per connection.
pub async fn serve_http1<S, B>(listener: TcpListener, service: S) -> Result<(), Box<dyn Error>>
where
    S: Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            // Running out of descriptors is transient; keep the listener alive.
            Err(e) => {
                tracing::warn!("accept failed: {e}");
                continue;
            }
        };
        let service = service.clone();
        tokio::spawn(async move {
            if let Err(e) = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await {
                tracing::debug!("connection ended with an error: {e}");
            }
        });
    }
}

/// Streamable HTTP at `/mcp` with rmcp's default stateful sessions (`Mcp-Session-Id`);
/// each session gets its own `TestServer`, so `toggle_extra` is per session.
pub async fn serve_streamable_http(
    spec: ServerSpec,
    port: u16,
    bearer_file: Option<PathBuf>,
) -> Result<(), Box<dyn Error>> {
    let mcp = StreamableHttpService::new(
        move || Ok(TestServer::new(spec.clone())),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let mcp = TowerToHyperService::new(mcp);
    let routes = service_fn(move |request: Request<Incoming>| {
        let mcp = mcp.clone();
        let allowed = bearer_allowed(request.headers(), bearer_file.as_deref());
        async move {
            if !allowed {
                Ok(unauthorized().map(BodyExt::boxed))
            } else if request.uri().path() == "/mcp" {
                mcp.call(request).await
            } else {
                Ok(not_found())
            }
        }
    });
    serve_http1(bind_loopback(port).await?, routes).await
}

/// Whether a request may come in under `--bearer-file` (always, without one).
pub fn bearer_allowed(headers: &hyper::HeaderMap, bearer_file: Option<&Path>) -> bool {
    let Some(file) = bearer_file else { return true };
    let sent = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    let Some(sent) = sent.map(str::trim).filter(|t| !t.is_empty()) else { return false };
    std::fs::read_to_string(file).is_ok_and(|valid| valid.lines().any(|line| line.trim() == sent))
}

/// The RFC 6750 answer to a missing or unknown token.
pub fn unauthorized() -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"invalid or missing bearer token\n")));
    *response.status_mut() = StatusCode::UNAUTHORIZED;
    response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
    response
}

fn not_found() -> Response<BoxBody<Bytes, Infallible>> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"not found; MCP is at /mcp\n")).boxed());
    *response.status_mut() = StatusCode::NOT_FOUND;
    response
}
