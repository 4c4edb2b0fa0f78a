//! The hub: one long-lived, supervised client per configured MCP server, and
//! the catalog of their tools.
//!
//! Each server has a slot holding its current connection (if any) and its
//! state; a supervisor task per slot connects, waits for the connection to
//! end, and reconnects with exponential backoff. Tools of a server that is
//! down stay in the catalog (calls fail fast with a clear error) until it has
//! been down for the withdrawal grace period, so the tool list does not flap.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rmcp::{Peer, RoleClient};
use serde::Serialize;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::catalog::{Catalog, ServerTool};
use super::limit::CallLimit;
use crate::metrics::ToolMetrics;
use crate::settings::servers::ServerConfig;
use crate::settings::HubSettings;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The first connection attempt is under way.
    Starting,
    Connected,
    /// Down, being reconnected; its tools are still listed.
    Reconnecting,
    /// Down past the grace period (or never came up); still retried.
    Failed,
}

/// What `/healthz` and `check` report for one server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerStatus {
    pub name: String,
    pub transport: &'static str,
    pub state: Phase,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub tools: usize,
    pub restarts: u32,
    /// Calls running on it now, its limit, and calls waiting for a free slot.
    pub running: usize,
    pub max_concurrent_calls: usize,
    pub queued: usize,
}

pub(crate) struct Slot {
    pub config: ServerConfig,
    pub peer: RwLock<Option<Peer<RoleClient>>>,
    state: Mutex<SlotState>,
    /// Bumped on every connection attempt's outcome, success or failure;
    /// a retrying call waits on it.
    pub attempts: watch::Sender<u64>,
    /// The server's call slots and queue; the supervisor pings more often
    /// while calls run.
    pub limit: CallLimit,
}

struct SlotState {
    ever_connected: bool,
    attempts: u32,
    error: Option<String>,
    down_since: Option<Instant>,
    restarts: u32,
    pub pid: Option<u32>,
}

pub struct Hub {
    pub(crate) slots: Vec<Arc<Slot>>,
    known: Mutex<BTreeMap<String, Vec<ServerTool>>>,
    catalog: RwLock<Arc<Catalog>>,
    pub(crate) settings: HubSettings,
    pub(crate) parent_env: HashMap<String, String>,
    pub(crate) shutdown: CancellationToken,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// The runtime the hub was started on (its own), for `/healthz`'s task count.
    runtime: tokio::runtime::Handle,
    /// Every call's outcome and duration, for `/metrics`.
    pub(crate) tool_metrics: ToolMetrics,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Hub {
    /// Starts a supervisor per server and waits until every server has
    /// connected or failed once, or `startup_wait` has passed; servers not up
    /// by then keep being retried in the background.
    pub async fn start(
        servers: Vec<ServerConfig>,
        settings: HubSettings,
        parent_env: HashMap<String, String>,
    ) -> Arc<Hub> {
        let slots = servers
            .into_iter()
            .map(|config| {
                Arc::new(Slot {
                    peer: RwLock::new(None),
                    state: Mutex::new(SlotState {
                        ever_connected: false,
                        attempts: 0,
                        error: None,
                        down_since: None,
                        restarts: 0,
                        pid: None,
                    }),
                    attempts: watch::channel(0).0,
                    limit: CallLimit::new(
                        config.max_concurrent_calls.unwrap_or(settings.max_concurrent_calls),
                        settings.max_queued_calls,
                    ),
                    config,
                })
            })
            .collect();
        let hub = Arc::new(Hub {
            slots,
            known: Mutex::new(BTreeMap::new()),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            settings,
            parent_env,
            shutdown: CancellationToken::new(),
            tasks: Mutex::new(Vec::new()),
            runtime: tokio::runtime::Handle::current(),
            tool_metrics: ToolMetrics::default(),
        });
        for slot in &hub.slots {
            let task = tokio::spawn(super::supervisor::run(hub.clone(), slot.clone()));
            lock(&hub.tasks).push(task);
        }
        let deadline = tokio::time::Instant::now() + hub.settings.startup_wait;
        while hub.slots.iter().any(|s| lock(&s.state).attempts == 0) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        hub
    }

    /// Where the hub records its calls; the gate registers it for `/metrics`.
    pub fn tool_metrics(&self) -> &ToolMetrics {
        &self.tool_metrics
    }

    /// The servers' state for `/metrics`, read at each scrape.
    pub fn server_collector(self: &Arc<Self>) -> Box<dyn prometheus_client::collector::Collector> {
        Box::new(super::status_metrics::ServerCollector(Arc::downgrade(self)))
    }

    /// Tasks alive on the hub's runtime (supervisors, MCP transports, calls).
    pub fn runtime_tasks(&self) -> usize {
        self.runtime.metrics().num_alive_tasks()
    }

    /// The current tool catalog (a cheap snapshot).
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().map(|c| c.clone()).unwrap_or_default()
    }

