//! Small readers over the spanned YAML tree that report what they cannot read and go on.

use crate::diagnostics::{Sink, did_you_mean};
use crate::text::{ITALIAN, Text};
use crate::yaml::{Kind, Node, Span};

/// The keys of a map, checked against the keys allowed there.
pub struct Fields<'n> {
    pub span: Span,
    entries: Vec<(&'n str, &'n Node)>,
}

impl<'n> Fields<'n> {
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| *value)
    }

    /// The value of a key that must be there; reports it missing otherwise.
    pub fn require(&self, sink: &mut Sink, key: &str, what: &str) -> Option<&'n Node> {
        let value = self.get(key);
        if value.is_none() {
            sink.error_hint(
                self.span,
                format!("{what} has no `{key}`"),
                format!("add `{key}:`"),
            );
        }
        value
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// Reads a map whose keys must be among `allowed`; unknown and repeated keys are reported.
pub fn fields<'n>(
    sink: &mut Sink,
    node: &'n Node,
    what: &str,
    allowed: &[&str],
) -> Option<Fields<'n>> {
    let Some(entries) = node.as_map() else {
        sink.error_hint(
            node.span,
            format!(
                "{what} should be a map of `key: value` lines, but it is {}",
                node.describe()
            ),
            format!("expected keys: {}", allowed.join(", ")),
        );
        return None;
    };
    let mut fields = Fields {
        span: node.span,
        entries: Vec::with_capacity(entries.len()),
    };
    for (key, value) in entries {
        let Some(name) = key.as_str() else {
            sink.error(key.span, format!("a key of {what} is not a word"));
            continue;
        };
        if !allowed.contains(&name) {
            let hint = did_you_mean(name, allowed.iter().copied())
                .unwrap_or_else(|| format!("the keys allowed here are: {}", allowed.join(", ")));
            sink.error_hint(key.span, format!("unknown key `{name}` in {what}"), hint);
            continue;
        }
        if fields.has(name) {
            sink.error(key.span, format!("`{name}` is written twice in {what}"));
            continue;
        }
        fields.entries.push((name, value));
    }
    Some(fields)
}

/// A single value as text; reports lists, maps and nulls.
pub fn string(sink: &mut Sink, node: &Node, what: &str) -> Option<String> {
    match &node.kind {
        Kind::Scalar { text, .. } if !node.is_null() => Some(text.clone()),
        _ => {
            sink.error(
                node.span,
                format!(
                    "{what} should be a single value, but it is {}",
                    node.describe()
                ),
            );
            None
        }
    }
}

/// A single value or null (unknown).
pub fn optional_string(sink: &mut Sink, node: Option<&Node>, what: &str) -> Option<String> {
    let node = node?;
    if node.is_null() {
        return None;
    }
    string(sink, node, what).filter(|text| !text.trim().is_empty())
}

/// A list of single values; a single value alone is read as a list of one.
pub fn strings(sink: &mut Sink, node: &Node, what: &str) -> Vec<(String, Span)> {
    if node.is_null() {
        return Vec::new();
    }
    match &node.kind {
        Kind::Seq(items) => items
            .iter()
            .filter_map(|item| string(sink, item, what).map(|text| (text, item.span)))
            .collect(),
        Kind::Scalar { text, .. } => vec![(text.clone(), node.span)],
        Kind::Map(_) => {
            sink.error(
                node.span,
                format!("{what} should be a list like [a, b], but it is a map of keys"),
            );
            Vec::new()
        }
    }
}

/// A list of nodes; reports anything else.
pub fn list<'n>(sink: &mut Sink, node: &'n Node, what: &str) -> &'n [Node] {
    if node.is_null() {
        return &[];
    }
    match node.as_seq() {
        Some(items) => items,
        None => {
            sink.error_hint(
                node.span,
                format!("{what} should be a list, but it is {}", node.describe()),
                "start each item on its own line with `- `",
            );
            &[]
        }
    }
}

/// A `true`/`false` field, `false` when absent; anything else is an error (and `false`).
pub fn flag(sink: &mut Sink, node: Option<&Node>, name: &str) -> bool {
    let Some(node) = node else {
        return false;
    };
    node.as_bool().unwrap_or_else(|| {
        sink.error(node.span, format!("{name} should be true or false"));
        false
    })
}

