//! `mcp-chat-proxy chat` as a user runs it: the real binary, its stdin a pipe
//! or a real terminal (tmux), talking to a real proxy in front of the mock
//! upstream. Two turns keep one session, end of input and `quit` leave
//! cleanly, and an unknown session, a dead proxy and a broken stream are
//! each reported in one clear line.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::binary::hermetic;
use crate::common::mock_upstream::{chunk, MockUpstream, Reply};
use crate::common::scratch::Scratch;
use crate::common::{client, free_port, start_proxy};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, ChildStdout};

const BIN: &str = env!("CARGO_BIN_EXE_mcp-chat-proxy");
const GAP: Duration = Duration::from_millis(5);
const PATIENCE: Duration = Duration::from_secs(30);

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The client running with piped stdin and stdout, read as it writes.
struct Live {
    /// Its working directory, so no `.env` of the repository is read.
    _dir: Scratch,
    child: tokio::process::Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    /// Everything read from stdout so far.
    seen: String,
}

impl Live {
    fn spawn(url: &str, extra: &[&str]) -> Self {
        let dir = Scratch::new();
        let mut command = std::process::Command::new(BIN);
        hermetic(&mut command);
        let mut child = tokio::process::Command::from(command)
            .args(["chat", "--url", url])
            .args(extra)
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        Self { _dir: dir, child, stdin, stdout, seen: String::new() }
    }

    /// Writes to stdin; a client that has already left (a broken pipe) is
    /// not an error here: [`Live::finish`] reports how it ended.
    async fn type_in(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().unwrap_or_else(|| panic!("stdin already closed"));
        match stdin.write_all(text.as_bytes()).await {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => panic!("writing to the client: {e}"),
            _ => {}
        }
    }

    /// Reads stdout until it contains `needle`; returns everything read so far.
    async fn wait_for(&mut self, needle: &str) -> String {
        let mut buf = [0u8; 4096];
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !self.seen.contains(needle) {
            let read = tokio::time::timeout_at(deadline, self.stdout.read(&mut buf)).await;
            match read {
                Ok(Ok(n)) if n > 0 => self.seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                _ => panic!("{needle:?} not printed within {PATIENCE:?}; stdout:\n{}", self.seen),
            }
        }
        self.seen.clone()
    }

    /// Closes stdin (end of input) and waits for the exit.
    async fn finish(mut self) -> Run {
        drop(self.stdin.take());
        let mut rest = Vec::new();
        let read = tokio::time::timeout(PATIENCE, self.stdout.read_to_end(&mut rest)).await;
        read.unwrap_or_else(|_| panic!("the client did not exit within {PATIENCE:?}"))
            .unwrap_or_else(|e| panic!("{e}"));
        let out = tokio::time::timeout(PATIENCE, self.child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("the client did not exit within {PATIENCE:?}"))
            .unwrap_or_else(|e| panic!("{e}"));
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: self.seen + &String::from_utf8_lossy(&rest),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `chat --url URL extra…` with `input` piped to stdin until it exits.
async fn chat(url: &str, extra: &[&str], input: &str) -> Run {
    let mut live = Live::spawn(url, extra);
    live.type_in(input).await;
    live.finish().await
}

fn has_message(request: &Value, role: &str, content: &str) -> bool {
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    messages.iter().any(|m| m["role"] == role && m["content"] == content)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_turns_keep_one_session_and_quit_leaves() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat_stream(&["Hel", "lo"], GAP));
    mock.push(Reply::chat_stream(&["Wor", "ld"], GAP));
    let run = chat(&proxy.url, &[], "What is first?\nAnd then?\n  QUIT \nnever sent\n").await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("You: What is first?\nAssistant: Hello\n"), "{}", run.stdout);
    assert!(run.stdout.contains("You: And then?\nAssistant: World\n"), "{}", run.stdout);
    assert!(run.stderr.is_empty(), "{}", run.stderr);

    let requests = mock.requests();
    assert_eq!(requests.len(), 2, "nothing is sent after quit");
    let second = requests[1].json();
    assert!(has_message(&second, "user", "What is first?"), "{second}");
    assert!(has_message(&second, "assistant", "Hello"), "{second}");
    assert!(has_message(&second, "user", "And then?"), "{second}");

