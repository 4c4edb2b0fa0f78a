//! Chat completions: the request, the response, and the stream chunk.
//!
//! Only the fields the tool loop reads are typed; every struct keeps the rest
//! in `rest`, so fields this proxy does not know (new OpenAI parameters,
//! vendor extensions) reach the upstream and the client untouched.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<Value>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ChatRequest {
    pub fn is_stream(&self) -> bool {
        self.stream.unwrap_or(false)
    }

    /// `stream_options.include_usage`: the client wants a final usage chunk.
    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.get("include_usage")).and_then(Value::as_bool).unwrap_or(false)
    }

    /// The names of the functions the client itself supplied.
    pub fn client_tool_names(&self) -> Vec<String> {
        self.tools
            .iter()
            .flatten()
            .filter_map(|t| t.pointer("/function/name").and_then(Value::as_str).map(str::to_string))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    /// A string, an array of content parts, or null.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Message {
    pub fn text(role: &str, text: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: Some(Value::String(text.into())),
            tool_calls: None,
            tool_call_id: None,
            rest: Map::new(),
        }
    }

    /// The content as plain text (parts of type `text` joined).
    pub fn content_text(&self) -> String {
        match &self.content {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => {
                parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join("")
            }
            _ => String::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
    /// Vendor fields (Gemini's `extra_content` with its thought signature,
    /// which must come back with the call in the next round).
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ToolCall {
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            kind: function_type(),
            function: FunctionCall { name: name.into(), arguments: arguments.into(), rest: Map::new() },
            rest: Map::new(),
        }
    }
}

fn function_type() -> String {
    "function".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text, as OpenAI sends it.
    #[serde(default)]
    pub arguments: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default)]
    pub prompt_tokens: u64,
    #[serde(default)]
    pub completion_tokens: u64,
    #[serde(default)]
    pub total_tokens: u64,
    /// `prompt_tokens_details`, `completion_tokens_details` and vendor counts.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl Usage {
    /// Adds `other` in: every count, the detail counts included (numbers
    /// are summed wherever both have them; other values are the latest).
    pub fn add(&mut self, other: &Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.completion_tokens += other.completion_tokens;
        self.total_tokens += other.total_tokens;
        add_counts(&mut self.rest, &other.rest);
    }
}

fn add_counts(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (key, value) in from {
        match (into.get_mut(key), value) {
            (Some(Value::Object(a)), Value::Object(b)) => add_counts(a, b),
            (Some(Value::Number(a)), Value::Number(b)) => {
                if let (Some(x), Some(y)) = (a.as_u64(), b.as_u64()) {
                    *a = (x + y).into();
                } else if let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) {
                    if let Some(sum) = serde_json::Number::from_f64(x + y) {
                        *a = sum;
                    }
                }
            }
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<Choice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    #[serde(default)]
    pub index: u32,
    pub message: Message,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub created: u64,
    #[serde(default)]
    pub model: String,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u32,
    #[serde(default)]
    pub delta: Delta,
    #[serde(default)]
    pub finish_reason: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    #[serde(default)]
    pub index: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<FunctionDelta>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionDelta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// Checks the shape of a request body and names the first wrong field.
pub fn parse_request(body: &[u8]) -> Result<ChatRequest, (String, Option<&'static str>)> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| (format!("request body is not valid JSON: {e}"), None))?;
    let obj = value.as_object().ok_or(("request body must be a JSON object".to_string(), None))?;
    match obj.get("model") {
        Some(Value::String(_)) => {}
        Some(_) => return Err(("'model' must be a string".into(), Some("model"))),
        None => return Err(("you must provide a model parameter".into(), Some("model"))),
    }
    let messages = match obj.get("messages") {
        Some(Value::Array(m)) => m,
        Some(_) => return Err(("'messages' must be an array".into(), Some("messages"))),
        None => return Err(("'messages' is a required property".into(), Some("messages"))),
    };
    for (i, m) in messages.iter().enumerate() {
        if !m.get("role").is_some_and(Value::is_string) {
            return Err((format!("'messages[{i}]' must be an object with a string 'role'"), Some("messages")));
        }
    }
    if obj.get("tools").is_some_and(|t| !t.is_array() && !t.is_null()) {
        return Err(("'tools' must be an array".into(), Some("tools")));
    }
    serde_json::from_value(value).map_err(|e| (format!("invalid request: {e}"), None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let body = json!({
            "model": "m", "messages": [{"role": "user", "content": "hi", "name": "bob"}],
            "temperature": 0.2, "response_format": {"type": "json_object"}, "vendor_x": [1, 2]
        });
        let req = parse_request(body.to_string().as_bytes()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(serde_json::to_value(&req).unwrap_or_default(), body);
    }

    #[test]
    fn usage_details_are_kept_and_summed() {
        let mut a: Usage =
            serde_json::from_value(json!({"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4,
            "prompt_tokens_details": {"cached_tokens": 2}, "vendor": "x"}))
            .unwrap_or_default();
        let b: Usage = serde_json::from_value(json!({"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 3, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 1}, "cost": 0.25}))
        .unwrap_or_default();
        a.add(&b);
        let v = serde_json::to_value(&a).unwrap_or_default();
        assert_eq!(
            v,
            json!({"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11, "vendor": "x", "cost": 0.25,
                "prompt_tokens_details": {"cached_tokens": 5, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 1}})
        );
    }

    #[test]
    fn tool_calls_keep_vendor_fields() {
        let v = json!({"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}", "strict": true},
            "extra_content": {"google": {"thought_signature": "sig"}}});
        let call: ToolCall = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(serde_json::to_value(&call).unwrap_or_default(), v);
    }

    #[test]
    fn wrong_types_name_the_field() {
        let cases = [
            (json!({"model": "m", "messages": "hi"}), Some("messages")),
            (json!({"model": "m", "messages": [{"content": "x"}]}), Some("messages")),
            (json!({"messages": []}), Some("model")),
            (json!({"model": "m", "messages": [], "tools": {}}), Some("tools")),
        ];
        for (body, field) in cases {
            let err = parse_request(body.to_string().as_bytes()).err().unwrap_or_default();
            assert_eq!(err.1, field, "{body}");
        }
        assert!(parse_request(b"{not json").is_err());
    }
}
