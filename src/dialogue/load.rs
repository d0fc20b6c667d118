//! Files to model: reads every file of a dialogue folder into the types of `dialogue`
//! and `directory`, reporting every problem it meets and keeping all it understood.
//! Cross-references (does this step exist?) are the checker's job.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use super::read::{self, Fields, fields};
use super::{
    Action, Bot, Bundle, Choice, Condition, DialogueTest, EmergencyGroup, Examples, Flow, Intent,
    Step, Synonym, Target, TestItem,
};
use crate::diagnostics::{Diagnostic, Sink};
use crate::directory::hours::{self, Schedule};
use crate::directory::{
    Contacts, Directory, Fact, Gazetteer, Location, Need, Organisation, Place, PlaceKind, Point,
    Service,
};
use crate::matching::classifier::{ChoiceModel, DangerModel};
use crate::matching::pattern::{Pattern, PatternSet};
use crate::matching::{Lang, Phrase};
use crate::yaml::{self, Node, Span};

/// The folder of labelled sentences (`examples:` of an emergency group) read with the
/// dialogues.
pub const EXAMPLES_FOLDER: &str = "esempi";
/// How sure the examples' model must be to raise an alarm, unless bot.yaml says.
const DEFAULT_EXAMPLES_THRESHOLD: f32 = 0.8;
/// How sure a choices step's model must be for its choice to be taken, unless the step
/// says. Chosen by leave-one-set-out on the areas' sets before any holdout was read: at
/// 0.5 the model alone was right on 99.7% of the unseen requests it took.
const DEFAULT_CHOICE_THRESHOLD: f32 = 0.5;

/// Reads every file the bundle is made of: (path relative to `dir`, contents or error).
pub fn load_sources(dir: &Path) -> Vec<(String, Result<String, String>)> {
    let mut files = Vec::new();
    for name in ["bot.yaml", "places.yaml", "directory.yaml"] {
        let path = dir.join(name);
        if path.exists() {
            files.push((name.to_string(), read_file(&path)));
        }
    }
    for (folder, endings) in [
        ("flows", &[".yaml", ".yml"][..]),
        ("tests", &[".yaml", ".yml"][..]),
        (EXAMPLES_FOLDER, &[".tsv"][..]),
    ] {
        let Ok(entries) = std::fs::read_dir(dir.join(folder)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| endings.iter().any(|ending| name.ends_with(ending)))
            .collect();
        names.sort();
        for name in names {
            let relative = format!("{folder}/{name}");
            files.push((relative.clone(), read_file(&dir.join(&relative))));
        }
    }
    files
}

fn read_file(path: &Path) -> Result<String, String> {
    let metadata =
        std::fs::metadata(path).map_err(|error| format!("cannot read the file: {error}"))?;
    if metadata.len() > yaml::MAX_BYTES as u64 {
        return Err(format!(
            "the file is larger than {} MiB",
            yaml::MAX_BYTES / 1024 / 1024
        ));
    }
    let bytes = std::fs::read(path).map_err(|error| format!("cannot read the file: {error}"))?;
    String::from_utf8(bytes).map_err(|_| "the file is not UTF-8 text: save it as UTF-8".to_string())
}

pub fn parse_all(
    dir: &Path,
    sources: Vec<(String, Result<String, String>)>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Bundle {
    let mut bundle = Bundle {
        root: dir.to_path_buf(),
        ..Bundle::default()
    };
    let mut trees: Vec<(String, Node)> = Vec::new();
    // Tables of labelled sentences (`esempi/*.tsv`), read as text.
    let mut tables: Vec<(String, Arc<str>)> = Vec::new();
    for (file, contents) in sources {
        let mut sink = Sink {
            file: &file,
            out: diagnostics,
        };
        let start = Span { line: 1, col: 1 };
        match contents {
            Err(message) => sink.error(start, message),
            Ok(text) if file.ends_with(".tsv") => {
                let text: Arc<str> = Arc::from(text);
                tables.push((file.clone(), Arc::clone(&text)));
                bundle.sources.insert(file.clone(), text);
            }
            Ok(text) => {
                match yaml::parse(&text) {
                    Ok(tree) => trees.push((file.clone(), tree)),
                    Err(error) => {
                        let hint = syntax_hint(&error.message);
                        sink.error_hint(
                            error.span,
                            format!("this is not valid YAML: {}", error.message),
                            hint,
                        )
                    }
                }
                bundle.sources.insert(file.clone(), Arc::from(text));
            }
        }
    }
    let find = |name: &str| {
        trees
            .iter()
            .find(|(file, _)| file == name)
            .map(|(_, tree)| tree)
    };
    match find("bot.yaml") {
        Some(tree) => bundle.bot = parse_bot(&mut sink_for("bot.yaml", diagnostics), tree),
        None if !bundle.sources.contains_key("bot.yaml") => diagnostics.push(missing_file(
            "bot.yaml",
            "the folder has no bot.yaml",
            "is this the dialogues folder? bot.yaml holds the languages, the welcome and the privacy notice",
        )),
        None => {}
    }
    match find("places.yaml") {
        Some(tree) => {
            bundle.gazetteer = parse_places(&mut sink_for("places.yaml", diagnostics), tree)
        }
        None => diagnostics.push(warning_file(
            "places.yaml",
            "there is no places.yaml: the bot cannot understand where citizens live",
        )),
    }
    match find("directory.yaml") {
        Some(tree) => {
            bundle.directory = parse_directory(
                &mut sink_for("directory.yaml", diagnostics),
                tree,
                &bundle.gazetteer,
            )
        }
        None => diagnostics.push(warning_file(
            "directory.yaml",
            "there is no directory.yaml: the bot cannot suggest any place",
        )),
    }
    for (file, tree) in &trees {
        if file.starts_with("flows/") {
            if let Some(flow) = parse_flow(&mut sink_for(file, diagnostics), file, tree) {
                bundle.flows.push(flow);
            }
        } else if file.starts_with("tests/")
            && let Some(test) = parse_test(&mut sink_for(file, diagnostics), file, tree)
        {
            bundle.tests.push(test);
        }
    }
    learn_examples(&mut bundle, &tables, diagnostics);
    if bundle.flows.is_empty()
        && bundle
            .sources
            .keys()
            .all(|file| !file.starts_with("flows/"))
    {
        diagnostics.push(missing_file(
            "flows",
            "there is no flow",
            "write flows in flows/NAME.yaml",
        ));
    }
    bundle
}

/// Plain words for the parser's most common complaints.
fn syntax_hint(message: &str) -> &'static str {
    if message.contains("mapping values are not allowed") {
        "a text that contains ': ' must be in quotes: write key: \"text: more text\""
    } else if message.contains("tab") {
        "indent with spaces, not tabs"
    } else if message.contains("did not find expected")
        || message.contains("unclosed")
        || message.contains("end of stream")
    {
        "a quote or a bracket is not closed"
    } else {
        "check the indentation (spaces, not tabs) and that quotes and brackets are closed"
    }
}

fn sink_for<'a>(file: &'a str, out: &'a mut Vec<Diagnostic>) -> Sink<'a> {
    Sink { file, out }
}

fn missing_file(file: &str, message: &str, hint: &str) -> Diagnostic {
    Diagnostic {
        severity: crate::diagnostics::Severity::Error,
        file: file.into(),
        span: Span { line: 1, col: 1 },
        message: message.into(),
        hint: Some(hint.into()),
    }
}

fn warning_file(file: &str, message: &str) -> Diagnostic {
    Diagnostic {
        severity: crate::diagnostics::Severity::Warning,
        file: file.into(),
        span: Span { line: 1, col: 1 },
        message: message.into(),
        hint: None,
    }
}

fn target(sink: &mut Sink, node: &Node, what: &str) -> Option<Target> {
    let raw = read::string(sink, node, what)?;
    Some(Target {
        raw: raw.trim().to_string(),
        span: node.span,
        ..Target::default()
    })
}

/// `{ flow: x, step: y }` as a target "x.y".
fn flow_target(sink: &mut Sink, node: &Node, what: &str) -> Option<Target> {
    let fields = fields(sink, node, what, &["flow", "step"])?;
    let flow_node = fields.require(sink, "flow", what)?;
    let flow = read::string(sink, flow_node, "the flow")?;
    let step = fields
        .get("step")
        .and_then(|step| read::string(sink, step, "the step"));
    Some(Target {
        raw: match step {
            Some(step) => format!("{flow}.{step}"),
            None => flow,
        },
        span: node.span,
        ..Target::default()
    })
}

fn phrases_of<'t>(texts: impl IntoIterator<Item = (&'t str, Lang)>) -> Vec<Phrase> {
    texts
        .into_iter()
        .map(|(text, lang)| Phrase::in_lang(text, lang))
        .filter(|phrase| !phrase.is_empty())
        .collect()
}

