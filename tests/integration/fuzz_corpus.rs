//! The fuzz corpus replayed without a fuzzer: every file under
//! `fuzz/corpus/<target>/` goes through the same checks the fuzz target runs
//! (`fuzz/src/checks.rs`), so an input that once crashed, or once reached new
//! code, keeps being tested by `cargo test`.

#[path = "../../fuzz/src/checks.rs"]
mod checks;

use std::path::Path;

fn replay(target: &str, check: fn(&[u8]) -> Result<(), String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus").join(target);
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut replayed = 0;
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(e) = check(&data) {
            panic!("{}: {e}", path.display());
        }
        replayed += 1;
    }
    // An empty or missing corpus would make this test pass without testing anything.
    assert!(replayed >= 5, "only {replayed} inputs in {}", dir.display());
}

#[test]
fn sse_decoder_corpus() {
    replay("sse_decoder", checks::sse_decoder);
}

#[test]
fn prompt_detector_corpus() {
    replay("prompt_detector", checks::prompt_detector);
}

#[test]
fn tool_call_stream_corpus() {
    replay("tool_call_stream", checks::tool_call_stream);
}

#[test]
fn chat_request_corpus() {
    replay("chat_request", checks::chat_request);
}

#[test]
fn servers_config_corpus() {
    replay("servers_config", checks::servers_config);
}
