//! Writing a [`SpaceConfig`] back out as README front matter.
//!
//! The output is block-style YAML with every string double-quoted, so that
//! reading it back gives exactly the same configuration (the property tests
//! hold this). Nested values below the first level are written in flow
//! style, which is valid YAML and keeps the emitter small.

use super::model::SpaceConfig;
use serde_json::Value;
use std::fmt::Write;

/// The configuration as YAML lines, without the `---` fences.
pub fn to_yaml(config: &SpaceConfig) -> String {
    let value = serde_json::to_value(config).unwrap_or(Value::Null);
    let mut out = String::new();
    if let Value::Object(map) = value {
        for (key, v) in &map {
            write_key(&mut out, key);
            out.push(':');
            match v {
                Value::Array(items) if !items.is_empty() => {
                    out.push('\n');
                    for item in items {
                        out.push_str("  - ");
                        write_flow(&mut out, item);
                        out.push('\n');
                    }
                }
                Value::Object(fields)
                    if !fields.is_empty() && fields.keys().all(|k| fits_implicit(k)) =>
                {
                    out.push('\n');
                    for (k, item) in fields {
                        out.push_str("  ");
                        write_key(&mut out, k);
                        out.push_str(": ");
                        write_flow(&mut out, item);
                        out.push('\n');
                    }
                }
                other => {
                    out.push(' ');
                    write_flow(&mut out, other);
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// The configuration as a README header: fences included.
pub fn to_front_matter(config: &SpaceConfig) -> String {
    format!("---\n{}---\n", to_yaml(config))
}

/// YAML limits implicit keys to 1024 characters; escapes can make a
/// written key much longer than the key itself.
fn fits_implicit(key: &str) -> bool {
    let mut written = String::new();
    write_string(&mut written, key);
    written.chars().count() <= 1000
}

/// A mapping key; one too long for an implicit key is made explicit (`? `),
/// which is only used in flow mappings (block ones fall back to flow).
fn write_key(out: &mut String, key: &str) {
    if !fits_implicit(key) {
        out.push_str("? ");
    }
    write_string(out, key);
}

fn write_flow(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_flow(out, item);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (k, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_key(out, k);
                out.push_str(": ");
                write_flow(out, item);
            }
            out.push('}');
        }
    }
}

/// A string YAML reads back as the same string when written plainly: simple
/// characters only, and nothing that would resolve to a number, boolean or
/// null (so "3.10" and "true" stay quoted).
fn is_plain_safe(s: &str) -> bool {
    const RESERVED: &[&str] = &["true", "false", "null", "yes", "no", "on", "off", "y", "n"];
    s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '_')
        && !s.ends_with(' ')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '.' | '/' | '-' | '+'))
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str())
}

/// A string: plain where that reads back the same, else double-quoted with
/// anything not plainly printable escaped.
fn write_string(out: &mut String, s: &str) {
    if is_plain_safe(s) {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}
