//! Atlassian Document Format (Jira REST v3 rich text) flattened to plain
//! text: text nodes joined, block nodes separated by newlines.

use serde_json::Value;

/// Block-level node types: each ends a line.
const BLOCKS: &[&str] = &[
    "paragraph",
    "heading",
    "blockquote",
    "codeBlock",
    "listItem",
    "rule",
    "panel",
    "tableRow",
    "mediaSingle",
    "decisionItem",
    "taskItem",
];

pub fn to_text(document: &Value) -> String {
    let mut out = String::new();
    walk(document, &mut out, 0);
    // Collapse the trailing newlines blocks leave behind.
    out.trim_end().to_owned()
}

fn walk(node: &Value, out: &mut String, depth: usize) {
    // Documents nest only so deep in practice; a hostile one must not
    // exhaust the stack.
    if depth > 64 {
        return;
    }
    match node.get("type").and_then(Value::as_str) {
        Some("text") => {
            if let Some(text) = node.get("text").and_then(Value::as_str) {
                out.push_str(text);
            }
        }
        Some("hardBreak") => out.push('\n'),
        Some("mention") | Some("emoji") => {
            if let Some(text) = node.pointer("/attrs/text").and_then(Value::as_str) {
                out.push_str(text);
            }
        }
        Some("inlineCard") | Some("blockCard") => {
            if let Some(url) = node.pointer("/attrs/url").and_then(Value::as_str) {
                out.push_str(url);
            }
        }
        kind => {
            if let Some(children) = node.get("content").and_then(Value::as_array) {
                for child in children {
                    walk(child, out, depth + 1);
                }
            }
            if kind.is_some_and(|k| BLOCKS.contains(&k)) && !out.ends_with('\n') {
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn paragraphs_become_lines_and_marks_are_dropped() {
        let doc = json!({"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [
                {"type": "text", "text": "Hello "},
                {"type": "text", "text": "world", "marks": [{"type": "strong"}]}
            ]},
            {"type": "bulletList", "content": [
                {"type": "listItem", "content": [{"type": "paragraph", "content": [{"type": "text", "text": "one"}]}]},
                {"type": "listItem", "content": [{"type": "paragraph", "content": [
                    {"type": "mention", "attrs": {"text": "@dana"}}, {"type": "hardBreak"}, {"type": "text", "text": "two"}
                ]}]}
            ]}
        ]});
        assert_eq!(to_text(&doc), "Hello world\none\n@dana\ntwo");
    }

    #[test]
    fn empty_and_odd_documents_flatten_without_panicking() {
        assert_eq!(to_text(&json!({"type": "doc", "content": []})), "");
        assert_eq!(to_text(&json!({})), "");
        assert_eq!(to_text(&json!([1, 2])), "");
        let mut deep = json!({"type": "text", "text": "x"});
        for _ in 0..200 {
            deep = json!({"type": "paragraph", "content": [deep]});
        }
        let _ = to_text(&deep);
    }
}
