//! The Space configuration read from a README's YAML front matter.
//!
//! `parse_readme` is the one entry point: README bytes in, a validated
//! [`SpaceConfig`] (when there is no error) and every diagnostic out. The
//! steps are separate modules: [`front_matter`] cuts the block out,
//! [`yaml`] reads it into a tree with positions, [`decode`] turns the tree
//! into typed values, [`emit`] writes a configuration back. Nothing here
//! touches the file system.

pub mod decode;
pub mod diagnostic;
pub mod emit;
pub mod front_matter;
pub mod model;
pub mod yaml;

pub use diagnostic::{Code, Diagnostic, Position, Severity};
pub use model::*;

/// The outcome of reading a README.
#[derive(Debug, Clone)]
pub struct ParsedReadme {
    /// The configuration, present only when no error was found.
    pub config: Option<SpaceConfig>,
    /// Errors and warnings, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// The README text after the front matter (the Space's description).
    pub body: String,
}

impl ParsedReadme {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| !d.is_error())
    }

    pub fn is_valid(&self) -> bool {
        self.config.is_some()
    }
}

/// Reads a README (raw bytes, any line endings, with or without a BOM).
pub fn parse_readme(bytes: &[u8]) -> ParsedReadme {
    let failed = |d: Diagnostic| ParsedReadme {
        config: None,
        diagnostics: vec![d],
        body: String::new(),
    };
    let text = match front_matter::decode_text(bytes) {
        Ok(t) => t,
        Err(d) => return failed(d),
    };
    let block = match front_matter::split(&text) {
        Ok(b) => b,
        Err(d) => return failed(d),
    };
    let root = match yaml::parse(&block.yaml, block.line_offset) {
        Ok(root) => root,
        Err(d) => {
            return ParsedReadme {
                body: block.body,
                ..failed(d)
            };
        }
    };
    let (config, diagnostics) = decode::decode(root.as_ref(), Position::new(block.open_line, 1));
    ParsedReadme {
        config,
        diagnostics,
        body: block.body,
    }
}

/// Reads only the YAML text of a front matter block (no fences).
pub fn parse_yaml(yaml_text: &str) -> ParsedReadme {
    parse_readme(format!("---\n{yaml_text}\n---\n").as_bytes())
}