    pub fn status(&self) -> Vec<ServerStatus> {
        let known = lock(&self.known);
        self.slots
            .iter()
            .map(|slot| {
                let st = lock(&slot.state);
                ServerStatus {
                    name: slot.config.name.clone(),
                    transport: slot.config.transport.kind(),
                    state: self.phase(slot, &st),
                    error: st.error.clone(),
                    tools: known.get(&slot.config.name).map_or(0, Vec::len),
                    restarts: st.restarts,
                    running: slot.limit.running(),
                    max_concurrent_calls: slot.limit.max_running(),
                    queued: slot.limit.queued(),
                }
            })
            .collect()
    }

    fn phase(&self, slot: &Slot, st: &SlotState) -> Phase {
        let connected = slot.peer.read().map(|p| p.as_ref().is_some_and(|p| !p.is_transport_closed())).unwrap_or(false);
        match (connected, st.down_since) {
            (true, _) => Phase::Connected,
            (false, _) if st.attempts == 0 => Phase::Starting,
            (false, _) if !st.ever_connected => Phase::Failed,
            (false, Some(since)) if since.elapsed() >= self.settings.withdraw_after => Phase::Failed,
            (false, _) => Phase::Reconnecting,
        }
    }

    /// Stops every supervisor and kills every stdio server's process group.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        for slot in &self.slots {
            slot.limit.close();
        }
        let tasks: Vec<_> = lock(&self.tasks).drain(..).collect();
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
        }
        for slot in &self.slots {
            if let Some(pid) = lock(&slot.state).pid.take() {
                super::stdio::kill_group(pid);
            }
        }
    }

    pub(crate) fn slot(&self, name: &str) -> Option<&Arc<Slot>> {
        self.slots.iter().find(|s| s.config.name == name)
    }

    /// Records a fresh connection and its tools.
    pub(crate) fn connected(&self, slot: &Slot, peer: Peer<RoleClient>, tools: Vec<ServerTool>, pid: Option<u32>) {
        {
            let mut st = lock(&slot.state);
            if st.ever_connected {
                st.restarts += 1;
            }
            st.ever_connected = true;
            st.attempts += 1;
            st.error = None;
            st.down_since = None;
            st.pid = pid;
        }
        if let Ok(mut p) = slot.peer.write() {
            *p = Some(peer);
        }
        lock(&self.known).insert(slot.config.name.clone(), tools);
        self.rebuild_catalog();
        slot.attempts.send_modify(|g| *g += 1);
    }

    /// Records that a server is down (or that an attempt failed).
    pub(crate) fn down(&self, slot: &Slot, error: String) {
        if let Ok(mut p) = slot.peer.write() {
            *p = None;
        }
        {
            let mut st = lock(&slot.state);
            st.attempts += 1;
            st.error = Some(error);
            st.down_since.get_or_insert_with(Instant::now);
            if let Some(pid) = st.pid.take() {
                super::stdio::kill_group(pid);
            }
        }
        self.rebuild_catalog();
        slot.attempts.send_modify(|g| *g += 1);
    }

    /// Replaces a server's tools after `notifications/tools/list_changed`.
    pub(crate) fn set_tools(&self, server: &str, tools: Vec<ServerTool>) {
        lock(&self.known).insert(server.to_string(), tools);
        self.rebuild_catalog();
    }

    /// Re-derives the catalog from what is known and which servers count as available.
    pub(crate) fn rebuild_catalog(&self) {
        let available: Vec<&str> = self
            .slots
            .iter()
            .filter(|s| {
                let st = lock(&s.state);
                matches!(self.phase(s, &st), Phase::Connected | Phase::Reconnecting)
            })
            .map(|s| s.config.name.as_str())
            .collect();
        let next = Catalog::build(&lock(&self.known), &available);
        if let Ok(mut c) = self.catalog.write() {
            if c.tools() != next.tools() {
                tracing::info!(target: "mcp", tools = next.len(), "tool catalog changed");
                *c = next;
            }
        }
    }

    /// The error to give for a server that has no connection right now.
    pub(crate) fn unavailable_reason(&self, slot: &Slot) -> String {
        let st = lock(&slot.state);
        let why = st.error.clone().unwrap_or_else(|| "not connected yet".into());
        format!("MCP server {:?} is unavailable ({why}); it is being restarted", slot.config.name)
    }
}
