//! A YAML document as a tree whose every node knows its line and column.
//!
//! The dialogue loader walks this tree by hand instead of deserialising with serde, so
//! that it can report every mistake in a file at once, each at its place. Scalars keep
//! their source text: whether `112` is a number or a label depends on where it stands,
//! and that is the loader's decision, not the parser's.
//!
//! This module must never panic and never hang, whatever the bytes: it refuses anchors
//! and aliases (no "billion laughs"), documents deeper than [`MAX_DEPTH`] and files
//! larger than [`MAX_BYTES`].

use saphyr_parser::{Event, Parser, ScalarStyle};

/// Files larger than this are refused: a dialogue file is a few kilobytes.
pub const MAX_BYTES: usize = 4 * 1024 * 1024;
/// Nesting deeper than this is refused, so that no walk over the tree can overflow the stack.
pub const MAX_DEPTH: usize = 48;

/// A position in a source file, both 1-based, the column counted in characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Span {
    pub line: u32,
    pub col: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub span: Span,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar with its source text; `plain` is false when it was quoted or a block scalar.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// Why a file could not be read as YAML at all.
#[derive(Debug, Clone, PartialEq)]
pub struct SyntaxError {
    pub span: Span,
    pub message: String,
}

impl Node {
    pub fn is_null(&self) -> bool {
        matches!(&self.kind, Kind::Scalar { text, plain: true } if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The scalar's text, if this is a scalar that is not null.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } if !self.is_null() => Some(text),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match &self.kind {
            Kind::Scalar { text, plain: true } => match text.as_str() {
                "true" | "True" | "TRUE" => Some(true),
                "false" | "False" | "FALSE" => Some(false),
                _ => None,
            },
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match &self.kind {
            Kind::Scalar { text, plain: true } => {
                text.trim().parse::<f64>().ok().filter(|v| v.is_finite())
            }
            _ => None,
        }
    }

    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// A few words for messages: "a list", "a text", ...
    pub fn describe(&self) -> &'static str {
        match &self.kind {
            _ if self.is_null() => "an empty value",
            Kind::Scalar { .. } => "a single value",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a map of keys",
        }
    }
}

enum Open {
    Seq(Span, Vec<Node>),
    Map(Span, Vec<(Node, Node)>, Option<Node>),
}

/// Parses the first document of `source`. An empty file is an empty map.
pub fn parse(source: &str) -> Result<Node, SyntaxError> {
    if source.len() > MAX_BYTES {
        return Err(SyntaxError {
            span: Span { line: 1, col: 1 },
            message: format!("the file is larger than {} MiB", MAX_BYTES / 1024 / 1024),
        });
    }
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    for event in Parser::new_from_str(source) {
        let (event, span) = event.map_err(|error| SyntaxError {
            span: Span {
                line: error.marker().line() as u32,
                col: error.marker().col() as u32 + 1,
            },
            message: error.info().to_string(),
        })?;
        let at = Span {
            line: span.start.line() as u32,
            col: span.start.col() as u32 + 1,
        };
        let finished = match event {
            Event::Alias(_) => {
                return Err(SyntaxError {
                    span: at,
                    message: "aliases (*name) are not supported: write the value out".into(),
                });
            }
            Event::Scalar(text, style, anchor, _tag) => {
                if anchor != 0 {
                    return Err(anchor_error(at));
                }
                Some(Node {
                    span: at,
                    kind: Kind::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                    },
                })
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if anchor != 0 {
                    return Err(anchor_error(at));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(SyntaxError {
                        span: at,
                        message: format!(
                            "the document is nested more than {MAX_DEPTH} levels deep"
                        ),
                    });
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Open::Seq(at, Vec::new())
                } else {
                    Open::Map(at, Vec::new(), None)
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Open::Seq(span, items)) => Some(Node {
                    span,
                    kind: Kind::Seq(items),
                }),
                Some(Open::Map(span, entries, _)) => Some(Node {
                    span,
                    kind: Kind::Map(entries),
                }),
                None => None,
            },
            Event::DocumentEnd => {
                if root.is_some() {
                    break;
                }
                None
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::Nothing => {
                None
            }
        };
        if let Some(node) = finished {
            match stack.last_mut() {
                Some(Open::Seq(_, items)) => items.push(node),
                Some(Open::Map(_, entries, pending_key)) => match pending_key.take() {
                    Some(key) => entries.push((key, node)),
                    None => *pending_key = Some(node),
                },
                None => {
                    root = Some(node);
                }
            }
        }
    }
    Ok(root.filter(|node| !node.is_null()).unwrap_or(Node {
        span: Span { line: 1, col: 1 },
        kind: Kind::Map(Vec::new()),
    }))
}

fn anchor_error(span: Span) -> SyntaxError {
    SyntaxError {
        span,
        message: "anchors (&name) are not supported: write the value out".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_one_based() {
        let node = parse("a: 1\nb:\n  - x\n").unwrap();
        let entries = node.as_map().unwrap();
        assert_eq!(entries[1].0.span, Span { line: 2, col: 1 });
        let items = entries[1].1.as_seq().unwrap();
        assert_eq!(items[0].span, Span { line: 3, col: 5 });
        assert_eq!(items[0].as_str(), Some("x"));
    }

    #[test]
    fn quoted_null_is_text() {
        let node = parse("a: null\nb: 'null'\n").unwrap();
        let entries = node.as_map().unwrap();
        assert!(entries[0].1.is_null());
        assert_eq!(entries[1].1.as_str(), Some("null"));
    }

    #[test]
    fn aliases_are_refused() {
        let error = parse("a: &x [1]\nb: *x\n").unwrap_err();
        assert!(error.message.contains("anchors"), "{error:?}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let source = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse(&source).is_err());
    }
}
