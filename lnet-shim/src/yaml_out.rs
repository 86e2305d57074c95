//! A small YAML writer that lays documents out the way lnetctl does: four
//! spaces per mapping level, top-level sequences dashed four spaces in and
//! nested ones two, and scalars bare unless YAML would misread them.

use std::fmt::{Display, Write};

/// A document node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    /// A scalar, already rendered (quoted if it needed to be).
    Scalar(String),
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
}

/// A number, boolean or other value printed as is.
pub(crate) fn raw(v: impl Display) -> Node {
    Node::Scalar(v.to_string())
}

/// A string, quoted only when bare text would not read back as the same string.
pub(crate) fn text(s: impl AsRef<str>) -> Node {
    let s = s.as_ref();
    Node::Scalar(if needs_quotes(s) { quote(s) } else { s.to_string() })
}

/// A string always in double quotes (lnetctl quotes CPT lists).
pub(crate) fn quoted(s: impl AsRef<str>) -> Node {
    Node::Scalar(quote(s.as_ref()))
}

/// Builds a mapping from (key, node) pairs.
pub(crate) fn map<const N: usize>(entries: [(&str, Node); N]) -> Node {
    Node::Map(entries.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

fn needs_quotes(s: &str) -> bool {
    let Some(first) = s.chars().next() else { return true };
    if s != s.trim() || s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return true;
    }
    if "-?:,[]{}#&*!|>'\"%@`".contains(first) {
        return true;
    }
    if s.chars().any(|c| c.is_control()) {
        return true;
    }
    // Bare text that a reader would take for another type.
    let lower = s.to_ascii_lowercase();
    matches!(lower.as_str(), "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~")
        || s.parse::<f64>().is_ok()
        || lower.starts_with("0x")
        || lower.starts_with("0o")
        || lower.starts_with(".inf")
        || lower == ".nan"
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Renders a top-level mapping.
pub(crate) fn render(doc: &[(String, Node)]) -> String {
    let mut out = String::new();
    emit_map(&mut out, doc, 0, false);
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// Writes `entries` with keys at column `col`; with `dashed` the first key
/// shares its line with the sequence dash two columns to the left.
fn emit_map(out: &mut String, entries: &[(String, Node)], col: usize, dashed: bool) {
    for (i, (key, value)) in entries.iter().enumerate() {
        if i == 0 && dashed {
            pad(out, col - 2);
            out.push_str("- ");
        } else {
            pad(out, col);
        }
        out.push_str(&key_text(key));
        out.push(':');
        match value {
            Node::Scalar(s) => {
                out.push(' ');
                out.push_str(s);
                out.push('\n');
            }
            Node::Map(m) if m.is_empty() => out.push_str(" {}\n"),
            Node::Seq(s) if s.is_empty() => out.push_str(" []\n"),
            Node::Map(m) => {
                out.push('\n');
                emit_map(out, m, col + 4, false);
            }
            Node::Seq(items) => {
                out.push('\n');
                let dash = if col == 0 { 4 } else { col + 2 };
                for item in items {
                    match item {
                        Node::Map(m) if !m.is_empty() => emit_map(out, m, dash + 2, true),
                        Node::Map(_) => {
                            pad(out, dash);
                            out.push_str("- {}\n");
                        }
                        Node::Scalar(s) => {
                            pad(out, dash);
                            out.push_str("- ");
                            out.push_str(s);
                            out.push('\n');
                        }
                        // lnetctl never nests a sequence directly in one.
                        Node::Seq(_) => {
                            pad(out, dash);
                            out.push_str("- []\n");
                        }
                    }
                }
            }
        }
    }
}

fn key_text(key: &str) -> String {
    // lnetctl keys such as `local NI(s)` and `Multi-Rail` are fine bare.
    if needs_quotes(key) && key.parse::<u64>().is_err() { quote(key) } else { key.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_lnetctl() {
        let doc = vec![(
            "net".to_string(),
            Node::Seq(vec![map([
                ("net type", raw("tcp")),
                (
                    "local NI(s)",
                    Node::Seq(vec![map([
                        ("nid", text("10.0.0.1@tcp")),
                        ("status", text("up")),
                        ("interfaces", map([("0", text("eth0"))])),
                        ("CPT", quoted("[0]")),
                    ])]),
                ),
            ])]),
        )];
        assert_eq!(
            render(&doc),
            "net:\n    - net type: tcp\n      local NI(s):\n        - nid: 10.0.0.1@tcp\n          status: up\n          \
             interfaces:\n              0: eth0\n          CPT: \"[0]\"\n"
        );
    }

    #[test]
    fn quotes_only_when_needed() {
        for (s, want) in [
            ("eth0", "eth0"),
            ("0@lo", "0@lo"),
            ("o2ib connect failed: refused", "\"o2ib connect failed: refused\""),
            ("", "\"\""),
            ("true", "\"true\""),
            ("42", "\"42\""),
            ("say \"hi\"\n", "\"say \\\"hi\\\"\\n\""),
            ("-x", "\"-x\""),
            ("a #b", "\"a #b\""),
        ] {
            assert_eq!(text(s), Node::Scalar(want.to_string()), "{s:?}");
        }
    }
}
