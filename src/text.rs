//! A text in several languages, Italian first, with `{variable}` placeholders.

use std::collections::BTreeMap;

use crate::yaml::Span;

/// The language every text must have and every lookup falls back to.
pub const ITALIAN: &str = "it";

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Text {
    pub span: Span,
    /// Language code to text; always holds `it` once loaded without errors.
    pub by_lang: BTreeMap<String, String>,
}

impl Text {
    pub fn italian(text: &str) -> Text {
        let mut by_lang = BTreeMap::new();
        by_lang.insert(ITALIAN.to_string(), text.to_string());
        Text {
            span: Span::default(),
            by_lang,
        }
    }

    pub fn with(mut self, lang: &str, text: &str) -> Text {
        self.by_lang.insert(lang.to_string(), text.to_string());
        self
    }

    /// The text in `lang`, or in Italian when it has no translation.
    pub fn get(&self, lang: &str) -> &str {
        self.by_lang
            .get(lang)
            .or_else(|| self.by_lang.get(ITALIAN))
            .or_else(|| self.by_lang.values().next())
            .map(String::as_str)
            .unwrap_or("")
    }

    /// The text in `lang` with `{name}` replaced by the variable's value (empty if unset).
    pub fn render(&self, lang: &str, vars: &BTreeMap<String, String>) -> String {
        fill(self.get(lang), vars)
    }

    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.by_lang.values().map(String::as_str)
    }
}

/// Replaces `{name}` with `vars[name]`; an unknown name becomes empty, an unclosed brace stays.
pub fn fill(template: &str, vars: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = after[..close].trim();
                if let Some(value) = vars.get(name) {
                    out.push_str(value);
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The `{names}` a template uses.
pub fn placeholders(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                names.push(after[..close].trim().to_string());
                rest = &after[close + 1..];
            }
            None => break,
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn falls_back_to_italian_and_fills_variables() {
        let text = Text::italian("Ciao {nome}!").with("en", "Hi {nome}!");
        let mut vars = BTreeMap::new();
        vars.insert("nome".to_string(), "Ada".to_string());
        assert_eq!(text.render("en", &vars), "Hi Ada!");
        assert_eq!(text.render("ar", &vars), "Ciao Ada!");
        assert_eq!(fill("{a} {missing} {", &BTreeMap::new()), "  {");
        assert_eq!(placeholders("{need} e {place}"), vec!["need", "place"]);
    }
}