/// The language a text of a `Text` map is in, for stemming (Italian when unknown).
fn lang_of(code: &str) -> Lang {
    Lang::from_code(code).unwrap_or(Lang::It)
}

/// The word groups of bot.yaml's `words:`: a name and a language give the words that
/// `@name` stands for in that language's patterns.
#[derive(Debug, Default)]
struct WordGroups {
    groups: std::collections::BTreeMap<String, std::collections::BTreeMap<Lang, Vec<String>>>,
}

impl WordGroups {
    /// `words: { persona: { it: [marito, compagno, lui], en: [husband, he] } }`.
    fn parse(sink: &mut Sink, node: &Node) -> WordGroups {
        let mut words = WordGroups::default();
        let Some(entries) = node.as_map() else {
            sink.error_hint(
                node.span,
                "words should be a map of groups",
                "write words: { persona: { it: [marito, compagno, lui] } }",
            );
            return words;
        };
        for (key, value) in entries {
            let Some(name) = key.as_str() else { continue };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            {
                sink.error_hint(
                    key.span,
                    format!("'{name}' is not a name for a group of words"),
                    "use lowercase letters, digits and _, like chi_fa_male",
                );
                continue;
            }
            let group = words.groups.entry(name.to_string()).or_default();
            for (word, lang, span) in read::by_language(sink, value, &format!("words {name}")) {
                if word.is_empty()
                    || word.contains(|c: char| c.is_whitespace() || "|@?".contains(c))
                {
                    sink.error_hint(
                        span,
                        format!("'{word}' in the group '{name}' is not one word"),
                        "a group lists single words (picchi* is fine); write a phrase as a pattern of its own",
                    );
                    continue;
                }
                group.entry(lang).or_default().push(word);
            }
        }
        words
    }

    /// The pattern with every `@name` replaced by its group's words in `lang`, as
    /// alternatives: "@persona mi picchi*" reads "marito|compagno|lui mi picchi*".
    fn expand(&self, pattern: &str, lang: Lang) -> Result<String, (String, String)> {
        if !pattern.contains('@') {
            return Ok(pattern.to_string());
        }
        let mut out: Vec<String> = Vec::new();
        for written in pattern.split_whitespace() {
            let (raw, maybe) = match written.strip_suffix('?') {
                Some(raw) if !raw.is_empty() => (raw, "?"),
                _ => (written, ""),
            };
            let mut parts: Vec<&str> = Vec::new();
            for part in raw.split('|') {
                let Some(name) = part.strip_prefix('@') else {
                    parts.push(part);
                    continue;
                };
                let Some(group) = self.groups.get(name) else {
                    let hint = crate::diagnostics::did_you_mean(
                        name,
                        self.groups.keys().map(String::as_str),
                    )
                    .unwrap_or_else(|| "add the group under `words:` in bot.yaml".into());
                    return Err((format!("there is no group of words '@{name}'"), hint));
                };
                let Some(list) = group.get(&lang).filter(|list| !list.is_empty()) else {
                    return Err((
                        format!("the group '@{name}' has no words in '{}'", lang.code()),
                        format!(
                            "add a line `{}: [...]` to the group under `words:`",
                            lang.code()
                        ),
                    ));
                };
                parts.extend(list.iter().map(String::as_str));
            }
            out.push(format!("{}{maybe}", parts.join("|")));
        }
        Ok(out.join(" "))
    }
}

/// Patterns by language (`patterns:` or `except:`), each checked; returns the set and
/// the languages written.
fn patterns(
    sink: &mut Sink,
    node: &Node,
    what: &str,
    words: &WordGroups,
) -> (PatternSet, Vec<(String, Span)>) {
    let mut languages: Vec<(String, Span)> = Vec::new();
    if let Some(entries) = node.as_map() {
        for (key, value) in entries {
            if let Some(code) = key.as_str()
                && !value.is_null()
            {
                languages.push((code.to_string(), key.span));
            }
        }
    }
    let mut parsed = Vec::new();
    for (text, lang, span) in read::by_language(sink, node, what) {
        let expanded = match words.expand(&text, lang) {
            Ok(expanded) => expanded,
            Err((message, hint)) => {
                sink.error_hint(span, format!("the pattern '{text}': {message}"), hint);
                continue;
            }
        };
        match Pattern::parse(&expanded) {
            Ok(pattern) => parsed.push(pattern),
            Err(error) => sink.error_hint(
                span,
                format!("the pattern '{text}' cannot be read: {}", error.message),
                error.hint,
            ),
        }
    }
    (PatternSet::new(parsed), languages)
}

fn parse_bot(sink: &mut Sink, tree: &Node) -> Bot {
    let mut bot = Bot::default();
    let Some(top) = fields(
        sink,
        tree,
        "bot.yaml",
        &[
            "languages",
            "partial_languages",
            "welcome",
            "privacy",
            "intents",
            "emergencies",
            "human",
            "volunteers",
            "messages",
            "facts_max_age_days",
            "history",
            "words",
        ],
    ) else {
        return bot;
    };
    let words = top
        .get("words")
        .map(|node| WordGroups::parse(sink, node))
        .unwrap_or_default();
    if let Some(node) = top.require(sink, "languages", "bot.yaml") {
        let languages = read::strings(sink, node, "languages");
        if languages.first().map(|(lang, _)| lang.as_str()) != Some("it") {
            sink.error_hint(
                node.span,
                "the first language must be Italian",
                "write languages: [it, en, ...]",
            );
        }
        bot.languages = languages.into_iter().map(|(lang, _)| lang).collect();
        if !bot.languages.iter().any(|lang| lang == "it") {
            bot.languages.insert(0, "it".into());
        }
    }
    if let Some(node) = top.get("partial_languages") {
        for (lang, span) in read::strings(sink, node, "partial_languages") {
            if bot.languages.contains(&lang) {
                sink.error_hint(
                    span,
                    format!("'{lang}' is both in languages and in partial_languages"),
                    "keep it in one of the two lists",
                );
            } else {
                bot.partial_languages.push(lang);
            }
        }
    }
    if let Some(node) = top.get("facts_max_age_days") {
        match node
            .as_str()
            .and_then(|text| text.trim().parse::<u32>().ok())
        {
            Some(days) if days >= 1 => bot.facts_max_age_days = days,
            _ => sink.error_hint(
                node.span,
                "facts_max_age_days should be a number of days",
                "write facts_max_age_days: 365",
            ),
        }
    }
    if let Some(node) = top.require(sink, "welcome", "bot.yaml") {
        bot.welcome = flow_target(sink, node, "welcome").unwrap_or_default();
    }
    if let Some(node) = top.require(sink, "privacy", "bot.yaml") {
        bot.privacy = read::text(sink, node, "the privacy notice").unwrap_or_default();
    }
    bot.human = match top.get("human") {
        Some(node) => flow_target(sink, node, "human").unwrap_or_default(),
        None => Target {
            raw: "volontario".into(),
            span: top.span,
            ..Target::default()
        },
    };
    if let Some(node) = top.get("intents") {
        for item in read::list(sink, node, "intents") {
            if let Some(intent) = parse_intent(sink, item, &words) {
                bot.intents.push(intent);
            }
        }
    }
    if let Some(node) = top.get("history")
        && let Some(history) = fields(sink, node, "history", &["past", "safe_now"])
    {
        if let Some(node) = history.get("past") {
            bot.history.past = patterns(sink, node, "past", &words).0;
        }
        if let Some(node) = history.get("safe_now") {
            bot.history.safe_now = patterns(sink, node, "safe_now", &words).0;
        }
    }
    if let Some(node) = top.get("emergencies") {
        for item in read::list(sink, node, "emergencies") {
            if let Some(group) = parse_emergency(sink, item, &words) {
                bot.emergencies.push(group);
            }
        }
    }
    if let Some(node) = top.get("volunteers")
        && let Some(volunteers) =
            fields(sink, node, "volunteers", &["hours", "wait_before_reminder"])
    {
        if let Some(hours) = volunteers.get("hours") {
            bot.volunteer_hours = schedule(sink, hours).unwrap_or_default();
        }
        if let Some(wait) = volunteers.get("wait_before_reminder") {
            match read::string(sink, wait, "wait_before_reminder").and_then(|text| minutes(&text)) {
                Some(minutes) => bot.wait_before_reminder_minutes = minutes,
                None => sink.error_hint(
                    wait.span,
                    "wait_before_reminder is not a duration",
                    "write minutes like 10m or hours like 1h",
                ),
            }
        }
    }
    if let Some(node) = top.get("messages")
        && let Some(entries) = node.as_map()
    {
        for (key, value) in entries {
            let Some(name) = key.as_str() else { continue };
            let Some(text) = read::text(sink, value, &format!("message `{name}`")) else {
                continue;
            };
            if !bot.messages.set(name, text) {
                let hint =
                    crate::diagnostics::did_you_mean(name, super::messages::Messages::keys())
                        .unwrap_or_else(|| {
                            "see dialogues/README.md for the list of messages".into()
                        });
                sink.error_hint(key.span, format!("unknown message `{name}`"), hint);
            }
        }
    } else if let Some(node) = top.get("messages") {
        sink.error(node.span, "messages should be a map of `name: text` lines");
    }
    bot
}

