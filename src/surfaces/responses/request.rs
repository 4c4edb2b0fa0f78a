//! The Responses request, checked field by field: a wrong type or a field
//! this proxy cannot honour is a 400 naming the field. Fields it does not
//! know are kept and passed on to the upstream, as on the chat path.

use serde_json::{Map, Value};

use crate::error::ProxyError;

/// A checked `POST /v1/responses` body.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub model: Option<String>,
    /// The input as items (a string input is one user message).
    pub input: Vec<Value>,
    pub instructions: Option<String>,
    pub tools: Vec<Value>,
    pub tool_choice: Option<Value>,
    pub parallel_tool_calls: Option<bool>,
    pub max_output_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub metadata: Map<String, Value>,
    pub store: bool,
    pub previous_response_id: Option<String>,
    pub stream: bool,
    /// `text`: the output format (and verbosity).
    pub text: Option<Value>,
    pub reasoning: Option<Value>,
    pub truncation: Option<String>,
    pub user: Option<String>,
    pub top_logprobs: Option<u64>,
    /// `include` asked for output-text logprobs.
    pub logprobs: bool,
    /// Fields this proxy does not read, passed on to the upstream.
    pub rest: Map<String, Value>,
}

/// Fields with a meaning this proxy cannot give them over chat completions.
const REFUSED: [(&str, &str); 5] = [
    ("background", "background responses are not supported by this proxy; leave background unset or false"),
    ("conversation", "the Conversations API is not supported by this proxy; continue with previous_response_id"),
    ("prompt", "stored prompt templates are not supported by this proxy; send instructions and input"),
    ("max_tool_calls", "max_tool_calls is not supported; the operator's tool.max_rounds limits the tool rounds"),
    ("context_management", "context_management is not supported by this proxy"),
];

fn bad(message: impl Into<String>, param: &str) -> ProxyError {
    ProxyError::bad_request(message, Some(param))
}

fn take_string(obj: &mut Map<String, Value>, key: &str) -> Result<Option<String>, ProxyError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(format!("'{key}' must be a string"), key)),
    }
}

fn take_bool(obj: &mut Map<String, Value>, key: &str) -> Result<Option<bool>, ProxyError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(b)),
        Some(_) => Err(bad(format!("'{key}' must be a boolean"), key)),
    }
}

fn take_number(obj: &mut Map<String, Value>, key: &str) -> Result<Option<f64>, ProxyError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_f64()),
        Some(_) => Err(bad(format!("'{key}' must be a number"), key)),
    }
}

fn take_count(obj: &mut Map<String, Value>, key: &str) -> Result<Option<u64>, ProxyError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) if n.as_u64().is_some() => Ok(n.as_u64()),
        Some(_) => Err(bad(format!("'{key}' must be a non-negative integer"), key)),
    }
}

fn take_object(obj: &mut Map<String, Value>, key: &str) -> Result<Option<Value>, ProxyError> {
    match obj.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v)),
        Some(_) => Err(bad(format!("'{key}' must be an object"), key)),
    }
}

