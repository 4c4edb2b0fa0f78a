//! The connection layer in front of the gate: what pingora does not bound.
//!
//! pingora reads a request head with a timeout per read and, once a
//! keep-alive HTTP/1.1 connection has served a request, waits for the next
//! one without any timeout. [`Front`] wraps the gate's `HttpProxy` as the
//! service's application and, for every HTTP/1 connection:
//!
//! - gives each request head a deadline ([`GuardedStream`]): from the accept
//!   for the first request, from the first byte for the next ones;
//! - closes a connection idle between requests after `keepalive_seconds`.
//!
//! HTTP/2 with prior knowledge (h2c) is handed to pingora unchanged once its
//! preface is seen; the preface itself must arrive within the header timeout.

mod guarded;
mod head_end;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::{HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::proxy::HttpProxy;
use pingora::server::ShutdownWatch;
use tokio::time::Instant;

use crate::gate::Gate;
use crate::settings::Settings;
pub use guarded::GuardedStream;
pub use head_end::HeadEnd;

/// https://datatracker.ietf.org/doc/html/rfc9113#section-3.4
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The gate's proxy with every client connection guarded.
pub struct Front {
    proxy: Arc<HttpProxy<Gate>>,
    header_timeout: Duration,
    keepalive_seconds: u64,
    h2c: bool,
}

impl Front {
    pub fn new(proxy: HttpProxy<Gate>, settings: &Settings) -> Self {
        Self {
            proxy: Arc::new(proxy),
            header_timeout: settings.limits.header_timeout,
            keepalive_seconds: settings.server.keepalive_seconds.max(1),
            h2c: settings.server.h2c,
        }
    }

    /// pingora's own keep-alive loop (`impl ServerApp for HttpServerApp`),
    /// with the head guard re-armed and the idle timeout set per request.
    async fn serve_http1(&self, stream: GuardedStream, shutdown: &ShutdownWatch) {
        let mut session = ServerSession::new_http1(Box::new(stream));
        session.set_keepalive(if *shutdown.borrow() { None } else { Some(self.keepalive_seconds) });
        let limit = self.proxy.server_options().and_then(|o| o.keepalive_request_limit);
        session.set_keepalive_reuses_remaining(limit);
        let mut reused = self.proxy.process_new_http(session, shutdown).await;
        while let Some((stream, persistent)) = reused.map(ReusedHttpStream::consume) {
            let Ok(mut stream) = stream.into_any().downcast::<GuardedStream>() else {
                tracing::error!("a reused client connection lost its head guard; closing it");
                return;
            };
            stream.rearm();
            let mut session = ServerSession::new_http1(stream);
            if let Some(persistent) = persistent {
                persistent.apply_to_session(&mut session);
            }
            // After a request, pingora waits for the next one forever (its
            // keep-alive of 0 means "no timeout"): give it ours instead.
            if session.get_keepalive().is_some() && !*shutdown.borrow() {
                session.set_keepalive(Some(self.keepalive_seconds));
            }
            reused = self.proxy.process_new_http(session, shutdown).await;
        }
    }
}

#[async_trait]
impl ServerApp for Front {
    async fn process_new(self: &Arc<Self>, mut stream: Stream, shutdown: &ShutdownWatch) -> Option<Stream> {
        let deadline = Instant::now() + self.header_timeout;
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            return self.proxy.process_new(stream, shutdown).await;
        }
        if self.h2c && stream.get_ssl_digest().is_none() {
            // pingora waits for the preface's 24 bytes with no timeout at all.
            let mut preface = [0u8; H2_PREFACE.len()];
            let peeked = tokio::time::timeout_at(deadline, stream.try_peek(&mut preface)).await.ok()?.ok()?;
            if peeked && preface == H2_PREFACE {
                return self.proxy.process_new(stream, shutdown).await;
            }
        }
        self.serve_http1(GuardedStream::new(stream, deadline, self.header_timeout), shutdown).await;
        None
    }

    async fn cleanup(&self) {
        self.proxy.http_cleanup().await;
    }
}
