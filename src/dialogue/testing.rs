//! Runs the conversations of `tests/*.yaml` through the engine, as `sportello check`
//! does. The same entry point serves the Rust tests: a script in, a transcript out.

use chrono::{DateTime, Utc};

use super::{Bundle, DialogueTest, TestItem};
use crate::engine::{self, Input, Output, State};
use crate::yaml::Span;

/// Why a dialogue test failed: the line of the test, what was expected, what the bot said.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub test: String,
    pub file: String,
    pub span: Span,
    pub expected: String,
    pub actual: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}:{}:{}: test '{}' failed",
            self.file, self.span.line, self.span.col, self.test
        )?;
        writeln!(f, "  expected: {}", self.expected)?;
        write!(f, "  the bot said:\n{}", indent(&self.actual))
    }
}

fn indent(text: &str) -> String {
    let trimmed = text.trim_end();
    if trimmed.is_empty() {
        return "    (nothing)".into();
    }
    trimmed
        .lines()
        .map(|line| format!("    {line}\n"))
        .collect::<String>()
        .trim_end()
        .to_string()
}

/// A conversation driven from a script, keeping each turn's outputs.
pub struct Conversation<'b> {
    bundle: &'b Bundle,
    pub state: State,
    pub now: DateTime<Utc>,
    pub last: Vec<Output>,
}

impl<'b> Conversation<'b> {
    pub fn new(bundle: &'b Bundle, interface_lang: Option<&str>, now: DateTime<Utc>) -> Self {
        Conversation {
            bundle,
            state: State::new(bundle, interface_lang),
            now,
            last: Vec::new(),
        }
    }

    pub fn send(&mut self, input: Input) -> &[Output] {
        let state = std::mem::replace(&mut self.state, State::new(self.bundle, None));
        let (state, outputs) = engine::step(self.bundle, state, input, self.now);
        self.state = state;
        self.last = outputs;
        &self.last
    }

    pub fn say(&mut self, text: &str) -> String {
        self.send(Input::Text(text.to_string()));
        engine::transcript(&self.last)
    }
}

pub fn run(bundle: &Bundle, test: &DialogueTest) -> Result<(), Failure> {
    let mut conversation = Conversation::new(bundle, test.lang.as_deref(), test.now);
    let fail = |span: Span, expected: String, conversation: &Conversation| Failure {
        test: test.name.clone(),
        file: test.file.clone(),
        span,
        expected,
        actual: engine::transcript(&conversation.last),
    };
    for item in &test.items {
        match item {
            TestItem::User(text, _) => {
                conversation.send(Input::Text(text.clone()));
            }
            TestItem::Location(point, _) => {
                conversation.send(Input::Location(*point));
            }
            TestItem::Bot {
                contains,
                not_contains,
                span,
            } => {
                let said = engine::transcript(&conversation.last).to_lowercase();
                for wanted in contains {
                    if !said.contains(&wanted.to_lowercase()) {
                        return Err(fail(
                            *span,
                            format!("a reply containing \"{wanted}\""),
                            &conversation,
                        ));
                    }
                }
                for unwanted in not_contains {
                    if said.contains(&unwanted.to_lowercase()) {
                        return Err(fail(
                            *span,
                            format!("a reply without \"{unwanted}\""),
                            &conversation,
                        ));
                    }
                }
            }
            TestItem::Suggests(ids, span) => {
                let suggested: Vec<&String> = conversation
                    .last
                    .iter()
                    .filter_map(|output| match output {
                        Output::Suggestions { organisations, .. } => Some(organisations),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                for id in ids {
                    if !suggested.contains(&id) {
                        let got = if suggested.is_empty() {
                            "no suggestions".to_string()
                        } else {
                            suggested
                                .iter()
                                .map(|id| id.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        };
                        return Err(fail(
                            *span,
                            format!("a suggestion of '{id}' (suggested: {got})"),
                            &conversation,
                        ));
                    }
                }
            }
            TestItem::Handover(need, span) => {
                let handover = conversation.last.iter().find_map(|output| match output {
                    Output::Handover(handover) => Some(handover),
                    _ => None,
                });
                match (handover, need) {
                    (None, _) => {
                        return Err(fail(
                            *span,
                            "a handover to a volunteer".into(),
                            &conversation,
                        ));
                    }
                    (Some(handover), Some(need)) if &handover.need != need => {
                        return Err(fail(
                            *span,
                            format!("a handover with need '{need}' (it was '{}')", handover.need),
                            &conversation,
                        ));
                    }
                    _ => {}
                }
            }
            TestItem::Ended(span) => {
                if !conversation.last.contains(&Output::Ended) {
                    return Err(fail(
                        *span,
                        "the end of the conversation".into(),
                        &conversation,
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Runs every test of the bundle; the failures, in file order.
pub fn run_all(bundle: &Bundle) -> Vec<Failure> {
    bundle
        .tests
        .iter()
        .filter_map(|test| run(bundle, test).err())
        .collect()
}
