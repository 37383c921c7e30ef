//! Shared output helpers: diagnostics with optional color, JSON printing.

use crate::config::{Diagnostic, Severity};
use std::io::{IsTerminal, Write};

/// Whether to color output: only on a terminal, and never with NO_COLOR set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color(pub bool);

impl Color {
    pub fn detect() -> Self {
        let wanted = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Color(wanted && std::io::stderr().is_terminal())
    }
}

/// Prints diagnostics as `file:line:col: error[code]: message` lines.
pub fn diagnostics(err: &mut dyn Write, file: &str, diags: &[Diagnostic], color: Color) {
    for d in diags {
        let text = d.display(file).to_string();
        let line = if color.0 {
            let code = match d.severity {
                Severity::Error => "31",
                Severity::Warning => "33",
            };
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text
        };
        let _ = writeln!(err, "{line}");
    }
}

/// Pretty JSON followed by a newline.
pub fn json(out: &mut dyn Write, value: &serde_json::Value) {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
    let _ = writeln!(out, "{text}");
}
