//! A real `redis-server` for tests, on a free loopback port.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_chat_proxy::sessions::redis::RedisStore;
use mcp_chat_proxy::sessions::{open, SessionStore};

/// A `redis-server` child on a free port, killed when dropped.
pub struct RedisServer {
    pub child: Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> Self {
        // Another process may take the port first; then our server exits and we try another.
        for _ in 0..5 {
            let mut server = Self::spawn(super::free_port());
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(server.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                if server.answers() {
                    return server;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("redis-server did not start");
    }

    pub fn spawn(port: u16) -> Self {
        let mut command = Command::new("redis-server");
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // A test binary killed mid-run never drops its servers; the kernel
        // then kills them with it instead of leaving them behind.
        #[cfg(target_os = "linux")]
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().unwrap_or_else(|e| panic!("redis-server (apt-get install redis-server): {e}"));
        Self { child, port }
    }

    /// Whether the server on our port is our child (not another process's that won the port).
    pub fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let needle = format!("process_id:{}\r\n", self.child.id());
        let (mut seen, mut buf) = (String::new(), [0u8; 4096]);
        if s.write_all(b"INFO server\r\n").is_err() {
            return false;
        }
        while let Ok(n @ 1..) = s.read(&mut buf) {
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
            if seen.contains(&needle) {
                return true;
            }
        }
        false
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub async fn store(&self, ttl: Duration) -> Arc<dyn SessionStore> {
        open(&self.url(), ttl).await.unwrap_or_else(|e| panic!("open: {e}"))
    }

    pub async fn store_with_lease(&self, lease: Duration) -> RedisStore {
        RedisStore::connect_with_lease(&self.url(), Duration::from_secs(60), lease)
            .await
            .unwrap_or_else(|e| panic!("connect: {e}"))
    }

    /// The keys Redis holds whose names contain `part`.
    pub fn keys_with(&self, part: &str) -> Vec<String> {
        let client = redis::Client::open(self.url()).unwrap_or_else(|e| panic!("{e}"));
        let mut conn = client.get_connection().unwrap_or_else(|e| panic!("{e}"));
        redis::cmd("KEYS").arg(format!("*{part}*")).query(&mut conn).unwrap_or_else(|e| panic!("{e}"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
