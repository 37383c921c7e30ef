//! Output of the client commands: text for people (colored only on a
//! terminal and never with NO_COLOR), JSON for scripts, one-line errors.

use std::io::{IsTerminal, Write};

use serde_json::Value;

/// The output streams and whether each may be colored.
pub struct Out<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
    pub out_color: bool,
    pub err_color: bool,
    /// Whether stderr is a terminal (progress lines redraw in place).
    pub err_tty: bool,
}

impl std::fmt::Debug for Out<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Out")
            .field("out_color", &self.out_color)
            .field("err_color", &self.err_color)
            .finish()
    }
}

fn no_color() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

impl<'a> Out<'a> {
    /// Streams that are the process's own: color follows their terminals.
    pub fn new(out: &'a mut dyn Write, err: &'a mut dyn Write) -> Self {
        let err_tty = std::io::stderr().is_terminal();
        Out {
            out,
            err,
            out_color: !no_color() && std::io::stdout().is_terminal(),
            err_color: !no_color() && err_tty,
            err_tty,
        }
    }

    /// A line on stdout.
    pub fn line(&mut self, text: &str) {
        let _ = writeln!(self.out, "{text}");
    }

    /// Pretty JSON on stdout.
    pub fn json(&mut self, value: &Value) {
        let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".into());
        let _ = writeln!(self.out, "{text}");
    }

    /// One compact JSON value per line on stdout (streams).
    pub fn json_line(&mut self, value: &Value) {
        let _ = writeln!(self.out, "{value}");
        let _ = self.out.flush();
    }

    /// A note for people on stderr (never mixed into stdout).
    pub fn note(&mut self, text: &str) {
        let _ = writeln!(self.err, "{text}");
    }

    /// `error: ...` on stderr, red on a terminal.
    pub fn error(&mut self, message: &str) {
        let one_line: String = clean(&message.replace(['\n', '\r'], " "));
        if self.err_color {
            let _ = writeln!(self.err, "\x1b[1;31merror:\x1b[0m {one_line}");
        } else {
            let _ = writeln!(self.err, "error: {one_line}");
        }
    }

    /// Text colored for stdout when allowed (`code` is an SGR code).
    pub fn paint(&self, code: &str, text: &str) -> String {
        paint(self.out_color, code, text)
    }

    /// Text colored for stderr when allowed.
    pub fn paint_err(&self, code: &str, text: &str) -> String {
        paint(self.err_color, code, text)
    }
}

/// Text from the hub (log lines, messages) made safe for a terminal: the
/// escape sequences a Space's output may carry (colors, but also cursor
/// moves, title changes, hyperlinks) and other control characters are
/// dropped; tabs stay.
pub fn clean(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' => match chars.peek() {
                // CSI: parameters and intermediates, then one final byte.
                Some('[') => {
                    chars.next();
                    for f in chars.by_ref() {
                        if ('\x40'..='\x7e').contains(&f) {
                            break;
                        }
                    }
                }
                // OSC, DCS, PM, APC: up to BEL or ESC \.
                Some(']' | 'P' | '^' | '_') => {
                    chars.next();
                    while let Some(f) = chars.next() {
                        if f == '\x07' {
                            break;
                        }
                        if f == '\x1b' {
                            if chars.peek() == Some(&'\\') {
                                chars.next();
                            }
                            break;
                        }
                    }
                }
                // Two-character sequences.
                Some(_) => {
                    chars.next();
                }
                None => {}
            },
            '\t' => out.push(c),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

pub fn paint(on: bool, code: &str, text: &str) -> String {
    if on {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// The SGR color of a stage: green running, red failed, yellow otherwise.
pub fn stage_color(stage: &str) -> &'static str {
    match stage {
        "RUNNING" => "32",
        s if is_failed_stage(s) => "31",
        "PAUSED" | "SLEEPING" | "STOPPED" => "2",
        _ => "33",
    }
}

/// Stages in which a Space has failed and will not recover by itself.
pub fn is_failed_stage(stage: &str) -> bool {
    matches!(
        stage,
        "BUILD_ERROR" | "RUNTIME_ERROR" | "CONFIG_ERROR" | "NO_APP_FILE"
    )
}

/// Rows as aligned columns; the first row is the header.
pub fn table(rows: &[Vec<String>]) -> Vec<String> {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    rows.iter()
        .map(|r| {
            let mut line = String::new();
            for (i, cell) in r.iter().enumerate() {
                line.push_str(cell);
                if i + 1 < r.len() {
                    let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                    line.push_str(&" ".repeat(pad));
                }
            }
            line
        })
        .collect()
}

/// A string field of a JSON object, or "" when absent.
pub fn s<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key].as_str().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let lines = table(&[
            vec!["A".into(), "B".into()],
            vec!["long".into(), "x".into()],
        ]);
        assert_eq!(lines, vec!["A     B", "long  x"]);
    }
}

#[cfg(test)]
mod clean_tests {
    use super::clean;

    #[test]
    fn terminal_sequences_from_the_hub_are_dropped() {
        assert_eq!(clean("\x1b[91mERROR: x\x1b[0m"), "ERROR: x");
        assert_eq!(clean("a\x1b]0;pwned\x07b"), "ab");
        assert_eq!(
            clean("a\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\"),
            "alink"
        );
        assert_eq!(clean("x\x1b[2J\x1b[Hy\r\u{8}z\tw"), "xyz\tw");
        assert_eq!(clean("plain – ünïcode ✓"), "plain – ünïcode ✓");
        assert_eq!(clean("ends with \x1b"), "ends with ");
    }
}
