//! Prompt mode's call detector, fed as the reply arrives: it says which text
//! can go to the client now and which must be held because it may still turn
//! out to be a tool call, and it finds the call.
//!
//! A non-streamed reply is fed whole, so both ways see the same call and the
//! same visible text: everything before the call (a ```` ``` ```` fence opener
//! right before it excepted), and nothing after it. What is held is only what
//! can still become a call: a `{` while the next character is unknown, a JSON
//! object until it closes, and a fence opener until the next non-blank
//! character shows whether an object follows. Prose, code and data objects
//! pass as soon as they are known not to be calls.
//!
//! A call is a JSON object, anywhere in the text, whose `"tool"` is a known
//! tool (`"name"` stands in when the object has no key besides `"name"` and
//! `"arguments"`, since data often has a `"name"`), or which opens the reply
//! with a `"tool"` key (so an unknown name is answered with an error instead
//! of reaching the user). A JSON object that is not a call is data: objects
//! nested in it are not looked at. Text that is not JSON is prose: braces
//! inside it are still tried. Truncated JSON is no call.
//!
//! The work is bounded (bytes scanned and parsed, parse attempts), so text
//! such as 100k `{` costs linear time; past the budget there is no call and
//! everything is released.

use std::ops::Range;

use super::prompt::{as_call, DetectedCall};

/// Bytes scanned or parsed per byte of the reply, plus a floor so short replies never hit it.
const WORK_PER_BYTE: usize = 4;
const WORK_FLOOR: usize = 1 << 20;
/// Parse attempts: enough for a reply full of code blocks, bounded for one full of `{"`.
const MAX_PARSES: usize = 1024;

/// A call found in the reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub call: DetectedCall,
    /// The call's JSON object in the reply.
    pub span: Range<usize>,
    /// Where the visible text ends: the object's start, or the start of the
    /// fence opener right before it.
    pub visible_end: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Looking for the next `{`.
    Free,
    /// Inside the object opened at `start`; text is held from `hold`.
    Object { hold: usize, start: usize, depth: usize, in_string: bool, escaped: bool },
}

/// Prompt mode's detector over one reply.
pub struct CallScanner<'k> {
    text: String,
    /// Bytes of `text` already handed out as visible.
    released: usize,
    /// Where scanning resumes.
    pos: usize,
    state: State,
    found: Option<Found>,
    is_known: &'k (dyn Fn(&str) -> bool + Sync),
    work_left: usize,
    parses_left: usize,
    /// The budget is spent: no call will be found, all text is visible.
    exhausted: bool,
    /// The reply is complete.
    finished: bool,
}

impl<'k> CallScanner<'k> {
    pub fn new(is_known: &'k (dyn Fn(&str) -> bool + Sync)) -> Self {
        Self {
            text: String::new(),
            released: 0,
            pos: 0,
            state: State::Free,
            found: None,
            is_known,
            work_left: WORK_FLOOR,
            parses_left: MAX_PARSES,
            exhausted: false,
            finished: false,
        }
    }

    /// Adds the next piece of the reply; returns the text that may go to the client now.
    pub fn push(&mut self, piece: &str) -> String {
        self.text.push_str(piece);
        self.work_left = self.work_left.saturating_add(piece.len().saturating_mul(WORK_PER_BYTE));
        self.advance(false);
        self.release()
    }

    /// The reply is complete: the rest of the visible text, and the call if there is one.
    pub fn finish(&mut self) -> (String, Option<Found>) {
        self.advance(true);
        self.finished = true;
        (self.release(), self.found.clone())
    }

    /// The whole reply so far, call included.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether text is held back (it may be a call).
    pub fn holding(&self) -> bool {
        self.found.is_none() && self.released < self.text.len()
    }

    /// Feeds a complete reply at once: its visible text and its call.
    pub fn scan_whole(text: &str, is_known: &'k (dyn Fn(&str) -> bool + Sync)) -> (String, Option<Found>) {
        let mut scanner = Self::new(is_known);
        let visible = scanner.push(text);
        let (rest, found) = scanner.finish();
        (visible + &rest, found)
    }

