//! Builds the pingora server around the [`Gate`] and runs it until shutdown.
//!
//! `run` is what the binary calls; `start_in_background` is the same server on
//! a thread of its own, for tests and for embedding.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::apps::HttpServerOptions;
use pingora::protocols::http::ServerSession;
use pingora::proxy::http_proxy;
use pingora::server::configuration::ServerConf;
use pingora::server::{ExecutionPhase, RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use pingora::services::listening::Service;
use tokio::sync::{watch, Notify};

use crate::front::Front;
use crate::gate::Gate;
use crate::mcp::Hub;
use crate::metrics::Metrics;
use crate::reload::Reloader;
use crate::sessions::SessionStore;
use crate::settings::{MetricsSettings, Settings};

/// The MCP hub and the runtime its clients live on. The hub gets a runtime
/// of its own so its supervisors outlive any one pingora service and can be
/// shut down (children killed) from the exit path.
pub struct HubRuntime {
    pub hub: Arc<Hub>,
    /// The `/chat` session store (its Redis connection lives on this runtime).
    pub sessions: Arc<dyn SessionStore>,
    /// Always `Some` until dropped.
    runtime: Option<tokio::runtime::Runtime>,
    /// Asks the reloader for a reload (SIGHUP does).
    pub reload: Arc<Notify>,
}

impl Drop for HubRuntime {
    fn drop(&mut self) {
        // May run inside another runtime (tests, embedding): never block here.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl HubRuntime {
    /// Starts the hub: connects to every configured server, waiting at most
    /// the configured start-up time.
    pub fn start(settings: &Settings) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("mcp-hub")
            .enable_all()
            .build()?;
        let start = async {
            let sessions = crate::sessions::open(&settings.session.store, settings.session.ttl).await;
            let hub = Hub::start(settings.mcp_servers.clone(), settings.hub.clone(), settings.child_env.clone()).await;
            (hub, sessions)
        };
        // On a thread of its own: the caller may itself be inside a runtime.
        let (hub, sessions) = std::thread::scope(|s| s.spawn(|| runtime.block_on(start)).join())
            .map_err(|_| std::io::Error::other("the MCP hub panicked while starting"))?;
        let sessions = sessions.map_err(|e| std::io::Error::other(format!("SESSION_STORE: {e}")))?;
        Ok(Self { hub, sessions, runtime: Some(runtime), reload: Arc::new(Notify::new()) })
    }

    /// Stops every MCP client and kills every stdio server. Blocks: call it
    /// from outside any async context.
    pub fn shutdown(&self) {
        if let Some(rt) = &self.runtime {
            let _ = std::thread::scope(|s| s.spawn(|| rt.block_on(self.hub.shutdown())).join());
        }
    }
}

/// The pingora server configuration that follows from our settings.
pub fn server_conf(settings: &Settings) -> ServerConf {
    ServerConf {
        threads: settings.server.threads as usize,
        grace_period_seconds: Some(settings.server.grace_period_seconds),
        graceful_shutdown_timeout_seconds: Some(settings.server.graceful_shutdown_timeout_seconds),
        // Attempts per transparent request; the gate decides which failures
        // are repeated (see `retry`), this only bounds them.
        max_retries: settings.upstream_retry.retries as usize + 1,
        ca_file: settings.upstream_ca_file.as_ref().map(|p| p.display().to_string()),
        ..ServerConf::default()
    }
}

/// A pingora server with the gate listening on `settings.listen_addr()`.
/// Returns the server and how to drain the gate (see [`Drain`]).
pub fn build(settings: Arc<Settings>, hub: &HubRuntime) -> std::io::Result<(Server, Drain)> {
    let mut server = Server::new_with_opt_and_conf(None, server_conf(&settings));
    server.bootstrap();

    let gate = Gate::new(settings.clone(), hub.hub.clone(), hub.sessions.clone())
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let drain = Drain { in_flight: gate.in_flight(), draining: gate.draining() };
    let metrics = gate.metrics();
    if let Some(rt) = &hub.runtime {
        let reloader = Reloader::new(settings.reload.clone(), hub.hub.clone(), gate.live());
        rt.spawn(reloader.run(hub.reload.clone()));
    }
    let mut options = HttpServerOptions::default();
    options.h2c = settings.server.h2c;
    let mut proxy = http_proxy(&server.configuration, gate);
    proxy.server_options = Some(options);
    // Front bounds what pingora leaves open on client connections (head deadline, idle keep-alive).
    let mut service = Service::new("mcp-chat-proxy".to_string(), Front::new(proxy, &settings));
    service.add_tcp(&settings.listen_addr());
    server.add_service(service);
    if let MetricsSettings::Listen(addr) = &settings.metrics {
        let mut metrics = Service::new("metrics".to_string(), MetricsApp(metrics));
        metrics.add_tcp(addr);
        server.add_service(metrics);
    }
    Ok((server, drain))
}

/// What graceful shutdown needs of the gate: its in-flight counter, and the
/// token that ends requests which only end when their client leaves.
pub struct Drain {
    pub in_flight: Arc<AtomicUsize>,
    pub draining: tokio_util::sync::CancellationToken,
}

/// `/metrics` on a listener of its own (`metrics.listen`): no client key
/// asked, as the address is the operator's to keep private.
struct MetricsApp(Arc<Metrics>);

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        let (status, content_type, body) = match (req.method.as_str(), req.uri.path()) {
            ("GET" | "HEAD", "/metrics") => {
                let accept = req.headers.get("accept").and_then(|v| v.to_str().ok());
                let (content_type, text) = self.0.render(accept);
                (200, content_type, text.into_bytes())
            }
            (_, "/metrics") => (405, "text/plain", b"only GET /metrics is served here\n".to_vec()),
            _ => (404, "text/plain", b"only /metrics is served here\n".to_vec()),
        };
        let mut resp = http::Response::new(body);
        *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
        if let Ok(v) = http::HeaderValue::from_str(content_type) {
            resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
        }
        resp
    }
}

