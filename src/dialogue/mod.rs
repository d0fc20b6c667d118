//! The dialogue files operators write, read into a checked, immutable [`Bundle`].
//!
//! [`load`] reads `bot.yaml`, `flows/*.yaml`, `directory.yaml`, `places.yaml` and
//! `tests/*.yaml`, and returns everything it understood together with every problem
//! it found, each with its file, line and column. It never panics and never stops at
//! the first mistake. See `DIALOGUE_FORMAT.md` and `dialogues/README.md`.
//!
//! This module does no I/O beyond reading the folder it is given, and knows nothing
//! of channels or storage.

mod check;
pub mod graph;
mod load;
pub mod messages;
mod read;
pub mod testing;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::diagnostics::Diagnostic;
use crate::directory::hours::Schedule;
use crate::directory::{Directory, Gazetteer, Point};
use crate::matching::classifier::{ChoiceModel, DangerModel};
use crate::matching::pattern::{PatternSet, PatternText};
use crate::matching::{Index, Lang, Phrase, PhraseSet};
use crate::text::Text;
use crate::yaml::Span;

pub use check::stale_facts;
pub use load::{default_test_now, load_sources, sources_from};

/// Everything the bot knows, loaded from one dialogue folder.
#[derive(Debug, Clone, Default)]
pub struct Bundle {
    pub root: PathBuf,
    pub bot: Bot,
    pub flows: Vec<Flow>,
    pub directory: Directory,
    pub gazetteer: Gazetteer,
    pub tests: Vec<DialogueTest>,
    /// The text of every file read, by relative path, to show diagnostics in context.
    pub sources: BTreeMap<String, Arc<str>>,
    /// Every choice's and intent's phrases, indexed for matching.
    pub index: Index,
    flow_index: HashMap<String, usize>,
}

impl Bundle {
    pub fn flow(&self, id: &str) -> Option<&Flow> {
        self.flow_index.get(id).map(|&index| &self.flows[index])
    }

    pub fn step(&self, flow: &str, step: &str) -> Option<&Step> {
        self.flow(flow)?.step(step)
    }

    /// Prepares every choice's and intent's phrases for matching (after the checks: the
    /// checker clones the bundle, and the index is its largest part).
    pub(crate) fn build_matching_index(&mut self) {
        let mut index = Index::default();
        for intent in &mut self.bot.intents {
            intent.phrase_set = index.add(&intent.phrases);
        }
        for flow in &mut self.flows {
            for step in &mut flow.steps {
                if let Action::Choices { choices, .. } = &mut step.action {
                    for choice in choices {
                        choice.phrase_set = index.add_with_strong(&choice.phrases, choice.strong);
                    }
                }
            }
        }
        self.index = index;
    }

    pub(crate) fn index(&mut self) {
        self.flow_index = self
            .flows
            .iter()
            .enumerate()
            .map(|(index, flow)| (flow.id.clone(), index))
            .collect();
        for flow in &mut self.flows {
            flow.step_index = flow
                .steps
                .iter()
                .enumerate()
                .map(|(index, step)| (step.id.clone(), index))
                .collect();
        }
    }
}

/// Reads and checks a dialogue folder. The bundle is usable only when no diagnostic is
/// an error.
pub fn load(dir: &Path) -> (Bundle, Vec<Diagnostic>) {
    let sources = load_sources(dir);
    load_from(dir, sources)
}

/// Like [`load`], from files already read: (relative path, contents or read error).
pub fn load_from(
    dir: &Path,
    sources: Vec<(String, Result<String, String>)>,
) -> (Bundle, Vec<Diagnostic>) {
    let mut diagnostics = Vec::new();
    let mut bundle = load::parse_all(dir, sources, &mut diagnostics);
    bundle.index();
    check::check(&mut bundle, &mut diagnostics);
    bundle.build_matching_index();
    diagnostics.sort_by(|a, b| (&a.file, a.span, a.severity).cmp(&(&b.file, b.span, b.severity)));
    diagnostics.dedup();
    (bundle, diagnostics)
}