    fn release(&mut self) -> String {
        let end = self.visible_end();
        let out = self.text.get(self.released..end).unwrap_or_default().to_string();
        self.released = end.max(self.released);
        out
    }

    /// How far the text may be shown now. Blanks that open the reply are
    /// held until something follows them (before a call they are nothing).
    fn visible_end(&self) -> usize {
        let end = if let Some(found) = &self.found {
            found.visible_end
        } else if self.exhausted || self.finished {
            return self.text.len();
        } else {
            match self.state {
                State::Object { hold, .. } => hold,
                // Waiting at a `{` whose next character is not known yet, or at a fence opener.
                State::Free => self.pending_from(self.pos).unwrap_or(self.text.len()),
            }
        };
        if self.text.get(..end).is_some_and(|before| before.trim().is_empty()) {
            return 0;
        }
        end
    }

    /// In the free state with scanning stopped at `pos`: where held text starts, if any.
    fn pending_from(&self, pos: usize) -> Option<usize> {
        let len = self.text.len();
        if pos < len && self.text.as_bytes()[pos] == b'{' {
            return Some(fence_opener_start(&self.text, self.released, pos).unwrap_or(pos));
        }
        fence_opener_start(&self.text, self.released, len).or_else(|| partial_fence_start(&self.text, self.released))
    }

    fn advance(&mut self, at_end: bool) {
        while self.found.is_none() && !self.exhausted {
            let go_on = match self.state {
                State::Free => self.next_candidate(at_end),
                State::Object { .. } => self.scan_object(at_end),
            };
            if !go_on {
                return;
            }
        }
    }

    /// Free state: moves to the next `{` that may open a JSON object.
    /// `false` when the text so far is used up (or a `{` waits for its next character).
    fn next_candidate(&mut self, at_end: bool) -> bool {
        let bytes = self.text.as_bytes();
        let Some(offset) = bytes.get(self.pos..).and_then(|rest| memchr::memchr(b'{', rest)) else {
            self.pos = self.text.len();
            return false;
        };
        let start = self.pos + offset;
        self.pos = start;
        let after = self.text.get(start + 1..).unwrap_or_default().trim_start();
        if after.is_empty() && !at_end {
            return false;
        }
        // A JSON object's `{` is followed by a key or `}`: prose and code braces go at once.
        if !(after.starts_with('"') || after.starts_with('}')) {
            self.pos = start + 1;
            return true;
        }
        let hold = fence_opener_start(&self.text, self.released, start).unwrap_or(start);
        self.state = State::Object { hold, start, depth: 0, in_string: false, escaped: false };
        true
    }

    /// Object state: scans on towards its closing brace and judges it then.
    fn scan_object(&mut self, at_end: bool) -> bool {
        let State::Object { hold, start, mut depth, mut in_string, mut escaped } = self.state else { return false };
        let bytes = self.text.as_bytes();
        let mut close = None;
        for (i, &b) in bytes.iter().enumerate().skip(self.pos) {
            let Some(left) = self.work_left.checked_sub(1) else {
                self.exhausted = true;
                return false;
            };
            self.work_left = left;
            if in_string {
                match (escaped, b) {
                    (true, _) => escaped = false,
                    (false, b'\\') => escaped = true,
                    (false, b'"') => in_string = false,
                    _ => {}
                }
                continue;
            }
            match b {
                b'"' => in_string = true,
                b'{' => depth += 1,
                b'}' if depth <= 1 => {
                    close = Some(i);
                    break;
                }
                b'}' => depth -= 1,
                _ => {}
            }
        }
        let Some(end) = close else {
            self.pos = self.text.len();
            self.state = State::Object { hold, start, depth, in_string, escaped };
            if at_end {
                // Never closed: not an object; the braces inside it are still tried.
                self.state = State::Free;
                self.pos = start + 1;
                return true;
            }
            return false;
        };
        self.state = State::Free;
        let opening = self.text.get(..hold).unwrap_or_default().trim().is_empty();
        match self.judge(start..end + 1, opening) {
            Judged::Call(call) => {
                let visible_end = if opening { 0 } else { hold };
                self.found = Some(Found { call, span: start..end + 1, visible_end });
                false
            }
            Judged::Data => {
                self.pos = end + 1;
                true
            }
            Judged::NotJson => {
                self.pos = start + 1;
                true
            }
            Judged::OutOfBudget => {
                self.exhausted = true;
                false
            }
        }
    }