/// An identifier: lowercase letters, digits, `-` and `_` (and `.` where `dots` allows).
pub fn identifier(sink: &mut Sink, node: &Node, what: &str, dots: bool) -> Option<String> {
    let id = string(sink, node, what)?;
    let valid = !id.is_empty()
        && id.len() <= 40
        && id.chars().all(|c| {
            c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || c == '-'
                || c == '_'
                || (dots && c == '.')
        });
    if !valid {
        sink.error_hint(
            node.span,
            format!("{what} '{id}' is not a valid id"),
            format!(
                "use up to 40 lowercase letters without accents, digits, '-' and '_'{}",
                if dots { " and '.'" } else { "" }
            ),
        );
        return None;
    }
    Some(id)
}

/// A text: a plain string (Italian) or a map of languages with `it` required.
pub fn text(sink: &mut Sink, node: &Node, what: &str) -> Option<Text> {
    match &node.kind {
        Kind::Scalar { text, .. } if !node.is_null() => {
            let mut result = Text::italian(text);
            result.span = node.span;
            Some(result)
        }
        Kind::Map(entries) => {
            let mut result = Text {
                span: node.span,
                ..Text::default()
            };
            for (key, value) in entries {
                let Some(lang) = key.as_str() else {
                    sink.error(key.span, format!("a language of {what} is not a word"));
                    continue;
                };
                let valid_code =
                    (2..=3).contains(&lang.len()) && lang.chars().all(|c| c.is_ascii_lowercase());
                if !valid_code {
                    sink.error_hint(
                        key.span,
                        format!("'{lang}' is not a language code in {what}"),
                        "use two-letter codes such as it, en, ar, es, fr, uk",
                    );
                    continue;
                }
                if result.by_lang.contains_key(lang) {
                    sink.error(
                        key.span,
                        format!("language '{lang}' is written twice in {what}"),
                    );
                    continue;
                }
                if let Some(value) = string(sink, value, &format!("the '{lang}' text of {what}")) {
                    result.by_lang.insert(lang.to_string(), value);
                }
            }
            if !result.by_lang.contains_key(ITALIAN) {
                sink.error_hint(
                    node.span,
                    format!("{what} has no Italian text"),
                    "add `it: \"...\"`",
                );
                return None;
            }
            Some(result)
        }
        _ => {
            sink.error_hint(
                node.span,
                format!("{what} should be a text, but it is {}", node.describe()),
                "write \"Testo\" or { it: \"Testo\", en: \"Text\" }",
            );
            None
        }
    }
}

/// The languages a `match:` or `patterns:` map may name: those citizens write in, a
/// superset of those the bot speaks (Russian is read, never written).
pub const READ_LANGUAGES: &str = "it, en, ar, es, fr, uk, ru, ro, zh";

/// Words by language: a plain list (Italian, or mixed as older files wrote them) or a
/// map `{ it: [...], en: [...], ar: [...] }`.
pub fn by_language(
    sink: &mut Sink,
    node: &Node,
    what: &str,
) -> Vec<(String, crate::matching::Lang, Span)> {
    use crate::matching::Lang;
    match &node.kind {
        Kind::Map(entries) => {
            let mut out = Vec::new();
            let mut seen: Vec<&str> = Vec::new();
            for (key, value) in entries {
                let Some(code) = key.as_str() else {
                    sink.error(key.span, format!("a language of {what} is not a word"));
                    continue;
                };
                // A second `ro:` would silently hide the first one's lines.
                if seen.contains(&code) {
                    sink.error_hint(
                        key.span,
                        format!("language '{code}' is written twice in {what}"),
                        "put all its lines under one key",
                    );
                    continue;
                }
                seen.push(code);
                let Some(lang) = Lang::from_code(code).filter(|lang| lang.code() == code) else {
                    sink.error_hint(
                        key.span,
                        format!("'{code}' is not a language the bot reads in {what}"),
                        format!("use one of: {READ_LANGUAGES}"),
                    );
                    continue;
                };
                out.extend(
                    strings(sink, value, what)
                        .into_iter()
                        .map(|(text, span)| (text, lang, span)),
                );
            }
            out
        }
        _ => strings(sink, node, what)
            .into_iter()
            .map(|(text, span)| (text, Lang::It, span))
            .collect(),
    }
}