#[derive(Debug, Clone, PartialEq)]
pub struct Bot {
    /// The languages the bot speaks in every text; Italian first.
    pub languages: Vec<String>,
    /// Languages offered with only the welcome, the privacy notice, the emergency and
    /// the menu translated (`partial_languages:`); other texts fall back to Italian.
    pub partial_languages: Vec<String>,
    pub welcome: Target,
    pub privacy: Text,
    /// Global intents; emergency ones are checked first and also before consent.
    pub intents: Vec<Intent>,
    /// The groups of danger patterns (`emergencies:`), read in every message before
    /// anything else, in every language; the first group that matches wins.
    pub emergencies: Vec<EmergencyGroup>,
    /// Facts in directory.yaml checked longer ago than this are reported by `check`.
    pub facts_max_age_days: u32,
    /// How a danger told as a thing of the past reads (`history:`).
    pub history: History,
    /// Where "talk to a person" leads: the flow `volontario` unless bot.yaml says otherwise.
    pub human: Target,
    pub volunteer_hours: Schedule,
    /// After this many minutes an unclaimed case is announced again (Matrix issue).
    pub wait_before_reminder_minutes: u32,
    pub messages: messages::Messages,
}

impl Default for Bot {
    fn default() -> Self {
        Bot {
            languages: vec!["it".into()],
            partial_languages: Vec::new(),
            welcome: Target::default(),
            privacy: Text::default(),
            intents: Vec::new(),
            emergencies: Vec::new(),
            facts_max_age_days: 365,
            history: History::default(),
            human: Target::default(),
            volunteer_hours: Schedule::default(),
            wait_before_reminder_minutes: 10,
            messages: messages::Messages::default(),
        }
    }
}

impl Bot {
    /// Whether the bot offers this language, fully or partly.
    pub fn speaks(&self, code: &str) -> bool {
        self.languages.iter().any(|lang| lang == code)
            || self.partial_languages.iter().any(|lang| lang == code)
    }

    /// Every language offered, full ones first.
    pub fn offered_languages(&self) -> impl Iterator<Item = &String> {
        self.languages.iter().chain(&self.partial_languages)
    }