    fn judge(&mut self, span: Range<usize>, opening: bool) -> Judged {
        let Some(parses) = self.parses_left.checked_sub(1) else { return Judged::OutOfBudget };
        let Some(work) = self.work_left.checked_sub(span.len()) else { return Judged::OutOfBudget };
        (self.parses_left, self.work_left) = (parses, work);
        let Some(candidate) = self.text.get(span) else { return Judged::NotJson };
        let is_known = self.is_known;
        let accept = |name: &str, has_tool_key: bool| is_known(name) || (opening && has_tool_key);
        match serde_json::from_str::<serde_json::Value>(candidate) {
            Ok(value) => as_call(value, &accept).map_or(Judged::Data, Judged::Call),
            Err(_) => Judged::NotJson,
        }
    }
}

enum Judged {
    Call(DetectedCall),
    Data,
    NotJson,
    OutOfBudget,
}

/// The start of a fence opener (```` ``` ```` and a language tag, then only
/// blanks) that ends exactly at `end`, no earlier than `from`.
fn fence_opener_start(text: &str, from: usize, end: usize) -> Option<usize> {
    let bytes = text.as_bytes().get(from..end)?;
    let blanks = bytes.iter().rev().take_while(|b| b.is_ascii_whitespace()).count();
    let before_blanks = &bytes[..bytes.len() - blanks];
    let tag = before_blanks.iter().rev().take_while(|b| b.is_ascii_alphanumeric() || b"_+.-".contains(b)).count();
    let before_tag = &before_blanks[..before_blanks.len() - tag];
    before_tag.ends_with(b"```").then(|| from + before_tag.len() - 3)
}

