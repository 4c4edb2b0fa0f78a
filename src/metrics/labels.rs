//! The label sets of the metrics and their fixed values. Every value is one
//! of a closed set, or a name from the configuration (server, exposed tool).

use std::fmt::Write;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};

/// A closed set of label values, written as their `as_str`.
macro_rules! label_value {
    ($ty:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $text),+ }
            }
        }
        impl EncodeLabelValue for $ty {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    };
}

/// The API a request spoke (`none`: a route of the proxy's own, or a
/// `/v1/*` path it passes through without reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Surface {
    ChatCompletions,
    Responses,
    /// Anthropic's Messages API.
    Messages,
    /// `/chat`, the server-side sessions.
    Session,
    Mcp,
    None,
}

label_value!(Surface {
    ChatCompletions => "chat_completions",
    Responses => "responses",
    Messages => "messages",
    Session => "session",
    Mcp => "mcp",
    None => "none",
});

/// How a request was served: by the tool loop, passed through to the
/// upstream unchanged, or answered by the proxy itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Handled {
    ToolLoop,
    Passthrough,
    Local,
}

label_value!(Handled { ToolLoop => "tool_loop", Passthrough => "passthrough", Local => "local" });

/// How one MCP tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    Ok,
    /// The tool ran and reported an error (`isError`), or the server
    /// answered the call with a protocol error.
    ToolError,
    Timeout,
    /// The caller may not use the tool, or no such tool exists.
    Refused,
    /// Its server's call slots and queue were full.
    Busy,
    /// Its server was down, or failed during the call.
    Unavailable,
}

label_value!(CallOutcome {
    Ok => "ok",
    ToolError => "tool_error",
    Timeout => "timeout",
    Refused => "refused",
    Busy => "busy",
    Unavailable => "unavailable",
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionEvent {
    Created,
    TurnStored,
    ResponseStored,
}

label_value!(SessionEvent { Created => "session_created", TurnStored => "turn_stored", ResponseStored => "response_stored" });

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Input,
    Output,
}

label_value!(Direction { Input => "input", Output => "output" });

/// `2xx` … `5xx`, or `none` when the client left before any status was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusClass(pub u16);

impl EncodeLabelValue for StatusClass {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        match self.0 {
            100..=599 => write!(encoder, "{}xx", self.0 / 100),
            _ => encoder.write_str("none"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// The route's name (see `gate::Route::name`).
    pub route: &'static str,
    pub surface: Surface,
    pub handled: Handled,
    pub status: StatusClass,
}

impl RequestLabels {
    /// The timing histograms' labels: the same without the status, so the
    /// series stay few.
    pub(super) fn timing(&self) -> TimingLabels {
        TimingLabels { route: self.route, surface: self.surface, handled: self.handled }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TimingLabels {
    pub route: &'static str,
    pub surface: Surface,
    pub handled: Handled,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct ToolLabels {
    pub server: String,
    pub tool: String,
    pub outcome: CallOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct UpstreamLabels {
    pub path: Handled,
    pub status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct PathLabel {
    pub(super) path: Handled,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct SurfaceLabel {
    pub(super) surface: Surface,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct TokenLabels {
    pub surface: Surface,
    pub direction: Direction,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub(super) struct SessionLabels {
    pub(super) event: SessionEvent,
    pub(super) store: &'static str,
}