fn minutes(text: &str) -> Option<u32> {
    let text = text.trim();
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u32 = number.parse().ok()?;
    match unit.trim() {
        "" | "m" | "min" => Some(number),
        "h" => number.checked_mul(60),
        _ => None,
    }
}

fn parse_intent(sink: &mut Sink, node: &Node, words: &WordGroups) -> Option<Intent> {
    let fields = fields(
        sink,
        node,
        "an intent",
        &["id", "match", "patterns", "goto", "emergency"],
    )?;
    let id_node = fields.require(sink, "id", "the intent")?;
    let id = read::identifier(sink, id_node, "the intent id", false)?;
    let what = format!("intent '{id}'");
    let matches = match (fields.get("match"), fields.get("patterns")) {
        (Some(node), _) => read::by_language(sink, node, "match"),
        (None, Some(_)) => Vec::new(),
        (None, None) => {
            sink.error_hint(
                fields.span,
                format!("{what} has no `match`"),
                "add `match:` with the words that trigger it",
            );
            Vec::new()
        }
    };
    let (intent_patterns, _) = fields
        .get("patterns")
        .map(|node| patterns(sink, node, "patterns", words))
        .unwrap_or_default();
    let goto = fields
        .require(sink, "goto", &what)
        .and_then(|node| flow_target(sink, node, "goto"))
        .unwrap_or_default();
    let emergency = read::flag(sink, fields.get("emergency"), "emergency");
    Some(Intent {
        id,
        emergency,
        phrases: phrases_of(matches.iter().map(|(text, lang, _)| (text.as_str(), *lang))),
        phrase_set: Default::default(),
        patterns: intent_patterns,
        goto,
        span: node.span,
    })
}

fn parse_emergency(sink: &mut Sink, node: &Node, words: &WordGroups) -> Option<EmergencyGroup> {
    let fields = fields(
        sink,
        node,
        "an emergency group",
        &[
            "id",
            "need",
            "goto",
            "patterns",
            "except",
            "past_cancels",
            "examples",
            "never_offer",
        ],
    )?;
    let id_node = fields.require(sink, "id", "the emergency group")?;
    let id = read::identifier(sink, id_node, "the emergency id", false)?;
    let what = format!("emergency '{id}'");
    let need = fields
        .require(sink, "need", &what)
        .and_then(|node| read::identifier(sink, node, "the need", true))
        .unwrap_or_default();
    let goto = fields
        .require(sink, "goto", &what)
        .and_then(|node| flow_target(sink, node, "goto"))
        .unwrap_or_default();
    let examples = fields
        .get("examples")
        .and_then(|node| examples_config(sink, node, DEFAULT_EXAMPLES_THRESHOLD, 0.5, true));
    // A group that learns from examples needs no patterns of its own.
    let (group_patterns, pattern_langs) = match fields.get("patterns") {
        Some(node) => patterns(sink, node, "patterns", words),
        None => {
            if examples.is_none() {
                // Reports the missing `patterns:`.
                fields.require(sink, "patterns", &what);
            }
            Default::default()
        }
    };
    let (except, _) = fields
        .get("except")
        .map(|node| patterns(sink, node, "except", words))
        .unwrap_or_default();
    let past_cancels = read::flag(sink, fields.get("past_cancels"), "past_cancels");
    let never_offer = fields
        .get("never_offer")
        .map(|node| read::strings(sink, node, "never_offer"))
        .unwrap_or_default();
    Some(EmergencyGroup {
        id,
        need,
        goto,
        patterns: group_patterns,
        except,
        pattern_langs,
        past_cancels,
        examples,
        never_offer,
        span: node.span,
    })
}

/// `examples: { folder: esempi, threshold: 0.8 }`: where the labelled sentences are
/// and how sure the model must be (`default` when not said, at least `lowest`: a yes or
/// no of danger needs more than half; one of a dozen areas is a clear lead well below).
/// An emergency group (`danger`) may add `doubt: 0.45`, below the threshold: from there
/// the bot answers as usual and adds one line with the numbers.
fn examples_config<M>(
    sink: &mut Sink,
    node: &Node,
    default: f32,
    lowest: f64,
    danger: bool,
) -> Option<Examples<M>> {
    let keys: &[&str] = if danger {
        &["folder", "threshold", "doubt"]
    } else {
        &["folder", "threshold"]
    };
    let fields = fields(sink, node, "examples", keys)?;
    let folder = fields
        .require(sink, "folder", "examples")
        .and_then(|node| read::string(sink, node, "the examples folder"))?;
    let threshold = match fields.get("threshold") {
        None => default,
        Some(node) => match node.as_f64() {
            Some(value) if (lowest..1.0).contains(&value) => value as f32,
            _ => {
                sink.error_hint(
                    node.span,
                    format!("the threshold should be a number between {lowest} and 1"),
                    "0.8 means: believe the model when it is 80% sure; lower believes it more often, and more often wrongly",
                );
                default
            }
        },
    };
    let doubt = fields.get("doubt").and_then(|node| match node.as_f64() {
        Some(value) if value >= 0.2 && (value as f32) < threshold => Some(value as f32),
        _ => {
            sink.error_hint(
                node.span,
                format!("doubt should be a number from 0.2 up to the threshold ({threshold})"),
                "0.45 means: from 45% sure, the bot answers as usual and adds one line with the emergency numbers",
            );
            None
        }
    });
    Some(Examples {
        folder,
        threshold,
        doubt,
        model: None,
        span: node.span,
    })
}

/// The label of an ordinary sentence in the examples' files.
const ORDINARY_LABEL: &str = "no";
/// The label of danger of any kind, beside the emergency groups' ids.
const DANGER_LABEL: &str = "emergenza";
/// The fewest requests of its own a choices step's model is learnt from.
const CHOICE_EXAMPLES_MIN: usize = 10;

/// Reads the labelled sentences of each `examples.folder` (label, language and text, one
/// per line, separated by tabs) and teaches the models from them:
/// - an emergency group's model of danger: a sentence labelled with an emergency
///   group's id or `emergenza` is danger; one labelled `no`, or with the id of a choice
///   of a step that learns from examples (an ordinary request for that area), is not;
/// - a choices step's model of its choices: the sentences labelled with one of its
///   choices' ids, and each choice's label and words.
///
/// Any other label is an error (a misspelt area would silently become danger). The
/// same sentences give the same model, learnt once per process.
fn learn_examples(
    bundle: &mut Bundle,
    tables: &[(String, Arc<str>)],
    diagnostics: &mut Vec<Diagnostic>,
) {
    let choice_labels: std::collections::BTreeSet<String> = bundle
        .flows
        .iter()
        .flat_map(|flow| &flow.steps)
        .filter_map(|step| match &step.action {
            Action::Choices {
                choices,
                examples: Some(_),
                ..
            } => Some(choices),
            _ => None,
        })
        .flatten()
        .map(|choice| choice.id.clone())
        .collect();
    let danger_labels: std::collections::BTreeSet<String> = bundle
        .bot
        .emergencies
        .iter()
        .map(|group| group.id.clone())
        .chain([DANGER_LABEL.to_string()])
        .collect();
    // Each folder read once: its sentences (label, text), its mistakes reported once.
    let wanted: std::collections::BTreeSet<&str> = bundle
        .bot
        .emergencies
        .iter()
        .filter_map(|group| group.examples.as_ref())
        .map(|examples| examples.folder.as_str())
        .chain(
            bundle
                .flows
                .iter()
                .flat_map(|flow| &flow.steps)
                .filter_map(|step| step.choice_examples())
                .map(|examples| examples.folder.as_str()),
        )
        .collect();
    let folders: HashMap<String, Vec<(String, String)>> = wanted
        .into_iter()
        .map(|folder| {
            let rows =
                labelled_sentences(tables, folder, &choice_labels, &danger_labels, diagnostics);
            (folder.to_string(), rows)
        })
        .collect();
    for group in &mut bundle.bot.emergencies {
        let Some(examples) = group.examples.as_mut() else {
            continue;
        };
        let rows = &folders[&examples.folder];
        let sentences: Vec<(bool, &str)> = rows
            .iter()
            .map(|(label, sentence)| (danger_labels.contains(label), sentence.as_str()))
            .collect();
        if sentences.iter().filter(|(danger, _)| *danger).count() < 10
            || sentences.iter().filter(|(danger, _)| !*danger).count() < 10
        {
            sink_for("bot.yaml", diagnostics).error_hint(
                examples.span,
                format!(
                    "emergency '{}' has too few examples in {}: the model needs at least 10 of danger and 10 ordinary",
                    group.id, examples.folder
                ),
                "add sentences to the .tsv files of that folder",
            );
            continue;
        }
        examples.model = Some(learnt(&sentences, DangerModel::train));
    }
    for flow in &mut bundle.flows {
        for step in &mut flow.steps {
            let Action::Choices {
                choices,
                examples: Some(examples),
                ..
            } = &mut step.action
            else {
                continue;
            };
            let rows = &folders[&examples.folder];
            let ids: Vec<String> = choices.iter().map(|choice| choice.id.clone()).collect();
            let mut sentences: Vec<(&str, &str)> = rows
                .iter()
                .filter(|(label, _)| ids.contains(label))
                .map(|(label, sentence)| (label.as_str(), sentence.as_str()))
                .collect();
            if sentences.len() < CHOICE_EXAMPLES_MIN {
                sink_for(&flow.file, diagnostics).error_hint(
                    examples.span,
                    format!(
                        "step '{}' has too few examples in {}: its model needs at least {CHOICE_EXAMPLES_MIN} requests labelled with its choices' ids",
                        step.id, examples.folder
                    ),
                    format!("add sentences to the .tsv files of that folder, such as: {}<TAB>it<TAB>a request in the citizen's words", ids.first().map_or("id", String::as_str)),
                );
                continue;
            }
            // The choices' own labels and words teach it too: an operator's new word
            // reaches the model without a new request.
            for choice in choices.iter() {
                sentences.extend(choice.own_texts().map(|text| (choice.id.as_str(), text)));
            }
            examples.model = Some(learnt(&sentences, |sentences| {
                ChoiceModel::train(&ids, sentences)
            }));
        }
    }
}