    /// The first emergency group whose patterns the text holds, outside its exceptions,
    /// or whose model reads danger in it; else a doubt when a model's reading reaches
    /// its `doubt`. `text` is `PatternText::new(raw)`: the engine reads a message once
    /// for danger and intents.
    pub fn emergency_in(&self, raw: &str, text: &PatternText) -> DangerRead<'_> {
        if self.emergencies.is_empty() || text.is_empty() {
            return DangerRead::Nothing;
        }
        // Most messages match no group: the exceptions and the history are read only
        // when one does.
        let found: Vec<Vec<(usize, usize, usize)>> = self
            .emergencies
            .iter()
            .map(|group| group.patterns.find_all(text))
            .collect();
        // A group's model reads the text once, when asked: a text its patterns did not
        // find, when no group before it has won (a danger step need not pay for it),
        // or for the doubt.
        let readings: Vec<std::cell::OnceCell<Option<f32>>> = self
            .emergencies
            .iter()
            .map(|_| Default::default())
            .collect();
        let reading = |index: usize| {
            *readings[index].get_or_init(|| {
                self.emergencies[index]
                    .examples
                    .as_ref()
                    .and_then(|examples| examples.reading(raw))
            })
        };
        let model_alarms = |index: usize| {
            found[index].is_empty()
                && self.emergencies[index]
                    .examples
                    .as_ref()
                    .is_some_and(|examples| {
                        reading(index).is_some_and(|read| read >= examples.threshold)
                    })
        };
        let doubt = || {
            self.emergencies.iter().enumerate().any(|(index, group)| {
                group
                    .examples
                    .as_ref()
                    .and_then(|examples| examples.doubt)
                    .is_some_and(|doubt| reading(index).is_some_and(|read| read >= doubt))
            })
        };
        // An exception or a `past` phrase anywhere in the message takes away the doubt
        // ("anni fa mi picchiava, adesso cerco lavoro"; "mi ammazzo di lavoro").
        let past = || {
            self.history
                .past
                .find_all(text)
                .into_iter()
                .map(|(_, from, _)| text.sentence_of(from))
                .collect::<Vec<usize>>()
        };
        // `told_away` is read only when a model is in doubt.
        let doubt_unless = |told_away: &dyn Fn() -> bool| {
            if doubt() && !told_away() {
                DangerRead::Doubt
            } else {
                DangerRead::Nothing
            }
        };
        if found.iter().all(Vec::is_empty) && !(0..found.len()).any(model_alarms) {
            return doubt_unless(&|| !self.exceptions(text).is_empty() || !past().is_empty());
        }
        let exceptions = self.exceptions(text);
        // A `past` phrase tells as history the danger of its own sentence only: "il
        // mese scorso ho prenotato; adesso ho un dolore al petto" stays an alarm.
        let past_sentences = past();
        let safe_now =
            !past_sentences.is_empty() && !self.history.safe_now.find_all(text).is_empty();
        let Some((index, group)) = self.emergencies.iter().enumerate().find(|&(index, group)| {
            let told_as_history =
                |in_the_past: bool| in_the_past && (group.past_cancels || safe_now);
            if model_alarms(index) {
                // The model read the whole message: an exception or a `past` phrase
                // anywhere in it counts.
                return exceptions.is_empty() && !told_as_history(!past_sentences.is_empty());
            }
            outside(&found[index], &exceptions).any(|(_, from, _)| {
                !told_as_history(past_sentences.contains(&text.sentence_of(from)))
            })
        }) else {
            return doubt_unless(&|| !exceptions.is_empty() || !past_sentences.is_empty());
        };
        let mut found = found;
        DangerRead::Danger(Danger {
            group,
            found: std::mem::take(&mut found[index]),
        })
    }

    /// Where the text holds an exception of any group ("mi ammazzo di lavoro" is no
    /// danger, whichever group's pattern it resembles).
    pub fn exceptions(&self, text: &PatternText) -> Vec<(usize, usize)> {
        self.emergencies
            .iter()
            .flat_map(|group| group.except.find_all(text))
            .map(|(_, from, to)| (from, to))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Intent {
    pub id: String,
    pub emergency: bool,
    pub phrases: Vec<Phrase>,
    /// Where `phrases` sit in [`Bundle::index`].
    pub phrase_set: PhraseSet,
    /// Patterns that also trigger the intent (`patterns:`), word order and every word kept.
    pub patterns: PatternSet,
    pub goto: Target,
    pub span: Span,
}

impl Intent {
    /// The words of the intent's phrases and patterns, normalised, each with whether it
    /// stands for every word it starts (`volontari*`): what a message says besides
    /// naming the intent is the rest of its words.
    pub fn words(&self) -> Vec<(String, bool)> {
        let mut words: Vec<(String, bool)> = self
            .phrases
            .iter()
            .flat_map(|phrase| &phrase.words)
            .map(|word| (word.plain.clone(), false))
            .collect();
        for index in 0..self.patterns.len() {
            let source = &self.patterns.pattern(index).source;
            for alternative in source.split(|c: char| c.is_whitespace() || c == '|' || c == '&') {
                let prefix = alternative.ends_with('*');
                let word = crate::matching::normalise(alternative.trim_matches(['*', '?']));
                if !word.is_empty() && !word.contains(' ') {
                    words.push((word, prefix));
                }
            }
        }
        words
    }
}

/// Danger told as history ("due anni fa ho avuto un infarto, ora chiedo l'invalidità",
/// "anni fa il mio ex mi picchiava, ora sto bene e vorrei fare volontariato"): a
/// message with a `past` phrase is no alarm for the groups marked `past_cancels`
/// (an illness one had), and for the others only when it also says the danger is over
/// (`safe_now`): "anni fa mi picchiava e ora è tornato" stays an alarm.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    pub past: PatternSet,
    pub safe_now: PatternSet,
}

/// A kind of danger (violence, self-harm, a child, a medical emergency): the patterns
/// that reveal it, in every language, the exceptions that do not ("la violenza in tv"),
/// and the step that gives its numbers.
#[derive(Debug, Clone)]
pub struct EmergencyGroup {
    pub id: String,
    /// The need it is recorded as (statistics, the volunteers' card).
    pub need: String,
    pub goto: Target,
    pub patterns: PatternSet,
    /// Phrases that look like danger but are not ("mi ammazzo di lavoro"): a danger
    /// match that shares a word with one, of any group, does not count.
    pub except: PatternSet,
    /// The languages the patterns are written for, as written.
    pub pattern_langs: Vec<(String, Span)>,
    /// A `history: past` phrase alone makes the message no alarm for this group.
    pub past_cancels: bool,
    /// Labelled sentences this group learns from (`examples:`), beside its patterns.
    pub examples: Option<Examples>,
    /// The areas (flows) never offered after this danger's numbers, though the message
    /// named them (`never_offer: [conflitti]`: no mediation after violence); `all`:
    /// none (a medical emergency wants the numbers alone).
    pub never_offer: Vec<(String, Span)>,
    pub span: Span,
}

