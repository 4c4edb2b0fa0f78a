//! Which tool mode a request runs in: the request's `x-mcp-tool-mode`, the
//! model's own setting, the global one; and, for `auto`, what was learned.
//!
//! `auto` is native first. An upstream that plainly refuses the `tools`
//! field (vLLM without a tool parser, llama.cpp without `--jinja`, an Ollama
//! model without tool support, a server that rejects the unknown field) gets
//! the request again in prompt mode, and the model is remembered as
//! prompt-only for `tool.learned_mode_seconds`, per upstream and model, then
//! tried natively again. Nothing is learned from a vague error that only
//! mentions a tool, nor from any error on a request that carries the
//! client's own tools: the fault may be in those.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::ToolMode;
use crate::settings::{ModeSetting, ToolSettings};
use crate::upstream::UpstreamError;

/// The mode of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pick {
    pub mode: ToolMode,
    /// The mode came from `auto`: a refusal of `tools` may switch it to prompt.
    pub auto: bool,
}

pub struct ModePolicy {
    settings: ToolSettings,
    /// Which upstream this is (its base URL), so what is learned is its own.
    upstream: String,
    /// (upstream, model) → until when it is prompt-only.
    learned: Mutex<HashMap<(String, String), Instant>>,
}

impl ModePolicy {
    pub fn new(settings: ToolSettings, upstream: impl Into<String>) -> Self {
        Self { settings, upstream: upstream.into(), learned: Mutex::new(HashMap::new()) }
    }

    /// The mode for `model`: `requested` (the request's header), else the
    /// model's own setting, else the global one; `auto` resolved by what was learned.
    pub fn pick(&self, model: &str, requested: Option<ModeSetting>) -> Pick {
        match requested.unwrap_or_else(|| self.settings.mode_for(model)) {
            ModeSetting::Native => Pick { mode: ToolMode::Native, auto: false },
            ModeSetting::Prompt => Pick { mode: ToolMode::Prompt, auto: false },
            ModeSetting::Auto if self.prompt_only(model) => Pick { mode: ToolMode::Prompt, auto: true },
            ModeSetting::Auto => Pick { mode: ToolMode::Native, auto: true },
        }
    }

    fn key(&self, model: &str) -> (String, String) {
        (self.upstream.clone(), model.to_string())
    }

    fn prompt_only(&self, model: &str) -> bool {
        let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        let key = self.key(model);
        match learned.get(&key) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                learned.remove(&key);
                false
            }
            None => false,
        }
    }

    /// Remembers that the upstream refused `tools` for `model`.
    pub fn learn_prompt_only(&self, model: &str) {
        let ttl = self.settings.learned_mode;
        tracing::info!(
            model,
            for_seconds = ttl.as_secs(),
            "the upstream refuses the tools field for this model; using prompt mode for it"
        );
        let mut learned = self.learned.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        learned.retain(|_, until| *until > now);
        learned.insert(self.key(model), now + ttl.max(Duration::from_secs(1)));
    }
}

/// Whether an upstream error plainly says the `tools` field is not taken
/// (not that something in it is wrong).
pub fn refuses_tools(error: &UpstreamError) -> bool {
    if !matches!(error.status, 400 | 404 | 422 | 500 | 501) {
        return false;
    }
    let Ok(body) = serde_json::from_slice::<Value>(&error.body) else {
        return says_tools_unsupported(&String::from_utf8_lossy(&error.body));
    };
    // FastAPI/pydantic servers: `{"detail": [{"loc": ["body", "tools"], "msg": "Extra inputs are not permitted"}]}`.
    let extra_field = body.get("detail").and_then(Value::as_array).is_some_and(|details| {
        details.iter().any(|d| {
            let loc = d.get("loc").and_then(Value::as_array);
            let last = loc.and_then(|l| l.last()).and_then(Value::as_str);
            matches!(last, Some("tools" | "tool_choice"))
                && d.get("type").and_then(Value::as_str).is_some_and(|t| t.contains("extra") || t.contains("forbidden"))
        })
    });
    let error_obj = body.get("error").unwrap_or(&body);
    let message = match error_obj {
        Value::String(s) => s.as_str(),
        other => other.get("message").and_then(Value::as_str).unwrap_or(""),
    };
    let param = error_obj.get("param").and_then(Value::as_str);
    // The field itself named as unknown or unsupported (not `tools[3].function…`).
    let named = matches!(param, Some("tools" | "tool_choice")) && rejects_field(message);
    extra_field || named || says_tools_unsupported(message)
}

