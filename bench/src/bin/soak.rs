//! The soak: `--workers` clients loop over the mix of `soak::traffic::KINDS`
//! against the proxy at `--url` for `--minutes`, after `--warmup-secs`.
//! At the start and after every minute the traffic pauses (every client
//! finishes its exchange and waits), `--settle-ms` pass, and one sample is
//! taken: the proxy's RSS, descriptors and threads (`--pid`), its MCP server
//! children, the tokio tasks `/healthz` reports, and the outcomes so far.
//! Pausing makes the counts comparable: what is alive then is idle state
//! (pools, keep-alive connections) or a leak, not traffic in flight.
//!
//! Prints one JSON line per sample, then one `{"summary": …}` line with the
//! checks of `soak::verdict`. Exits 1 when a check fails, 2 on a setup error.
//! Flags: `--url`, `--pid` (required), `--minutes` (10), `--workers` (6),
//! `--warmup-secs` (20), `--settle-ms` (2000), `--pause-ms` (5),
//! `--rss-growth` (0.2), `--fd-slack` (16), `--task-slack` (32),
//! `--baseline-minute` (2: the sample growth is judged from), `--kinds`
//! (comma-separated names: only those kinds; default the whole mix).

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_chat_proxy_bench::args::Args;
use mcp_chat_proxy_bench::soak::client::Client;
use mcp_chat_proxy_bench::soak::probe;
use mcp_chat_proxy_bench::soak::traffic::{schedule, Outcome, KINDS};
use mcp_chat_proxy_bench::soak::verdict::{check, Allowance, Check};
use serde_json::{json, Value};
use tokio::sync::RwLock;

/// Outcomes per kind: behaved, unexpected, stuck; and the first few unexpected ones.
struct Tally {
    counts: Vec<[AtomicU64; 3]>,
    examples: Mutex<Vec<String>>,
}

impl Tally {
    fn record(&self, kind: usize, outcome: Outcome) {
        let slot = match &outcome {
            Outcome::Behaved => 0,
            Outcome::Unexpected(_) => 1,
            Outcome::Stuck => 2,
        };
        self.counts[kind][slot].fetch_add(1, Ordering::Relaxed);
        if slot > 0 {
            let mut examples = self.examples.lock().unwrap_or_else(|p| p.into_inner());
            if examples.len() < 20 {
                examples.push(format!("{} {outcome:?}", KINDS[kind].name));
            }
        }
    }

    fn snapshot(&self) -> Value {
        let kinds = KINDS.iter().zip(&self.counts).map(|(k, c)| {
            let [ok, unexpected, stuck] = c.each_ref().map(|n| n.load(Ordering::Relaxed));
            (k.name.to_string(), json!({"ok": ok, "unexpected": unexpected, "stuck": stuck}))
        });
        Value::Object(kinds.collect())
    }
}

struct Soak {
    client: Client,
    pid: u32,
    /// Clients hold it shared for each exchange; a sample takes it exclusively.
    gate: Arc<RwLock<()>>,
    tally: Arc<Tally>,
    settle: Duration,
    started: Instant,
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result = match runtime {
        Ok(rt) => rt.block_on(run()),
        Err(e) => Err(format!("runtime: {e}")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("soak: {e}");
            ExitCode::from(2)
        }
    }
}

async fn run() -> Result<bool, String> {
    let args = Args::from_env()?;
    let url: String = args.required("url")?;
    let minutes: u64 = args.get("minutes", 10)?;
    let workers: usize = args.get("workers", 6)?;
    let warmup = Duration::from_secs(args.get("warmup-secs", 20)?);
    let pause = Duration::from_millis(args.get("pause-ms", 5)?);
    let kinds: String = args.get("kinds", String::new())?;
    let only: Vec<&str> = kinds.split(',').filter(|k| !k.is_empty()).collect();
    let order = Arc::new(schedule(&only));
    if order.is_empty() {
        return Err(format!("--kinds {kinds:?} names none of the kinds"));
    }
    let soak = Soak {
        client: Client::new(&url)?,
        pid: args.required("pid")?,
        gate: Arc::new(RwLock::new(())),
        tally: Arc::new(Tally {
            counts: KINDS.iter().map(|_| Default::default()).collect(),
            examples: Mutex::default(),
        }),
        settle: Duration::from_millis(args.get("settle-ms", 2000)?),
        started: Instant::now(),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..workers).map(|id| spawn_client(id, &soak, order.clone(), stop.clone(), pause)).collect();

    tokio::time::sleep(warmup).await;
    let mut samples = vec![soak.sample(0).await];
    let t0 = tokio::time::Instant::now();
    for minute in 1..=minutes {
        tokio::time::sleep_until(t0 + Duration::from_secs(60 * minute)).await;
        samples.push(soak.sample(minute).await);
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let _ = c.await;
    }
    let checks = judge(&samples, &args)?;
    let ok = checks.iter().all(|c| c.ok);
    let examples = soak.tally.examples.lock().map(|e| e.clone()).unwrap_or_default();
    println!(
        "{}",
        json!({"summary": {"ok": ok, "checks": checks, "workers": workers, "unexpected_examples": examples}})
    );
    Ok(ok)
}