/// The fewest words a text needs for an examples' model to read it.
pub const EXAMPLES_MIN_WORDS: usize = 4;

/// A model learnt from the labelled sentences of a folder: an emergency group's model
/// of danger ([`DangerModel`]) or a choices step's model of its choices ([`ChoiceModel`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Examples<M = DangerModel> {
    pub folder: String,
    /// The model's probability from which it is believed: an alarm for danger, the
    /// choice taken for a step.
    pub threshold: f32,
    /// Danger only: the probability from which, below the threshold, the danger is in
    /// doubt (`doubt:`): the bot answers as usual and adds a line with the numbers.
    pub doubt: Option<f32>,
    /// None until learnt, or when the folder has too few sentences (an error).
    pub model: Option<Arc<M>>,
    pub span: Span,
}

impl Examples<DangerModel> {
    /// What the model reads in the text: the probability of danger, or None for a text
    /// of fewer than [`EXAMPLES_MIN_WORDS`] words, which says too little for it ("torna
    /// al menu" shares its letters with "quando torna"): short danger is the patterns'
    /// to find.
    pub fn reading(&self, text: &str) -> Option<f32> {
        let model = self.model.as_ref()?;
        let normalised = crate::matching::normalise(text);
        (normalised.split(' ').count() >= EXAMPLES_MIN_WORDS)
            .then(|| model.probability_normalised(&normalised))
    }
}

impl PartialEq for EmergencyGroup {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.span == other.span
    }
}

/// What the danger check reads in a message ([`Bot::emergency_in`]).
#[derive(Debug)]
pub enum DangerRead<'b> {
    /// Danger: the numbers come first, whatever the conversation was doing.
    Danger(Danger<'b>),
    /// No danger for sure, but a model read it at least its `doubt`: the usual answer,
    /// after one line with the numbers.
    Doubt,
    Nothing,
}

/// Danger read in a message ([`Bot::emergency_in`]).
#[derive(Debug)]
pub struct Danger<'b> {
    pub group: &'b EmergencyGroup,
    /// Where the group's patterns matched, as [`PatternSet::find_all`] gives them (none
    /// when its model read the danger).
    pub found: Vec<(usize, usize, usize)>,
}

/// `never_offer: all`: no area is offered after an emergency group's numbers.
pub const NEVER_OFFER_ANY: &str = "all";

impl EmergencyGroup {
    /// Whether the need of area `flow`, named beside this danger, is not offered after
    /// its numbers.
    pub fn holds_back(&self, flow: &str) -> bool {
        self.never_offer
            .iter()
            .any(|(held, _)| held == flow || held == NEVER_OFFER_ANY)
    }

    /// The patterns of this group that match the text outside every exception span, as
    /// written (to tell an operator why a message was read as danger).
    pub fn explain_outside(&self, text: &PatternText, exceptions: &[(usize, usize)]) -> Vec<&str> {
        self.found_outside(text, exceptions)
            .into_iter()
            .map(|(index, _, _)| self.patterns.pattern(index).source.as_str())
            .collect()
    }

    /// Where this group's patterns match outside every exception span: (pattern, first
    /// word, last word).
    pub fn found_outside(
        &self,
        text: &PatternText,
        exceptions: &[(usize, usize)],
    ) -> Vec<(usize, usize, usize)> {
        outside(&self.patterns.find_all(text), exceptions).collect()
    }
}

/// The places found, (pattern, first word, last word), that share no word with an
/// exception span.
fn outside<'a>(
    found: &'a [(usize, usize, usize)],
    exceptions: &'a [(usize, usize)],
) -> impl Iterator<Item = (usize, usize, usize)> + 'a {
    found.iter().copied().filter(|&(_, from, to)| {
        !exceptions
            .iter()
            .any(|&(except_from, except_to)| except_from <= to && from <= except_to)
    })
}

