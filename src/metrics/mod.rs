//! The proxy's Prometheus metrics: the families every part records into,
//! and the text a scrape of `/metrics` gets.
//!
//! One [`Metrics`] per gate (tests run several gates in one process, each
//! counting its own). The hub records its tool calls into the [`ToolMetrics`]
//! it owns; the gate registers those families and the hub's server-state
//! collector beside its own, so one scrape shows everything.
//!
//! Label values come from the configuration and from fixed sets (routes,
//! surfaces, outcomes, status codes), never from what a client sent, so the
//! number of series stays bounded however the proxy is called. No label
//! carries a key, a header or a URL.
//!
//! | file | owns |
//! | --- | --- |
//! | `labels` | the label sets and their fixed values |

mod labels;

use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{prometheus_text, text as openmetrics_text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

pub use labels::{CallOutcome, Handled, RequestLabels, SessionEvent, StatusClass, Surface};

/// Seconds, from 100 µs (the proxy's own overhead) to 10 minutes (a long
/// stream, a slow tool round).
const SECONDS: [f64; 21] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

/// Rounds of one tool-loop request (the round limit defaults to 10).
const ROUNDS: [f64; 10] = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0];

/// The content type of OpenMetrics text, which prometheus-client writes but does not name.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn seconds() -> Histogram {
    Histogram::new(SECONDS)
}

fn rounds() -> Histogram {
    Histogram::new(ROUNDS)
}

/// What the hub records: its tool calls, by server, tool and outcome.
#[derive(Clone, Debug)]
pub struct ToolMetrics {
    calls: Family<labels::ToolLabels, Counter>,
    duration: Histograms<labels::ToolLabels>,
}

impl Default for ToolMetrics {
    fn default() -> Self {
        Self { calls: Family::default(), duration: Family::new_with_constructor(seconds) }
    }
}

impl ToolMetrics {
    /// One call's end: `server` and `tool` are the configured server's name
    /// and the catalog's exposed name (both from the configuration).
    pub fn record(&self, server: &str, tool: &str, outcome: CallOutcome, took: Duration) {
        let labels = labels::ToolLabels { server: server.to_string(), tool: tool.to_string(), outcome };
        self.calls.get_or_create(&labels).inc();
        self.duration.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// A call of a name no catalog has: refused, under one label for all
    /// such names (what the model made up is not the configuration's).
    pub fn unknown(&self, took: Duration) {
        self.record("(unknown)", "(unknown)", CallOutcome::Refused, took);
    }
}

/// What the upstream clients record: every attempt at the LLM, and repeats.
#[derive(Clone, Debug, Default)]
pub struct UpstreamMetrics {
    attempts: Family<labels::UpstreamLabels, Counter>,
    retries: Family<labels::PathLabel, Counter>,
}

impl UpstreamMetrics {
    /// One attempt's answer (`status` 0: no answer, the connection or the
    /// wait for the head failed).
    pub fn attempt(&self, path: Handled, status: u16) {
        self.attempts.get_or_create(&labels::UpstreamLabels { path, status }).inc();
    }

    /// A failed attempt that will be made again.
    pub fn retry(&self, path: Handled) {
        self.retries.get_or_create(&labels::PathLabel { path }).inc();
    }
}

/// Every family of one gate, and the registry a scrape encodes.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Histograms<labels::TimingLabels>,
    first_byte: Histograms<labels::TimingLabels>,
    in_flight: Gauge,
    open_streams: Gauge,
    rounds: Histograms<labels::SurfaceLabel>,
    tokens: Family<labels::TokenLabels, Counter>,
    sessions: Family<labels::SessionLabels, Counter>,
    pub upstream: UpstreamMetrics,
}

