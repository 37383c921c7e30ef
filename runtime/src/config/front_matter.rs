//! Finding the YAML front matter block at the top of a README.
//!
//! Handles what real READMEs contain: a UTF-8 byte order mark, CRLF or lone CR
//! line endings, trailing spaces after the fences, blank lines before the
//! opening fence, and a file that ends right after the closing `---` with no
//! newline. It only cuts the block out and keeps track of where it sits in
//! the file; it does not read the YAML.

use super::diagnostic::{Code, Diagnostic, Position};
use std::borrow::Cow;

/// The most front matter accepted, in bytes. Real headers are a few kilobytes;
/// this bounds the work a hostile README can cause.
pub const MAX_FRONT_MATTER_BYTES: usize = 64 * 1024;

/// The YAML block cut out of a README.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontMatter {
    /// The YAML text, with line endings normalized to `\n`.
    pub yaml: String,
    /// How many lines of the file come before the first YAML line; add it to a
    /// line number within `yaml` to get the line in the file.
    pub line_offset: usize,
    /// The 1-based line of the opening `---`.
    pub open_line: usize,
    /// The README text after the closing fence (normalized line endings).
    pub body: String,
}

/// Decodes README bytes to text: strips a UTF-8 BOM, refuses other encodings
/// with the position of the first bad byte, and normalizes line endings
/// (borrowing the input when there is nothing to change).
pub fn decode_text(bytes: &[u8]) -> Result<Cow<'_, str>, Diagnostic> {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return Err(Diagnostic::error(
            Code::InvalidEncoding,
            Position::START,
            "the file is UTF-16 text",
        )
        .with_hint("save README.md as UTF-8"));
    }
    let bytes = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]).unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) if text.contains('\r') => {
            Ok(Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n")))
        }
        Ok(text) => Ok(Cow::Borrowed(text)),
        Err(err) => {
            let good = &bytes[..err.valid_up_to()];
            // The prefix is valid UTF-8 by construction.
            let good = std::str::from_utf8(good).unwrap_or_default();
            let line = good.matches('\n').count() + 1;
            let column = good.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            Err(Diagnostic::error(
                Code::InvalidEncoding,
                Position::new(line, column),
                "the file is not valid UTF-8 text",
            )
            .with_hint("save README.md as UTF-8"))
        }
    }
}

fn is_fence(line: &str) -> bool {
    line.trim_end_matches([' ', '\t']) == "---"
}

/// Lines of `text` with the byte offset where each starts.
fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut start = 0;
    std::iter::from_fn(move || {
        if start > text.len() {
            return None;
        }
        let rest = &text[start..];
        let (line, next) = match rest.find('\n') {
            Some(i) => (&rest[..i], start + i + 1),
            None => (rest, text.len() + 1),
        };
        let item = (start, line);
        start = next;
        Some(item)
    })
}

/// Cuts the front matter out of normalized README text.
pub fn split(text: &str) -> Result<FrontMatter, Diagnostic> {
    let mut lines = lines_with_offsets(text).enumerate();
    let (open_line, yaml_start) = loop {
        match lines.next() {
            Some((_, (_, line))) if line.trim().is_empty() => continue,
            Some((i, (at, line))) if is_fence(line) => break (i + 1, at + line.len() + 1),
            Some((i, _)) => return Err(no_front_matter(Position::new(i + 1, 1))),
            None => return Err(no_front_matter(Position::START)),
        }
    };
    for (i, (at, line)) in lines {
        if is_fence(line) {
            let body_start = (at + line.len() + 1).min(text.len());
            return Ok(FrontMatter {
                yaml: text[yaml_start.min(at)..at].to_owned(),
                line_offset: open_line,
                open_line,
                body: text[body_start..].to_owned(),
            });
        }
        if at + line.len() - yaml_start.min(at) > MAX_FRONT_MATTER_BYTES {
            return Err(Diagnostic::error(
                Code::TooLarge,
                Position::new(i + 1, 1),
                format!(
                    "the configuration block is larger than {} KiB",
                    MAX_FRONT_MATTER_BYTES / 1024
                ),
            )
            .with_hint("keep only configuration between the two '---' lines"));
        }
    }
    Err(Diagnostic::error(
        Code::UnterminatedFrontMatter,
        Position::new(open_line, 1),
        "the configuration block opened here is never closed",
    )
    .with_hint("end the configuration with a line containing only '---'"))
}

fn no_front_matter(at: Position) -> Diagnostic {
    Diagnostic::error(
        Code::NoFrontMatter,
        at,
        "README.md has no configuration block at the top",
    )
    .with_hint(
        "start README.md with a line '---', then the configuration (at least 'sdk: gradio'), \
         then another '---'",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(text: &str) -> FrontMatter {
        split(&decode_text(text.as_bytes()).unwrap()).unwrap()
    }

    #[test]
    fn cuts_a_plain_block() {
        let fm = cut("---\nsdk: gradio\n---\n# Title\n");
        assert_eq!(fm.yaml, "sdk: gradio\n");
        assert_eq!(fm.line_offset, 1);
        assert_eq!(fm.body, "# Title\n");
    }

    #[test]
    fn accepts_crlf_bom_and_no_final_newline() {
        let fm = cut("\u{feff}---\r\nsdk: docker\r\napp_port: 8080\r\n---");
        assert_eq!(fm.yaml, "sdk: docker\napp_port: 8080\n");
        assert_eq!(fm.body, "");
    }

    #[test]
    fn accepts_trailing_spaces_on_fences_and_leading_blank_lines() {
        let fm = cut("\n\n--- \nsdk: static\n---\t\nbody");
        assert_eq!(fm.yaml, "sdk: static\n");
        assert_eq!(fm.line_offset, 3);
        assert_eq!(fm.body, "body");
    }

    #[test]
    fn refuses_a_readme_without_a_block() {
        let err = split("# Hello\n").unwrap_err();
        assert_eq!(err.code, Code::NoFrontMatter);
        assert_eq!(err.position, Position::new(1, 1));
    }

    #[test]
    fn refuses_an_unclosed_block_at_its_opening() {
        let err = split("\n---\nsdk: gradio\n").unwrap_err();
        assert_eq!(err.code, Code::UnterminatedFrontMatter);
        assert_eq!(err.position, Position::new(2, 1));
    }

    #[test]
    fn points_at_the_first_invalid_byte() {
        let err = decode_text(b"---\nti\xfftle: x\n---\n").unwrap_err();
        assert_eq!(err.code, Code::InvalidEncoding);
        assert_eq!(err.position, Position::new(2, 3));
    }

    #[test]
    fn refuses_a_giant_block() {
        let big = format!("---\n{}---\n", "tags: [x]\n".repeat(10_000));
        assert_eq!(split(&big).unwrap_err().code, Code::TooLarge);
    }
}
