//! Memory of the server under test, read from `/proc`: resident set (RSS)
//! and proportional set (PSS, shared pages divided among their sharers),
//! summed over the process and its descendants, since nginx and LiteLLM
//! serve from worker processes. A sampler keeps the reading taken when the
//! most streams were open at once: that is the memory those streams cost.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Memory of a process tree, in KiB.
#[derive(Default, Clone, Copy, Debug)]
pub struct Memory {
    pub rss_kib: u64,
    pub pss_kib: u64,
}

/// The memory of `pid` and its descendants; zeros when `pid` is 0 or gone.
pub fn tree_memory(pid: u32) -> Memory {
    let mut total = Memory::default();
    if pid == 0 {
        return total;
    }
    let mut pending = vec![pid];
    while let Some(p) = pending.pop() {
        total.rss_kib += field_kib(&format!("/proc/{p}/status"), "VmRSS:");
        total.pss_kib += field_kib(&format!("/proc/{p}/smaps_rollup"), "Pss:");
        pending.extend(children(p));
    }
    total
}

/// A `Name:   123 kB` field of a `/proc` file (0 when absent).
pub fn field_kib(path: &str, name: &str) -> u64 {
    let Ok(text) = std::fs::read_to_string(path) else { return 0 };
    text.lines()
        .find_map(|l| l.strip_prefix(name))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The direct children of `pid` (over all its threads).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    let mut found = Vec::new();
    for task in tasks.flatten() {
        if let Ok(list) = std::fs::read_to_string(task.path().join("children")) {
            found.extend(list.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
    }
    found
}

/// The readings a [`Sampler`] kept.
#[derive(Default, Clone, Copy)]
pub struct Peak {
    /// Before anything was opened.
    pub before: Memory,
    /// The most streams open at one sampling instant…
    pub open: usize,
    /// …and the memory at that instant.
    pub at_peak: Memory,
}

/// Samples every 20 ms on a tokio task until [`Sampler::stop`].
pub struct Sampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Peak>,
}

impl Sampler {
    pub fn start(pid: u32, open: Arc<AtomicUsize>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = Peak { before: tree_memory(pid), ..Peak::default() };
            while !flag.load(Ordering::Relaxed) {
                let now_open = open.load(Ordering::Relaxed);
                if now_open > peak.open {
                    // Reading /proc blocks briefly; a sample per 20 ms is cheap enough.
                    peak = Peak { open: now_open, at_peak: tree_memory(pid), ..peak };
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            peak
        });
        Self { stop, task }
    }

    pub async fn stop(self) -> Peak {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_memory_is_read() {
        let m = tree_memory(std::process::id());
        assert!(m.rss_kib > 0 && m.pss_kib > 0, "{m:?}");
        assert_eq!(tree_memory(0).rss_kib, 0);
    }
}