/// Keeps a gauge one higher while it lives (a request in flight, an open stream).
#[derive(Debug)]
pub struct Held(Gauge);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Metrics {
    /// The gate's families, with the hub's `tools` and the `collectors` read
    /// at each scrape (the servers' state, the reloads) registered beside them.
    pub fn new(tools: &ToolMetrics, collectors: Vec<Box<dyn Collector>>) -> Self {
        let mut registry = Registry::with_prefix("mcp_chat_proxy");
        let me = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(seconds),
            first_byte: Family::new_with_constructor(seconds),
            in_flight: Gauge::default(),
            open_streams: Gauge::default(),
            rounds: Family::new_with_constructor(rounds),
            tokens: Family::default(),
            sessions: Family::default(),
            upstream: UpstreamMetrics::default(),
            registry: Registry::default(),
        };
        let info = Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]);
        registry.register("build", "The proxy's version", info);
        let r = &mut registry;
        r.register(
            "http_requests",
            "Requests answered, by route, API surface, how it was served and status class",
            me.requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "From the request's arrival to its last byte",
            Unit::Seconds,
            me.duration.clone(),
        );
        r.register_with_unit(
            "http_time_to_first_byte",
            "From the request's arrival to the response head",
            Unit::Seconds,
            me.first_byte.clone(),
        );
        r.register("http_requests_in_flight", "Requests being served now", me.in_flight.clone());
        r.register(
            "http_open_streams",
            "Server-sent-event responses open now (tool loop and proxied)",
            me.open_streams.clone(),
        );
        r.register(
            "upstream_attempts",
            "Calls to the LLM upstream, by path (tool_loop, passthrough) and status (0: no answer)",
            me.upstream.attempts.clone(),
        );
        r.register("upstream_retries", "Failed upstream calls that were made again", me.upstream.retries.clone());
        r.register("tool_loop_rounds", "Upstream rounds one tool-loop request took", me.rounds.clone());
        r.register(
            "tokens",
            "Tokens the upstream reported on tool-loop requests, summed over rounds",
            me.tokens.clone(),
        );
        r.register(
            "sessions",
            "Session store writes: sessions created, turns stored, responses stored",
            me.sessions.clone(),
        );
        r.register("tool_calls", "MCP tool calls, by server, exposed tool name and outcome", tools.calls.clone());
        r.register_with_unit(
            "tool_call_duration",
            "An MCP tool call, from the request to its result (queueing included)",
            Unit::Seconds,
            tools.duration.clone(),
        );
        for collector in collectors {
            r.register_collector(collector);
        }
        Self { registry, ..me }
    }

    /// One finished request.
    pub fn request(&self, labels: &RequestLabels, took: Duration, first_byte: Option<Duration>) {
        self.requests.get_or_create(labels).inc();
        let timing = labels.timing();
        self.duration.get_or_create(&timing).observe(took.as_secs_f64());
        if let Some(ttfb) = first_byte {
            self.first_byte.get_or_create(&timing).observe(ttfb.as_secs_f64());
        }
    }

    /// Counts a request in flight until the returned guard drops.
    pub fn hold_request(&self) -> Held {
        self.in_flight.inc();
        Held(self.in_flight.clone())
    }

    /// Counts an open stream until the returned guard drops.
    pub fn hold_stream(&self) -> Held {
        self.open_streams.inc();
        Held(self.open_streams.clone())
    }

    /// A tool-loop request's end: its rounds and the tokens the upstream reported.
    pub fn answered(&self, surface: Surface, rounds: u32, tokens: Option<(u64, u64)>) {
        self.rounds.get_or_create(&labels::SurfaceLabel { surface }).observe(f64::from(rounds));
        if let Some((input, output)) = tokens {
            self.tokens
                .get_or_create(&labels::TokenLabels { surface, direction: labels::Direction::Input })
                .inc_by(input);
            self.tokens
                .get_or_create(&labels::TokenLabels { surface, direction: labels::Direction::Output })
                .inc_by(output);
        }
    }

    pub fn session(&self, event: SessionEvent, store: &'static str) {
        self.sessions.get_or_create(&labels::SessionLabels { event, store }).inc();
    }

    /// The text a scrape gets, and its content type: OpenMetrics when the
    /// scraper asks for it (Prometheus does), else the classic text format
    /// (what `curl` and `promtool` read).
    pub fn render(&self, accept: Option<&str>) -> (&'static str, String) {
        let mut out = String::with_capacity(16 * 1024);
        let openmetrics = accept.is_some_and(|a| a.contains("application/openmetrics-text"));
        let written = if openmetrics {
            openmetrics_text::encode(&mut out, &self.registry).map(|_| OPENMETRICS)
        } else {
            prometheus_text::encode(&mut out, &self.registry).map(|_| prometheus_text::CONTENT_TYPE)
        };
        match written {
            Ok(content_type) => (content_type, out),
            // Writing to a String fails only if a collector does.
            Err(_) => (prometheus_text::CONTENT_TYPE, String::new()),
        }
    }
}
