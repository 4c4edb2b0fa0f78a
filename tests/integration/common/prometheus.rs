//! Reading `/metrics` with the Prometheus project's own tools: `promtool
//! check metrics` (Debian's `prometheus` package) for the format, the
//! Python `prometheus_client` parser for the values, and a real
//! `prometheus` server that scrapes the proxy.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::scratch::Scratch;

/// Every sample of one scrape, as the parser read it.
pub struct Scrape {
    pub text: String,
    samples: Vec<(String, serde_json::Map<String, Value>, f64)>,
    types: serde_json::Map<String, Value>,
}

impl Scrape {
    /// The value of the sample `name` whose labels include every one of
    /// `labels`, summed over the samples that match (0 when none does).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).and_then(Value::as_str) == Some(*v)))
            .map(|(_, _, v)| v)
            .sum()
    }

    /// How many samples `name` has.
    pub fn series(&self, name: &str) -> usize {
        self.samples.iter().filter(|(n, _, _)| n == name).count()
    }

    /// The family's type (`counter`, `gauge`, `histogram`, …) as the parser read it.
    pub fn kind(&self, family: &str) -> Option<&str> {
        self.types.get(family).and_then(Value::as_str)
    }

    /// Every label value of every sample.
    pub fn label_values(&self) -> Vec<String> {
        self.samples.iter().flat_map(|(_, l, _)| l.values().filter_map(Value::as_str).map(str::to_string)).collect()
    }
}

/// Fetches `url` (a `/metrics`), checks it with `promtool check metrics`,
/// and parses it with `prometheus_client`.
pub async fn scrape(url: &str, authorization: Option<&str>) -> Scrape {
    let mut req = super::client().get(url);
    if let Some(auth) = authorization {
        req = req.header("authorization", auth);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(resp.status(), 200, "GET {url}");
    let content_type = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let text = resp.text().await.unwrap_or_default();
    promtool_check(&text);
    parse(text).await
}

/// `promtool check metrics`: the text must parse, and pass its lint
/// (counter names end in `_total`, units in base units, …).
pub fn promtool_check(text: &str) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool (apt-get install prometheus): {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(text.as_bytes()).unwrap_or_else(|e| panic!("promtool stdin: {e}"));
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("promtool: {e}"));
    assert!(
        out.status.success(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn parse(text: String) -> Scrape {
    let scratch = Scratch::new();
    let file = scratch.write("metrics.txt", &text);
    let parsed = super::run_python("parse_metrics.py", &[file.as_str()]).await;
    let samples = parsed["samples"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|s| {
            let name = s["name"].as_str().unwrap_or_default().to_string();
            let labels = s["labels"].as_object().cloned().unwrap_or_default();
            (name, labels, s["value"].as_f64().unwrap_or(f64::NAN))
        })
        .collect();
    let types = parsed["types"].as_object().cloned().unwrap_or_default();
    Scrape { text, samples, types }
}

/// A `prometheus` server on a free loopback port that scrapes `target`
/// (`host:port`, path `/metrics`) every second; killed when dropped.
pub struct Prometheus {
    child: Child,
    pub port: u16,
    _scratch: Scratch,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    pub fn start(target: &str) -> Self {
        let scratch = Scratch::new();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: proxy\n    static_configs:\n      - targets: ['{target}']\n"
        );
        let file = scratch.write("prometheus.yml", &config);
        let data = scratch.join("data");
        let port = super::free_port();
        let mut command = Command::new("prometheus");
        command
            .arg(format!("--config.file={}", file.as_str()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // A test binary killed mid-run takes its Prometheus with it.
        #[cfg(target_os = "linux")]
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("prometheus (apt-get install prometheus): {e}"));
        Self { child, port, _scratch: scratch }
    }

    /// The value of the instant query `query`, waiting until it has one
    /// that `accept` takes (Prometheus scrapes on its own schedule).
    pub async fn query_until(&self, query: &str, within: Duration, accept: impl Fn(f64) -> bool) -> f64 {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let deadline = Instant::now() + within;
        let mut last = Value::Null;
        while Instant::now() < deadline {
            if let Ok(resp) = super::client().get(&url).query(&[("query", query)]).send().await {
                last = resp.json().await.unwrap_or_default();
                let value = last["data"]["result"][0]["value"][1].as_str().and_then(|v| v.parse::<f64>().ok());
                if let Some(v) = value.filter(|v| accept(*v)) {
                    return v;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("prometheus never answered {query} as expected; last answer: {last}");
    }
}
