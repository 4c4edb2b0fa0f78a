//! The "prompt" tool mode's pure logic, for models without function calling: the tool catalog
//! rendered into the system prompt, what counts as a call in the model's reply (found, as the
//! reply streams or whole, by [`super::scan`]), and the message that carries a result back.
//! No I/O: the tool loop owns the rounds.

use std::ops::Range;

use serde_json::{Map, Value};

use super::scan::CallScanner;

/// A tool as the prompt shows it.
pub struct PromptTool<'a> {
    pub name: &'a str,
    pub description: &'a str,
    pub schema: &'a Value,
}

const PROMPT_HEAD: &str = "You have access to the tools listed below. \
Use a tool only when it helps you answer the user.\n\n# Tools\n";

const PROMPT_RULES: &str = "\n# How to call a tool\n\n\
To call a tool, reply with only a JSON object in exactly this format, with nothing before or after it:\n\
{\"tool\": \"<tool name>\", \"arguments\": {<arguments matching the tool's schema>}}\n\n\
- Call one tool at a time. The tool's result will come back to you in a following message; \
then call another tool or answer.\n\
- When no tool is needed, reply to the user normally, without any tool JSON.\n\
- Use only the tool names listed above.\n";

/// The instructions and the catalog, to prepend to the client's own system message (or to send as
/// the system message when the client has none); empty when there are no tools.
///
/// Deterministic, because upstream prompt caches key on these bytes: tools are listed sorted by
/// name whatever order they come in, and each schema is compact JSON.
pub fn render_system_prompt(tools: &[PromptTool<'_>]) -> String {
    if tools.is_empty() {
        return String::new();
    }
    let mut sorted: Vec<&PromptTool<'_>> = tools.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(b.name));
    let mut out = String::from(PROMPT_HEAD);
    for tool in sorted {
        let description = match tool.description.trim() {
            "" => "(no description)",
            text => text,
        };
        out.push_str(&format!("\n## {}\n{}\nArguments (JSON schema): {}\n", tool.name, description, tool.schema));
    }
    out.push_str(PROMPT_RULES);
    out
}

/// A tool call found in a reply.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectedCall {
    pub name: String,
    pub arguments: Map<String, Value>,
}

/// Finds the first tool call in a complete reply (the rules: [`super::scan`]).
pub fn detect_tool_call(text: &str, is_known: &(dyn Fn(&str) -> bool + Sync)) -> Option<DetectedCall> {
    locate_tool_call(text, is_known).map(|(_, call)| call)
}

/// Finds the first tool call in a complete reply, with the byte range of its JSON object in `text`.
pub fn locate_tool_call(text: &str, is_known: &(dyn Fn(&str) -> bool + Sync)) -> Option<(Range<usize>, DetectedCall)> {
    CallScanner::scan_whole(text, is_known).1.map(|found| (found.span, found.call))
}

/// The call a parsed JSON value stands for, if it is one: `accept` is given
/// the name and whether it came under a `"tool"` key.
pub(super) fn as_call(value: Value, accept: &dyn Fn(&str, bool) -> bool) -> Option<DetectedCall> {
    let Value::Object(mut object) = value else { return None };
    let (name, tool_key) = match object.get("tool") {
        Some(tool) => (tool.as_str()?, true),
        None => {
            if object.keys().any(|key| key != "name" && key != "arguments") {
                return None;
            }
            (object.get("name")?.as_str()?, false)
        }
    };
    if !accept(name, tool_key) {
        return None;
    }
    let name = name.to_owned();
    let arguments = arguments_of(object.remove("arguments"))?;
    Some(DetectedCall { name, arguments })
}

fn arguments_of(arguments: Option<Value>) -> Option<Map<String, Value>> {
    match arguments {
        None | Some(Value::Null) => Some(Map::new()),
        Some(Value::Object(map)) => Some(map),
        // Models trained on OpenAI's wire format send the arguments as a JSON string.
        Some(Value::String(text)) if text.trim().is_empty() => Some(Map::new()),
        Some(Value::String(text)) => match serde_json::from_str(&text) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        },
        Some(_) => None,
    }
}

