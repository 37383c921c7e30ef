//! A small YAML document tree that remembers where every node came from.
//!
//! Scalars keep their source text and style instead of being resolved to
//! numbers or booleans up front: `python_version: 3.10` stays "3.10" (a float
//! would make it 3.1), and the decoder decides per key how to read a value.
//! Aliases are expanded against a node budget and nesting is bounded, so a
//! hostile document (billion laughs, deep nesting) fails with an error instead
//! of exhausting memory or the stack. This module knows nothing of Spaces.

use super::diagnostic::{Code, Diagnostic, Position};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// The most nodes a document may expand to (aliases included).
pub const MAX_NODES: usize = 20_000;
/// The deepest nesting accepted.
pub const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    Plain,
    Quoted,
    Block,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Scalar {
    pub text: String,
    pub style: Style,
    /// The standard tag's suffix (`str`, `int`, ...), if one was written.
    pub tag: Option<String>,
}

impl Scalar {
    /// A YAML null: an empty value, `~` or `null` written plainly.
    pub fn is_null(&self) -> bool {
        self.style == Style::Plain
            && self.tag.is_none()
            && matches!(self.text.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Scalar(Scalar),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub pos: Position,
}

impl Node {
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.kind {
            Kind::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        self.as_scalar().is_some_and(Scalar::is_null)
    }

    /// A short name of the node's shape, for messages.
    pub fn shape(&self) -> &'static str {
        match &self.kind {
            Kind::Scalar(s) if s.is_null() => "an empty value",
            Kind::Scalar(_) => "a single value",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }
}

/// Parses one YAML document. `line_offset` is added to every line so that
/// positions refer to the README file rather than the cut-out block.
/// An empty document yields `None`.
pub fn parse(text: &str, line_offset: usize) -> Result<Option<Node>, Diagnostic> {
    let mut builder = Builder {
        line_offset,
        stack: Vec::new(),
        anchors: Vec::new(),
        documents: Vec::new(),
        nodes: 0,
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(err) = parser.load(&mut builder, true) {
        let pos = builder.position(err.marker());
        return Err(syntax_error(err.info(), pos));
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    let mut docs = builder.documents.into_iter();
    let first = docs.next();
    if let Some(second) = docs.next() {
        return Err(Diagnostic::error(
            Code::YamlSyntax,
            second.pos,
            "the configuration block holds more than one YAML document",
        )
        .with_hint("remove the '...' or '---' line inside the configuration"));
    }
    Ok(first.filter(|n| !n.is_null()))
}

/// Turns the parser's terse messages into sentences with a hint.
fn syntax_error(info: &str, pos: Position) -> Diagnostic {
    let (message, hint) = if info.contains("mapping values are not allowed") {
        (
            "a value contains ': ' where YAML does not allow it",
            Some("put the value in quotes, e.g. title: \"Demo: part 1\""),
        )
    } else if info.contains("simple key expect ':'") || info.contains("could not find expected ':'")
    {
        (
            "this line is neither 'key: value' nor part of the value above",
            Some("indent the continuation lines of a multi-line value, or add the missing ':'"),
        )
    } else if info.contains("tab") {
        (
            "YAML does not allow tabs for indentation",
            Some("indent with spaces"),
        )
    } else if info.contains("did not find expected key") || info.contains("block mapping") {
        (
            "the indentation of this line does not fit the lines above",
            Some("align keys of the same mapping at the same column"),
        )
    } else if info.contains("while scanning a quoted scalar") || info.contains("quoted scalar") {
        (
            "a quoted value is never closed",
            Some("close the quote on the same value, or escape quotes inside it"),
        )
    } else if info.contains("anchor") || info.contains("alias") {
        ("an alias refers to an unknown anchor", None)
    } else {
        ("the configuration is not valid YAML", None)
    };
    let mut d = Diagnostic::error(Code::YamlSyntax, pos, format!("{message} ({info})"));
    if let Some(h) = hint {
        d = d.with_hint(h);
    }
    d
}

enum Frame {
    Seq {
        anchor: usize,
        pos: Position,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        pos: Position,
        entries: Vec<(Node, Node)>,
        key: Option<Node>,
    },
}

struct Builder {
    line_offset: usize,
    stack: Vec<Frame>,
    anchors: Vec<(usize, Node)>,
    documents: Vec<Node>,
    nodes: usize,
    error: Option<Diagnostic>,
}

impl Builder {
    fn position(&self, mark: &Marker) -> Position {
        // The scanner counts lines from 1 and columns from 0.
        Position::new(mark.line() + self.line_offset, mark.col() + 1)
    }

    fn fail(&mut self, d: Diagnostic) {
        if self.error.is_none() {
            self.error = Some(d);
        }
    }

    fn count(&mut self, n: usize, pos: Position) -> bool {
        self.nodes += n;
        if self.nodes > MAX_NODES {
            self.fail(
                Diagnostic::error(
                    Code::TooLarge,
                    pos,
                    format!("the configuration expands to more than {MAX_NODES} values"),
                )
                .with_hint("write the values out instead of repeating aliases"),
            );
            return false;
        }
        true
    }

    fn check_tag(&mut self, tag: Option<Tag>, pos: Position) -> Option<String> {
        let tag = tag?;
        let standard = ["str", "int", "float", "bool", "null", "seq", "map"];
        if tag.handle == "tag:yaml.org,2002:" && standard.contains(&tag.suffix.as_str()) {
            return Some(tag.suffix);
        }
        self.fail(
            Diagnostic::error(
                Code::UnsupportedTag,
                pos,
                format!("the YAML tag '{}{}' is not allowed", tag.handle, tag.suffix),
            )
            .with_hint("remove the tag; only plain values, lists and mappings are read"),
        );
        None
    }

    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.push((anchor, node.clone()));
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                None => *key = Some(node),
                Some(k) => entries.push((k, node)),
            },
        }
    }
}

fn size_of(node: &Node) -> usize {
    match &node.kind {
        Kind::Scalar(_) => 1,
        Kind::Seq(items) => 1 + items.iter().map(size_of).sum::<usize>(),
        Kind::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| size_of(k) + size_of(v))
                .sum::<usize>()
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = self.position(&mark);
        let is_seq = matches!(ev, Event::SequenceStart(..));
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                if !self.count(1, pos) {
                    return;
                }
                let tag = self.check_tag(tag, pos);
                let style = match style {
                    TScalarStyle::Plain => Style::Plain,
                    TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted => Style::Quoted,
                    TScalarStyle::Literal | TScalarStyle::Folded => Style::Block,
                };
                let node = Node {
                    kind: Kind::Scalar(Scalar { text, style, tag }),
                    pos,
                };
                self.push_node(node, anchor);
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag) => {
                self.check_tag(tag, pos);
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(Diagnostic::error(
                        Code::TooLarge,
                        pos,
                        format!("the configuration is nested deeper than {MAX_DEPTH} levels"),
                    ));
                    return;
                }
                if !self.count(1, pos) {
                    return;
                }
                self.stack.push(if is_seq {
                    Frame::Seq {
                        anchor,
                        pos,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        anchor,
                        pos,
                        entries: Vec::new(),
                        key: None,
                    }
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (node, anchor) = match self.stack.pop() {
                    Some(Frame::Seq { anchor, pos, items }) => (
                        Node {
                            kind: Kind::Seq(items),
                            pos,
                        },
                        anchor,
                    ),
                    Some(Frame::Map {
                        anchor,
                        pos,
                        entries,
                        ..
                    }) => (
                        Node {
                            kind: Kind::Map(entries),
                            pos,
                        },
                        anchor,
                    ),
                    None => return,
                };
                self.push_node(node, anchor);
            }
            Event::Alias(id) => {
                let Some(node) = self
                    .anchors
                    .iter()
                    .rev()
                    .find(|(a, _)| *a == id)
                    .map(|(_, n)| n.clone())
                else {
                    self.fail(syntax_error("unknown anchor", pos));
                    return;
                };
                if !self.count(size_of(&node), pos) {
                    return;
                }
                // The alias's own position is the more useful one in messages.
                let node = Node { pos, ..node };
                self.push_node(node, 0);
            }
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scalar_text(node: &Node) -> &str {
        &node.as_scalar().unwrap().text
    }

    fn map(node: &Node) -> &[(Node, Node)] {
        match &node.kind {
            Kind::Map(e) => e,
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn keeps_the_source_text_of_numbers() {
        let doc = parse("python_version: 3.10\napp_port: \"7860\"\n", 0)
            .unwrap()
            .unwrap();
        let entries = map(&doc);
        assert_eq!(scalar_text(&entries[0].1), "3.10");
        assert_eq!(entries[0].1.as_scalar().unwrap().style, Style::Plain);
        assert_eq!(scalar_text(&entries[1].1), "7860");
        assert_eq!(entries[1].1.as_scalar().unwrap().style, Style::Quoted);
    }

    #[test]
    fn positions_are_one_based_and_offset() {
        let doc = parse("title: x\nsdk: gradio\n", 1).unwrap().unwrap();
        let entries = map(&doc);
        assert_eq!(entries[1].0.pos, Position::new(3, 1));
        assert_eq!(entries[1].1.pos, Position::new(3, 6));
    }

    #[test]
    fn empty_document_is_none() {
        assert_eq!(parse("", 0).unwrap(), None);
        assert_eq!(parse("# only a comment\n", 0).unwrap(), None);
    }

    #[test]
    fn expands_aliases() {
        let doc = parse("a: &x [1, 2]\nb: *x\n", 0).unwrap().unwrap();
        let entries = map(&doc);
        assert_eq!(entries[0].1.kind, entries[1].1.kind);
        assert_eq!(entries[1].1.pos, Position::new(2, 4));
    }

    #[test]
    fn refuses_a_billion_laughs() {
        let mut doc = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (prev, name) in ["a", "b", "c", "d", "e", "f"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g"])
        {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            doc.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let err = parse(&doc, 0).unwrap_err();
        assert_eq!(err.code, Code::TooLarge);
    }

    #[test]
    fn refuses_deep_nesting() {
        let doc = format!("a: {}{}\n", "[".repeat(200), "]".repeat(200));
        assert_eq!(parse(&doc, 0).unwrap_err().code, Code::TooLarge);
    }

    #[test]
    fn refuses_custom_tags() {
        let err = parse("a: !!python/object:os.system x\n", 0).unwrap_err();
        assert_eq!(err.code, Code::UnsupportedTag);
        assert!(parse("a: !!str 3.10\n", 0).is_ok());
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse("title: a: b\n", 2).unwrap_err();
        assert_eq!(err.code, Code::YamlSyntax);
        assert_eq!(err.position.line, 3);
        assert!(err.hint.is_some());
    }
}