/// Where a `next`, `otherwise`, `goto` or branch leads; `flow` and `step` are filled in
/// by the checker (empty when the name could not be resolved, which is an error).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Target {
    pub raw: String,
    pub span: Span,
    pub flow: String,
    pub step: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub id: String,
    pub title: Option<Text>,
    pub steps: Vec<Step>,
    /// The file it came from, relative to the dialogue folder.
    pub file: String,
    pub span: Span,
    step_index: HashMap<String, usize>,
}

impl Flow {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.step_index.get(id).map(|&index| &self.steps[index])
    }

    pub fn first_step(&self) -> Option<&Step> {
        self.steps.first()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: String,
    pub span: Span,
    /// Said when the step is entered (the question itself for `choices`).
    pub say: Option<Text>,
    pub action: Action,
    pub next: Option<Target>,
}

impl Step {
    /// What a choices step learns its choices from (`examples:`), if it does.
    pub fn choice_examples(&self) -> Option<&Examples<ChoiceModel>> {
        match &self.action {
            Action::Choices { examples, .. } => examples.as_ref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `say` alone: a message, then `next`.
    Message,
    Choices {
        choices: Vec<Choice>,
        otherwise: Option<Target>,
        /// Labelled requests the step learns its choices from (`examples:`), for what
        /// no choice's words match.
        examples: Option<Examples<ChoiceModel>>,
    },
    Ask {
        text: Text,
        save: String,
    },
    AskPlace {
        text: Text,
    },
    Suggest {
        /// A need id or a `{variable}` holding one.
        need: String,
        max: usize,
    },
    Handover {
        need: String,
        note: String,
    },
    Goto(Target),
    Branch {
        arms: Vec<(Condition, Target)>,
        otherwise: Option<Target>,
    },
    End,
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Message => "say",
            Action::Choices { .. } => "choices",
            Action::Ask { .. } => "ask",
            Action::AskPlace { .. } => "ask_place",
            Action::Suggest { .. } => "suggest",
            Action::Handover { .. } => "handover",
            Action::Goto(_) => "goto",
            Action::Branch { .. } => "branch",
            Action::End => "end",
        }
    }
}

/// A word or phrase a citizen may write for a choice, in one language.
#[derive(Debug, Clone, PartialEq)]
pub struct Synonym {
    pub text: String,
    pub lang: Lang,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    pub id: String,
    pub label: Text,
    /// Synonyms as written, with their place, for the shared-synonym check.
    pub synonyms: Vec<Synonym>,
    /// The label in every language and the synonyms, then the label's longer words
    /// alone, prepared for matching; the first `strong` are the former.
    pub phrases: Vec<Phrase>,
    /// How many of `phrases` are whole labels or synonyms (not single words of a label).
    pub strong: usize,
    /// Where `phrases` sit in [`Bundle::index`].
    pub phrase_set: PhraseSet,
    pub set: Vec<(String, String)>,
    pub next: Option<Target>,
    pub span: Span,
}

impl Choice {
    /// The choice's own texts as written: its label in every language and its
    /// synonyms (what a choices step's model learns beside the requests).
    pub fn own_texts(&self) -> impl Iterator<Item = &str> {
        self.label
            .by_lang
            .values()
            .map(String::as_str)
            .chain(self.synonyms.iter().map(|synonym| synonym.text.as_str()))
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub var: String,
    /// None: true when the variable is set at all.
    pub equals: Option<String>,
    pub span: Span,
}

/// A conversation that must keep working, run by `sportello check`.
#[derive(Debug, Clone, PartialEq)]
pub struct DialogueTest {
    pub name: String,
    pub file: String,
    pub span: Span,
    /// The citizen's interface language, as Telegram would tell it.
    pub lang: Option<String>,
    pub now: DateTime<Utc>,
    pub items: Vec<TestItem>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TestItem {
    User(String, Span),
    Location(Point, Span),
    Bot {
        contains: Vec<String>,
        not_contains: Vec<String>,
        span: Span,
    },
    Suggests(Vec<String>, Span),
    Handover(Option<String>, Span),
    Ended(Span),
}
