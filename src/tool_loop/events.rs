//! What the tool loop gives a surface: [`Event`]s while it runs (streaming)
//! and one [`Outcome`] when it ends. No wire format here: each surface
//! encodes these into its own (Chat Completions chunks, Responses events,
//! Anthropic blocks).
//!
//! Every round's visible text is part of the answer, streamed or not: a
//! stream cannot take back what it has sent, so the non-streamed answer holds
//! the same text. Rounds are joined by a blank line ([`Joiner`]), the same
//! way for every surface.

use std::borrow::Cow;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::error::ProxyError;
use crate::openai::chat::{ChatCompletion, Message, ToolCall, Usage};
use crate::upstream::UpstreamError;

/// Who the answer is: the first upstream reply's id, creation time and model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub created: u64,
    pub model: String,
}

/// Reasoning text, and the field the upstream sent it in (`reasoning_content`
/// for DeepSeek, vLLM and llama.cpp, `reasoning` for OpenRouter and others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reasoning {
    pub field: String,
    pub text: String,
}

/// The reasoning fields upstreams use, in the order they are looked for.
pub const REASONING_FIELDS: [&str; 2] = ["reasoning_content", "reasoning"];

/// What one upstream chunk adds to the answer the client sees.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    /// The round it belongs to, from 1.
    pub round: u32,
    /// Visible text; may be empty (prompt mode holds text that may be a call).
    pub text: String,
    pub reasoning: Option<Reasoning>,
    /// Fields of the upstream's delta the loop does not read (vendor fields).
    pub extra_delta: Map<String, Value>,
    /// Fields of the upstream's choice the loop does not read (`logprobs`).
    pub extra_choice: Map<String, Value>,
}

/// What happens while the loop runs, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The answer's identity; always the first event.
    Started(Identity),
    Delta(Delta),
    /// The model asked for MCP tools in `round`; they run now, concurrently.
    ToolsStarted {
        round: u32,
        calls: Vec<ToolCall>,
    },
    /// One of them has finished.
    ToolFinished {
        round: u32,
        call_id: String,
        name: String,
        output: String,
        is_error: bool,
        elapsed: Duration,
    },
    /// Nothing to show for a while (tools running, text held back): a keep-alive is due.
    Waiting {
        what: String,
    },
}

/// Why the loop stopped offering tools and asked for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// `tool.max_rounds` tool rounds have run.
    RoundLimit,
    /// The model asked for exactly the calls of the round before.
    RepeatedCall,
    /// `tool.budget_seconds` have passed.
    TimeBudget,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RoundLimit => "round_limit",
            Self::RepeatedCall => "repeated_tool_call",
            Self::TimeBudget => "time_budget",
        }
    }
}

/// One MCP call the proxy ran, with its result.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRun {
    /// The round whose reply asked for it; 0 for a call approved since the last turn.
    pub round: u32,
    pub call: ToolCall,
    pub output: String,
    pub is_error: bool,
}

/// The finished answer.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    pub identity: Identity,
    /// The visible text of each round, in order (empty for a round without any).
    pub texts: Vec<String>,
    /// The reasoning of each round that had some.
    pub reasoning: Vec<(u32, Reasoning)>,
    /// Calls of the client's own tools: the client runs them.
    pub client_calls: Vec<ToolCall>,
    /// MCP calls the model made that wait for a person's approval (see
    /// [`super::Job::approval`]); not run.
    pub awaiting_approval: Vec<ToolCall>,
    /// `stop`, `length`, `content_filter`, …, or `tool_calls` when `client_calls` is not empty.
    pub finish_reason: String,
    /// The stop sequence that ended the answer (`finish_reason` `stop`),
    /// when the upstream named it.
    pub stop_sequence: Option<String>,
    /// Summed over every round; `None` when the upstream reported none.
    pub usage: Option<Usage>,
    pub stopped: Option<StopReason>,
    /// The MCP calls that ran, round by round.
    pub tool_runs: Vec<ToolRun>,
    /// What this turn added to the conversation (tool calls, results, the answer).
    pub transcript: Vec<Message>,
    /// Not streamed: the last upstream completion, for the fields the loop does not read.
    pub last: Option<ChatCompletion>,
}

impl Answer {
    /// The answer's text: every round's visible text, joined.
    pub fn text(&self) -> String {
        let mut joiner = Joiner::default();
        let mut out = String::new();
        for (i, text) in self.texts.iter().enumerate() {
            out.push_str(&joiner.push(i as u32 + 1, text));
        }
        out
    }

    /// The reasoning of every round, joined the same way, and its field.
    pub fn reasoning_text(&self) -> Option<Reasoning> {
        let field = self.reasoning.first()?.1.field.clone();
        let mut joiner = Joiner::default();
        let text = self.reasoning.iter().map(|(round, r)| joiner.push(*round, &r.text).into_owned()).collect();
        Some(Reasoning { field, text })
    }
}

/// How the loop ended.
#[derive(Debug)]
pub enum Outcome {
    Done(Box<Answer>),
    /// The upstream refused: its answer, unchanged.
    Refused(UpstreamError),
    /// The proxy could not finish (upstream unreachable, timed out, cut, …).
    Failed(ProxyError),
    /// The client went away; the work was stopped.
    Gone,
}

/// Joins the text of rounds as it streams: a later round's first text is
/// set off from what came before by a blank line (or what is missing of one).
#[derive(Debug, Default, Clone)]
pub struct Joiner {
    round: u32,
    /// The last two characters written.
    tail: String,
}

impl Joiner {
    /// `text` of `round`, with the separator it needs in front.
    pub fn push<'t>(&mut self, round: u32, text: &'t str) -> Cow<'t, str> {
        if text.is_empty() {
            return Cow::Borrowed(text);
        }
        let separator = if self.tail.is_empty() || round == self.round || self.tail.ends_with("\n\n") {
            ""
        } else if self.tail.ends_with('\n') {
            "\n"
        } else {
            "\n\n"
        };
        self.round = round;
        let out = if separator.is_empty() { Cow::Borrowed(text) } else { Cow::Owned(format!("{separator}{text}")) };
        let joined = format!("{}{}", self.tail, out);
        let keep = joined.char_indices().rev().nth(1).map_or(0, |(i, _)| i);
        self.tail = joined[keep..].to_string();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_joined_by_a_blank_line_and_pieces_of_one_round_are_not() {
        let mut j = Joiner::default();
        let pieces = [(1, "Let me "), (1, "look."), (2, ""), (3, "It is "), (3, "4.")];
        let out: String = pieces.iter().map(|(r, t)| j.push(*r, t).into_owned()).collect();
        assert_eq!(out, "Let me look.\n\nIt is 4.");
        let mut j = Joiner::default();
        let out: String =
            [(1, "A\n"), (2, "B\n\n"), (3, "C")].iter().map(|(r, t)| j.push(*r, t).into_owned()).collect();
        assert_eq!(out, "A\n\nB\n\nC");
        let mut j = Joiner::default();
        assert_eq!(j.push(2, "first text in round 2"), "first text in round 2", "nothing before: no separator");
    }

    #[test]
    fn the_answer_text_joins_as_the_stream_does() {
        let answer = Answer { texts: vec!["Checking.".into(), String::new(), "Done: é".into()], ..Answer::default() };
        assert_eq!(answer.text(), "Checking.\n\nDone: é");
    }
}