/// The sentences of the `.tsv` files under `folder`, as (label, text); a line that is
/// not label, language and text, or whose label is unknown, is reported and left out.
fn labelled_sentences(
    tables: &[(String, Arc<str>)],
    folder: &str,
    choice_labels: &std::collections::BTreeSet<String>,
    danger_labels: &std::collections::BTreeSet<String>,
    diagnostics: &mut Vec<Diagnostic>,
) -> Vec<(String, String)> {
    let prefix = format!("{}/", folder.trim_end_matches('/'));
    let mut rows = Vec::new();
    for (file, text) in tables.iter().filter(|(file, _)| file.starts_with(&prefix)) {
        let mut sink = sink_for(file, diagnostics);
        // An unknown label is reported once per file, at its first line.
        let mut unknown: Vec<&str> = Vec::new();
        for (number, line) in text.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let span = Span {
                line: u32::try_from(number + 1).unwrap_or(u32::MAX),
                col: 1,
            };
            let fields: Vec<&str> = line.split('\t').collect();
            match fields[..] {
                [label, _lang, sentence] if !label.is_empty() && !sentence.trim().is_empty() => {
                    if label == ORDINARY_LABEL
                        || choice_labels.contains(label)
                        || danger_labels.contains(label)
                    {
                        rows.push((label.to_string(), sentence.to_string()));
                    } else if !unknown.contains(&label) {
                        unknown.push(label);
                        let known: Vec<&str> = [ORDINARY_LABEL]
                            .into_iter()
                            .chain(danger_labels.iter().map(String::as_str))
                            .chain(choice_labels.iter().map(String::as_str))
                            .collect();
                        sink.error_hint(
                            span,
                            format!("'{label}' is not a label the examples know (its lines are left out)"),
                            format!("use one of: {}", known.join(", ")),
                        );
                    }
                }
                _ => sink.error_hint(
                    span,
                    "this line is not label, language and sentence separated by tabs",
                    "write, with a tab between them: violenza<TAB>it<TAB>mi picchia (or no for an ordinary sentence)",
                ),
            }
        }
    }
    rows
}

/// The model of these sentences, learnt once per process: the tests and `check` load
/// the same dialogues many times.
fn learnt<T: std::hash::Hash, M: Send + Sync + 'static>(
    sentences: &[T],
    train: impl FnOnce(&[T]) -> M,
) -> Arc<M> {
    use std::any::Any;
    use std::hash::{Hash, Hasher};
    type Learnt = Vec<(u64, Arc<dyn Any + Send + Sync>)>;
    static LEARNT: std::sync::Mutex<Learnt> = std::sync::Mutex::new(Vec::new());
    let mut hasher = rustc_hash::FxHasher::default();
    std::any::type_name::<M>().hash(&mut hasher);
    sentences.hash(&mut hasher);
    let key = hasher.finish();
    let mut learnt = LEARNT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(model) = learnt
        .iter()
        .filter(|(seen, _)| *seen == key)
        .find_map(|(_, model)| Arc::clone(model).downcast::<M>().ok())
    {
        return model;
    }
    let model = Arc::new(train(sentences));
    learnt.push((key, Arc::clone(&model) as Arc<dyn Any + Send + Sync>));
    // A long-running process reloads edited dialogues: keep the last few models only.
    if learnt.len() > 8 {
        learnt.remove(0);
    }
    model
}

/// Weekly hours `{ mon-fri: ["09:00-13:00"] }`; null means unknown (None, no error).
fn schedule(sink: &mut Sink, node: &Node) -> Option<Schedule> {
    if node.is_null() {
        return None;
    }
    let Some(entries) = node.as_map() else {
        sink.error_hint(
            node.span,
            "hours should be a map of days",
            "write { mon-fri: [\"09:00-12:00\"], sat: [\"09:00-12:00\"] }",
        );
        return None;
    };
    let mut schedule = Schedule::default();
    for (key, value) in entries {
        let Some(days_text) = key.as_str() else {
            continue;
        };
        // `holidays`: the national public holidays, which are closed unless written.
        let holidays = days_text.trim() == hours::HOLIDAYS_KEY;
        let days = if holidays {
            Vec::new()
        } else {
            let Some(days) = hours::parse_days(days_text) else {
                sink.error_hint(
                    key.span,
                    format!("'{days_text}' is not a day"),
                    "use mon, tue, wed, thu, fri, sat, sun, a range like mon-fri, or holidays",
                );
                continue;
            };
            days
        };
        for (interval_text, span) in read::strings(sink, value, "the hours") {
            match hours::parse_interval(&interval_text) {
                Some(interval) => {
                    if holidays {
                        schedule.holidays.push(interval);
                    }
                    for &day in &days {
                        schedule.weekly[day].push(interval);
                    }
                }
                None => sink.error_hint(
                    span,
                    format!("'{interval_text}' is not an opening time"),
                    "write it like \"09:00-12:30\", the start before the end",
                ),
            }
        }
    }
    for day in &mut schedule.weekly {
        day.sort_unstable();
    }
    schedule.holidays.sort_unstable();
    Some(schedule)
}

fn parse_flow(sink: &mut Sink, file: &str, tree: &Node) -> Option<Flow> {
    let top = fields(sink, tree, "a flow", &["flow", "title", "steps"])?;
    let id_node = top.require(sink, "flow", "the flow file")?;
    let id = read::identifier(sink, id_node, "the flow name", false)?;
    let file_stem = file
        .trim_start_matches("flows/")
        .trim_end_matches(".yaml")
        .trim_end_matches(".yml");
    if id != file_stem {
        sink.error_hint(
            top.get("flow").map_or(top.span, |node| node.span),
            format!("the flow is called '{id}' but the file is {file}"),
            format!("rename the file to flows/{id}.yaml or write flow: {file_stem}"),
        );
    }
    let title = top
        .get("title")
        .and_then(|node| read::text(sink, node, "the title"));
    let mut steps = Vec::new();
    if let Some(node) = top.require(sink, "steps", "the flow") {
        let items = read::list(sink, node, "steps");
        if items.is_empty() {
            sink.error(node.span, format!("flow '{id}' has no steps"));
        }
        for item in items {
            if let Some(step) = parse_step(sink, item) {
                steps.push(step);
            }
        }
    }
    Some(Flow {
        id,
        title,
        steps,
        file: file.to_string(),
        span: tree.span,
        step_index: Default::default(),
    })
}

const ACTIONS: &[&str] = &[
    "choices",
    "ask",
    "ask_place",
    "suggest",
    "handover",
    "goto",
    "branch",
    "end",
];

