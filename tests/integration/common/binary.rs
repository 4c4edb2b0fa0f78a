//! The proxy binary as a child process, as a user runs it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::scratch::Scratch;

pub const BIN: &str = env!("CARGO_BIN_EXE_mcp-chat-proxy");

/// A scratch directory to run the binary in, so the repository's `.env` is
/// not read; removed when dropped.
pub fn scratch_dir() -> Scratch {
    Scratch::new()
}

/// What a child process keeps of the test's environment: enough to find
/// programs and a temp dir, none of the proxy's settings (an exported
/// `AUTH_KEYS` or `MCP_SERVERS_CONFIG` would change what a test sees).
pub const KEPT_ENV: &[&str] = &["PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "TERM"];

/// `cmd` with its environment cleared but for [`KEPT_ENV`].
pub fn hermetic(cmd: &mut Command) -> &mut Command {
    cmd.env_clear();
    for name in KEPT_ENV {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    cmd
}

/// The binary, run in `dir`, with none of the test's environment but [`KEPT_ENV`].
pub fn command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    hermetic(&mut cmd);
    cmd
}

/// A running proxy process; killed on drop.
pub struct Running {
    pub child: Child,
    pub port: u16,
    pub log: std::path::PathBuf,
    /// The scratch directory it runs in, when it owns one.
    pub dir: Option<Scratch>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `kill -9`, and wait for it to be gone.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Starts the binary in `dir` against `upstream` on a fresh loopback port and
/// waits until it listens.
pub fn start_binary_in(dir: &std::path::Path, upstream: &str, extra: &[(&str, &str)]) -> Running {
    let port = super::free_port();
    let log = dir.join(format!("stderr-{port}.log"));
    let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
    let mut cmd = command(dir);
    cmd.env("OPENAI_BASE_URL", upstream)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("CONFIG_FILE", super::repo_config())
        .env("RUST_LOG", "info");
    cmd.envs(extra.iter().copied());
    let child =
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(log_file).spawn().unwrap_or_else(|e| panic!("{e}"));
    let mut running = Running { child, port, log, dir: None };
    let deadline = Instant::now() + Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the binary did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Something else may hold the port: make sure the listener is ours.
    assert!(
        matches!(running.child.try_wait(), Ok(None)),
        "the binary exited: {}",
        std::fs::read_to_string(&running.log).unwrap_or_default()
    );
    running
}

/// Starts the binary in a scratch directory that lives as long as the process handle.
pub fn start_binary(upstream: &str, extra: &[(&str, &str)]) -> Running {
    let dir = scratch_dir();
    let mut running = start_binary_in(&dir, upstream, extra);
    running.dir = Some(dir);
    running
}

/// Waits for the process to exit, up to `within`; its exit code.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<i32> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return status.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}
