//! The hub's servers as `/metrics` shows them, read at each scrape: state,
//! restarts, tools listed, calls running and waiting. Read, not counted, so a
//! scrape always agrees with `/healthz`.

use std::sync::Weak;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use super::hub::{Hub, Phase, ServerStatus};

/// Every phase, so each server has one series per phase (1 for the current
/// one, 0 for the rest) and an alert can match `state="failed"`.
const PHASES: [(Phase, &str); 4] = [
    (Phase::Starting, "starting"),
    (Phase::Connected, "connected"),
    (Phase::Reconnecting, "reconnecting"),
    (Phase::Failed, "failed"),
];

#[derive(Debug)]
pub(crate) struct ServerCollector(pub(crate) Weak<Hub>);

/// One number read off a server's status.
type Reading = fn(&ServerStatus) -> i64;

fn server_labels(s: &ServerStatus) -> [(&'static str, &str); 2] {
    [("server", s.name.as_str()), ("transport", s.transport)]
}

impl Collector for ServerCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(hub) = self.0.upgrade() else { return Ok(()) };
        let servers = hub.status();
        let mut e = encoder.encode_descriptor(
            "mcp_server_state",
            "1 for each MCP server's current state (starting, connected, reconnecting, failed)",
            None,
            MetricType::Gauge,
        )?;
        for s in &servers {
            for (phase, state) in PHASES {
                let labels = [("server", s.name.as_str()), ("state", state)];
                ConstGauge::new(i64::from(s.state == phase)).encode(e.encode_family(&labels)?)?;
            }
        }
        let gauges: [(&str, &str, Reading); 3] = [
            ("mcp_server_tools", "Tools an MCP server lists", |s| s.tools as i64),
            ("mcp_server_calls_running", "Calls an MCP server is running now", |s| s.running as i64),
            ("mcp_server_calls_queued", "Calls waiting for one of an MCP server's slots", |s| s.queued as i64),
        ];
        for (name, help, value) in gauges {
            let mut e = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for s in &servers {
                let labels = server_labels(s);
                ConstGauge::new(value(s)).encode(e.encode_family(&labels)?)?;
            }
        }
        let mut e = encoder.encode_descriptor(
            "mcp_server_restarts",
            "Times an MCP server was connected again after it had been up",
            None,
            MetricType::Counter,
        )?;
        for s in &servers {
            let labels = server_labels(s);
            ConstCounter::new(u64::from(s.restarts)).encode(e.encode_family(&labels)?)?;
        }
        Ok(())
    }
}