fn parse_step(sink: &mut Sink, node: &Node) -> Option<Step> {
    let step_keys = ["id", "say", "next", "otherwise", "examples"];
    let allowed: Vec<&str> = step_keys.iter().chain(ACTIONS).copied().collect();
    let fields = fields(sink, node, "a step", &allowed)?;
    let id_node = fields.require(sink, "id", "a step")?;
    let id = read::identifier(sink, id_node, "the step id", false)?;
    let what = format!("step '{id}'");
    let say = fields
        .get("say")
        .and_then(|node| read::text(sink, node, &format!("the `say` of {what}")));
    let next = fields
        .get("next")
        .and_then(|node| target(sink, node, "next"));
    let present: Vec<&str> = ACTIONS
        .iter()
        .copied()
        .filter(|key| fields.has(key))
        .collect();
    if present.len() > 1 {
        sink.error_hint(
            node.span,
            format!("{what} does more than one thing: {}", present.join(" and ")),
            "split it into two steps, the first with `next:` to the second",
        );
    }
    let action = match present.first().copied() {
        None => {
            if say.is_none() {
                sink.error_hint(node.span, format!("{what} does nothing"), "add `say:` or one of: choices, ask, ask_place, suggest, handover, goto, branch, end");
            }
            Action::Message
        }
        Some("choices") => parse_choices(sink, &fields, &what, say.is_none()),
        Some("ask") => {
            let ask = fields.get("ask")?;
            let ask = read::fields(sink, ask, "ask", &["text", "save"])?;
            let text = ask
                .require(sink, "text", "ask")
                .and_then(|node| read::text(sink, node, "the question"));
            let save = ask
                .require(sink, "save", "ask")
                .and_then(|node| read::identifier(sink, node, "the variable", false));
            Action::Ask {
                text: text.unwrap_or_default(),
                save: save.unwrap_or_default(),
            }
        }
        Some("ask_place") => Action::AskPlace {
            text: fields
                .get("ask_place")
                .and_then(|node| read::text(sink, node, "the place question"))
                .unwrap_or_default(),
        },
        Some("suggest") => {
            let suggest = read::fields(sink, fields.get("suggest")?, "suggest", &["need", "max"])?;
            let need = suggest
                .require(sink, "need", "suggest")
                .and_then(|node| read::string(sink, node, "the need"))
                .unwrap_or_default();
            let max = match suggest.get("max") {
                None => 3,
                Some(node) => match node.as_str().and_then(|text| text.parse::<usize>().ok()) {
                    Some(max) if (1..=10).contains(&max) => max,
                    _ => {
                        sink.error_hint(
                            node.span,
                            "max should be a number from 1 to 10",
                            "3 is a good number on a phone",
                        );
                        3
                    }
                },
            };
            Action::Suggest { need, max }
        }
        Some("handover") => {
            let handover =
                read::fields(sink, fields.get("handover")?, "handover", &["need", "note"])?;
            Action::Handover {
                need: read::optional_string(sink, handover.get("need"), "the need")
                    .unwrap_or_default(),
                note: read::optional_string(sink, handover.get("note"), "the note")
                    .unwrap_or_default(),
            }
        }
        Some("goto") => Action::Goto(flow_target(sink, fields.get("goto")?, "goto")?),
        Some("branch") => parse_branch(sink, fields.get("branch")?),
        Some(_) => {
            let end = fields.get("end")?;
            match end.as_bool() {
                Some(true) => Action::End,
                _ => {
                    sink.error_hint(
                        end.span,
                        "end should be `true`",
                        "remove `end:` if the step does not close the conversation",
                    );
                    Action::Message
                }
            }
        }
    };
    for key in ["otherwise", "examples"] {
        if let Some(node) = fields.get(key)
            && !matches!(action, Action::Choices { .. })
        {
            sink.error(
                node.span,
                format!("`{key}` is only for steps with `choices`"),
            );
        }
    }
    let takes_next = matches!(
        action,
        Action::Message | Action::Ask { .. } | Action::AskPlace { .. } | Action::Suggest { .. }
    );
    if let Some(next) = &next
        && !takes_next
    {
        sink.error_hint(
            next.span,
            format!("`next` is not used by a step with `{}`", action.kind()),
            match action {
                Action::Choices { .. } => "put `next:` on each choice",
                _ => "remove it",
            },
        );
    }
    Some(Step {
        id,
        span: node.span,
        say,
        action,
        next: if takes_next { next } else { None },
    })
}

fn parse_choices(sink: &mut Sink, fields: &Fields, what: &str, no_say: bool) -> Action {
    if no_say {
        sink.error_hint(
            fields.span,
            format!("{what} has choices but no question"),
            "add `say:` with the question",
        );
    }
    let mut choices = Vec::new();
    if let Some(node) = fields.get("choices") {
        let items = read::list(sink, node, "choices");
        if items.is_empty() {
            sink.error(node.span, format!("{what} has no choices"));
        }
        for item in items {
            if let Some(choice) = parse_choice(sink, item) {
                choices.push(choice);
            }
        }
    }
    let otherwise = fields
        .get("otherwise")
        .and_then(|node| target(sink, node, "otherwise"));
    let examples = fields
        .get("examples")
        .and_then(|node| examples_config(sink, node, DEFAULT_CHOICE_THRESHOLD, 0.2, false));
    Action::Choices {
        choices,
        otherwise,
        examples,
    }
}

fn parse_choice(sink: &mut Sink, node: &Node) -> Option<Choice> {
    let fields = fields(
        sink,
        node,
        "a choice",
        &["id", "label", "match", "set", "next"],
    )?;
    let id_node = fields.require(sink, "id", "a choice")?;
    let id = read::identifier(sink, id_node, "the choice id", false)?;
    let label = fields
        .require(sink, "label", &format!("choice '{id}'"))
        .and_then(|node| read::text(sink, node, "the label"))?;
    let synonyms: Vec<Synonym> = fields
        .get("match")
        .map(|node| read::by_language(sink, node, "match"))
        .unwrap_or_default()
        .into_iter()
        .map(|(text, lang, span)| Synonym { text, lang, span })
        .collect();
    let mut set = Vec::new();
    if let Some(node) = fields.get("set") {
        match node.as_map() {
            Some(entries) => {
                for (key, value) in entries {
                    let name = read::identifier(sink, key, "the variable", false);
                    let value = read::string(sink, value, "the value");
                    if let (Some(name), Some(value)) = (name, value) {
                        set.push((name, value));
                    }
                }
            }
            None => sink.error_hint(
                node.span,
                "set should be a map",
                "write set: { need: casa.affitto }",
            ),
        }
    }
    let next = fields
        .get("next")
        .and_then(|node| target(sink, node, "next"));
    if next.is_none() {
        sink.error_hint(
            fields.span,
            format!("choice '{id}' leads nowhere"),
            "add `next:` with the step that follows",
        );
    }
    // The label in every language and the synonyms, then the label's longer words alone.
    let mut phrases = phrases_of(
        label
            .by_lang
            .iter()
            .map(|(code, text)| (text.as_str(), lang_of(code)))
            .chain(
                synonyms
                    .iter()
                    .map(|synonym| (synonym.text.as_str(), synonym.lang)),
            ),
    );
    let strong = phrases.len();
    for (code, text) in &label.by_lang {
        let phrase = Phrase::in_lang(text, lang_of(code));
        if phrase.words.len() > 1 {
            phrases.extend(
                phrase
                    .words
                    .into_iter()
                    .filter(|word| word.chars() >= 4)
                    .map(|word| Phrase { words: vec![word] }),
            );
        }
    }
    Some(Choice {
        id,
        strong,
        phrase_set: Default::default(),
        phrases,
        label,
        synonyms,
        set,
        next,
        span: node.span,
    })
}

fn parse_branch(sink: &mut Sink, node: &Node) -> Action {
    let mut arms = Vec::new();
    let mut otherwise = None;
    for item in read::list(sink, node, "branch") {
        let Some(arm) = fields(sink, item, "a branch", &["if", "next", "else"]) else {
            continue;
        };
        if let Some(else_node) = arm.get("else") {
            otherwise = target(sink, else_node, "else");
            continue;
        }
        let Some(condition_node) = arm.require(sink, "if", "a branch") else {
            continue;
        };
        let Some(condition) = fields(sink, condition_node, "the condition", &["var", "equals"])
        else {
            continue;
        };
        let var = condition
            .require(sink, "var", "the condition")
            .and_then(|node| read::identifier(sink, node, "the variable", false));
        let equals = condition
            .get("equals")
            .and_then(|node| read::string(sink, node, "equals"));
        let next = arm
            .require(sink, "next", "a branch")
            .and_then(|node| target(sink, node, "next"));
        if let (Some(var), Some(next)) = (var, next) {
            arms.push((
                Condition {
                    var,
                    equals,
                    span: condition_node.span,
                },
                next,
            ));
        }
    }
    if otherwise.is_none() {
        sink.error_hint(
            node.span,
            "the branch has no `else`",
            "add `- { else: STEP }` as its last line",
        );
    }
    Action::Branch { arms, otherwise }
}

