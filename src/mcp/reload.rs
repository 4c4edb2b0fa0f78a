//! A new set of servers for a running hub (a reload of
//! `servers_config.json`): unchanged servers keep their connection and
//! sessions; new ones are connected; changed ones are started anew beside
//! the old; then the hub switches to the new set in one step (the catalog
//! changes once), and removed or replaced servers are retired: their calls
//! in flight finish, then their processes are stopped.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::hub::{Hub, Slot};
use crate::settings::servers::ServerConfig;

/// What a reload did, by server name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reconciled {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub restarted: Vec<String>,
    pub kept: Vec<String>,
}

impl Reconciled {
    pub fn is_noop(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.restarted.is_empty()
    }
}

impl Hub {
    /// Makes `servers` the hub's set (see the module doc). Returns once the
    /// new set is in service; retired servers drain in the background.
    pub async fn reconcile(self: &Arc<Self>, servers: Vec<ServerConfig>) -> Reconciled {
        let _one_at_a_time = self.reloading.lock().await;
        let live = self.live();
        let mut done = Reconciled::default();
        let mut next = Vec::with_capacity(servers.len());
        let mut started = Vec::new();
        for config in servers {
            match live.iter().find(|s| s.config.name == config.name) {
                Some(slot) if slot.config == config => {
                    done.kept.push(config.name.clone());
                    next.push(slot.clone());
                }
                old => {
                    let list = if old.is_some() { &mut done.restarted } else { &mut done.added };
                    list.push(config.name.clone());
                    let slot = self.spawn_slot(config);
                    started.push(slot.clone());
                    next.push(slot);
                }
            }
        }
        let retired: Vec<Arc<Slot>> =
            live.iter().filter(|s| !next.iter().any(|n| Arc::ptr_eq(n, s))).cloned().collect();
        for slot in &retired {
            if !done.restarted.contains(&slot.config.name) {
                done.removed.push(slot.config.name.clone());
            }
        }
        if done.is_noop() {
            return done;
        }
        // New and changed servers get the start-up wait to come up before
        // anything changes for the requests being served.
        self.settle(&started).await;
        self.replace_slots(next);
        for slot in retired {
            self.retiring_push(slot.clone());
            let hub = self.clone();
            tokio::spawn(async move {
                drain(&slot, hub.settings.call_timeout).await;
                slot.stopped().await;
                hub.retiring_remove(&slot);
            });
        }
        tracing::info!(
            target: "mcp",
            added = ?done.added, removed = ?done.removed, restarted = ?done.restarted,
            "MCP servers reloaded"
        );
        done
    }
}

/// Waits until a retired server has no call running or waiting (at most a
/// call's timeout and a second: no call outlives that).
async fn drain(slot: &Slot, call_timeout: Duration) {
    let deadline = tokio::time::Instant::now() + call_timeout + Duration::from_secs(1);
    while (slot.limit.running() > 0 || slot.limit.queued() > 0) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
