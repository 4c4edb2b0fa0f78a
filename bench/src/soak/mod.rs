//! The soak (`bin/soak.rs`, driven by `bench/soak`): minutes of mixed
//! traffic through the proxy, sampled once a minute with the traffic paused,
//! so what is left alive is what would leak.
//!
//! - [`traffic`]: the kinds of request in the mix and what counts as behaving.
//! - [`client`]: one exchange of each kind.
//! - [`probe`]: a process's memory, descriptors and threads from `/proc`.
//! - [`verdict`]: whether the series ended flat.

pub mod client;
pub mod probe;
pub mod traffic;
pub mod verdict;
