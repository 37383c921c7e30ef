//! Diagnostics: what is wrong with a Space's configuration, where, and what to do.
//!
//! Every problem found while reading a README is collected as a [`Diagnostic`]
//! (never only the first), with a 1-based line and column in the README file
//! itself, a stable machine-readable code, a plain sentence and, where one
//! helps, a hint. This module only describes and formats; it finds nothing.

use serde::Serialize;
use std::fmt;

/// How bad a diagnostic is. Errors make the configuration invalid (the Space
/// shows CONFIG_ERROR); warnings are reported and the Space still runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// A stable identifier for each kind of problem, for scripts and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    /// The file is not valid UTF-8 text.
    InvalidEncoding,
    /// The README does not start with a `---` line.
    NoFrontMatter,
    /// The opening `---` has no closing `---`.
    UnterminatedFrontMatter,
    /// The front matter exceeds the size or node limits.
    TooLarge,
    /// The YAML itself cannot be read.
    YamlSyntax,
    /// The front matter is not a mapping of keys to values.
    NotAMapping,
    /// A key appears twice.
    DuplicateKey,
    /// A YAML tag other than the standard ones (`!!str`, `!!int`, ...).
    UnsupportedTag,
    /// `sdk` is missing.
    MissingSdk,
    /// A value has the wrong shape (a list where a string is expected, ...).
    InvalidType,
    /// A value is not one of the accepted choices or has the wrong form.
    InvalidValue,
    /// A number is outside its allowed range.
    OutOfRange,
    /// A path is absolute, escapes the repository or is otherwise unusable.
    InvalidPath,
    /// A model, dataset or space id is not a valid repository id.
    InvalidRepoId,
    /// `custom_headers` names a header that is not on the allowlist.
    HeaderNotAllowed,
    /// A key spaceport does not know; kept and passed along.
    UnknownKey,
    /// A key that has no effect with this configuration.
    IgnoredKey,
}

impl Code {
    /// The kebab-case name, as printed and serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::InvalidEncoding => "invalid-encoding",
            Code::NoFrontMatter => "no-front-matter",
            Code::UnterminatedFrontMatter => "unterminated-front-matter",
            Code::TooLarge => "too-large",
            Code::YamlSyntax => "yaml-syntax",
            Code::NotAMapping => "not-a-mapping",
            Code::DuplicateKey => "duplicate-key",
            Code::UnsupportedTag => "unsupported-tag",
            Code::MissingSdk => "missing-sdk",
            Code::InvalidType => "invalid-type",
            Code::InvalidValue => "invalid-value",
            Code::OutOfRange => "out-of-range",
            Code::InvalidPath => "invalid-path",
            Code::InvalidRepoId => "invalid-repo-id",
            Code::HeaderNotAllowed => "header-not-allowed",
            Code::UnknownKey => "unknown-key",
            Code::IgnoredKey => "ignored-key",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A position in the README file: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub const START: Position = Position { line: 1, column: 1 };

    pub fn new(line: usize, column: usize) -> Self {
        Position { line, column }
    }
}

/// One problem with a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub code: Code,
    #[serde(flatten)]
    pub position: Position,
    /// The top-level key concerned, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// A plain sentence saying what is wrong.
    pub message: String,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, position: Position, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            code,
            position,
            key: None,
            message: escape_controls(message.into()),
            hint: None,
        }
    }

    pub fn warning(code: Code, position: Position, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, position, message)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(escape_controls(hint.into()));
        self
    }

    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Formats as `FILE:LINE:COL: error[code]: message` plus an indented hint line.
    pub fn display<'a>(&'a self, file: &'a str) -> impl fmt::Display + 'a {
        DisplayIn { diag: self, file }
    }
}

struct DisplayIn<'a> {
    diag: &'a Diagnostic,
    file: &'a str,
}

impl fmt::Display for DisplayIn<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.diag;
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {}[{}]: {}",
            self.file, d.position.line, d.position.column, level, d.code, d.message
        )?;
        if let Some(hint) = &d.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Messages quote what the user wrote; control characters in it (line
/// breaks, terminal escapes) are shown escaped so that a message stays one
/// line and cannot forge output or recolor a terminal.
fn escape_controls(s: String) -> String {
    if !s.chars().any(char::is_control) {
        return s;
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The closest candidate to `word` by edit distance, if it is close enough to
/// be a likely typo ("gradoi" -> "gradio", "colorfrom" -> "colorFrom").
/// Case is ignored. Candidates whose length alone rules them out are skipped,
/// which keeps this cheap enough to run on every unknown key.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let word: Vec<char> = word.chars().map(|c| c.to_ascii_lowercase()).collect();
    let mut row = Vec::new();
    let mut best: Option<(usize, &'a str)> = None;
    for c in candidates {
        let limit = (c.len() / 3).max(1);
        if word.len().abs_diff(c.chars().count()) > limit {
            continue;
        }
        let d = edit_distance(&word, c, &mut row);
        if d <= limit && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Levenshtein distance between `a` (lowercased already) and `b`, ignoring
/// ASCII case, with one reusable row.
fn edit_distance(a: &[char], b: &str, row: &mut Vec<usize>) -> usize {
    row.clear();
    row.extend(0..=a.len());
    for (j, cb) in b.chars().enumerate() {
        let cb = cb.to_ascii_lowercase();
        let mut diagonal = row[0];
        row[0] = j + 1;
        for i in 0..a.len() {
            let substitute = diagonal + usize::from(a[i] != cb);
            diagonal = row[i + 1];
            row[i + 1] = substitute.min(row[i + 1] + 1).min(row[i] + 1);
        }
    }
    row[a.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_words_only() {
        let sdks = ["gradio", "streamlit", "docker", "static"];
        assert_eq!(did_you_mean("gradoi", &sdks), Some("gradio"));
        assert_eq!(did_you_mean("Docker", &sdks), Some("docker"));
        assert_eq!(did_you_mean("flask", &sdks), None);
        assert_eq!(
            did_you_mean("colorfrom", &["colorFrom", "colorTo"]),
            Some("colorFrom")
        );
    }

    #[test]
    fn messages_never_carry_raw_control_characters() {
        let d = Diagnostic::error(
            Code::InvalidValue,
            Position::START,
            "bad 'a\r\nSet-Cookie: x\u{1b}[31m'",
        );
        assert_eq!(d.message, "bad 'a\\r\\nSet-Cookie: x\\u{1b}[31m'");
    }

    #[test]
    fn formats_like_a_compiler() {
        let d = Diagnostic::error(Code::InvalidValue, Position::new(3, 6), "bad sdk")
            .with_hint("use gradio");
        assert_eq!(
            d.display("README.md").to_string(),
            "README.md:3:6: error[invalid-value]: bad sdk\n  hint: use gradio"
        );
    }
}