fn parse_places(sink: &mut Sink, tree: &Node) -> Gazetteer {
    let mut gazetteer = Gazetteer::default();
    let Some(top) = fields(sink, tree, "places.yaml", &["places"]) else {
        return gazetteer;
    };
    let Some(node) = top.require(sink, "places", "places.yaml") else {
        return gazetteer;
    };
    for item in read::list(sink, node, "places") {
        let Some(place) = fields(
            sink,
            item,
            "a place",
            &[
                "id", "name", "kind", "of", "cap", "lat", "lon", "aliases", "district",
            ],
        ) else {
            continue;
        };
        let Some(id) = place
            .require(sink, "id", "a place")
            .and_then(|node| read::identifier(sink, node, "the place id", false))
        else {
            continue;
        };
        let what = format!("place '{id}'");
        let name = place
            .require(sink, "name", &what)
            .and_then(|node| read::string(sink, node, "the name"))
            .unwrap_or_else(|| id.clone());
        let kind = match place.get("kind").and_then(|node| node.as_str()) {
            Some("comune") | None => PlaceKind::Comune,
            Some("frazione") => PlaceKind::Frazione,
            Some("quartiere") => PlaceKind::Quartiere,
            Some(other) => {
                sink.error_hint(
                    place.get("kind").map_or(item.span, |node| node.span),
                    format!("'{other}' is not a kind of place"),
                    "write comune, frazione or quartiere",
                );
                PlaceKind::Comune
            }
        };
        let of = read::optional_string(sink, place.get("of"), "of");
        if kind != PlaceKind::Comune && of.is_none() {
            sink.error_hint(
                item.span,
                format!(
                    "{what} is a {} but says not of which comune",
                    kind_name(kind)
                ),
                "add `of: COMUNE_ID`",
            );
        }
        let caps: Vec<String> = place
            .get("cap")
            .map(|node| read::strings(sink, node, "cap"))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(cap, span)| {
                if cap.len() == 5 && cap.chars().all(|c| c.is_ascii_digit()) {
                    Some(cap)
                } else {
                    sink.error_hint(
                        span,
                        format!("'{cap}' is not a CAP"),
                        "a CAP has five digits: write it in quotes, \"20096\"",
                    );
                    None
                }
            })
            .collect();
        let point = point(sink, &place, &what);
        let aliases: Vec<String> = place
            .get("aliases")
            .map(|node| read::strings(sink, node, "aliases"))
            .unwrap_or_default()
            .into_iter()
            .map(|(alias, _)| alias)
            .collect();
        let in_district = place
            .get("district")
            .and_then(|node| node.as_bool())
            .unwrap_or(true);
        let phrases = phrases_of(
            std::iter::once(name.as_str())
                .chain(aliases.iter().map(String::as_str))
                .map(|text| (text, Lang::It)),
        );
        gazetteer.places.push(Place {
            id,
            name,
            kind,
            of,
            caps,
            point: point.unwrap_or(Point { lat: 0.0, lon: 0.0 }),
            aliases,
            in_district,
            phrases,
            phrase_set: Default::default(),
            span: item.span,
        });
    }
    gazetteer.build_index();
    gazetteer
}

fn kind_name(kind: PlaceKind) -> &'static str {
    match kind {
        PlaceKind::Comune => "comune",
        PlaceKind::Frazione => "frazione",
        PlaceKind::Quartiere => "quartiere",
    }
}

/// `lat` and `lon`, both numbers in range; None when absent or null.
fn point(sink: &mut Sink, fields: &Fields, what: &str) -> Option<Point> {
    let lat = fields.get("lat").filter(|node| !node.is_null());
    let lon = fields.get("lon").filter(|node| !node.is_null());
    let (lat, lon) = match (lat, lon) {
        (None, None) => return None,
        (Some(lat), Some(lon)) => (lat, lon),
        (Some(node), None) | (None, Some(node)) => {
            sink.error(node.span, format!("{what} needs both lat and lon"));
            return None;
        }
    };
    let point = Point {
        lat: lat.as_f64().unwrap_or(f64::NAN),
        lon: lon.as_f64().unwrap_or(f64::NAN),
    };
    if !point.is_valid() {
        sink.error_hint(
            lat.span,
            format!("the coordinates of {what} are not valid"),
            "write decimal degrees, like lat: 45.499, lon: 9.329",
        );
        return None;
    }
    Some(point)
}

/// A source of facts listed once under `sources:` in directory.yaml.
struct Source {
    title: String,
    checked: Option<NaiveDate>,
}

/// What the directory parser knows while it reads organisations.
struct DirectoryContext<'g> {
    gazetteer: &'g Gazetteer,
    sources: HashMap<String, Source>,
}

fn parse_directory(sink: &mut Sink, tree: &Node, gazetteer: &Gazetteer) -> Directory {
    let mut directory = Directory::default();
    let Some(top) = fields(
        sink,
        tree,
        "directory.yaml",
        &["sources", "needs", "organisations"],
    ) else {
        return directory;
    };
    let mut context = DirectoryContext {
        gazetteer,
        sources: HashMap::new(),
    };
    if let Some(node) = top.get("sources") {
        for item in read::list(sink, node, "sources") {
            let Some(source) = fields(sink, item, "a source", &["id", "title", "url", "checked"])
            else {
                continue;
            };
            let id = source
                .require(sink, "id", "a source")
                .and_then(|node| read::identifier(sink, node, "the source id", false));
            let title = source
                .require(sink, "title", "a source")
                .and_then(|node| read::string(sink, node, "the title"));
            let url = read::optional_string(sink, source.get("url"), "the url");
            let checked = source.get("checked").and_then(|node| date(sink, node));
            if checked.is_none() && source.get("checked").is_none() {
                sink.warning_hint(
                    item.span,
                    "this source has no `checked:` date",
                    "write the day the page was read, like checked: 2026-12-01",
                );
            }
            if let (Some(id), Some(title)) = (id, title) {
                let title = match url {
                    Some(url) => format!("{title} ({url})"),
                    None => title,
                };
                if context
                    .sources
                    .insert(id.clone(), Source { title, checked })
                    .is_some()
                {
                    sink.error(item.span, format!("the source '{id}' is written twice"));
                }
            }
        }
    }
    if let Some(node) = top.require(sink, "needs", "directory.yaml") {
        for item in read::list(sink, node, "needs") {
            let Some(need) = fields(sink, item, "a need", &["id", "label"]) else {
                continue;
            };
            let id = need
                .require(sink, "id", "a need")
                .and_then(|node| read::identifier(sink, node, "the need id", true));
            let label = need
                .require(sink, "label", "a need")
                .and_then(|node| read::text(sink, node, "the label"));
            if let (Some(id), Some(label)) = (id, label) {
                directory.needs.push(Need {
                    id,
                    label,
                    span: item.span,
                });
            }
        }
    }
    if let Some(node) = top.require(sink, "organisations", "directory.yaml") {
        for item in read::list(sink, node, "organisations") {
            if let Some(organisation) = parse_organisation(sink, item, &context) {
                directory.organisations.push(organisation);
            }
        }
    }
    context.sources.clear();
    directory
}

fn date(sink: &mut Sink, node: &Node) -> Option<NaiveDate> {
    let text = read::string(sink, node, "the date")?;
    match NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d") {
        Ok(date) => Some(date),
        Err(_) => {
            sink.error_hint(
                node.span,
                format!("'{text}' is not a date"),
                "write it like 2026-12-01",
            );
            None
        }
    }
}

/// A fact of the directory: a plain value (no provenance: a warning), or
/// `{ value: ..., source: ..., checked: ... }`. Returns the value's node (None when the
/// fact is unknown, `null`) and records where it was read in `facts`.
fn fact<'n>(
    sink: &mut Sink,
    node: &'n Node,
    what: &str,
    context: &DirectoryContext,
    facts: &mut Vec<Fact>,
) -> Option<&'n Node> {
    if node.is_null() {
        return None;
    }
    let is_fact_map = node
        .as_map()
        .is_some_and(|entries| entries.iter().any(|(key, _)| key.as_str() == Some("value")));
    if !is_fact_map {
        facts.push(Fact {
            what: what.to_string(),
            source: None,
            checked: None,
            span: node.span,
        });
        return Some(node);
    }
    let entries = fields(sink, node, what, &["value", "source", "checked"])?;
    let value = entries.get("value").filter(|value| !value.is_null())?;
    let (source, checked) = provenance(sink, &entries, context);
    facts.push(Fact {
        what: what.to_string(),
        source,
        checked,
        span: node.span,
    });
    Some(value)
}

