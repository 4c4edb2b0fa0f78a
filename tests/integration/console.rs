//! The web console (`/ui`) in a real headless Chromium (tests/node/console.mjs
//! drives it over the DevTools protocol): the status view lists the servers
//! of the config and their tools, a server killed during the test shows as
//! down and then back, the playground shows a tool round as it happens and
//! then the answer, and the browser logs no error. With client keys the page
//! asks for one and never holds the upstream key. Over plain HTTP: the
//! files' headers, the redirect of a browser at `/`, and `/ui/status`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::mcp::test_server;
use crate::common::mock_upstream::{MockUpstream, Reply};
use crate::common::scratch::Scratch;
use crate::common::{client, start_proxy, start_proxy_in, Proxy};

/// Where the screenshots go: `$CARGO_TARGET_DIR/console` (else `target/console`).
fn shots_dir() -> PathBuf {
    let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| format!("{}/target", env!("CARGO_MANIFEST_DIR")));
    PathBuf::from(target).join("console")
}

fn chromium() -> String {
    let path = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(std::path::Path::new(&path).exists(), "{path} is missing: run tests/run (it installs chromium)");
    path
}

/// Runs the browser script in `mode` and returns what it printed.
async fn drive(proxy: &Proxy, mode: &str, extra: &[(&str, &str)]) -> Value {
    let script = format!("{}/tests/node/console.mjs", env!("CARGO_MANIFEST_DIR"));
    let playwright = format!("{}/tests/node/node_modules/playwright-core", env!("CARGO_MANIFEST_DIR"));
    assert!(std::path::Path::new(&playwright).exists(), "{playwright} is missing: run tests/run (npm ci)");
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&script)
        .env("CONSOLE_URL", &proxy.url)
        .env("CONSOLE_SHOTS", shots_dir())
        .env("CONSOLE_MODE", mode)
        .env("CHROMIUM", chromium())
        .kill_on_drop(true);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("the browser script took over 2 minutes"))
        .unwrap_or_else(|e| panic!("node: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "console.mjs {mode} failed:\n{}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_the_servers_a_server_down_and_back_and_a_tool_round() {
    let mock = MockUpstream::start().await;
    mock.always("/v1/models", json!({"object": "list", "data": [{"id": "mock-model", "object": "model"}]}));
    mock.push(Reply::tool_calls_stream(&[("c1", "add", json!({"a": 2, "b": 3}))]));
    mock.push(Reply::chat_stream(&["2 + 3 ", "is 5."], Duration::from_millis(20)));

    let scratch = Scratch::new();
    let (flag, pidfile) = (scratch.join("flaky.down"), scratch.join("flaky.pid"));
    // The flaky server writes its pid and will not start while the flag exists.
    let flaky = format!(
        "[ -e '{}' ] && exit 1; echo $$ > '{}'; exec '{}' stdio --tools echo",
        flag.display(),
        pidfile.display(),
        test_server()
    );
    let servers = json!({"mcpServers": {
        "flaky": {"command": "/bin/sh", "args": ["-c", flaky]},
        "steady": {"command": test_server(), "args": ["stdio", "--tools", "add,big"]},
    }});
    let file = scratch.write("servers.json", &servers.to_string());
    let env = [("MCP_SERVERS_CONFIG", file.as_str()), ("MCP_RESTART_BACKOFF_MAX_SECONDS", "1")];
    let proxy = start_proxy_in(scratch, &mock.base_url(), &env);

    let flag_s = flag.display().to_string();
    let pid_s = pidfile.display().to_string();
    let seen = drive(&proxy, "full", &[("CONSOLE_FLAG", &flag_s), ("CONSOLE_PIDFILE", &pid_s)]).await;

    assert_eq!(seen["consoleErrors"], json!([]), "the browser logged errors: {seen}");
    assert_eq!(seen["landedOn"], "/ui");
    let servers = seen["servers"].as_array().cloned().unwrap_or_default();
    let by_name = |n: &str| servers.iter().find(|s| s["name"] == n).cloned().unwrap_or_else(|| panic!("{n}: {seen}"));
    assert_eq!(by_name("flaky")["tools"], json!(["echo"]), "{seen}");
    assert_eq!(by_name("steady")["tools"], json!(["add", "big"]), "{seen}");
    assert!(by_name("flaky")["text"].as_str().is_some_and(|t| t.contains("stdio")), "the transport: {seen}");
    assert!(seen["schemaShown"].as_str().is_some_and(|s| s.contains("\"a\"") && s.contains("\"b\"")), "{seen}");
    assert_eq!(seen["upstream"], "up");
    assert_eq!(seen["unlabelled"], json!([]), "every input has a label");

    assert!(seen["downAfterMs"].as_u64().is_some_and(|ms| ms < 5000), "down shown within seconds: {seen}");
    assert!(seen["downText"].as_str().is_some_and(|t| t.contains("reconnecting")), "{seen}");
    assert_eq!(seen["restarts"], "1", "{seen}");
    assert_eq!(seen["focusedAfter"], "tool-summary-steady/add", "the focus survives a refresh");

    assert_eq!(seen["models"], json!(["mock-model"]));
    let call = seen["callText"].as_str().unwrap_or_default();
    assert!(call.contains("add") && call.contains("steady") && call.contains('5'), "name, server, result: {call}");
    assert_eq!(seen["callOpen"], false, "a round is collapsed until opened");
    assert_eq!(seen["roundBeforeAnswer"], true);
    assert_eq!(seen["answer"], "2 + 3 is 5.");
    assert!(seen["phoneOverflow"].as_i64().is_some_and(|o| o <= 0), "no sideways scrolling at 390 px: {seen}");

    // What the playground sent: progress on, and only the tools left on.
    let chats: Vec<Value> =
        mock.requests().iter().filter(|r| r.path == "/v1/chat/completions").map(|r| r.json()).collect();
    let offered: Vec<&str> =
        chats[0]["tools"].as_array().into_iter().flatten().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert!(offered.contains(&"add") && !offered.contains(&"big"), "big was turned off: {offered:?}");
    assert!(chats[1].to_string().contains('5'), "the tool result went back to the model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_client_keys_the_console_asks_for_one_and_never_holds_the_upstream_key() {
    let mock = MockUpstream::start().await;
    mock.always("/v1/models", json!({"object": "list", "data": []}));
    let scratch = Scratch::new();
    let servers = json!({"mcpServers": {"steady": {"command": test_server(), "args": ["stdio", "--tools", "echo"]}}});
    let file = scratch.write("servers.json", &servers.to_string());
    let (key, secret) = ("console-client-key-1", "sk-upstream-never-shown");
    let env = [("MCP_SERVERS_CONFIG", file.as_str()), ("AUTH_KEYS", key), ("OPENAI_API_KEY", secret)];
    let proxy = start_proxy_in(scratch, &mock.base_url(), &env);

    let seen = drive(&proxy, "key", &[("CONSOLE_KEY", key), ("CONSOLE_SECRET", secret)]).await;
    assert_eq!(seen["keyAsked"], true);
    assert_eq!(seen["servers"], json!(["steady"]));
    assert_eq!((seen["secretShown"].as_bool(), seen["keyStored"].as_bool()), (Some(false), Some(false)), "{seen}");
    // The only errors: the browser's own lines for the refused (401) status polls.
    let errors = seen["consoleErrors"].as_array().cloned().unwrap_or_default();
    assert!(errors.iter().all(|e| e.as_str().is_some_and(|e| e.contains("401"))), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_files_are_served_with_strict_headers_and_revalidated() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[("AUTH_KEYS", "console-client-key-2")]);
    for (path, kind) in
        [("/ui", "text/html"), ("/ui/", "text/html"), ("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css")]
    {
        let r = client().get(format!("{}{path}", proxy.url)).send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 200, "{path}: the files need no key");
        let h = r.headers().clone();
        assert!(h["content-type"].to_str().is_ok_and(|t| t.starts_with(kind)), "{path}");
        assert!(h["content-security-policy"].to_str().is_ok_and(|c| c.starts_with("default-src 'self'")), "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff");
        let etag = h["etag"].clone();
        let again = client()
            .get(format!("{}{path}", proxy.url))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(again.status(), 304, "{path}");
    }
    let r = client().get(format!("{}/ui/status", proxy.url)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 401, "the status is under the key check");
    let r = client()
        .get(format!("{}/ui/nothing", proxy.url))
        .bearer_auth("console-client-key-2")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 404, "only the console's own files are served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_at_the_root_goes_to_the_console_and_api_clients_get_json() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let browser_accept = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
    let r =
        no_redirects.get(&proxy.url).header("accept", browser_accept).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 302);
    assert_eq!(r.headers()["location"], "/ui");
    assert_eq!(r.headers()["vary"], "accept");
    for accept in [None, Some("application/json"), Some("*/*")] {
        let mut req = no_redirects.get(&proxy.url);
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.status(), 200, "{accept:?}");
        let body: Value = r.json().await.unwrap_or_default();
        assert_eq!(body["message"], "mcp-chat-proxy is running", "{accept:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_shows_the_upstream_by_address_only_and_the_tools_a_key_may_see() {
    let mock = MockUpstream::start().await;
    let scratch = Scratch::new();
    let keys = "[[key]]\nname = \"narrow\"\nkey = \"narrow-key-0001\"\ntools = [\"steady__add\"]\n";
    let keys_file = scratch.write("keys.toml", keys);
    let servers =
        json!({"mcpServers": {"steady": {"command": test_server(), "args": ["stdio", "--tools", "add,echo"]}}});
    let file = scratch.write("servers.json", &servers.to_string());
    let env = [
        ("MCP_SERVERS_CONFIG", file.as_str()),
        ("AUTH_KEYS_FILE", keys_file.as_str()),
        ("OPENAI_API_KEY", "sk-upstream-never-shown"),
    ];
    let proxy = start_proxy_in(scratch, &mock.base_url(), &env);
    let r = client()
        .get(format!("{}/ui/status", proxy.url))
        .bearer_auth("narrow-key-0001")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap_or_default();
    assert!(!text.contains("sk-upstream-never-shown") && !text.contains("narrow-key-0001"), "{text}");
    let status: Value = serde_json::from_str(&text).unwrap_or_default();
    let upstream_addr = mock.base_url().trim_start_matches("http://").trim_end_matches("/v1").to_string();
    assert_eq!(status["upstream"]["address"], upstream_addr.as_str());
    assert_eq!(status["upstream"]["reachable"], true);
    let server = &status["servers"][0];
    assert_eq!((server["name"].as_str(), server["state"].as_str()), (Some("steady"), Some("connected")));
    assert_eq!((server["transport"].as_str(), server["restarts"].as_u64()), (Some("stdio"), Some(0)));
    assert_eq!((server["running"].as_u64(), server["queued"].as_u64()), (Some(0), Some(0)));
    let tools: Vec<&str> =
        server["tools"].as_array().into_iter().flatten().filter_map(|t| t["name"].as_str()).collect();
    assert_eq!(tools, ["add"], "only the key's tools: {status}");
    assert!(server["tools"][0]["input_schema"]["properties"]["a"].is_object(), "{status}");
    assert!(server["tools"][0]["description"].as_str().is_some_and(|d| !d.is_empty()));
}
