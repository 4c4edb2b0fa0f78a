//! A tool's result as the model will read it: text, with non-text content
//! described, and capped in size with head and tail kept.

use serde_json::Value;

/// What a call produced. A failed tool is data, not an error: the model gets
/// `text` either way and decides what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolOutput {
    pub text: String,
    pub is_error: bool,
}

impl ToolOutput {
    pub fn ok(text: impl Into<String>) -> Self {
        Self { text: text.into(), is_error: false }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self { text: text.into(), is_error: true }
    }
}

/// Maps MCP content blocks (as JSON) to text: text as is, resources by their
/// text or a description, images and audio by a short description (the
/// model cannot see base64 and it would only waste its context).
pub fn content_to_text(content: &[Value], structured: Option<&Value>) -> String {
    let parts: Vec<String> = content.iter().map(block_to_text).collect();
    if parts.is_empty() {
        return structured.map(Value::to_string).unwrap_or_default();
    }
    parts.join("\n")
}

fn block_to_text(block: &Value) -> String {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    match block.get("type").and_then(Value::as_str).unwrap_or("") {
        "text" => s(block, "text"),
        "image" | "audio" => {
            let kind = s(block, "type");
            let bytes = s(block, "data").len() * 3 / 4;
            format!("[{kind}: {}, about {bytes} bytes]", s(block, "mimeType"))
        }
        "resource" => {
            let r = block.get("resource").unwrap_or(&Value::Null);
            match r.get("text").and_then(Value::as_str) {
                Some(text) => format!("[resource {}]\n{text}", s(r, "uri")),
                None => format!("[resource {}: {}, binary]", s(r, "uri"), s(r, "mimeType")),
            }
        }
        "resource_link" => format!("[resource link {} ({})]", s(block, "uri"), s(block, "name")),
        _ => block.to_string(),
    }
}

/// Keeps at most `max` bytes: the head and the tail, with a marker in the
/// middle saying how much was cut. Cuts on character boundaries.
pub fn cap(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let marker_room = 64;
    let keep = max.saturating_sub(marker_room);
    let head_end = floor_boundary(&text, keep / 2);
    let tail_start = ceil_boundary(&text, text.len() - (keep - keep / 2));
    let cut = tail_start - head_end;
    format!("{}\n[… {cut} bytes cut …]\n{}", &text[..head_end], &text[tail_start..])
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_become_text() {
        let content = vec![
            json!({"type": "text", "text": "hello"}),
            json!({"type": "image", "data": "AAAA", "mimeType": "image/png"}),
            json!({"type": "resource", "resource": {"uri": "file:///a.txt", "text": "inside"}}),
        ];
        assert_eq!(
            content_to_text(&content, None),
            "hello\n[image: image/png, about 3 bytes]\n[resource file:///a.txt]\ninside"
        );
        assert_eq!(content_to_text(&[], Some(&json!({"n": 1}))), "{\"n\":1}");
    }

    #[test]
    fn cap_keeps_head_and_tail_and_says_how_much_was_cut() {
        let text: String = (0..10_000).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let out = cap(text.clone(), 1000);
        assert!(out.len() <= 1000, "{}", out.len());
        assert!(out.starts_with(&text[..100]));
        assert!(out.ends_with(&text[text.len() - 100..]));
        assert!(out.contains("bytes cut"));
        assert_eq!(cap("short".into(), 1000), "short");
    }

    #[test]
    fn cap_never_splits_a_character() {
        let text = "é".repeat(5000);
        for max in [100, 101, 333, 1000] {
            let out = cap(text.clone(), max);
            assert!(out.len() <= max);
        }
    }
}
