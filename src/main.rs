//! The command line: `serve` (default), `chat`, `tools`, `check`. Wires arguments to
//! the library; holds no logic of its own.

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use mcp_chat_proxy::chat_client::{self, ChatArgs};
use mcp_chat_proxy::mcp::Phase;
use mcp_chat_proxy::server::{self, HubRuntime};
use mcp_chat_proxy::settings::Settings;

#[derive(Parser)]
#[command(name = "mcp-chat-proxy", version, about = "OpenAI-compatible gateway that gives models MCP tools")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy (the default).
    Serve,
    /// List the tools the MCP servers expose (server, exposed name, description) and exit.
    Tools,
    /// Validate the configuration, connect to every MCP server, report, and exit
    /// non-zero if any enabled server fails.
    Check,
    /// Chat with a running proxy through its `/chat` sessions (quit, exit or Ctrl-D to leave).
    Chat(ChatArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command.unwrap_or(Command::Serve) {
        // A client machine has no proxy configuration: the chat client reads none.
        Command::Chat(args) => chat_client::run(args),
        Command::Serve => with_settings(serve),
        Command::Tools => with_settings(|s| tools(&s)),
        Command::Check => with_settings(|s| check(&s)),
    }
}

/// Loads and validates the proxy's settings (exit 2 if they are bad), then runs `command`.
fn with_settings(command: impl FnOnce(Arc<Settings>) -> std::io::Result<ExitCode>) -> ExitCode {
    let settings = match Settings::load() {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("mcp-chat-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging();
    command(settings).unwrap_or_else(|e| {
        eprintln!("mcp-chat-proxy: {e}");
        ExitCode::FAILURE
    })
}

fn serve(settings: Arc<Settings>) -> std::io::Result<ExitCode> {
    tracing::info!(
        listen = %settings.listen_addr(),
        upstream_host = %settings.upstream.host,
        upstream_key = settings.openai_api_key.is_some(),
        mcp_servers = settings.mcp_servers.len(),
        "starting mcp-chat-proxy"
    );
    server::run(settings)?;
    Ok(ExitCode::SUCCESS)
}

fn tools(settings: &Settings) -> std::io::Result<ExitCode> {
    let hub = HubRuntime::start(settings)?;
    let catalog = hub.hub.catalog();
    let mut out = std::io::stdout().lock();
    writeln!(out, "{:<20} {:<32} DESCRIPTION", "SERVER", "TOOL")?;
    for tool in catalog.tools() {
        let line = tool.description.lines().next().unwrap_or("");
        let short: String = line.chars().take(90).collect();
        writeln!(out, "{:<20} {:<32} {short}", tool.server, tool.name)?;
    }
    for s in hub.hub.status().iter().filter(|s| s.state != Phase::Connected) {
        writeln!(out, "# {} is {:?}: {}", s.name, s.state, s.error.as_deref().unwrap_or("-"))?;
    }
    hub.shutdown();
    Ok(ExitCode::SUCCESS)
}

fn check(settings: &Settings) -> std::io::Result<ExitCode> {
    // Wait for every server's first attempt, however long it takes.
    let mut patient = settings.clone();
    patient.hub.startup_wait = patient.hub.connect_timeout;
    let hub = HubRuntime::start(&patient)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "configuration ok; upstream {}", settings.upstream.host_header())?;
    let mut failed = 0;
    for s in hub.hub.status() {
        let ok = s.state == Phase::Connected;
        failed += usize::from(!ok);
        let detail = s.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default();
        let verdict = if ok { "ok" } else { "FAILED" };
        writeln!(out, "{verdict:<6} {:<20} {:<16} {} tools{detail}", s.name, s.transport, s.tools)?;
    }
    hub.shutdown();
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `RUST_LOG` sets the level, except that pingora's protocol internals stay at
/// `info`: at debug and trace they print whole request headers, keys included.
fn init_logging() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for quiet in ["pingora_core=info", "pingora_proxy=info", "pingora_pool=info"] {
        if let Ok(directive) = quiet.parse() {
            filter = filter.add_directive(directive);
        }
    }
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr).init();
}