/// Runs the server in this thread until SIGTERM or SIGINT, then drains:
/// the process exits as soon as no request is in flight, or when the grace
/// period ends, whichever comes first. A second signal exits at once.
pub fn run(settings: Arc<Settings>) -> std::io::Result<()> {
    survive_hangups();
    let hub = Arc::new(HubRuntime::start(&settings)?);
    let (server, drain) = build(settings, &hub)?;
    exit_when_drained(server.watch_execution_phase(), drain, hub.clone());
    server.run(RunArgs { shutdown_signal: Box::new(Signals(hub.reload.clone())) });
    hub.shutdown();
    Ok(())
}

/// SIGHUP's default action ends the process, and process managers send it
/// for "reload": the proxy must survive it from its first moment, before
/// [`Signals`] turns each one into a reload. A handler, not `SIG_IGN`, so
/// the MCP servers it starts get the default action back when they exec.
fn survive_hangups() {
    extern "C" fn on_hangup(_: libc::c_int) {}
    let handler: extern "C" fn(libc::c_int) = on_hangup;
    // SAFETY: installs a handler that does nothing, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGHUP, handler as libc::sighandler_t);
    }
}

/// SIGTERM and SIGINT both start a graceful shutdown (pingora's default
/// treats SIGINT as "quit now"); SIGQUIT keeps pingora's meaning; SIGHUP
/// asks for a reload of the MCP servers and client keys.
struct Signals(Arc<Notify>);

#[async_trait]
impl ShutdownSignalWatch for Signals {
    async fn recv(&self) -> ShutdownSignal {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut quit), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::quit()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::error!("cannot install signal handlers; stopping");
            return ShutdownSignal::FastShutdown;
        };
        let got = loop {
            tokio::select! {
                _ = term.recv() => break ShutdownSignal::GracefulTerminate,
                _ = int.recv() => break ShutdownSignal::GracefulTerminate,
                _ = quit.recv() => break ShutdownSignal::GracefulUpgrade,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP received: reloading the MCP servers and client keys");
                    self.0.notify_one();
                }
            }
        };
        tracing::info!("shutdown signal received; finishing in-flight requests (signal again to stop at once)");
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
            tracing::warn!("second signal: exiting now");
            std::process::exit(1);
        });
        got
    }
}

/// pingora sleeps the whole grace period even when nothing is in flight;
/// this watcher ends the process as soon as the last request has finished.
fn exit_when_drained(mut phases: tokio::sync::broadcast::Receiver<ExecutionPhase>, drain: Drain, hub: Arc<HubRuntime>) {
    std::thread::spawn(move || {
        loop {
            match phases.blocking_recv() {
                Ok(ExecutionPhase::ShutdownGracePeriod) => break,
                Ok(_) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return,
            }
        }
        drain.draining.cancel();
        while drain.in_flight.load(Ordering::Acquire) > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::info!("all requests finished; stopping MCP servers and exiting");
        hub.shutdown();
        std::process::exit(0);
    });
}

/// A server running on a thread of its own; dropping the handle does not stop
/// it, [`BackgroundServer::shutdown`] (gracefully) or
/// [`BackgroundServer::stop_now`] does.
pub struct BackgroundServer {
    stop: watch::Sender<Option<Stop>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub hub: Arc<HubRuntime>,
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Graceful,
    Now,
}

impl BackgroundServer {
    /// Starts the graceful shutdown and waits for the server to finish.
    pub fn shutdown(self) {
        self.stop(Stop::Graceful);
    }

    /// Reloads the MCP servers and client keys, as SIGHUP does.
    pub fn reload(&self) {
        self.hub.reload.notify_one();
    }

    /// Stops at once: in-flight requests are cut, the MCP servers stopped.
    pub fn stop_now(self) {
        self.stop(Stop::Now);
    }

    fn stop(mut self, how: Stop) {
        let _ = self.stop.send(Some(how));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.hub.shutdown();
    }
}

struct StopSignal(watch::Receiver<Option<Stop>>);

#[async_trait]
impl ShutdownSignalWatch for StopSignal {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.clone();
        let how = rx.wait_for(Option::is_some).await.map(|v| *v).ok().flatten();
        match how {
            Some(Stop::Now) => ShutdownSignal::FastShutdown,
            _ => ShutdownSignal::GracefulTerminate,
        }
    }
}

/// Starts the server on its own thread and returns once it accepts
/// connections on `settings.listen_addr()` (or after 10 s).
pub fn start_in_background(settings: Arc<Settings>) -> std::io::Result<BackgroundServer> {
    let addr = settings.listen_addr();
    let (stop, rx) = watch::channel(None);
    let hub = Arc::new(HubRuntime::start(&settings)?);
    let (server, _) = build(settings, &hub)?;
    let thread = std::thread::spawn(move || server.run(RunArgs { shutdown_signal: Box::new(StopSignal(rx)) }));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(BackgroundServer { stop, thread: Some(thread), hub })
}
