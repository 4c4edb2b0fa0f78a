//! The proxy binary as a child process, as a user runs it.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_mcp-chat-proxy");

/// A scratch directory to run the binary in, so the repository's `.env` is not read.
pub fn scratch_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mcp-proxy-bin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    dir
}

/// The binary, run in `dir`, with none of the proxy's variables inherited.
pub fn command(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for name in ["OPENAI_API_KEY", "OPENAI_BASE_URL", "DEFAULT_MODEL", "PORT", "HOST", "CONFIG_FILE", "RUST_LOG"] {
        cmd.env_remove(name);
    }
    cmd
}

/// A running proxy process; killed on drop.
pub struct Running {
    pub child: Child,
    pub port: u16,
    pub log: std::path::PathBuf,
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
    let mut running = Running { child, port, log };
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

pub fn start_binary(upstream: &str, extra: &[(&str, &str)]) -> Running {
    start_binary_in(&scratch_dir(), upstream, extra)
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
