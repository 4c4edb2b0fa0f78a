//! Prints the memory of a server under test (its process tree) as JSON:
//! once, or the peak seen over `--for-ms` (sampled every 100 ms), so the
//! harness can read memory while a load generator runs.
//!
//! Flags: `--pid` (required), `--for-ms` (0 = one reading).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use mcp_chat_proxy_bench::args::Args;
use mcp_chat_proxy_bench::rss::{tree_memory, Memory};

fn main() -> ExitCode {
    let parsed = Args::from_env().and_then(|a| Ok((a.required::<u32>("pid")?, a.get::<u64>("for-ms", 0)?)));
    let (pid, for_ms) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("memwatch: {e}");
            return ExitCode::from(2);
        }
    };
    let until = Instant::now() + Duration::from_millis(for_ms);
    let mut peak = tree_memory(pid);
    while Instant::now() < until {
        std::thread::sleep(Duration::from_millis(100));
        let now = tree_memory(pid);
        peak = Memory { rss_kib: peak.rss_kib.max(now.rss_kib), pss_kib: peak.pss_kib.max(now.pss_kib) };
    }
    println!("{{\"rss_kib\":{},\"pss_kib\":{}}}", peak.rss_kib, peak.pss_kib);
    ExitCode::SUCCESS
}