/// The user-role message that carries a tool's result back to the model in prompt mode.
pub fn tool_result_message(name: &str, text: &str, is_error: bool) -> String {
    let outcome = if is_error { "failed" } else { "returned" };
    format!(
        "Tool `{name}` {outcome}:\n{text}\n\n\
         To call another tool, reply with only its JSON object in the same format; otherwise answer the user."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn known(name: &str) -> bool {
        matches!(name, "echo" | "add" | "search")
    }

    fn detect(text: &str) -> Option<DetectedCall> {
        detect_tool_call(text, &known)
    }

    fn call(name: &str, arguments: Value) -> Option<DetectedCall> {
        let Value::Object(arguments) = arguments else { panic!("arguments must be an object") };
        Some(DetectedCall { name: name.to_owned(), arguments })
    }

    const ECHO_HI: &str = r#"{"tool":"echo","arguments":{"text":"hi"}}"#;

    #[test]
    fn detect_tool_call_table() {
        let echo_hi = call("echo", json!({"text": "hi"}));
        let no_args = call("echo", json!({}));
        let cases: Vec<(&str, &str, Option<DetectedCall>)> = vec![
            ("bare", r#"{"tool": "echo", "arguments": {"text": "hi"}}"#, echo_hi.clone()),
            (
                "nested arguments",
                r#"{"tool":"search","arguments":{"filter":{"range":{"from":1,"to":2}},"tags":["a","b"]}}"#,
                call("search", json!({"filter": {"range": {"from": 1, "to": 2}}, "tags": ["a", "b"]})),
            ),
            (
                "braces and escapes in strings",
                r#"{"tool":"echo","arguments":{"text":"a } b \" {"}}"#,
                call("echo", json!({"text": "a } b \" {"})),
            ),
            ("name alias", r#"{"name": "echo", "arguments": {"text": "hi"}}"#, echo_hi.clone()),
            ("arguments absent", r#"{"tool": "echo"}"#, no_args.clone()),
            ("arguments null", r#"{"tool": "echo", "arguments": null}"#, no_args.clone()),
            ("arguments as a JSON string", r#"{"tool":"echo","arguments":"{\"text\": \"hi\"}"}"#, echo_hi.clone()),
            ("arguments as a blank string", r#"{"tool":"echo","arguments":" "}"#, no_args),
            ("arguments a number", r#"{"tool":"echo","arguments":5}"#, None),
            ("arguments a string of non-object", r#"{"tool":"echo","arguments":"[1]"}"#, None),
            ("an unknown tool opening the reply", r#"{"tool": "rm_rf", "arguments": {}}"#, call("rm_rf", json!({}))),
            ("an unknown tool after prose", r#"Try {"tool": "rm_rf", "arguments": {}}"#, None),
            ("tool not a string", r#"{"tool": 7, "arguments": {}}"#, None),
            ("data the user asked for", r#"{"name": "Alice", "age": 30}"#, None),
            ("data whose name is a tool", r#"{"name": "echo", "age": 30}"#, None),
            ("data wrapping a call", r#"{"example": {"tool": "echo", "arguments": {}}}"#, None),
            ("truncated", r#"{"tool": "echo", "arguments": {"text": "hi""#, None),
            ("truncated in a string", r#"{"tool": "echo", "arguments": {"text": "h"#, None),
            ("json array", r#"[1, 2, {"name": "Alice"}]"#, None),
            ("plain answer", "The answer is 42.", None),
            ("empty", "", None),
        ];
        for (what, text, expected) in cases {
            assert_eq!(detect(text), expected, "case {what:?}: {text}");
        }
        // The same call amid other text.
        for (what, before, after) in [
            ("json fence", "```json\n", "\n```"),
            ("bare fence", "```\n", "\n```"),
            ("prose around", "Let me check.\n", "\nOne moment."),
            ("two calls", "", r#" {"tool":"add","arguments":{"a":1}}"#),
            ("array of calls gives the first", "[", r#",{"tool":"add"}]"#),
            ("unbalanced prose brace first", "Sets look like {a, b. ", ""),
            ("prose quote and brace first", "He said \"hi {there\". ", ""),
            ("code braces first", "fn f() { g() }\n", ""),
            ("unicode prose", "Voilà — ça marche 🎉 ", " ✓"),
        ] {
            let text = format!("{before}{ECHO_HI}{after}");
            assert_eq!(detect(&text), echo_hi, "case {what:?}: {text}");
        }
    }

    #[test]
    fn locate_tool_call_gives_the_span_of_the_object() {
        let text = "Checking. {\"tool\":\"echo\"} done";
        let (span, _) = locate_tool_call(text, &known).unwrap_or_else(|| panic!("no call in {text}"));
        assert_eq!(&text[span], "{\"tool\":\"echo\"}");
    }

    #[test]
    fn system_prompt_is_deterministic_and_lists_every_tool() {
        let echo_schema = json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]});
        let add_schema = json!({"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}});
        let echo = PromptTool { name: "echo", description: "Echoes the text back.", schema: &echo_schema };
        let add = PromptTool { name: "add", description: "Adds a and b.", schema: &add_schema };
        let prompt = render_system_prompt(&[echo, add]);
        let echo = PromptTool { name: "echo", description: "Echoes the text back.", schema: &echo_schema };
        let add = PromptTool { name: "add", description: "Adds a and b.", schema: &add_schema };
        assert_eq!(prompt, render_system_prompt(&[add, echo]), "the order of the tools must not matter");
        for needle in [
            "## echo\n",
            "## add\n",
            "Echoes the text back.",
            "Adds a and b.",
            &echo_schema.to_string(),
            &add_schema.to_string(),
            r#"{"tool": "<tool name>", "arguments": {"#,
            "one tool at a time",
            "following message",
            "reply to the user normally",
        ] {
            assert!(prompt.contains(needle), "prompt lacks {needle:?}:\n{prompt}");
        }
        assert!(!echo_schema.to_string().contains(' '), "the schema must be compact JSON");
        assert_eq!(render_system_prompt(&[]), "");
    }

    #[test]
    fn tool_result_message_names_the_tool_and_the_outcome() {
        let ok = tool_result_message("echo", "hi", false);
        assert!(ok.starts_with("Tool `echo` returned:\nhi\n"), "{ok}");
        let failed = tool_result_message("echo", "boom", true);
        assert!(failed.starts_with("Tool `echo` failed:\nboom\n"), "{failed}");
        assert!(failed.contains("same format") && failed.contains("answer the user"), "{failed}");
    }

    proptest! {
        #[test]
        fn never_panics_on_any_text(text in any::<String>()) {
            let _ = detect(&text);
        }

        #[test]
        fn never_panics_on_brace_heavy_text(text in r#"[{}\[\]":,\\ aé\n`]{0,300}"#) {
            let _ = detect(&text);
        }

        #[test]
        fn finds_a_call_anywhere_in_prose_without_braces(
            prose in "[^{}]{0,200}",
            cut in any::<prop::sample::Index>(),
            arguments in prop::collection::btree_map("[a-z]{1,8}", any::<String>(), 0..4),
        ) {
            let arguments: Map<String, Value> = arguments.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            let call_json = json!({"tool": "echo", "arguments": arguments}).to_string();
            let boundaries: Vec<usize> = prose.char_indices().map(|(i, _)| i).chain([prose.len()]).collect();
            let at = boundaries[cut.index(boundaries.len())];
            let text = format!("{}{}{}", &prose[..at], call_json, &prose[at..]);
            prop_assert_eq!(detect(&text), Some(DetectedCall { name: "echo".to_owned(), arguments }));
        }
    }
}
