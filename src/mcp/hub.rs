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
    /// The server's last tool listing (kept while it is down, for stable names).
    tools: Mutex<Option<Vec<ServerTool>>>,
    /// Stops this server's supervisor: at hub shutdown (a child of the
    /// hub's token), or when a reload removes or replaces the server.
    pub stop: CancellationToken,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
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
    /// The servers in service. A reload swaps the whole list at once.
    slots: RwLock<Vec<Arc<Slot>>>,
    /// Servers a reload removed or replaced, until their calls have drained
    /// and their processes are gone.
    pub(crate) retiring: Mutex<Vec<Arc<Slot>>>,
    /// One reload at a time.
    pub(crate) reloading: tokio::sync::Mutex<()>,
    catalog: RwLock<Arc<Catalog>>,
    /// Bumped whenever the catalog changes, for those who tell clients (`/mcp`).
    changes: watch::Sender<u64>,
    pub(crate) settings: HubSettings,
    pub(crate) parent_env: HashMap<String, String>,
    pub(crate) shutdown: CancellationToken,
    /// The runtime the hub was started on (its own), for `/healthz`'s task count.
    runtime: tokio::runtime::Handle,
    /// Every call's outcome and duration, for `/metrics`.
    pub(crate) tool_metrics: ToolMetrics,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Slot {
    /// Stops the supervisor, waits (briefly) for it to end and kills the
    /// server's process group: nothing of the server is left running.
    pub(crate) async fn stopped(&self) {
        self.stop.cancel();
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
        }
        if let Some(pid) = lock(&self.state).pid.take() {
            super::stdio::kill_group(pid);
        }
    }
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
        let hub = Arc::new(Hub {
            slots: RwLock::new(Vec::new()),
            retiring: Mutex::new(Vec::new()),
            reloading: tokio::sync::Mutex::new(()),
            catalog: RwLock::new(Arc::new(Catalog::default())),
            changes: watch::channel(0).0,
            settings,
            parent_env,
            shutdown: CancellationToken::new(),
            runtime: tokio::runtime::Handle::current(),
            tool_metrics: ToolMetrics::default(),
        });
        let slots: Vec<Arc<Slot>> = servers.into_iter().map(|config| hub.spawn_slot(config)).collect();
        hub.settle(&slots).await;
        hub.replace_slots(slots);
        hub
    }

    /// A slot for `config` with its supervisor running; not in service
    /// until [`Hub::replace_slots`] puts it there.
    pub(crate) fn spawn_slot(self: &Arc<Self>, config: ServerConfig) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            peer: RwLock::new(None),
            state: Mutex::new(SlotState {
                ever_connected: false,
                attempts: 0,
                error: None,
                down_since: None,
                restarts: 0,
                pid: None,
            }),
            tools: Mutex::new(None),
            stop: self.shutdown.child_token(),
            task: Mutex::new(None),
            attempts: watch::channel(0).0,
            limit: CallLimit::new(
                config.max_concurrent_calls.unwrap_or(self.settings.max_concurrent_calls),
                self.settings.max_queued_calls,
            ),
            config,
        });
        let task = tokio::spawn(super::supervisor::run(self.clone(), slot.clone()));
        *lock(&slot.task) = Some(task);
        slot
    }

    /// Waits until every one of `slots` has connected or failed once, or
    /// `startup_wait` has passed; those not up by then keep being retried.
    pub(crate) async fn settle(&self, slots: &[Arc<Slot>]) {
        let deadline = tokio::time::Instant::now() + self.settings.startup_wait;
        while slots.iter().any(|s| lock(&s.state).attempts == 0) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Puts `slots` in service in place of the current ones, and derives the
    /// catalog from them once.
    pub(crate) fn replace_slots(&self, slots: Vec<Arc<Slot>>) {
        if let Ok(mut live) = self.slots.write() {
            *live = slots;
        }
        self.rebuild_catalog();
    }

    pub(crate) fn retiring_push(&self, slot: Arc<Slot>) {
        lock(&self.retiring).push(slot);
    }

    pub(crate) fn retiring_remove(&self, slot: &Arc<Slot>) {
        lock(&self.retiring).retain(|s| !Arc::ptr_eq(s, slot));
    }

    /// The servers in service now (a cheap snapshot).
    pub(crate) fn live(&self) -> Vec<Arc<Slot>> {
        self.slots.read().map(|s| s.clone()).unwrap_or_default()
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

    /// Changes whenever the catalog does; read [`Hub::catalog`] after it has.
    pub fn catalog_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn status(&self) -> Vec<ServerStatus> {
        self.live()
            .iter()
            .map(|slot| {
                let st = lock(&slot.state);
                ServerStatus {
                    name: slot.config.name.clone(),
                    transport: slot.config.transport.kind(),
                    state: self.phase(slot, &st),
                    error: st.error.clone(),
                    tools: lock(&slot.tools).as_ref().map_or(0, Vec::len),
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
        let mut slots = self.live();
        slots.extend(lock(&self.retiring).iter().cloned());
        for slot in &slots {
            slot.limit.close();
        }
        for slot in &slots {
            slot.stopped().await;
        }
    }

    pub(crate) fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        self.slots.read().ok()?.iter().find(|s| s.config.name == name).cloned()
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
        *lock(&slot.tools) = Some(tools);
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
    pub(crate) fn set_tools(&self, slot: &Slot, tools: Vec<ServerTool>) {
        *lock(&slot.tools) = Some(tools);
        self.rebuild_catalog();
    }

    /// Re-derives the catalog from the servers in service: their last
    /// listings, and which of them count as available.
    pub(crate) fn rebuild_catalog(&self) {
        // Under the list's read lock, so a reload's swap and this never interleave.
        let Ok(slots) = self.slots.read() else { return };
        let known: BTreeMap<String, Vec<ServerTool>> =
            slots.iter().filter_map(|s| lock(&s.tools).clone().map(|tools| (s.config.name.clone(), tools))).collect();
        let available: Vec<&str> = slots
            .iter()
            .filter(|s| {
                let st = lock(&s.state);
                matches!(self.phase(s, &st), Phase::Connected | Phase::Reconnecting)
            })
            .map(|s| s.config.name.as_str())
            .collect();
        let next = Catalog::build(&known, &available);
        if let Ok(mut c) = self.catalog.write() {
            if c.tools() != next.tools() {
                tracing::info!(target: "mcp", tools = next.len(), "tool catalog changed");
                *c = next;
                self.changes.send_modify(|g| *g += 1);
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