/// `source:` (a source id or a description) and `checked:` of a fact or a service.
fn provenance(
    sink: &mut Sink,
    entries: &Fields,
    context: &DirectoryContext,
) -> (Option<String>, Option<NaiveDate>) {
    let own_checked = entries.get("checked").and_then(|node| date(sink, node));
    let Some(source_node) = entries.get("source") else {
        return (None, own_checked);
    };
    let Some(source) = read::optional_string(sink, Some(source_node), "the source") else {
        return (None, own_checked);
    };
    match context.sources.get(source.trim()) {
        Some(listed) => (Some(listed.title.clone()), own_checked.or(listed.checked)),
        None => {
            let looks_like_id = !source.contains(' ')
                && source
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
            if looks_like_id {
                let hint = crate::diagnostics::did_you_mean(
                    &source,
                    context.sources.keys().map(String::as_str),
                )
                .unwrap_or_else(|| "list it under `sources:` at the top of directory.yaml, or describe where the fact was read".into());
                sink.error_hint(source_node.span, format!("unknown source '{source}'"), hint);
            }
            (Some(source), own_checked)
        }
    }
}

fn parse_organisation(
    sink: &mut Sink,
    node: &Node,
    context: &DirectoryContext,
) -> Option<Organisation> {
    let gazetteer = context.gazetteer;
    let fields = fields(
        sink,
        node,
        "an organisation",
        &[
            "id",
            "name",
            "description",
            "roles",
            "needs",
            "source",
            "checked",
            "languages",
            "serves",
            "contacts",
            "locations",
            "services",
        ],
    )?;
    let id_node = fields.require(sink, "id", "an organisation")?;
    let id = read::identifier(sink, id_node, "the organisation id", false)?;
    let what = format!("organisation '{id}'");
    let mut facts: Vec<Fact> = Vec::new();
    let name = fields
        .require(sink, "name", &what)
        .and_then(|node| read::string(sink, node, "the name"))
        .unwrap_or_else(|| id.clone());
    let description = fields
        .get("description")
        .filter(|node| !node.is_null())
        .and_then(|node| read::text(sink, node, "the description"));
    let list = |sink: &mut Sink, key: &str| -> Vec<(String, Span)> {
        fields
            .get(key)
            .map(|node| read::strings(sink, node, key))
            .unwrap_or_default()
    };
    let roles = list(sink, "roles")
        .into_iter()
        .map(|(role, _)| role)
        .collect();
    let needs = list(sink, "needs");
    if !needs.is_empty() {
        let (source, checked) = provenance(sink, &fields, context);
        facts.push(Fact {
            what: format!("the list of needs of {what}"),
            source,
            checked,
            span: fields.get("needs").map_or(node.span, |node| node.span),
        });
    }
    let languages = match fields.get("languages") {
        Some(node) if !node.is_null() => Some(
            read::strings(sink, node, "languages")
                .into_iter()
                .map(|(lang, _)| lang)
                .collect(),
        ),
        _ => None,
    };
    let serves = list(sink, "serves");
    for (comune, span) in &serves {
        if gazetteer.get(comune).is_none() {
            let hint = crate::diagnostics::did_you_mean(
                comune,
                gazetteer.places.iter().map(|place| place.id.as_str()),
            )
            .unwrap_or_else(|| "use an id from places.yaml".into());
            sink.error_hint(*span, format!("unknown place '{comune}'"), hint);
        }
    }
    let mut contacts = Contacts::default();
    match fields.get("contacts") {
        Some(node) if !node.is_null() => {
            if let Some(contact_fields) =
                read::fields(sink, node, "contacts", &["phone", "email", "website"])
            {
                let mut contact = |sink: &mut Sink, key: &str, label: &str| -> Option<String> {
                    let value = fact(
                        sink,
                        contact_fields.get(key)?,
                        &format!("the {label} of {what}"),
                        context,
                        &mut facts,
                    )?;
                    read::optional_string(sink, Some(value), label)
                };
                contacts.phone = contact(sink, "phone", "phone");
                contacts.email = contact(sink, "email", "email");
                contacts.website = contact(sink, "website", "website");
            }
        }
        _ => {}
    }
    let mut locations = Vec::new();
    let mut unknown_hours: Vec<(Span, String)> = Vec::new();
    if let Some(node) = fields.get("locations") {
        for item in read::list(sink, node, "locations") {
            let before = unknown_hours.len();
            match parse_location(sink, item, context, &what, &mut facts, &mut unknown_hours) {
                Some(location) => locations.push(location),
                None => unknown_hours.truncate(before),
            }
        }
    }
    let mut services = Vec::new();
    if let Some(node) = fields.get("services") {
        for item in read::list(sink, node, "services") {
            if let Some(service) = parse_service(sink, item, context, &what, &locations, &mut facts)
            {
                services.push(service);
            }
        }
    }
    // Unknown hours of a place where the services say their own are no news.
    for (index, (span, message)) in unknown_hours.into_iter().enumerate() {
        let served_with_hours = services.iter().any(|service| {
            service.hours.is_some() && service.location.is_none_or(|at| at == index)
        });
        if !message.is_empty() && !served_with_hours {
            sink.warning_hint(
                span,
                message,
                "ask the organisation and write them like { mon-fri: [\"09:00-12:00\"] }",
            );
        }
    }
    let organisation = Organisation {
        needs: needs.into_iter().map(|(need, _)| need).collect(),
        id,
        name,
        description,
        roles,
        languages,
        serves: serves.into_iter().map(|(comune, _)| comune).collect(),
        contacts,
        locations,
        services,
        facts,
        span: node.span,
    };
    if organisation.needs.is_empty() && organisation.services.is_empty() {
        sink.warning_hint(
            fields.get("needs").map_or(node.span, |node| node.span),
            format!("{what} offers no needs, so it is never suggested"),
            "ask the organisation what it helps with and list the needs",
        );
    }
    if !organisation.reachable() {
        sink.warning_hint(
            fields.get("contacts").map_or(node.span, |node| node.span),
            format!("{what} has no phone, email, website or address: citizens cannot reach it"),
            "ask the organisation how citizens can reach it, and write where you read it",
        );
    }
    Some(organisation)
}

/// Reads a location; `unknown_hours` gets, for each location read, where to warn that
/// its hours are unknown (an empty message when they are known): the warning waits for
/// the services, whose own hours may make it moot.
fn parse_location(
    sink: &mut Sink,
    node: &Node,
    context: &DirectoryContext,
    owner: &str,
    facts: &mut Vec<Fact>,
    unknown_hours: &mut Vec<(Span, String)>,
) -> Option<Location> {
    let gazetteer = context.gazetteer;
    let fields = fields(
        sink,
        node,
        "a location",
        &[
            "id", "name", "place", "address", "lat", "lon", "hours", "closed",
        ],
    )?;
    let id = fields
        .get("id")
        .and_then(|node| read::identifier(sink, node, "the location id", false));
    let name = read::optional_string(sink, fields.get("name"), "the name");
    let place_id = fields
        .require(sink, "place", "a location")
        .and_then(|node| read::string(sink, node, "the place"))?;
    let place = gazetteer.get(&place_id);
    if place.is_none() {
        let hint = crate::diagnostics::did_you_mean(
            &place_id,
            gazetteer.places.iter().map(|place| place.id.as_str()),
        )
        .unwrap_or_else(|| "use an id from places.yaml".into());
        sink.error_hint(
            fields.get("place").map_or(node.span, |node| node.span),
            format!("unknown place '{place_id}'"),
            hint,
        );
    }
    let address = fields
        .get("address")
        .and_then(|node| {
            fact(
                sink,
                node,
                &format!("the address of {owner} in {place_id}"),
                context,
                facts,
            )
        })
        .and_then(|value| read::optional_string(sink, Some(value), "the address"));
    if address.is_none() {
        sink.warning_hint(
            fields.get("address").map_or(node.span, |node| node.span),
            format!("the address of {owner} in {place_id} is unknown"),
            "ask the organisation and write it here",
        );
    }
    let point = point(sink, &fields, owner).or(place.map(|place| place.point))?;
    let mut hours = fields
        .get("hours")
        .and_then(|node| {
            fact(
                sink,
                node,
                &format!("the opening hours of {owner} in {place_id}"),
                context,
                facts,
            )
        })
        .and_then(|value| schedule(sink, value));
    if hours.is_none() {
        unknown_hours.push((
            fields.get("hours").map_or(node.span, |node| node.span),
            format!("the opening hours of {owner} in {place_id} are unknown"),
        ));
    } else {
        unknown_hours.push((Span::default(), String::new()));
    }
    if let (Some(hours), Some(closed)) = (hours.as_mut(), fields.get("closed")) {
        closures(sink, closed, hours);
    }
    Some(Location {
        id,
        name,
        place: place_id,
        address,
        point,
        hours,
    })
}

fn closures(sink: &mut Sink, closed: &Node, hours: &mut Schedule) {
    for (text, span) in read::strings(sink, closed, "closed") {
        match hours::parse_closure(&text) {
            Some(range) => hours.closed.push(range),
            None => sink.error_hint(
                span,
                format!("'{text}' is not a date or a range of dates"),
                "write \"2026-12-24\" or \"2026-08-10/2026-08-23\"",
            ),
        }
    }
}

