//! The properties the fuzz targets check, shared with `tests/fuzz_corpus.rs`
//! (which includes `checks.rs` by path), so the corpus replays in `cargo test`.
pub mod checks;
