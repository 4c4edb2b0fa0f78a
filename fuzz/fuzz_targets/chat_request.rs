#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = mcp_chat_proxy_fuzz::checks::chat_request(data) {
        panic!("{e}");
    }
});
