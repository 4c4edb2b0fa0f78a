//! A bare TCP client for the requests a real HTTP client refuses to send
//! (ambiguous framing, huge or endless heads) and for watching when the
//! proxy closes a connection.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Lower-cased `name: value` lines.
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<String> {
        let prefix = format!("{}:", name.to_ascii_lowercase());
        self.head.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.trim().to_string())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

pub async fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).await.unwrap_or_else(|e| panic!("connect to proxy: {e}"));
    let _ = s.set_nodelay(true);
    s
}

pub async fn send(s: &mut TcpStream, bytes: &[u8]) {
    s.write_all(bytes).await.unwrap_or_else(|e| panic!("write to proxy: {e}"));
}

/// Reads one response with a Content-Length body (panics after 10 s).
pub async fn read_response(s: &mut (impl AsyncRead + Unpin)) -> RawResponse {
    tokio::time::timeout(Duration::from_secs(10), read_response_inner(s))
        .await
        .unwrap_or_else(|_| panic!("no complete response within 10 s"))
}

async fn read_response_inner(s: &mut (impl AsyncRead + Unpin)) -> RawResponse {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut chunk).await.unwrap_or_else(|e| panic!("reading a response head: {e}"));
        assert!(n > 0, "connection closed before a response head; got {:?}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut response = RawResponse { status, head, body: buf[head_end..].to_vec() };
    let len: usize = response.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while response.body.len() < len {
        let n = s.read(&mut chunk).await.unwrap_or_else(|e| panic!("reading a response body: {e}"));
        assert!(n > 0, "connection closed mid-body");
        response.body.extend_from_slice(&chunk[..n]);
    }
    response
}

/// Whether the peer closes the connection (end of stream or reset) within
/// `within`; whatever it sends meanwhile is read and dropped.
pub async fn closed_within(s: &mut (impl AsyncRead + Unpin), within: Duration) -> bool {
    let mut sink = vec![0u8; 64 * 1024];
    let drain = async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(within, drain).await.is_ok()
}