fn parse_service(
    sink: &mut Sink,
    node: &Node,
    context: &DirectoryContext,
    owner: &str,
    locations: &[Location],
    facts: &mut Vec<Fact>,
) -> Option<Service> {
    let fields = fields(
        sink,
        node,
        "a service",
        &[
            "id", "name", "needs", "location", "hours", "closed", "bring", "note", "source",
            "checked",
        ],
    )?;
    let id = fields
        .require(sink, "id", "a service")
        .and_then(|node| read::identifier(sink, node, "the service id", false))?;
    let what = format!("service '{id}' of {owner}");
    let name = fields
        .get("name")
        .filter(|node| !node.is_null())
        .and_then(|node| read::text(sink, node, "the name"));
    let needs: Vec<String> = fields
        .require(sink, "needs", &what)
        .map(|node| read::strings(sink, node, "needs"))
        .unwrap_or_default()
        .into_iter()
        .map(|(need, _)| need)
        .collect();
    let (source, checked) = provenance(sink, &fields, context);
    facts.push(Fact {
        what: what.clone(),
        source,
        checked,
        span: node.span,
    });
    let location = match fields.get("location") {
        None => None,
        Some(location_node) => {
            let wanted = read::string(sink, location_node, "the location")?;
            match locations
                .iter()
                .position(|location| location.id.as_deref() == Some(wanted.as_str()))
            {
                Some(index) => Some(index),
                None => {
                    let hint = crate::diagnostics::did_you_mean(
                        &wanted,
                        locations
                            .iter()
                            .filter_map(|location| location.id.as_deref()),
                    )
                    .unwrap_or_else(|| "give the location an `id:` and write it here".into());
                    sink.error_hint(
                        location_node.span,
                        format!("{owner} has no location '{wanted}'"),
                        hint,
                    );
                    None
                }
            }
        }
    };
    let mut hours = fields
        .get("hours")
        .and_then(|node| fact(sink, node, &format!("the hours of {what}"), context, facts))
        .and_then(|value| schedule(sink, value));
    if let (Some(hours), Some(closed)) = (hours.as_mut(), fields.get("closed")) {
        closures(sink, closed, hours);
    }
    let bring = fields
        .get("bring")
        .filter(|node| !node.is_null())
        .and_then(|node| read::text(sink, node, "what to bring"));
    let note = fields
        .get("note")
        .filter(|node| !node.is_null())
        .and_then(|node| read::text(sink, node, "the note"));
    Some(Service {
        id,
        name,
        needs,
        location,
        hours,
        bring,
        note,
    })
}

/// The default clock of a dialogue test: Tuesday 17 March 2026, 10:00 in Rome.
pub fn default_test_now() -> DateTime<Utc> {
    hours::rome(2026, 3, 17, 10, 0)
}

fn parse_test(sink: &mut Sink, file: &str, tree: &Node) -> Option<DialogueTest> {
    let top = fields(
        sink,
        tree,
        "a test",
        &["test", "lang", "now", "conversation"],
    )?;
    let name = top
        .require(sink, "test", "the test")
        .and_then(|node| read::string(sink, node, "the test name"))
        .unwrap_or_else(|| file.to_string());
    let lang = read::optional_string(sink, top.get("lang"), "lang");
    let now = match top.get("now") {
        None => default_test_now(),
        Some(node) => match read::string(sink, node, "now")
            .map(|text| DateTime::parse_from_rfc3339(text.trim()))
        {
            Some(Ok(time)) => time.with_timezone(&Utc),
            _ => {
                sink.error_hint(
                    node.span,
                    "now is not a date and time",
                    "write it like \"2026-03-17T10:00:00+01:00\"",
                );
                default_test_now()
            }
        },
    };
    let mut items = Vec::new();
    if let Some(node) = top.require(sink, "conversation", "the test") {
        for item in read::list(sink, node, "conversation") {
            if let Some(parsed) = parse_test_item(sink, item) {
                items.push(parsed);
            }
        }
    }
    Some(DialogueTest {
        name,
        file: file.to_string(),
        span: tree.span,
        lang,
        now,
        items,
    })
}

fn parse_test_item(sink: &mut Sink, node: &Node) -> Option<TestItem> {
    let fields = fields(
        sink,
        node,
        "a line of the conversation",
        &["user", "location", "bot", "suggests", "handover", "ended"],
    )?;
    let span = node.span;
    if let Some(user) = fields.get("user") {
        return read::string(sink, user, "user").map(|text| TestItem::User(text, span));
    }
    if let Some(location) = fields.get("location") {
        let location = read::fields(sink, location, "location", &["lat", "lon"])?;
        return point(sink, &location, "the location").map(|point| TestItem::Location(point, span));
    }
    if let Some(bot) = fields.get("bot") {
        if let Some(text) = bot.as_str() {
            return Some(TestItem::Bot {
                contains: vec![text.to_string()],
                not_contains: Vec::new(),
                span,
            });
        }
        let bot = read::fields(sink, bot, "bot", &["contains", "not_contains"])?;
        let collect = |sink: &mut Sink, key: &str| -> Vec<String> {
            bot.get(key)
                .map(|node| {
                    read::strings(sink, node, key)
                        .into_iter()
                        .map(|(text, _)| text)
                        .collect()
                })
                .unwrap_or_default()
        };
        let contains = collect(sink, "contains");
        let not_contains = collect(sink, "not_contains");
        return Some(TestItem::Bot {
            contains,
            not_contains,
            span,
        });
    }
    if let Some(suggests) = fields.get("suggests") {
        let ids = read::strings(sink, suggests, "suggests")
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        return Some(TestItem::Suggests(ids, span));
    }
    if let Some(handover) = fields.get("handover") {
        if handover.as_bool() == Some(true) {
            return Some(TestItem::Handover(None, span));
        }
        let handover = read::fields(sink, handover, "handover", &["need"])?;
        return Some(TestItem::Handover(
            read::optional_string(sink, handover.get("need"), "need"),
            span,
        ));
    }
    if fields.get("ended").is_some() {
        return Some(TestItem::Ended(span));
    }
    sink.error_hint(
        span,
        "this line of the conversation is empty",
        "write user:, location:, bot:, suggests:, handover: or ended:",
    );
    None
}

/// Wraps the sources of one in-memory dialogue folder, for tests and the fuzzer.
pub fn sources_from(files: &[(&str, &str)]) -> Vec<(String, Result<String, String>)> {
    files
        .iter()
        .map(|(name, text)| (name.to_string(), Ok(text.to_string())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn groups(source: &str) -> (WordGroups, Vec<Diagnostic>) {
        let node = yaml::parse(source).expect("yaml");
        let mut out = Vec::new();
        let mut sink = Sink {
            file: "bot.yaml",
            out: &mut out,
        };
        let words = WordGroups::parse(&mut sink, &node);
        (words, out)
    }

    #[test]
    fn word_groups_expand_in_the_pattern_language() {
        let (words, errors) = groups(
            "persona: { it: [marito, compagn*, lui], en: [husband, he] }\ncolpo: { it: [picchi*, mena] }\n",
        );
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            words.expand("@persona mi @colpo", Lang::It).unwrap(),
            "marito|compagn*|lui mi picchi*|mena"
        );
        assert_eq!(
            words.expand("paura di|da @persona?", Lang::It).unwrap(),
            "paura di|da marito|compagn*|lui?"
        );
        assert_eq!(
            words.expand("@persona|ex", Lang::En).unwrap(),
            "husband|he|ex"
        );
        assert_eq!(words.expand("mi picchia", Lang::En).unwrap(), "mi picchia");
        let expanded = words.expand("@persona mi @colpo", Lang::It).unwrap();
        let set = PatternSet::new(vec![Pattern::parse(&expanded).unwrap()]);
        let found = |text: &str| {
            !set.find_all(&crate::matching::pattern::PatternText::new(text))
                .is_empty()
        };
        assert!(found("il mio compagno ieri sera mi mena"));
        assert!(!found("mi picchia"));
    }

    #[test]
    fn a_language_written_twice_is_an_error_not_a_silent_loss() {
        let (_, errors) = groups("persona:\n  ro: [sot]\n  it: [marito]\n  ro: [iubit]\n");
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].message.contains("'ro' is written twice"),
            "{errors:?}"
        );
    }

    #[test]
    fn word_groups_explain_their_mistakes() {
        let (words, _) = groups("persona: { it: [marito] }\n");
        let (message, hint) = words.expand("@persone mi picchia", Lang::It).unwrap_err();
        assert!(message.contains("@persone"), "{message}");
        assert!(hint.contains("persona"), "{hint}");
        let (message, _) = words.expand("@persona hits", Lang::En).unwrap_err();
        assert!(message.contains("'en'"), "{message}");
        let (_, errors) = groups("persona: { it: [mio marito, lui] }\nBad-Name: { it: [x] }\n");
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[0].message.contains("not one word"));
        assert!(errors[1].message.contains("Bad-Name"));
    }
}