    // The id is printed once, and it is the session the proxy kept.
    let announced: Vec<&str> = run.stdout.lines().filter(|l| l.contains("--session")).collect();
    assert_eq!(announced.len(), 1, "{}", run.stdout);
    let id = announced[0].rsplit(' ').next().unwrap_or_default().trim_end_matches(')');
    let history = client().get(format!("{}/chat/{id}", proxy.url)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(history.status(), 200, "{id}");
    let history: Value = history.json().await.unwrap_or_default();
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(4), "{history}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_of_input_without_quit_exits_zero() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat_stream(&["Hel", "lo"], GAP));
    let run = chat(&proxy.url, &[], "\n   \nHi\n").await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Assistant: Hello\n"), "{}", run.stdout);
    assert!(run.stdout.ends_with("You: \n"), "the last prompt is closed: {:?}", run.stdout);
    assert_eq!(mock.requests().len(), 1, "empty lines are not sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_answer_asks_the_user_to_rephrase() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat_stream(&[""], GAP));
    mock.push(Reply::chat_stream(&["Now", " I can."], GAP));
    let run = chat(
        &proxy.url,
        &[],
        "Hm?
Again?
",
    )
    .await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(
        run.stdout.contains("You: Hm?\nAssistant: (the model gave an empty answer; try rephrasing your message)\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("Assistant: Now I can.\n"), "{}", run.stdout);
    assert_eq!(run.stdout.matches("empty answer").count(), 1, "{}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_session_is_reported_before_anything_is_sent() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    let unknown = "00000000-0000-4000-8000-000000000000";
    let run = chat(&proxy.url, &["--session", unknown], "hello?\n").await;
    assert_eq!(run.code, 1, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains(&format!("session {unknown} does not exist")), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(mock.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_session_is_resumed() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat("Noted: blue."));
    let first = client()
        .post(format!("{}/chat", proxy.url))
        .json(&json!({"message": "My colour is blue."}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first: Value = first.json().await.unwrap_or_default();
    let id = first["session_id"].as_str().unwrap_or_default().to_string();

    mock.push(Reply::chat_stream(&["Blue", "."], GAP));
    let run = chat(&proxy.url, &["--session", &id], "What is my colour?\nexit\n").await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains(&format!("resuming session {id} (2 messages)")), "{}", run.stdout);
    assert!(run.stdout.contains("Assistant: Blue.\n"), "{}", run.stdout);
    assert!(!run.stdout.contains("to resume"), "a known id is not announced again: {}", run.stdout);
    assert!(has_message(&mock.requests()[1].json(), "assistant", "Noted: blue."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_deleted_between_turns_is_reported_and_the_next_turn_starts_anew() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    mock.push(Reply::chat_stream(&["One"], GAP));
    mock.push(Reply::chat_stream(&["Three"], GAP));
    let mut live = Live::spawn(&proxy.url, &[]);
    live.type_in("one\n").await;
    // Wait for the announced id, then delete that session behind the client's back.
    let marker = "(to resume this conversation later: --session ";
    live.wait_for(marker).await;
    let seen = live.wait_for(")\n").await;
    let id = seen.split(marker).nth(1).and_then(|rest| rest.split(')').next()).unwrap_or_default().to_string();
    let deleted = client().delete(format!("{}/chat/{id}", proxy.url)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(deleted.status(), 204, "{seen}");

    live.type_in("two\nthree\n").await;
    let run = live.finish().await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains(&format!("session {id} does not exist")), "{}", run.stderr);
    assert!(run.stdout.contains("(the next message starts a new session)"), "{}", run.stdout);
    assert!(run.stdout.contains("Assistant: Three\n"), "{}", run.stdout);
    let requests = mock.requests();
    assert_eq!(requests.len(), 2, "the refused turn never reached the upstream");
    assert!(!has_message(&requests[1].json(), "user", "one"), "a new session has no old context");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_proxy_is_one_clear_line_per_try() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let run = chat(&url, &[], "hi\nstill there?\n").await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let expected = format!("error: cannot reach the proxy at {url}: connection refused — is it running?");
    assert_eq!(run.stderr.lines().collect::<Vec<_>>(), [expected.as_str(), expected.as_str()], "{}", run.stderr);
    assert!(!run.stdout.contains("Assistant:"), "{}", run.stdout);
    assert_eq!(run.stdout.matches("You: ").count(), 3, "the prompt comes back: {}", run.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_in_the_stream_is_printed_and_the_next_turn_works() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    let (release, gate) = tokio::sync::oneshot::channel();
    let broken = Reply::sse().event(chunk(json!({"role": "assistant", "content": "Hal"}), None)).gate(gate);
    mock.push(broken.drop_connection());
    mock.push(Reply::chat_stream(&["Fine", "."], GAP));
    let mut live = Live::spawn(&proxy.url, &[]);
    live.type_in("first\nsecond\n").await;
    // The upstream breaks only once the client shows the first delta: mid-stream.
    live.wait_for("Assistant: Hal").await;
    let _ = release.send(());
    let run = live.finish().await;
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Assistant: Hal\n"), "the partial answer stays: {}", run.stdout);
    assert!(run.stdout.contains("Assistant: Fine.\n"), "{}", run.stdout);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(run.stderr.starts_with("error: ") && run.stderr.contains("upstream"), "{}", run.stderr);
}

/// A tmux server of our own (its own socket), killed when the test ends.
struct Tmux {
    socket: String,
}

impl Tmux {
    async fn run(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new("tmux")
            .args(["-L", &self.socket, "-f", "/dev/null"])
            .args(args)
            .output()
            .await
            .unwrap_or_else(|e| panic!("tmux {args:?}: {e} (install it: apt-get install tmux)"));
        assert!(out.status.success(), "tmux {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls `args` until its output satisfies `done`; panics after [`PATIENCE`].
    async fn until(&self, args: &[&str], what: &str, done: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let seen = self.run(args).await;
            if done(&seen) {
                return seen;
            }
            assert!(Instant::now() < deadline, "waited {PATIENCE:?} for {what}; saw:\n{seen}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = std::process::Command::new("tmux").args(["-L", &self.socket, "kill-server"]).output();
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Starts the client in a fresh tmux server's terminal; returns the server
/// and the file the pane's shell writes the client's exit status to.
async fn start_in_tmux(url: &str) -> (Tmux, Scratch) {
    let tmux = Tmux { socket: format!("mcp-chat-test-{}", uuid::Uuid::new_v4()) };
    // The shell records the status rather than tmux: tmux (built with
    // utempter) can miss the SIGCHLD of a pane's process and never learn it.
    let dir = Scratch::new();
    let command = format!(
        "cd {} && env -i PATH=\"$PATH\" HOME=\"$HOME\" TERM=\"$TERM\" LANG=C.UTF-8 {} chat --url {}; echo $? > status",
        shell_quote(&dir.display().to_string()),
        shell_quote(BIN),
        shell_quote(url)
    );
    tmux.run(&["new-session", "-d", "-s", "chat", "-x", "120", "-y", "30", &command]).await;
    // Keep the pane after its shell exits, to see that it did.
    tmux.run(&["set-option", "-t", "chat", "remain-on-exit", "on"]).await;
    (tmux, dir)
}

/// The whole content of `path` once it is written (a line); panics after [`PATIENCE`].
async fn wait_for_file(path: &std::path::Path) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match std::fs::read_to_string(path) {
            Ok(s) if s.ends_with('\n') => return s,
            _ => assert!(Instant::now() < deadline, "{} not written within {PATIENCE:?}", path.display()),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const PANE: [&str; 4] = ["capture-pane", "-p", "-t", "chat"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_real_terminal_the_answer_streams_and_exit_leaves() {
    let mock = MockUpstream::start().await;
    let proxy = start_proxy(&mock.base_url(), &[]);
    let (release, gate) = tokio::sync::oneshot::channel();
    let held = Reply::sse()
        .event(chunk(json!({"role": "assistant", "content": "Hel"}), None))
        .gate(gate)
        .event(chunk(json!({"content": "lo, terminal"}), None))
        .event(chunk(json!({}), Some("stop")))
        .done();
    mock.push(held);

    let (tmux, dir) = start_in_tmux(&proxy.url).await;
    tmux.until(&PANE, "the prompt", |p| p.contains("You:")).await;
    tmux.run(&["send-keys", "-t", "chat", "-l", "Say hello"]).await;
    tmux.run(&["send-keys", "-t", "chat", "Enter"]).await;
    // The first delta shows while the rest is held back: it is not buffered.
    let partial = tmux.until(&PANE, "the first delta", |p| p.contains("Assistant: Hel")).await;
    assert!(!partial.contains("Hello"), "{partial}");
    assert!(partial.contains("You: Say hello"), "{partial}");
    assert_eq!(partial.matches("Say hello").count(), 1, "only the terminal echoes the question: {partial}");
    let _ = release.send(());
    let pane = tmux
        .until(&PANE, "the whole answer and a new prompt", |p| {
            let last = p.lines().map(str::trim_end).rfind(|l| !l.is_empty());
            p.contains("Assistant: Hello, terminal") && last == Some("You:")
        })
        .await;
    assert!(pane.contains("(to resume this conversation later: --session "), "{pane}");

    tmux.run(&["send-keys", "-t", "chat", "-l", "exit"]).await;
    tmux.run(&["send-keys", "-t", "chat", "Enter"]).await;
    let status = wait_for_file(&dir.join("status")).await;
    assert_eq!(status.trim(), "0", "exit status");
    tmux.until(&["display-message", "-p", "-t", "chat", "#{pane_dead}"], "the pane to end", |s| s.trim() == "1").await;
    assert_eq!(mock.requests().len(), 1);
}
