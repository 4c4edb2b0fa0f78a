//! Opens many concurrent SSE chat streams and times their chunks: time to
//! first content chunk, the gaps between chunks, streams that lost a chunk
//! or stalled. oha and wrk time whole responses, so they cannot see this.
//!
//! Each stream has its own connection (HTTP/1 carries one stream at a time);
//! stream `i` starts at `i * ramp / streams`. While they run, the resident
//! memory of `--pid` (the proxy, with its worker processes) is sampled: before the first stream and when
//! the most streams were open at once. One JSON object goes to stdout.
//!
//! Flags: `--url` (required, `http://127.0.0.1:PORT/path`), `--streams` (10),
//! `--ramp-ms` (500), `--model` (mock), `--chunks` (64, the content chunks a
//! complete stream has), `--stall-ms` (200, a longer gap is a stall),
//! `--first-token-ms` (0, the mock's delay, added to the stall limit for the
//! first chunk), `--timeout-s` (30), `--threads` (1), `--pid` (0 = none),
//! `--authorization` (the header's value; none by default).

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use mcp_chat_proxy_bench::args::Args;
use mcp_chat_proxy_bench::rss;
use mcp_chat_proxy_bench::sse::{Event, EventScanner};
use mcp_chat_proxy_bench::stats::percentile;
use serde_json::json;
use tokio::net::TcpStream;

struct Plan {
    addr: String,
    path: String,
    body: Bytes,
    authorization: Option<String>,
    chunks: u32,
    timeout: Duration,
}

/// What one stream saw.
#[derive(Default)]
struct Outcome {
    ttfc_ms: Option<f64>,
    gaps_ms: Vec<f64>,
    contents: u32,
    done: bool,
    error: Option<String>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stream_client: {e}");
            ExitCode::from(2)
        }
    }
}

fn run() -> Result<(), String> {
    let args = Args::from_env()?;
    let url: String = args.required("url")?;
    let rest = url.strip_prefix("http://").ok_or("--url must start with http://")?;
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let model: String = args.get("model", "mock".to_string())?;
    let body = json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hello"}]});
    let plan = Arc::new(Plan {
        addr: addr.to_string(),
        path: if path.is_empty() { "/".to_string() } else { path.to_string() },
        body: Bytes::from(body.to_string()),
        authorization: args.get("authorization", String::new()).map(|a| Some(a).filter(|a| !a.is_empty()))?,
        chunks: args.get("chunks", 64)?,
        timeout: Duration::from_secs(args.get("timeout-s", 30)?),
    });
    let streams: usize = args.get("streams", 10)?;
    let ramp = Duration::from_millis(args.get("ramp-ms", 500)?);
    let judge = Judge {
        chunks: plan.chunks,
        stall_ms: args.get("stall-ms", 200.0)?,
        first_token_ms: args.get("first-token-ms", 0.0)?,
    };
    let pid: u32 = args.get("pid", 0)?;
    let threads: usize = args.get("threads", 1)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(1))
        .enable_all()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let started = Instant::now();
    let (outcomes, memory) = runtime.block_on(run_streams(plan, streams, ramp, pid));
    let report = summarize(outcomes, &judge, memory, started.elapsed());
    println!("{report}");
    Ok(())
}

async fn run_streams(plan: Arc<Plan>, streams: usize, ramp: Duration, pid: u32) -> (Vec<Outcome>, rss::Peak) {
    let open = Arc::new(AtomicUsize::new(0));
    let sampler = rss::Sampler::start(pid, open.clone());
    let t0 = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(streams);
    for i in 0..streams {
        let start = t0 + ramp.mul_f64(i as f64 / streams.max(1) as f64);
        let (plan, open) = (plan.clone(), open.clone());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(start).await;
            let mut outcome = Outcome::default();
            if let Err(e) = one_stream(&plan, &open, &mut outcome).await {
                outcome.error = Some(e);
            }
            outcome
        }));
    }
    let mut outcomes = Vec::with_capacity(streams);
    for task in tasks {
        outcomes.push(task.await.unwrap_or_else(|e| Outcome { error: Some(e.to_string()), ..Outcome::default() }));
    }
    (outcomes, sampler.stop().await)
}

