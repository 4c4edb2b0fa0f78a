//! Reloading the MCP servers and the client keys without a restart: on
//! SIGHUP, and when `servers_config.json` or the keys file changes on disk.
//!
//! A reload reads both files first; if either is broken (bad JSON or TOML,
//! an unknown key, an undefined `${VAR}`), nothing changes: the running
//! configuration stays, one line names the problem, and `/healthz` shows it
//! until a later reload succeeds. Otherwise the hub switches to the new set
//! of servers (see `mcp::reload`) and the keys are swapped in one step.
//! Requests already past authentication keep the key they were admitted
//! with; requests in flight keep the catalog snapshot of their round.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use serde::Serialize;
use tokio::sync::Notify;

use crate::mcp::{Hub, Reconciled};
use crate::settings::keys::Keys;
use crate::settings::ReloadSources;

/// How often the watched files are looked at.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// What the gate reads per request and a reload replaces: the client keys,
/// and how the last reload went.
#[derive(Debug)]
pub struct Live {
    keys: RwLock<Arc<Keys>>,
    status: Mutex<ReloadStatus>,
}

/// `/healthz`'s `config` part.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReloadStatus {
    /// Reloads that changed something or confirmed the files are as running.
    pub reloads: u64,
    /// Why the last attempt kept the running configuration; `None` once one succeeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last: Option<Reconciled>,
}

impl Live {
    pub fn new(keys: Keys) -> Self {
        Self { keys: RwLock::new(Arc::new(keys)), status: Mutex::new(ReloadStatus::default()) }
    }

    /// The keys now (a snapshot: a reload does not change it under a request).
    pub fn keys(&self) -> Arc<Keys> {
        self.keys.read().map(|k| k.clone()).unwrap_or_default()
    }

    /// `/metrics`' view of the reloads, read at each scrape.
    pub fn collector(self: &Arc<Self>) -> Box<dyn Collector> {
        Box::new(ReloadCollector(Arc::downgrade(self)))
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn set_keys(&self, keys: Keys) {
        if let Ok(mut k) = self.keys.write() {
            *k = Arc::new(keys);
        }
    }

    fn record(&self, outcome: Result<Reconciled, String>) {
        if let Ok(mut s) = self.status.lock() {
            match outcome {
                Ok(done) => {
                    s.reloads += 1;
                    s.error = None;
                    s.last = Some(done);
                }
                Err(e) => s.error = Some(e),
            }
        }
    }
}

#[derive(Debug)]
struct ReloadCollector(Weak<Live>);

impl Collector for ReloadCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(live) = self.0.upgrade() else { return Ok(()) };
        let status = live.status();
        let help = "Reloads of the servers file and keys that took effect";
        let e = encoder.encode_descriptor("config_reloads", help, None, MetricType::Counter)?;
        ConstCounter::new(status.reloads).encode(e)?;
        let help = "1 while the last reload was refused (a broken file; the running configuration is kept)";
        let e = encoder.encode_descriptor("config_reload_failed", help, None, MetricType::Gauge)?;
        ConstGauge::new(i64::from(status.error.is_some())).encode(e)
    }
}

/// Reads the sources again when asked (SIGHUP) or when a watched file changes.
pub struct Reloader {
    sources: ReloadSources,
    hub: Arc<Hub>,
    live: Arc<Live>,
}

impl Reloader {
    pub fn new(sources: ReloadSources, hub: Arc<Hub>, live: Arc<Live>) -> Self {
        Self { sources, hub, live }
    }

    /// Runs until the hub shuts down: a reload on every `kick` (SIGHUP) and
    /// whenever a watched file's contents differ from the last look.
    pub async fn run(self, kick: Arc<Notify>) {
        let files = self.sources.watched();
        let mut seen = contents(&files);
        let mut tick = tokio::time::interval(WATCH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let why = tokio::select! {
                _ = kick.notified() => "SIGHUP",
                _ = tick.tick() => {
                    let now = contents(&files);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    "a configuration file changed"
                }
                _ = self.hub.shutdown.cancelled() => return,
            };
            // Logged and recorded for /healthz either way.
            let _ = self.reload(why).await;
        }
    }

    /// One reload: both files read and checked before anything changes.
    pub async fn reload(&self, why: &str) -> Result<Reconciled, String> {
        let read = self.sources.servers().and_then(|servers| Ok((servers, self.sources.keys()?)));
        let outcome = match read {
            Err(e) => {
                tracing::error!(target: "reload", "{why}: configuration not reloaded, the running one is kept: {e}");
                Err(e)
            }
            Ok((servers, keys)) => {
                let done = self.hub.reconcile(servers).await;
                self.live.set_keys(keys);
                tracing::info!(
                    target: "reload",
                    added = done.added.len(), removed = done.removed.len(), restarted = done.restarted.len(),
                    kept = done.kept.len(), "{why}: configuration reloaded"
                );
                Ok(done)
            }
        };
        self.live.record(outcome.clone());
        outcome
    }
}

/// Each file's bytes (`None`: unreadable or absent).
fn contents(files: &[PathBuf]) -> Vec<Option<Vec<u8>>> {
    files.iter().map(|f| std::fs::read(f).ok()).collect()
}
