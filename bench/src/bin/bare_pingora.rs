//! The smallest useful pingora reverse proxy: every request goes to one
//! upstream through pingora's pool, nothing else. Measured beside our proxy
//! it tells pingora's own cost from the cost of our code.
//!
//! It sets the same four peer timeouts as our proxy (timers are part of what
//! any production proxy pays) and pingora's defaults otherwise.
//!
//! Flags: `--port` (required), `--upstream` (`127.0.0.1:PORT`, required),
//! `--threads` (2), `--tokio-timeouts-above-secs` (pingora's default, 900:
//! longer timeouts use tokio's timer instead of pingora's timer wheel, whose
//! entries outlive finished requests until their deadline; see the soak in
//! BENCHMARKS.md). SIGINT exits at once, SIGTERM gracefully.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use async_trait::async_trait;
use mcp_chat_proxy_bench::args::Args;
use pingora::prelude::HttpPeer;
use pingora::proxy::{http_proxy_service, ProxyHttp, Session};
use pingora::server::configuration::ServerConf;
use pingora::server::Server;

struct Bare {
    upstream: SocketAddr,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();

    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut ()) -> pingora::Result<Box<HttpPeer>> {
        let mut peer = HttpPeer::new(self.upstream, false, String::new());
        peer.options.connection_timeout = Some(Duration::from_secs(10));
        peer.options.read_timeout = Some(Duration::from_secs(300));
        peer.options.write_timeout = Some(Duration::from_secs(60));
        peer.options.idle_timeout = Some(Duration::from_secs(90));
        Ok(Box::new(peer))
    }
}

fn main() -> ExitCode {
    let parsed = Args::from_env().and_then(|a| {
        let tokio_above = a.get::<u64>("tokio-timeouts-above-secs", 15 * 60)?;
        Ok((
            a.required::<u16>("port")?,
            a.required::<SocketAddr>("upstream")?,
            a.get::<usize>("threads", 2)?,
            tokio_above,
        ))
    });
    let (port, upstream, threads, tokio_above) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("bare_pingora: {e}");
            return ExitCode::from(2);
        }
    };
    // No grace period: the harness stops it between scenarios.
    let conf = ServerConf {
        threads,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(1),
        fast_timeout_to_tokio_threshold_seconds: Some(tokio_above),
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut service = http_proxy_service(&server.configuration, Bare { upstream });
    service.add_tcp(&format!("127.0.0.1:{port}"));
    server.add_service(service);
    server.run_forever()
}