/// Checks `body` and takes it apart.
pub fn parse(body: &[u8]) -> Result<Request, ProxyError> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ProxyError::bad_request(format!("request body is not valid JSON: {e}"), None))?;
    let Value::Object(mut obj) = value else {
        return Err(ProxyError::bad_request("request body must be a JSON object", None));
    };
    for (key, why) in REFUSED {
        let set = match obj.get(key) {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(_) => true,
        };
        if set {
            return Err(bad(why, key));
        }
        obj.remove(key);
    }
    let input = match obj.remove("input") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(text)) => vec![serde_json::json!({"type": "message", "role": "user", "content": text})],
        Some(Value::Array(items)) => items,
        Some(_) => return Err(bad("'input' must be a string or an array of input items", "input")),
    };
    for (i, item) in input.iter().enumerate() {
        if !item.is_object() {
            return Err(bad(format!("'input[{i}]' must be an object"), &format!("input[{i}]")));
        }
    }
    let tools = match obj.remove("tools") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(t)) => t,
        Some(_) => return Err(bad("'tools' must be an array", "tools")),
    };
    let metadata = match take_object(&mut obj, "metadata")? {
        Some(Value::Object(m)) => m,
        _ => Map::new(),
    };
    if metadata.len() > 16 || metadata.values().any(|v| !v.is_string()) {
        return Err(bad("'metadata' holds at most 16 string values", "metadata"));
    }
    let logprobs = match obj.remove("include") {
        None | Some(Value::Null) => false,
        Some(Value::Array(values)) if values.iter().all(Value::is_string) => {
            values.iter().any(|v| v == "message.output_text.logprobs")
        }
        Some(_) => return Err(bad("'include' must be an array of strings", "include")),
    };
    // `stream_options.include_obfuscation`: this proxy never pads its events.
    obj.remove("stream_options");
    let truncation = take_string(&mut obj, "truncation")?;
    if let Some(t) = truncation.as_deref().filter(|t| !matches!(*t, "auto" | "disabled")) {
        return Err(bad(format!("'truncation' must be auto or disabled, not {t:?}"), "truncation"));
    }
    Ok(Request {
        model: take_string(&mut obj, "model")?,
        input,
        instructions: take_string(&mut obj, "instructions")?,
        tools,
        tool_choice: obj.remove("tool_choice").filter(|v| !v.is_null()),
        parallel_tool_calls: take_bool(&mut obj, "parallel_tool_calls")?,
        max_output_tokens: take_count(&mut obj, "max_output_tokens")?,
        temperature: take_number(&mut obj, "temperature")?,
        top_p: take_number(&mut obj, "top_p")?,
        metadata,
        store: take_bool(&mut obj, "store")?.unwrap_or(true),
        previous_response_id: take_string(&mut obj, "previous_response_id")?,
        stream: take_bool(&mut obj, "stream")?.unwrap_or(false),
        text: take_object(&mut obj, "text")?,
        reasoning: take_object(&mut obj, "reasoning")?,
        truncation,
        user: take_string(&mut obj, "user")?,
        top_logprobs: take_count(&mut obj, "top_logprobs")?,
        logprobs,
        rest: obj,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_value(v: Value) -> Result<Request, ProxyError> {
        parse(v.to_string().as_bytes())
    }

    fn param(e: ProxyError) -> Option<String> {
        match e {
            ProxyError::BadRequest { param, .. } => param,
            _ => None,
        }
    }

    #[test]
    fn a_string_input_is_one_user_message_and_unknown_fields_are_kept() {
        let r = parse_value(json!({"model": "m", "input": "hi", "service_tier": "flex", "seed": 3}))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.input, [json!({"type": "message", "role": "user", "content": "hi"})]);
        assert!(r.store, "store defaults to true");
        assert_eq!(r.rest.get("service_tier"), Some(&json!("flex")));
        assert_eq!(r.rest.get("seed"), Some(&json!(3)));
        assert!(!r.rest.contains_key("input"));
    }

    #[test]
    fn fields_that_cannot_be_honoured_are_refused_by_name() {
        for (field, value) in [("background", json!(true)), ("conversation", json!("conv_1")), ("prompt", json!({}))] {
            let e = parse_value(json!({"input": "x", field: value})).err().unwrap_or_else(|| panic!("{field}"));
            assert_eq!(param(e).as_deref(), Some(field));
        }
        assert!(parse_value(json!({"input": "x", "background": false})).is_ok());
        let e = parse_value(json!({"input": 3})).err();
        assert_eq!(e.and_then(param).as_deref(), Some("input"));
        let e = parse_value(json!({"input": "x", "temperature": "hot"})).err();
        assert_eq!(e.and_then(param).as_deref(), Some("temperature"));
        let e = parse_value(json!({"input": ["x"]})).err();
        assert_eq!(e.and_then(param).as_deref(), Some("input[0]"));
    }
}