/// The start of one or two backticks ending the text: maybe a fence to come.
fn partial_fence_start(text: &str, from: usize) -> Option<usize> {
    let bytes = text.as_bytes().get(from..)?;
    let ticks = bytes.iter().rev().take_while(|&&b| b == b'`').count();
    (1..=2).contains(&ticks).then(|| text.len() - ticks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn known(name: &str) -> bool {
        matches!(name, "echo" | "add")
    }

    fn whole(text: &str) -> (String, Option<String>) {
        let (visible, found) = CallScanner::scan_whole(text, &known);
        (visible, found.map(|f| f.call.name))
    }

    /// The same text fed in the given pieces: what was released, and the call.
    fn in_pieces(pieces: &[&str]) -> (String, Option<Found>) {
        let mut scanner = CallScanner::new(&known);
        let mut out = String::new();
        for piece in pieces {
            out.push_str(&scanner.push(piece));
        }
        let (rest, found) = scanner.finish();
        (out + &rest, found)
    }

    #[test]
    fn visible_text_is_what_comes_before_the_call() {
        let call = r#"{"tool": "echo", "arguments": {"text": "hi"}}"#;
        for (text, visible) in [
            (call.to_string(), ""),
            (format!("Let me check.\n{call}\nThe result is hi."), "Let me check.\n"),
            (format!("I will.\n```json\n{call}\n```"), "I will.\n"),
            (format!("<think>echo it</think>\n{call}"), "<think>echo it</think>\n"),
            (format!("Sets look like {{a, b}}. {call}"), "Sets look like {a, b}. "),
        ] {
            assert_eq!(whole(&text), (visible.to_string(), Some("echo".to_string())), "{text}");
        }
    }

    #[test]
    fn text_without_a_call_is_all_visible() {
        for text in [
            "The answer is 42.",
            "```python\nprint({'a': 1})\n```",
            r#"Data: {"name": "Alice", "age": 30}"#,
            r#"Data wrapping a call: {"example": {"tool": "echo"}}"#,
            r#"Not at the start: {"tool": "rm_rf"}"#,
            r#"{"tool": "echo", "arguments": {"text": "cut"#,
            "``",
            "{",
        ] {
            assert_eq!(whole(text), (text.to_string(), None), "{text}");
        }
    }

    #[test]
    fn an_opening_object_with_a_tool_key_is_a_call_even_to_an_unknown_tool() {
        let text = r#"  {"tool": "launch_rockets", "arguments": {}}"#;
        assert_eq!(whole(text), ("".to_string(), Some("launch_rockets".to_string())));
        let fenced = "```json\n{\"tool\": \"launch_rockets\"}\n```";
        assert_eq!(whole(fenced), ("".to_string(), Some("launch_rockets".to_string())));
    }

    #[test]
    fn only_what_may_become_a_call_is_held() {
        let mut s = CallScanner::new(&known);
        assert_eq!(s.push("Let me "), "Let me ");
        assert_eq!(s.push("check.\n``"), "check.\n", "two backticks may open a fence");
        assert_eq!(s.push("`json\n"), "");
        assert!(s.holding());
        assert_eq!(s.push("{\"tool\": \"ec"), "");
        assert_eq!(s.push("ho\"}\n```\nIt said"), "", "after the call nothing is shown");
        let (rest, found) = s.finish();
        assert_eq!((rest.as_str(), found.map(|f| f.call)), ("", Some(call("echo", json!({})))));

        let mut s = CallScanner::new(&known);
        assert_eq!(s.push("```python\n"), "");
        assert_eq!(s.push("print(1)"), "```python\nprint(1)", "a fence of code is released at its first line");
        assert_eq!(s.push(" {x}"), " {x}", "a brace that opens no JSON goes at once");
        assert_eq!(s.push(" {\"a\": 1"), " ");
        assert_eq!(s.push("}."), "{\"a\": 1}.", "a data object is released when it closes");
    }

    fn call(name: &str, arguments: serde_json::Value) -> DetectedCall {
        let serde_json::Value::Object(arguments) = arguments else { panic!("arguments must be an object") };
        DetectedCall { name: name.to_string(), arguments }
    }

    #[test]
    fn pathological_inputs_end_in_linear_work() {
        let echo = r#"{"tool":"echo","arguments":{"text":"hi"}}"#;
        for (what, text, expected) in [
            ("open braces", "{".repeat(200_000), None),
            ("open keys", "{\"a\":".repeat(40_000), None),
            ("braces in and out of strings", "{\"{\"".repeat(50_000), None),
            ("close braces", "}".repeat(200_000), None),
            ("open braces then a call", "{".repeat(200_000) + echo, Some("echo".to_string())),
        ] {
            assert_eq!(whole(&text).1, expected, "{what}");
        }
    }

    proptest! {
        /// Fed in any pieces, the scanner releases exactly what it releases
        /// fed whole, and finds the same call: streamed and non-streamed
        /// replies agree.
        #[test]
        fn pieces_agree_with_the_whole(
            text in r#"[{}\[\]":,\\ a`\n]{0,120}|(Hi \{"tool": "echo"\} [a-z ]{0,5})|(```json\n\{"tool":"add","arguments":\{"a":1\}\}\n```)"#,
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
        ) {
            let mut at: Vec<usize> = cuts.iter().map(|c| c.index(text.len() + 1)).collect();
            at.sort_unstable();
            at.dedup();
            let mut pieces = Vec::new();
            let mut from = 0;
            for &to in at.iter().chain([&text.len()]) {
                pieces.push(&text[from..to]);
                from = to;
            }
            let (visible, found) = CallScanner::scan_whole(&text, &known);
            let (streamed, streamed_found) = in_pieces(&pieces);
            prop_assert_eq!(&streamed, &visible);
            prop_assert_eq!(&streamed_found, &found);
            prop_assert!(text.starts_with(&visible));
            if let Some(f) = found {
                prop_assert_eq!(f.visible_end, visible.len());
                let object: serde_json::Value = serde_json::from_str(&text[f.span.clone()]).unwrap_or_default();
                prop_assert!(object.is_object());
            }
        }

        #[test]
        fn never_panics_and_releases_a_prefix(text in any::<String>(), cut in any::<prop::sample::Index>()) {
            let mut at = cut.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let (streamed, _) = in_pieces(&[&text[..at], &text[at..]]);
            prop_assert!(text.starts_with(&streamed));
        }
    }
}
