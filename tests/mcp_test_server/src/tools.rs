//! The tools. Each one exists to exercise one behaviour of the proxy's MCP hub: plain text,
//! numbers, slow calls, tool errors, a dying server, big payloads, the environment a server
//! is started with, process ids and grandchildren, non-text content and a changing tool list,
//! and how many calls a client runs at once (`sleep` counts itself, `most_sleeping` tells).

use std::sync::atomic::{AtomicUsize, Ordering};

use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{schemars, tool, tool_router, Peer, RoleServer};
use serde::Deserialize;

use crate::server::TestServer;

/// A 1×1 transparent PNG.
const TINY_PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";

/// `sleep` calls running in this process now, and the most seen at once since `most_sleeping`
/// last read it. Per process: one stdio server, or every session of a remote one.
static SLEEPING: AtomicUsize = AtomicUsize::new(0);
static MOST_SLEEPING: AtomicUsize = AtomicUsize::new(0);

/// Counts one running `sleep`, until it ends or its request is cancelled.
struct Sleeping;

impl Sleeping {
    fn start() -> Self {
        let now = SLEEPING.fetch_add(1, Ordering::SeqCst) + 1;
        MOST_SLEEPING.fetch_max(now, Ordering::SeqCst);
        Sleeping
    }
}

impl Drop for Sleeping {
    fn drop(&mut self) {
        SLEEPING.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EchoArgs {
    /// The text to send back.
    text: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct AddArgs {
    a: f64,
    b: f64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SleepArgs {
    /// How long to sleep, in milliseconds.
    ms: u64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct FailArgs {
    /// The error text; default "failed on purpose".
    message: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct BigArgs {
    /// The exact size of the text returned, in bytes.
    n: usize,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct EnvArgs {
    /// The environment variable to read.
    name: String,
}

#[tool_router(vis = "pub(crate)")]
impl TestServer {
    #[tool(description = "Returns `text` unchanged.")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }

    #[tool(description = "Returns the sum a + b (integers print without a decimal point).")]
    fn add(&self, Parameters(AddArgs { a, b }): Parameters<AddArgs>) -> String {
        // f64's Display already prints 5.0 as "5" and 2.5 as "2.5".
        (a + b).to_string()
    }

    #[tool(description = "Sleeps for `ms` milliseconds, then says so.")]
    async fn sleep(&self, Parameters(SleepArgs { ms }): Parameters<SleepArgs>) -> String {
        let _counted = Sleeping::start();
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        format!("slept {ms}ms")
    }

    #[tool(description = "Returns the most `sleep` calls this process ran at once since the last time \
                          it was asked (or its start), and starts counting anew from those running now.")]
    fn most_sleeping(&self) -> String {
        MOST_SLEEPING.swap(SLEEPING.load(Ordering::SeqCst), Ordering::SeqCst).to_string()
    }

    #[tool(description = "Always fails with a tool error (isError: true), not a protocol error.")]
    fn fail(&self, Parameters(FailArgs { message }): Parameters<FailArgs>) -> CallToolResult {
        let message = message.unwrap_or_else(|| "failed on purpose".to_owned());
        CallToolResult::error(vec![ContentBlock::text(message)])
    }

    #[tool(description = "Exits the whole server process (status 3) without answering.")]
    fn crash(&self) -> String {
        std::process::exit(3)
    }

    #[tool(description = "Returns a text of exactly `n` bytes (0123456789 repeated).")]
    fn big(&self, Parameters(BigArgs { n }): Parameters<BigArgs>) -> String {
        let mut text = "0123456789".repeat(n / 10 + 1);
        text.truncate(n);
        text
    }

    #[tool(description = "Returns the value of environment variable `name`, or <unset>.")]
    fn env(&self, Parameters(EnvArgs { name }): Parameters<EnvArgs>) -> String {
        match std::env::var_os(&name) {
            Some(value) => value.to_string_lossy().into_owned(),
            None => "<unset>".to_owned(),
        }
    }

    #[tool(description = "Returns this server's process id.")]
    fn pid(&self) -> String {
        std::process::id().to_string()
    }

    #[tool(description = "Starts `sleep 1000` in this server's process group and returns its pid.")]
    fn spawn_child(&self) -> Result<String, String> {
        // No stdio is inherited: on stdio transports the grandchild would otherwise hold
        // the protocol pipes open after the server dies.
        let mut child = tokio::process::Command::new("sleep")
            .arg("1000")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start `sleep 1000`: {e}"))?;
        let pid = child.id().ok_or_else(|| "`sleep 1000` exited at once".to_owned())?;
        // Reap it when it dies, so a killed grandchild does not linger as a zombie.
        tokio::spawn(async move { child.wait().await });
        Ok(pid.to_string())
    }

    #[tool(description = "Returns an image block (a 1x1 PNG) and a text block.")]
    fn image(&self) -> CallToolResult {
        CallToolResult::success(vec![ContentBlock::image(TINY_PNG_BASE64, "image/png"), ContentBlock::text("an image")])
    }

    #[tool(description = "Adds the tool `extra` if absent, removes it if present; notifies tools/list_changed.")]
    async fn toggle_extra(&self, peer: Peer<RoleServer>) -> String {
        let on = self.flip_extra();
        if let Err(e) = peer.notify_tool_list_changed().await {
            tracing::warn!("cannot send notifications/tools/list_changed: {e}");
        }
        if on { "extra on" } else { "extra off" }.to_owned()
    }

    #[tool(description = "Exists only while toggled on by toggle_extra.")]
    fn extra(&self) -> String {
        "extra!".to_owned()
    }
}