/// One client: the mix in schedule order, from its own offset.
fn spawn_client(
    id: usize,
    soak: &Soak,
    order: Arc<Vec<usize>>,
    stop: Arc<AtomicBool>,
    pause: Duration,
) -> tokio::task::JoinHandle<()> {
    let (client, gate, tally) = (soak.client.clone(), soak.gate.clone(), soak.tally.clone());
    tokio::spawn(async move {
        let mut next = id * 7;
        while !stop.load(Ordering::Relaxed) {
            let kind = order[next % order.len()];
            next += 1;
            let outcome = {
                let _shared = gate.read().await;
                client.run(&KINDS[kind]).await
            };
            tally.record(kind, outcome);
            tokio::time::sleep(pause).await;
        }
    })
}

impl Soak {
    /// Pauses the traffic, lets the proxy settle, reads everything, resumes.
    async fn sample(&self, minute: u64) -> Value {
        let asked = Instant::now();
        let _paused = self.gate.write().await;
        let drained_ms = asked.elapsed().as_millis() as u64;
        tokio::time::sleep(self.settle).await;
        let (tasks, hub_tasks) = self.client.runtime_tasks().await;
        let line = json!({
            "minute": minute,
            "t_s": self.started.elapsed().as_secs(),
            "proxy": probe::read(self.pid),
            "mcp_servers": probe::children(self.pid),
            "runtime": {"tasks": tasks, "hub_tasks": hub_tasks},
            "requests": self.tally.snapshot(),
            "drain_ms": drained_ms,
            "loadavg": probe::loadavg(),
        });
        println!("{line}");
        eprintln!(
            "soak: minute {minute}: rss {} KiB, fds {}, tasks {:?}/{:?}",
            line["proxy"]["rss_kib"], line["proxy"]["fds"], tasks, hub_tasks
        );
        line
    }
}

/// The flatness checks, and that the traffic did what it claims: a mix in
/// which requests went unexpectedly would not be the soak it says it is.
fn judge(samples: &[Value], args: &Args) -> Result<Vec<Check>, String> {
    let series =
        |f: &dyn Fn(&Value) -> Option<f64>| samples.iter().map(|s| f(s).unwrap_or(f64::NAN)).collect::<Vec<_>>();
    let fraction = Allowance::Fraction(args.get("rss-growth", 0.2)?);
    let fds = Allowance::Slack(args.get("fd-slack", 16.0)?);
    let tasks = Allowance::Slack(args.get("task-slack", 32.0)?);
    let from: usize = args.get("baseline-minute", 2)?;
    let mut checks = vec![
        check("proxy RSS (KiB)", &series(&|s| s["proxy"]["rss_kib"].as_f64()), from, fraction),
        check("proxy anonymous RSS (KiB)", &series(&|s| s["proxy"]["rss_anon_kib"].as_f64()), from, fraction),
        check("proxy open fds", &series(&|s| s["proxy"]["fds"].as_f64()), from, fds),
        check("proxy threads", &series(&|s| s["proxy"]["threads"].as_f64()), from, fds),
        check("tokio tasks (serving runtime)", &series(&|s| s["runtime"]["tasks"].as_f64()), from, tasks),
        check("tokio tasks (MCP hub runtime)", &series(&|s| s["runtime"]["hub_tasks"].as_f64()), from, tasks),
        check("MCP server RSS (KiB)", &series(&|s| s["mcp_servers"][0]["rss_kib"].as_f64()), from, fraction),
    ];
    let last = samples.last().map(|s| &s["requests"]).cloned().unwrap_or_default();
    let total = |key: &str| last.as_object().map_or(0.0, |m| m.values().filter_map(|c| c[key].as_f64()).sum());
    let (ok, unexpected, stuck) = (total("ok"), total("unexpected"), total("stuck"));
    let all = ok + unexpected + stuck;
    checks.push(Check {
        what: "exchanges not as expected (unexpected + stuck)".into(),
        baseline_sample: 0,
        baseline: all,
        last: unexpected + stuck,
        slope_per_sample: 0.0,
        allowed: "≤ 1 % of all, none stuck".into(),
        ok: all > 0.0 && stuck == 0.0 && unexpected <= all * 0.01,
    });
    Ok(checks)
}