/// Runs one stream, recording into `out` as it goes so a failure keeps what
/// was seen before it. `open` counts streams between first chunk and end.
async fn one_stream(plan: &Plan, open: &AtomicUsize, out: &mut Outcome) -> Result<(), String> {
    let tcp = TcpStream::connect(&plan.addr).await.map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await.map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    let mut req =
        Request::post(plan.path.as_str()).header("host", plan.addr.as_str()).header("content-type", "application/json");
    if let Some(auth) = &plan.authorization {
        req = req.header("authorization", auth.as_str());
    }
    let req = req.body(Full::new(plan.body.clone())).map_err(|e| format!("request: {e}"))?;
    let sent = Instant::now();
    let resp = tokio::time::timeout(plan.timeout, sender.send_request(req))
        .await
        .map_err(|_| "no response head in time".to_string())?
        .map_err(|e| format!("send: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()));
    }
    let mut body = resp.into_body();
    let mut scanner = EventScanner::default();
    let mut last: Option<Instant> = None;
    let result = loop {
        let frame = match tokio::time::timeout(plan.timeout, body.frame()).await {
            Err(_) => break Err("body read timed out".to_string()),
            Ok(None) => break Ok(()),
            Ok(Some(Err(e))) => break Err(format!("body: {e}")),
            Ok(Some(Ok(frame))) => frame,
        };
        let Some(data) = frame.data_ref() else { continue };
        let now = Instant::now();
        scanner.push(data, |event| match event {
            Event::Content => {
                match last {
                    None => {
                        out.ttfc_ms = Some(ms(now - sent));
                        open.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(prev) => out.gaps_ms.push(ms(now - prev)),
                }
                last = Some(now);
                out.contents += 1;
            }
            Event::Done => out.done = true,
            Event::Other => {}
        });
    };
    if last.is_some() {
        open.fetch_sub(1, Ordering::Relaxed);
    }
    result
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// What makes a stream whole and on time.
struct Judge {
    chunks: u32,
    stall_ms: f64,
    first_token_ms: f64,
}

fn summarize(outcomes: Vec<Outcome>, judge: &Judge, memory: rss::Peak, wall: Duration) -> serde_json::Value {
    let (mut ttfc, mut gaps) = (Vec::new(), Vec::new());
    let (mut lost, mut stalled, mut errors) = (0usize, 0usize, 0usize);
    let mut first_error = None;
    for o in &outcomes {
        if let Some(e) = &o.error {
            errors += 1;
            first_error.get_or_insert_with(|| e.clone());
        }
        let complete = o.error.is_none() && o.done && o.contents == judge.chunks;
        let slow_start = o.ttfc_ms.is_none_or(|t| t > judge.stall_ms + judge.first_token_ms);
        let slow_gap = o.gaps_ms.iter().any(|g| *g > judge.stall_ms);
        lost += usize::from(!complete);
        stalled += usize::from(complete && (slow_start || slow_gap));
        ttfc.extend(o.ttfc_ms);
        gaps.extend_from_slice(&o.gaps_ms);
    }
    json!({
        "streams": outcomes.len(),
        "lost": lost,
        "stalled": stalled,
        "errors": errors,
        "first_error": first_error,
        "ttfc_ms": spread(&mut ttfc),
        "gap_ms": spread(&mut gaps),
        "max_open": memory.open,
        "rss_before_kib": memory.before.rss_kib,
        "rss_open_kib": memory.at_peak.rss_kib,
        "pss_before_kib": memory.before.pss_kib,
        "pss_open_kib": memory.at_peak.pss_kib,
        "wall_s": wall.as_secs_f64(),
    })
}

fn spread(samples: &mut [f64]) -> serde_json::Value {
    json!({
        "p50": percentile(samples, 50.0),
        "p99": percentile(samples, 99.0),
        "max": percentile(samples, 100.0),
        "n": samples.len(),
    })
}