fn rejects_field(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["unrecognized", "unknown", "not supported", "unsupported", "not permitted", "not allowed"]
        .iter()
        .any(|w| m.contains(w))
}

/// Messages of servers that do not take tools at all.
fn says_tools_unsupported(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "does not support tools",    // Ollama
        "tools param requires",      // llama.cpp without --jinja
        "--enable-auto-tool-choice", // vLLM without a tool parser
        "tools are not supported",
        "tool use is not supported",
        "tool calling is not supported",
        "tool calls are not supported",
        "function calling is not supported",
        "does not support function calling",
        "does not support tool",
        "unrecognized request argument supplied: tools",
        "unknown field `tools`",
        "unknown parameter: 'tools'",
    ]
    .iter()
    .any(|phrase| m.contains(phrase))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn error(status: u16, body: Value) -> UpstreamError {
        UpstreamError { status, retry_after: None, content_type: None, body: body.to_string().into() }
    }

    #[test]
    fn plain_refusals_of_the_tools_field() {
        for (status, body) in [
            (
                400,
                json!({"object": "error", "message": "\"auto\" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set"}),
            ),
            (
                500,
                json!({"error": {"code": 500, "message": "tools param requires --jinja flag", "type": "server_error"}}),
            ),
            (400, json!({"error": "registry.ollama.ai/library/gemma:2b does not support tools"})),
            (
                422,
                json!({"detail": [{"type": "extra_forbidden", "loc": ["body", "tools"], "msg": "Extra inputs are not permitted"}]}),
            ),
            (400, json!({"error": {"message": "Unrecognized request argument supplied: tools", "param": null}})),
            (400, json!({"error": {"message": "This parameter is not supported", "param": "tools"}})),
        ] {
            assert!(refuses_tools(&error(status, body.clone())), "{status} {body}");
        }
    }

    #[test]
    fn errors_that_only_mention_a_tool_are_not_refusals() {
        for (status, body) in [
            (
                400,
                json!({"error": {"message": "Invalid schema for function 'mine': 'objekt' is not valid", "param": "tools[0].function.parameters"}}),
            ),
            (
                400,
                json!({"error": {"message": "Invalid 'messages[2]': tool_call_id call_9 has no matching tool call."}}),
            ),
            (400, json!({"error": {"message": "tools: array too long", "param": "tools"}})),
            (429, json!({"error": {"message": "tools are not supported right now"}})),
            (500, json!({"error": {"message": "internal error while running the tool parser"}})),
        ] {
            assert!(!refuses_tools(&error(status, body.clone())), "{status} {body}");
        }
    }

    #[test]
    fn what_is_learned_is_per_model_and_expires() {
        let mut settings = ToolSettings::default();
        settings.learned_mode = Duration::from_millis(1);
        let policy = ModePolicy::new(settings, "http://up");
        assert_eq!(policy.pick("m", None), Pick { mode: ToolMode::Native, auto: true });
        policy.learn_prompt_only("m");
        assert_eq!(policy.pick("m", None).mode, ToolMode::Prompt);
        assert_eq!(policy.pick("other", None).mode, ToolMode::Native);
        assert_eq!(policy.pick("m", Some(ModeSetting::Native)).mode, ToolMode::Native, "the header wins");
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(policy.pick("m", None).mode, ToolMode::Native, "expired");
    }
}
