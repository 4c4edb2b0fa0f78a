//! Starting a stdio MCP server as a child process.
//!
//! The child gets a clean environment (the basics a program needs to run,
//! plus what its config gives it: never the proxy's own secrets such as
//! `OPENAI_API_KEY`), runs in a process group of its own so that stopping it
//! also stops what it started, and has its stderr drained into our log so a
//! chatty server can never block on a full pipe.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Stdio;

use process_wrap::tokio::{CommandWrap, KillOnDrop, ProcessGroup};
use rmcp::transport::TokioChildProcess;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::settings::servers::INHERITED_ENV;

/// Longest stderr line kept in the log.
const MAX_LOG_LINE: usize = 2048;

pub struct Spawned {
    pub transport: TokioChildProcess,
    /// Also the process group id.
    pub pid: Option<u32>,
}

pub fn spawn(
    server: &str,
    command: &str,
    args: &[String],
    env: &BTreeMap<String, String>,
    cwd: Option<&PathBuf>,
    parent_env: &HashMap<String, String>,
) -> std::io::Result<Spawned> {
    let mut cmd = CommandWrap::with_new(command, |c| {
        c.args(args);
        c.env_clear();
        for name in INHERITED_ENV {
            if let Some(v) = parent_env.get(*name) {
                c.env(name, v);
            }
        }
        c.envs(env);
        if let Some(dir) = cwd {
            c.current_dir(dir);
        }
    });
    cmd.wrap(ProcessGroup::leader()).wrap(KillOnDrop);
    let (transport, stderr) = TokioChildProcess::builder(cmd).stderr(Stdio::piped()).spawn()?;
    let pid = transport.id();
    if let Some(stderr) = stderr {
        let server = server.to_string();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(mut line)) = lines.next_line().await {
                if line.len() > MAX_LOG_LINE {
                    let mut end = MAX_LOG_LINE;
                    while !line.is_char_boundary(end) {
                        end -= 1;
                    }
                    line.truncate(end);
                }
                tracing::info!(target: "mcp::stderr", server = %server, "{line}");
            }
        });
    }
    Ok(Spawned { transport, pid })
}

/// Kills a whole process group (the server and anything it started).
pub fn kill_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else { return };
    if pgid <= 1 {
        return;
    }
    // SAFETY: killpg only sends a signal; the group is one we created.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}
