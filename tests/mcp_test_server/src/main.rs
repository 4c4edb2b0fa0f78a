//! `mcp-test-server`: a real MCP server for the proxy's tests, built on rmcp.
//!
//! # Layout
//! - `main.rs`   command line; picks a transport; no logic
//! - `server.rs` the `ServerHandler`: server info, which tools are visible, dispatch
//! - `tools.rs`  the tools themselves (`echo`, `add`, `crash`, `toggle_extra`, …)
//! - `http.rs`   binding a loopback port, the hyper accept loop, streamable HTTP at `/mcp`
//! - `sse.rs`    the legacy HTTP+SSE protocol (2024-11-05), which rmcp no longer ships
//!
//! For a stdio server stdout is the protocol channel, so everything else (logs, the
//! `LISTENING <port>` line of the HTTP modes) goes to stderr.

mod http;
mod server;
mod sse;
mod tools;

use clap::{Parser, Subcommand};

use crate::server::ServerSpec;

#[derive(Parser, Debug)]
#[command(name = "mcp-test-server", about = "An MCP server for tests: stdio, streamable HTTP or legacy SSE")]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
    /// Expose only these tools (comma-separated); default: all of them.
    #[arg(long, global = true, value_delimiter = ',')]
    tools: Vec<String>,
    /// The implementation name the server reports in `initialize`.
    #[arg(long, global = true, default_value = "mcp-test-server")]
    name: String,
    /// HTTP modes: accept only requests whose `Authorization: Bearer …` is a line of this file,
    /// read on every request, so a test can issue, expire and revoke tokens by rewriting it.
    #[arg(long, global = true)]
    bearer_file: Option<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Mode {
    /// Serve over stdin/stdout.
    Stdio,
    /// Streamable HTTP at http://127.0.0.1:PORT/mcp, with stateful sessions.
    Http {
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Legacy HTTP+SSE: GET /sse, then POST /messages?sessionId=….
    Sse {
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_logging();
    let spec = match ServerSpec::new(cli.name, cli.tools) {
        Ok(spec) => spec,
        Err(message) => {
            eprintln!("mcp-test-server: {message}");
            std::process::exit(2);
        }
    };
    let outcome = match cli.mode {
        Mode::Stdio => server::serve_stdio(spec).await,
        Mode::Http { port } => http::serve_streamable_http(spec, port, cli.bearer_file).await,
        Mode::Sse { port } => sse::serve_legacy_sse(spec, port, cli.bearer_file).await,
    };
    if let Err(e) = outcome {
        eprintln!("mcp-test-server: {e}");
        std::process::exit(1);
    }
}

/// Logs go to stderr without colours (tests and the proxy capture it); `RUST_LOG` overrides the level.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
}
