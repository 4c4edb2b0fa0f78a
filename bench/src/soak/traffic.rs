//! The soak's mixed traffic: what each kind of request sends, how far the
//! client reads, and what counts as the proxy behaving. The mock upstream
//! (`bin/fast_mock.rs`) picks its answer from the model name, so each kind
//! is one row of [`KINDS`].

use std::time::Duration;

use serde_json::{json, Value};
use Expect::{Answer, Failure, HangUp};
use Path::{Chat, Passthrough, ToolLoop};

/// Which path through the proxy a request takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// `x-mcp-tools: off`: pingora's transparent proxying.
    Passthrough,
    /// The tool loop (the MCP server's tools injected), `auto` mode.
    ToolLoop,
    /// A `/chat` session: two turns (the second streamed), its history, its removal.
    Chat,
}

/// What the proxy must do for the request to count as behaving.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// 200 and a complete answer (`finish_reason: stop`, or `[DONE]` with no error event).
    Answer,
    /// The upstream fails: the client gets an error status, an SSE error
    /// event or a stream without `[DONE]`, not a complete answer, and in time.
    Failure,
    /// The client hangs up after the first body chunk; 200 and a chunk is all it checks.
    HangUp,
}

pub struct Kind {
    pub name: &'static str,
    pub path: Path,
    pub model: &'static str,
    pub stream: bool,
    pub expect: Expect,
    /// Relative frequency in the mix.
    pub weight: u32,
}

const fn kind(name: &'static str, path: Path, model: &'static str, stream: bool, expect: Expect, weight: u32) -> Kind {
    Kind { name, path, model, stream, expect, weight }
}

/// The mix. Roughly half plain answers, a fifth tool rounds, the rest
/// hang-ups and upstream faults, and an occasional `/chat` session.
pub const KINDS: &[Kind] = &[
    kind("pass", Passthrough, "mock", false, Answer, 4),
    kind("pass_stream", Passthrough, "mock", true, Answer, 3),
    kind("loop", ToolLoop, "mock", false, Answer, 3),
    kind("loop_stream", ToolLoop, "mock", true, Answer, 3),
    kind("tool", ToolLoop, "mock-tool", false, Answer, 3),
    kind("tool_stream", ToolLoop, "mock-tool", true, Answer, 3),
    kind("hangup_pass", Passthrough, "mock", true, HangUp, 2),
    kind("hangup_loop", ToolLoop, "mock", true, HangUp, 1),
    kind("hangup_tool", ToolLoop, "mock-tool", true, HangUp, 1),
    kind("err500_pass", Passthrough, "mock-err500", false, Failure, 1),
    kind("err500_loop", ToolLoop, "mock-err500", false, Failure, 1),
    // Once the loop retries 503 and dropped connections (conf: upstream.retries),
    // these take seconds of backoff each: rarer.
    kind("err503_loop", ToolLoop, "mock-err503", false, Failure, 1),
    kind("drop_pass", Passthrough, "mock-drop", false, Failure, 1),
    kind("drop_loop", ToolLoop, "mock-drop", true, Failure, 1),
    kind("cut_pass", Passthrough, "mock-cut", true, Failure, 1),
    kind("cut_loop", ToolLoop, "mock-cut", true, Failure, 1),
    kind("chat", Chat, "", false, Answer, 1),
];

/// The kinds in mix order: each index repeated by its weight, interleaved
/// so consecutive picks differ. `only` (names) narrows the mix, to tell
/// which kind of traffic a growth comes with.
pub fn schedule(only: &[&str]) -> Vec<usize> {
    let picked = |i: &usize| only.is_empty() || only.contains(&KINDS[*i].name);
    let most = KINDS.iter().map(|k| k.weight).max().unwrap_or(0);
    (0..most).flat_map(|round| (0..KINDS.len()).filter(move |&i| KINDS[i].weight > round)).filter(picked).collect()
}

/// How one request ended.
#[derive(Debug)]
pub enum Outcome {
    /// As [`Expect`] says.
    Behaved,
    /// Anything else, with what was seen.
    Unexpected(String),
    /// No end within the client's timeout.
    Stuck,
}

/// The request body of a completion kind.
pub fn body(kind: &Kind) -> Value {
    json!({"model": kind.model, "stream": kind.stream, "messages": [{"role": "user", "content": "hello"}]})
}

/// What a completed exchange means for `kind`: the status, the body read
/// (all of it, or up to the first chunk for a hang-up), and whether the body
/// ended in a transport error.
pub fn judge(kind: &Kind, status: u16, body: &[u8], body_error: bool) -> Outcome {
    let text = String::from_utf8_lossy(body);
    let complete = status == 200
        && !body_error
        && if kind.stream {
            text.contains("data: [DONE]") && !text.contains("\"error\"")
        } else {
            text.contains("\"finish_reason\":\"stop\"")
        };
    let behaved = match kind.expect {
        Answer => complete,
        Failure => !complete,
        HangUp => status == 200 && !body.is_empty(),
    };
    if behaved {
        return Outcome::Behaved;
    }
    let head: String = text.chars().take(160).collect();
    Outcome::Unexpected(format!("{}: status {status}, body error {body_error}: {head}", kind.name))
}

/// The client's limit on one exchange: longer than the loop's retries with
/// backoff (0.5 s + 1 s by default) plus a few seconds of a busy machine.
pub const TIMEOUT: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_follows_the_weights() {
        let s = schedule(&[]);
        for (i, k) in KINDS.iter().enumerate() {
            assert_eq!(s.iter().filter(|&&x| x == i).count() as u32, k.weight, "{}", k.name);
        }
        assert_eq!(s[0], 0);
        assert_ne!(s[0], s[1]);
        assert_eq!(schedule(&["chat", "pass"]).len(), 5);
    }

    #[test]
    fn judging() {
        let by = |name| KINDS.iter().find(|k| k.name == name).unwrap_or_else(|| panic!("{name}"));
        let done = b"data: {\"choices\":[]}\n\ndata: [DONE]\n\n";
        let error = b"data: {\"error\":{\"message\":\"x\"}}\n\ndata: [DONE]\n\n";
        assert!(matches!(judge(by("pass_stream"), 200, done, false), Outcome::Behaved));
        assert!(matches!(judge(by("pass_stream"), 200, done, true), Outcome::Unexpected(_)));
        assert!(matches!(judge(by("cut_loop"), 200, error, false), Outcome::Behaved));
        assert!(matches!(judge(by("cut_pass"), 200, b"data: x\n\n", true), Outcome::Behaved));
        assert!(matches!(judge(by("err500_pass"), 500, b"{}", false), Outcome::Behaved));
        assert!(matches!(judge(by("loop"), 200, b"{\"finish_reason\":\"stop\"}", false), Outcome::Behaved));
        assert!(matches!(judge(by("loop"), 502, b"{}", false), Outcome::Unexpected(_)));
        assert!(matches!(judge(by("hangup_pass"), 200, b"d", false), Outcome::Behaved));
    }
}
