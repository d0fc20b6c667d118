//! Problems found in the dialogue files, each with its file, line and column, a plain
//! message and, where we can guess it, a hint. Rendered compiler-style with miette, or
//! as one line each for scripts (`file:line:col: error: message (hint)`).

use std::fmt;
use std::sync::Arc;

use crate::yaml::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file, relative to the dialogue folder (`flows/casa.yaml`).
    pub file: String,
    pub span: Span,
    pub message: String,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {severity}: {}",
            self.file, self.span.line, self.span.col, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Collects diagnostics for one file while the loader walks it.
pub struct Sink<'a> {
    pub file: &'a str,
    pub out: &'a mut Vec<Diagnostic>,
}

impl Sink<'_> {
    pub fn error(&mut self, span: Span, message: impl Into<String>) {
        self.push(Severity::Error, span, message.into(), None);
    }

    pub fn error_hint(&mut self, span: Span, message: impl Into<String>, hint: impl Into<String>) {
        self.push(Severity::Error, span, message.into(), Some(hint.into()));
    }

    pub fn warning(&mut self, span: Span, message: impl Into<String>) {
        self.push(Severity::Warning, span, message.into(), None);
    }

    pub fn warning_hint(
        &mut self,
        span: Span,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.push(Severity::Warning, span, message.into(), Some(hint.into()));
    }

    fn push(&mut self, severity: Severity, span: Span, message: String, hint: Option<String>) {
        self.out.push(Diagnostic {
            severity,
            file: self.file.to_string(),
            span,
            message,
            hint,
        });
    }
}

/// "did you mean 'fine'?" when one of `known` is close to `wrong`.
pub fn did_you_mean<'k>(wrong: &str, known: impl IntoIterator<Item = &'k str>) -> Option<String> {
    let wrong_lower = wrong.to_lowercase();
    known
        .into_iter()
        .map(|candidate| {
            let score =
                strsim::normalized_damerau_levenshtein(&wrong_lower, &candidate.to_lowercase());
            (score, candidate)
        })
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| format!("did you mean '{candidate}'?"))
}

/// A diagnostic with its source text, in the shape miette renders.
struct Rendered {
    diagnostic: Diagnostic,
    source: miette::NamedSource<Arc<str>>,
    offset: usize,
}

impl fmt::Debug for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.diagnostic, f)
    }
}

impl fmt::Display for Rendered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.diagnostic.message)
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.diagnostic
            .hint
            .as_ref()
            .map(|hint| Box::new(hint) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(miette::LabeledSpan::new(
            Some("here".into()),
            self.offset,
            1,
        ))))
    }
}

/// Byte offset of a 1-based line and character column, clamped to the text.
fn byte_offset(source: &str, span: Span) -> usize {
    let mut offset = 0;
    for (index, line) in source.split_inclusive('\n').enumerate() {
        if index + 1 == span.line as usize {
            let column = span.col.saturating_sub(1) as usize;
            let within = line
                .char_indices()
                .nth(column)
                .map(|(at, _)| at)
                .unwrap_or(line.len().saturating_sub(1));
            return offset + within;
        }
        offset += line.len();
    }
    source.len().saturating_sub(1)
}

/// Renders one diagnostic with the source line it points at, for people.
pub fn render_fancy(diagnostic: &Diagnostic, source: Option<&Arc<str>>, colour: bool) -> String {
    let Some(source) = source.filter(|source| !source.is_empty()) else {
        return format!("{diagnostic}\n");
    };
    let rendered = Rendered {
        diagnostic: diagnostic.clone(),
        offset: byte_offset(source, diagnostic.span),
        source: miette::NamedSource::new(&diagnostic.file, source.clone()),
    };
    let theme = if colour {
        miette::GraphicalTheme::unicode()
    } else {
        miette::GraphicalTheme::unicode_nocolor()
    };
    let handler = miette::GraphicalReportHandler::new_themed(theme);
    let mut out = String::new();
    if handler.render_report(&mut out, &rendered).is_err() {
        return format!("{diagnostic}\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_closest_id() {
        assert_eq!(
            did_you_mean("fien", ["fine", "bisogno"]).as_deref(),
            Some("did you mean 'fine'?")
        );
        assert_eq!(did_you_mean("xyz", ["fine", "bisogno"]), None);
    }

    #[test]
    fn fancy_rendering_names_file_line_and_column() {
        let diagnostic = Diagnostic {
            severity: Severity::Error,
            file: "flows/casa.yaml".into(),
            span: Span { line: 2, col: 7 },
            message: "unknown step 'fien'".into(),
            hint: Some("did you mean 'fine'?".into()),
        };
        let source: Arc<str> = Arc::from("flow: casa\nnext: fien\n");
        let text = render_fancy(&diagnostic, Some(&source), false);
        assert!(text.contains("flows/casa.yaml:2:7"), "{text}");
        assert!(text.contains("did you mean 'fine'?"), "{text}");
    }
}
