//! What a soak sample reads of a process, from `/proc`: resident memory,
//! open file descriptors, threads. The proxy is read alone (not summed with
//! its MCP server children): a leak in one must not hide in the other.

use serde::Serialize;

use crate::rss;

#[derive(Serialize, Default, Clone, Copy, Debug)]
pub struct Proc {
    pub pid: u32,
    pub rss_kib: u64,
    /// The anonymous part of RSS (heap, stacks): where a leak shows. The
    /// rest is mostly the binary's own pages, faulted in as code paths run.
    pub rss_anon_kib: u64,
    pub fds: u64,
    pub threads: u64,
}

/// `pid`'s readings; zeros when it is gone.
pub fn read(pid: u32) -> Proc {
    let status = format!("/proc/{pid}/status");
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
    Proc {
        pid,
        rss_kib: rss::field_kib(&status, "VmRSS:"),
        rss_anon_kib: rss::field_kib(&status, "RssAnon:"),
        fds,
        threads: std::fs::read_to_string(&status)
            .ok()
            .and_then(|t| t.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0),
    }
}

/// The readings of `pid`'s children: the stdio MCP servers of the proxy.
pub fn children(pid: u32) -> Vec<Proc> {
    rss::children(pid).into_iter().map(read).collect()
}

/// The 1-minute load average: how busy the shared machine was.
pub fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|t| t.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_read() {
        let me = read(std::process::id());
        assert!(me.rss_kib > 0 && me.rss_anon_kib > 0 && me.fds >= 3 && me.threads >= 1, "{me:?}");
        assert_eq!(read(0).fds, 0);
    }
}
