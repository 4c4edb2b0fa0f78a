//! The command line: `serve` (default). Builds the server; holds no logic.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use mcp_chat_proxy::{server, settings::Settings};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => Arc::new(s),
        Err(e) => {
            eprintln!("mcp-chat-proxy: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            tracing::info!(
                listen = %settings.listen_addr(),
                upstream_host = %settings.upstream.host,
                upstream_key = settings.openai_api_key.is_some(),
                "starting mcp-chat-proxy"
            );
            server::run(settings);
            ExitCode::SUCCESS
        }
    }
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
