//! Scenario 6: the cost of an MCP tool call through the proxy's hub
//! (`mcp_chat_proxy::mcp::Hub`) against the same call made with rmcp
//! directly, on the same test server (`mcp-test-server`, the root crate's
//! binary), over stdio and over streamable HTTP.
//!
//! For each transport and path it measures the latency of `--calls`
//! sequential `echo` calls (after `--warmup` untimed ones), then how many
//! calls `--concurrency` callers complete in `--secs` seconds. The hub and
//! rmcp are both connected before anything is timed and take turns, in ten
//! blocks of calls and two phases of the timed run each. It prints one
//! JSON line per (transport, path) on stdout, in the order
//! stdio/hub, stdio/direct, http/hub, http/direct:
//!
//! ```json
//! {"transport":"stdio","path":"hub","calls":2000,"p50_ms":0.08,"p99_ms":0.2,"calls_per_s":9000.0,"errors":0}
//! ```
//!
//! Usage: `mcp_calls --server target/release/mcp-test-server [--calls 2000]
//! [--warmup 100] [--concurrency 16] [--secs 3] [--threads 2]`

use std::collections::HashMap;
use std::future::Future;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_chat_proxy::mcp::{Hub, HubSettings};
use mcp_chat_proxy::settings::servers as config;
use mcp_chat_proxy_bench::args::Args;
use mcp_chat_proxy_bench::stats::percentile;
use rmcp::model::CallToolRequestParams;
use rmcp::service::RunningService;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{json, Map, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// How long any one call may take before the run is deemed broken.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

struct Plan {
    server: String,
    calls: usize,
    warmup: usize,
    concurrency: usize,
    secs: f64,
}

/// One way of making the call, cheap to clone into every caller task.
#[derive(Clone)]
enum Caller {
    Hub { hub: Arc<Hub>, tool: String },
    Direct(rmcp::Peer<RoleClient>),
}

impl Caller {
    /// One `echo` call; Ok when the tool answered without error.
    async fn call(&self) -> Result<(), String> {
        match self {
            Caller::Hub { hub, tool } => {
                let out = hub.call(tool, json!({"text": "x"})).await;
                if out.is_error {
                    Err(out.text)
                } else {
                    Ok(())
                }
            }
            Caller::Direct(peer) => {
                let params = CallToolRequestParams::new("echo").with_arguments(echo_args());
                match peer.call_tool(params).await {
                    Ok(r) if r.is_error != Some(true) => Ok(()),
                    Ok(r) => Err(format!("tool error: {:?}", r.content)),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }
}

fn echo_args() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("text".into(), Value::String("x".into()));
    m
}

async fn timed<F: Future<Output = Result<(), String>>>(f: F) -> Result<(), String> {
    tokio::time::timeout(CALL_TIMEOUT, f).await.unwrap_or_else(|_| Err("call timed out".into()))
}

/// What one caller measured.
#[derive(Default)]
struct Tally {
    samples: Vec<f64>,
    done: u64,
    busy_secs: f64,
    errors: u64,
}

/// Latency blocks and throughput phases per comparison: the hub and rmcp
/// take turns (ABBA…), so drift on this shared machine and whatever the
/// first or second session on a server pays fall on both alike.
const BLOCKS: usize = 10;

/// `count` sequential calls, each timed.
async fn sequential(caller: &Caller, count: usize, tally: &mut Tally) {
    for _ in 0..count {
        let t = Instant::now();
        match timed(caller.call()).await {
            Ok(()) => tally.samples.push(t.elapsed().as_secs_f64() * 1000.0),
            Err(_) => tally.errors += 1,
        }
    }
}

/// `concurrency` callers calling as fast as answers come, for `secs`.
async fn saturate(caller: &Caller, concurrency: usize, secs: f64, tally: &mut Tally) -> Result<(), Error> {
    let done = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (caller, done, failed) = (caller.clone(), done.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < until {
                match timed(caller.call()).await {
                    Ok(()) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    tally.busy_secs += start.elapsed().as_secs_f64();
    tally.done += done.load(Ordering::Relaxed);
    tally.errors += failed.load(Ordering::Relaxed);
    Ok(())
}

/// The hub and rmcp on one transport: warm-up, sequential latency in
/// alternating blocks, then calls per second in alternating phases.
async fn compare(transport: &str, callers: [Caller; 2], plan: &Plan) -> Result<[Value; 2], Error> {
    for (caller, path) in callers.iter().zip(PATHS) {
        for _ in 0..plan.warmup {
            timed(caller.call()).await.map_err(|e| format!("{transport}/{path}: warm-up call failed: {e}"))?;
        }
    }
    let mut tallies = [Tally::default(), Tally::default()];
    for block in 0..BLOCKS {
        let count = plan.calls / BLOCKS + usize::from(block < plan.calls % BLOCKS);
        for i in turn(block) {
            sequential(&callers[i], count, &mut tallies[i]).await;
        }
    }
    for phase in 0..2 {
        for i in turn(phase) {
            saturate(&callers[i], plan.concurrency, plan.secs / 2.0, &mut tallies[i]).await?;
        }
    }
    let line = |path: &str, t: &mut Tally| {
        json!({
            "transport": transport, "path": path, "calls": t.samples.len(),
            "p50_ms": percentile(&mut t.samples, 50.0), "p99_ms": percentile(&mut t.samples, 99.0),
            "calls_per_s": if t.busy_secs > 0.0 { t.done as f64 / t.busy_secs } else { 0.0 },
            "concurrency": plan.concurrency, "errors": t.errors,
        })
    };
    let [hub, direct] = &mut tallies;
    Ok([line(PATHS[0], hub), line(PATHS[1], direct)])
}

const PATHS: [&str; 2] = ["hub", "direct"];

/// Who goes first in a block or phase: the hub in even ones, rmcp in odd ones.
fn turn(n: usize) -> [usize; 2] {
    if n % 2 == 0 {
        [0, 1]
    } else {
        [1, 0]
    }
}

/// A hub with the one server `t`, and the exposed name of its `echo` tool.
/// The hub lets `concurrency` calls run at once, as rmcp directly does, so
/// the two are compared like for like (the default bound is 4 per server).
async fn hub_with(server_json: Value, concurrency: usize) -> Result<(Arc<Hub>, String), Error> {
    let text = json!({"mcpServers": {"t": server_json}}).to_string();
    let env: HashMap<String, String> = std::env::vars().collect();
    let configs = config::parse(&text, &env)?;
    let settings = HubSettings { max_concurrent_calls: concurrency.max(1), ..HubSettings::default() };
    let hub = Hub::start(configs, settings, env).await;
    let tool = hub.catalog().tools().iter().find(|t| t.original == "echo").map(|t| t.name.clone());
    match tool {
        Some(tool) => Ok((hub, tool)),
        None => {
            let status = serde_json::to_string(&hub.status())?;
            hub.shutdown().await;
            Err(format!("the hub lists no echo tool; status: {status}").into())
        }
    }
}

fn server_command(plan: &Plan, args: &[&str]) -> Command {
    let mut command = Command::new(&plan.server);
    command.args(args).args(["--tools", "echo"]).env("RUST_LOG", "error");
    command
}

/// `mcp-test-server http --port 0`, killed when dropped, and its port.
async fn start_http(plan: &Plan) -> Result<(Child, u16), Error> {
    let mut command = server_command(plan, &["http", "--port", "0"]);
    command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = command.spawn()?;
    let mut lines = BufReader::new(child.stderr.take().ok_or("no stderr")?).lines();
    let port = tokio::time::timeout(CALL_TIMEOUT, async {
        while let Some(line) = lines.next_line().await? {
            if let Some(port) = line.strip_prefix("LISTENING ") {
                return Ok::<u16, Error>(port.trim().parse()?);
            }
            eprintln!("[mcp-test-server] {line}");
        }
        Err("mcp-test-server exited before LISTENING".into())
    })
    .await
    .map_err(|_| "mcp-test-server did not listen in time")??;
    // Keep draining stderr so the server never blocks on a full pipe.
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("[mcp-test-server] {line}");
        }
    });
    Ok((child, port))
}

async fn close(client: RunningService<RoleClient, ()>) {
    let _ = tokio::time::timeout(Duration::from_secs(3), client.cancel()).await;
}

fn emit(line: &Value) {
    println!("{line}");
}

async fn run(plan: Plan) -> Result<(), Error> {
    // stdio: the hub spawns and supervises its own server process; rmcp
    // directly gets another.
    let stdio = json!({"command": plan.server, "args": ["stdio", "--tools", "echo"], "env": {"RUST_LOG": "error"}});
    let (hub, tool) = hub_with(stdio, plan.concurrency).await?;
    let client = ().serve(TokioChildProcess::new(server_command(&plan, &["stdio"]))?).await?;
    let callers = [Caller::Hub { hub: hub.clone(), tool }, Caller::Direct(client.peer().clone())];
    let r = compare("stdio", callers, &plan).await;
    hub.shutdown().await;
    close(client).await;
    r?.iter().for_each(emit);

    // Streamable HTTP: one server process, a session for the hub and one for rmcp.
    let (_server, port) = start_http(&plan).await?;
    let url = format!("http://127.0.0.1:{port}/mcp");
    let (hub, tool) = hub_with(json!({"type": "streamable-http", "url": url}), plan.concurrency).await?;
    let transport = StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(url));
    let client = ().serve(transport).await?;
    let callers = [Caller::Hub { hub: hub.clone(), tool }, Caller::Direct(client.peer().clone())];
    let r = compare("http", callers, &plan).await;
    hub.shutdown().await;
    close(client).await;
    r?.iter().for_each(emit);
    Ok(())
}

fn main() {
    let parsed = Args::from_env().and_then(|a| {
        let plan = Plan {
            server: a.required("server")?,
            calls: a.get("calls", 2000)?,
            warmup: a.get("warmup", 100)?,
            concurrency: a.get("concurrency", 16)?,
            secs: a.get("secs", 3.0)?,
        };
        Ok((plan, a.get("threads", 2usize)?))
    });
    let (plan, threads) = match parsed {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mcp_calls: {e}");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build();
    let outcome = match runtime {
        Ok(rt) => rt.block_on(run(plan)),
        Err(e) => Err(e.into()),
    };
    if let Err(e) = outcome {
        eprintln!("mcp_calls: {e}");
        std::process::exit(1);
    }
}
