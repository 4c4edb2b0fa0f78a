//! Shared pieces of the benchmark binaries.
//!
//! # Layout
//! - `bin/fast_mock.rs`: the mock OpenAI upstream every scenario runs against.
//! - `bin/bare_pingora.rs`: the smallest pingora `ProxyHttp`, to tell pingora's cost from ours.
//! - `bin/stream_client.rs`: opens many SSE streams and times their chunks (oha cannot).
//! - `bin/memwatch.rs`: memory (RSS, PSS) of a server and its workers, once or at peak.
//! - `bin/soak.rs`: minutes of mixed traffic through the proxy, sampling what must stay flat.
//! - [`args`] — the `--flag value` parsing they share.
//! - [`sse`] — counting content events in an SSE byte stream, split anywhere.
//! - [`stats`] — percentiles.
//! - [`canned`] — the mock's response bodies.
//! - [`rss`] — resident memory of the proxy under test.
//! - [`soak`] — the soak's traffic, its samples and its verdict.

pub mod args;
pub mod canned;
pub mod rss;
pub mod soak;
pub mod sse;
pub mod stats;
