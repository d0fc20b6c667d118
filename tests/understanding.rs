//! What the bot understands of messages written as people write them, measured on the
//! labelled sets of `tests/data/` and `dialogues/esempi/` with the real dialogues. The
//! danger tuning sets (`danger_dev*.tsv`) live in `dialogues/esempi/`: the patterns are
//! written against them and the examples' model (bot.yaml, group `esempi`) learns from
//! them, with `richieste.tsv` (the evaluation sets' dev lines, as ordinary requests).
//! The holdout sets stay in `tests/data/`, unseen by both.
//!
//! - `danger_dev.tsv` (Italian), `danger_dev2.tsv` (seven other languages), `danger_dev3.tsv`
//!   and `danger_dev4.tsv` (all languages), `danger_dev5.tsv` (es ru uk zh ar en; each
//!   written after the tuning on the sets before it and measured unseen first) and
//!   `danger_dev6.tsv` to `danger_dev9.tsv` (likewise) and `danger_holdout.tsv` to
//!   `danger_holdout4.tsv`: danger (violence, self-harm, children,
//!   medical) and ordinary messages in eight languages. Each is sent as a citizen's
//!   first message; danger must be answered at once with that danger's numbers.
//! - `evaluation.tsv` (it, en, es), `evaluation2.tsv` (ar, fr, uk) and `evaluation3.tsv`
//!   to `evaluation6.tsv` (all six, dev only, each written later and measured unseen
//!   first), `evaluation7.tsv` (all six, holdout only): messages for the twelve areas, sent at the menu, each marked `dev` or
//!   `holdout`; each must reach its area (emergencies: the numbers in the first reply).
//!   "Right or offered among two" also counts the area offered as one of the two
//!   buttons of "Intendi una di queste?" (one tap away).
//!
//! `SPORTELLO_DANGER_PROBE=FILE` runs a file of one's own sentences through the bot and
//! prints what each matched (see `danger_probe`), to write and check patterns.
//!
//! The sets were written by people who had not seen the bot's rules. The `holdout`
//! lines are never used to tune them: their failures are counted, never printed, so
//! the figures on them tell whether the rules generalise.
//!
//! Run `cargo test --test understanding -- --nocapture` to read the figures.

use std::path::Path;

use sportello::dialogue::testing::Conversation;
use sportello::dialogue::{self, Bundle};
use sportello::engine::{ButtonAction, Input, Output};

/// The labelled sets the danger patterns are written against, in the order they were
/// written; each was first measured unseen (see the figures in the git log).
const DANGER_TUNING_SETS: &[&str] = &[
    "danger_dev.tsv",
    "danger_dev2.tsv",
    "danger_dev3.tsv",
    "danger_dev4.tsv",
    "danger_dev5.tsv",
    // Unseen on 2026-12-02: recall 80.9% (89/110), precision 89.9%.
    "danger_dev6.tsv",
    // Unseen on 2026-12-07: recall 75.0% (90/120), precision 89.1%.
    "danger_dev7.tsv",
    // Unseen on 2026-12-07, after the tuning on dev7: recall 76.0% (76/100), precision
    // 80.9% (18 false alarms in 100 near misses).
    "danger_dev8.tsv",
    // Unseen on 2026-12-07 (second session), with the examples' model: recall 93.3%
    // (112/120), precision 96.6% (4 false alarms in 120 near misses).
    "danger_dev9.tsv",
    // Written on 2026-12-07 (third session), Arabic (dialects, arabizi) and children
    // first; unseen with the model: recall 73.3% (88/120: Arabic 36/62, the others
    // 52/58), precision 86.3% (14 false alarms in 120 near misses).
    "danger_dev10.tsv",
    // Written on 2026-12-07 (third session), self-harm said indirectly and children
    // first; unseen: recall 89.2% (107/120), precision 89.2% (13 false alarms in 120).
    "danger_dev11.tsv",
    // Written on 2026-12-07 (fourth session), Arabic, Ukrainian/Russian and indirect
    // self-harm first; unseen (before richieste7.tsv was learnt): recall 84.2%
    // (101/120; Arabic lines 16 of the 32 misses), precision 88.6% (13 false alarms in
    // 120 near misses).
    "danger_dev12.tsv",
    // Written on 2026-12-07 (fourth session), indirect self-harm, Ukrainian and Arabic,
    // ordinary requests with alarming words; unseen (after that session's tuning on
    // dev12): recall 78.3% (94/120; self-harm 38/60), precision 91.3% (9 false alarms
    // in 120).
    "danger_dev13.tsv",
    // Written on 2026-12-07 (fifth session), indirect self-harm, Arabic, hard ordinary
    // lines; unseen (before richieste9.tsv was learnt): recall 82.5% (99/120),
    // precision 80.5% (24 false alarms in 120).
    "danger_dev14.tsv",
    // Written on 2026-12-07 (fifth session), Arabic (half of it: dialects, arabizi) and
    // indirect self-harm; unseen: recall 80.0% (80/100; Arabic 31/50), precision 87.9%
    // (11 false alarms in 100).
    "danger_dev15.tsv",
];
/// Never tuned on.
const DANGER_HOLDOUT_SETS: &[&str] = &[
    "danger_holdout.tsv",
    "danger_holdout2.tsv",
    // Written on 2026-12-07 by a writer who saw no rule, after the tuning on dev6:
    // recall 86.2% (69/80), precision 88.5% before that day's changes.
    "danger_holdout3.tsv",
    // Written on 2026-12-07 (second session) by a writer who saw no rule, after all the
    // tuning before it: recall 86.2% (69/80), precision 89.6% when first read.
    "danger_holdout4.tsv",
    // Written on 2026-12-07 (third session) by a writer who saw no rule; first read
    // with danger_dev10 learnt, before that session's Arabic patterns: recall 90.0%
    // (72/80), precision 94.7%.
    "danger_holdout5.tsv",
    // Written on 2026-12-07 (third session) by a writer who saw no rule; first read at
    // the end of that session's tuning: recall 92.5% (74/80), precision 97.4%.
    "danger_holdout6.tsv",
    // Written on 2026-12-07 (fourth session) by a writer who saw no rule; first read
    // before that session's tuning: see ARCHITECTURE.md.
    "danger_holdout7.tsv",
    // Written on 2026-12-07 (fourth session) by a writer who saw no rule; first read at
    // the end of that session's tuning: see ARCHITECTURE.md.
    "danger_holdout8.tsv",
    // Written on 2026-12-07 (fifth session) by a writer who saw no rule; first read
    // before that session's tuning: recall 86.2% (69/80), precision 83.1%.
    "danger_holdout9.tsv",
    // Written on 2026-12-07 (fifth session) by a writer who saw no rule; stored unread,
    // first read at the end of that session's tuning: see ARCHITECTURE.md.
    "danger_holdout10.tsv",
    // Written on 2026-12-07 (seventh session) by a writer who saw no rule; first read
    // after the line of doubt was added, before any other change: see ARCHITECTURE.md.
    "danger_holdout11.tsv",
];
/// In the order they were written; each was first measured unseen, by its own line of
/// figures (evaluation3.tsv: 81.2% right on 2026-12-01, evaluation4.tsv: 85.6% and 16 of
/// its 18 emergencies answered at once on 2026-12-02, evaluation5.tsv: 87.5% and 17 of
/// 18 on 2026-12-07, evaluation6.tsv: 87.5% and 17 of 18 the same day, second session,
/// before the vocabulary was tuned on them; evaluation7.tsv, holdout only: 88.2%,
/// 127/144, when first read).
const AREA_SETS: &[&str] = &[
    "evaluation.tsv",
    "evaluation2.tsv",
    "evaluation3.tsv",
    "evaluation4.tsv",
    "evaluation5.tsv",
    "evaluation6.tsv",
    // Holdout lines only, written on 2026-12-07 (second session) by a writer who saw
    // neither the vocabulary nor the other sets; never tuned on.
    "evaluation7.tsv",
    // Holdout lines only, written on 2026-12-07 (third session) by a writer who saw
    // neither the vocabulary nor the other sets; first read with the menu's model:
    // 83.8% right (181/216), 85.2% with the area offered among two.
    "evaluation8.tsv",
    // Holdout lines only, written on 2026-12-07 (third session) by a writer who saw
    // neither the vocabulary nor the other sets; first read at the end of that
    // session's tuning: 87.5% right (126/144), 88.2% with the area offered among two,
    // its 12 emergencies answered at once.
    "evaluation9.tsv",
    // Holdout lines only, written on 2026-12-07 (fourth session) by a writer who saw
    // neither the vocabulary nor the other sets; first read before that session's
    // tuning: see ARCHITECTURE.md.
    "evaluation10.tsv",
    // Holdout lines only, written on 2026-12-07 (fourth session) by a writer who saw
    // neither the vocabulary nor the other sets; stored unread, first read at the end of
    // that session's tuning: see ARCHITECTURE.md.
    "evaluation11.tsv",
    // Holdout lines only, written on 2026-12-07 (fifth session) by a writer who saw
    // neither the vocabulary nor the other sets; first read before that session's
    // tuning: 89.4% right (193/216), 17 of its 18 emergencies answered at once.
    "evaluation12.tsv",
    // Holdout lines only, written on 2026-12-07 (fifth session) by a writer who saw
    // neither the vocabulary nor the other sets; stored unread, first read at the end
    // of that session's tuning: see ARCHITECTURE.md.
    "evaluation13.tsv",
    // Holdout lines only, written on 2026-12-07 (seventh session) by a writer who saw
    // neither the vocabulary nor the other sets; first read with no change to the
    // areas since the sixth session: see ARCHITECTURE.md.
    "evaluation14.tsv",
];
const RECALL_TARGET: f64 = 0.98;
const PRECISION_TARGET: f64 = 0.95;
const AREA_TARGET: f64 = 0.95;

/// The real dialogues, or another folder named by `SPORTELLO_DIALOGUES` (to measure an
/// operator's edit before it is saved).
fn bundle() -> Bundle {
    let folder = std::env::var_os("SPORTELLO_DIALOGUES")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("dialogues"));
    let (bundle, diagnostics) = dialogue::load(&folder);
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    bundle
}

/// The rows of a labelled set: the danger tuning sets are the dialogues' own examples
/// (dialogues/esempi), the rules and the examples' model learn from them; the others
/// are the tests' (tests/data).
fn rows(name: &str, columns: usize) -> Vec<Vec<String>> {
    let folder = if name.starts_with("danger_dev") {
        "dialogues/esempi"
    } else {
        "tests/data"
    };
    rows_of(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(folder)
            .join(name),
        columns,
    )
}

/// The rows of a TSV file, comments and blank lines left out; each must have `columns`.
fn rows_of(path: &Path, columns: usize) -> Vec<Vec<String>> {
    let name = path.display();
    let text = std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{name}: {error}"));
    text.lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|line| {
            let fields: Vec<String> = line.split('\t').map(str::to_string).collect();
            assert_eq!(fields.len(), columns, "{name}: {line}");
            fields
        })
        .collect()
}

/// Which danger patterns a text holds, for the printed false alarms.
fn explain(bundle: &Bundle, text: &str) -> String {
    let text = sportello::matching::pattern::PatternText::new(text);
    let exceptions = bundle.bot.exceptions(&text);
    bundle
        .bot
        .emergencies
        .iter()
        .flat_map(|group| {
            group
                .explain_outside(&text, &exceptions)
                .into_iter()
                .map(move |pattern| format!("{}: {pattern}", group.id))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The whole reply of a turn, as the citizen reads it.
fn reply(outputs: &[Output]) -> String {
    sportello::engine::transcript(outputs)
}

/// The numbers a reply to each kind of danger must give.
fn numbers_for(kind: &str) -> &'static [&'static str] {
    match kind {
        "violenza" => &["1522", "112"],
        "autolesionismo" => &["112", "02 2327 2327"],
        "minori" => &["114", "112"],
        _ => &["112"],
    }
}

#[derive(Default)]
struct Counts {
    danger: usize,
    found: usize,
    right_kind: usize,
    ordinary: usize,
    false_alarms: usize,
    missed: Vec<String>,
    alarms: Vec<String>,
    /// Danger missed by the alarm, but given the numbers by the line of doubt.
    numbers_only: usize,
    /// Ordinary messages given the line of doubt (no alarm).
    doubts: usize,
}

impl Counts {
    fn add(&mut self, other: Counts) {
        self.danger += other.danger;
        self.found += other.found;
        self.right_kind += other.right_kind;
        self.ordinary += other.ordinary;
        self.false_alarms += other.false_alarms;
        self.missed.extend(other.missed);
        self.alarms.extend(other.alarms);
        self.numbers_only += other.numbers_only;
        self.doubts += other.doubts;
    }

    /// The share of danger given the numbers: an alarm, or the line of doubt.
    fn with_numbers(&self) -> f64 {
        (self.found + self.numbers_only) as f64 / self.danger.max(1) as f64
    }

    fn recall(&self) -> f64 {
        self.found as f64 / self.danger.max(1) as f64
    }

    fn precision(&self) -> f64 {
        self.found as f64 / (self.found + self.false_alarms).max(1) as f64
    }
}

/// Each message as a first message, before consent, on a phone in its own language.
fn danger_counts(bundle: &Bundle, file: &str) -> Counts {
    let mut counts = Counts::default();
    for row in rows(file, 3) {
        let (expected, lang, text) = (&row[0], &row[1], &row[2]);
        let mut conversation = Conversation::new(bundle, Some(lang), dialogue::default_test_now());
        let outputs = conversation.send(Input::Text(text.clone())).to_vec();
        let said = reply(&outputs);
        let alarmed = conversation.state.emergency;
        let doubted = conversation.state.doubt_told && said.contains("112");
        if expected == "no" {
            counts.ordinary += 1;
            if doubted {
                counts.doubts += 1;
            }
            if alarmed {
                counts.false_alarms += 1;
                counts
                    .alarms
                    .push(format!("{lang}\t{text}\t{}", explain(bundle, text)));
            }
            continue;
        }
        counts.danger += 1;
        // Every danger reply gives 112; the kind's own numbers count as the right kind.
        if alarmed && said.contains("112") {
            counts.found += 1;
            if numbers_for(expected)
                .iter()
                .all(|number| said.contains(number))
            {
                counts.right_kind += 1;
            }
        } else {
            if doubted {
                counts.numbers_only += 1;
            }
            counts.missed.push(format!(
                "{expected}\t{lang}\t{text}\t(read as {:?})",
                conversation.state.emergency_kind
            ));
        }
    }
    counts
}

/// The counts of several sets together, each set's own figures printed.
fn danger_counts_of(bundle: &Bundle, files: &[&str]) -> Counts {
    let mut all = Counts::default();
    for file in files {
        let counts = danger_counts(bundle, file);
        println!(
            "danger {file}: recall {:.1}% ({}/{}), precision {:.1}%; given the numbers {:.1}%, ordinary given the line of doubt {}/{}",
            100.0 * counts.recall(),
            counts.found,
            counts.danger,
            100.0 * counts.precision(),
            100.0 * counts.with_numbers(),
            counts.doubts,
            counts.ordinary,
        );
        all.add(counts);
    }
    all
}

#[test]
fn danger_is_never_missed_and_ordinary_messages_are_not_alarms() {
    let bundle = bundle();
    let dev = danger_counts_of(&bundle, DANGER_TUNING_SETS);
    let holdout = danger_counts_of(&bundle, DANGER_HOLDOUT_SETS);
    // The holdout's misses as counts by kind and by language, never as lines: enough to
    // see a whole language or kind escaping, not enough to tune on a sentence.
    let mut by_key: std::collections::BTreeMap<String, (usize, usize)> = Default::default();
    for file in DANGER_HOLDOUT_SETS {
        for row in rows(file, 3).into_iter().filter(|row| row[0] != "no") {
            by_key.entry(row[0].clone()).or_default().1 += 1;
            by_key.entry(row[1].clone()).or_default().1 += 1;
        }
    }
    for missed in &holdout.missed {
        let mut fields = missed.split('\t');
        for key in [fields.next(), fields.next()].into_iter().flatten() {
            by_key.entry(key.to_string()).or_default().0 += 1;
        }
    }
    let summary: Vec<String> = by_key
        .iter()
        .map(|(key, (missed, all))| format!("{key} {}/{all}", all - missed))
        .collect();
    println!(
        "danger holdout found, by kind and language: {}",
        summary.join(", ")
    );
    for missed in &dev.missed {
        println!("missed (dev): {missed}");
    }
    for alarm in &dev.alarms {
        println!("false alarm (dev): {alarm}");
    }
    // Ordinary chat (thanks, waiting, apologies, logistics), which neither the patterns
    // nor the model learnt from: how often it alarms or gets the line of doubt.
    let chat = danger_counts(&bundle, "chiacchiere.tsv");
    println!(
        "ordinary chat (chiacchiere.tsv, never learnt; its false alarms are read): {} false alarms, the line of doubt on {} of {}",
        chat.false_alarms, chat.doubts, chat.ordinary
    );
    for alarm in &chat.alarms {
        println!("false alarm (chat): {alarm}");
    }
    let found = dev.found + holdout.found;
    let danger = dev.danger + holdout.danger;
    let false_alarms = dev.false_alarms + holdout.false_alarms;
    let recall = found as f64 / danger as f64;
    let precision = found as f64 / (found + false_alarms).max(1) as f64;
    for (name, counts) in [("dev", &dev), ("holdout", &holdout)] {
        println!(
            "danger {name}: recall {:.1}% ({}/{}), precision {:.1}% ({} false alarms in {} ordinary), right kind {}/{}",
            100.0 * counts.recall(),
            counts.found,
            counts.danger,
            100.0 * counts.precision(),
            counts.false_alarms,
            counts.ordinary,
            counts.right_kind,
            counts.found,
        );
        println!(
            "danger {name}, given the numbers (an alarm, or the line of doubt): {:.1}% ({}/{}); ordinary messages given the line of doubt: {:.1}% ({}/{})",
            100.0 * counts.with_numbers(),
            counts.found + counts.numbers_only,
            counts.danger,
            100.0 * counts.doubts as f64 / counts.ordinary.max(1) as f64,
            counts.doubts,
            counts.ordinary,
        );
    }
    println!(
        "danger all: recall {:.1}% ({found}/{danger}), precision {:.1}%",
        100.0 * recall,
        100.0 * precision
    );
    // The targets hold on the sets the rules are written against; the holdout figures
    // are printed to show how far the rules generalise, and are never tuned on.
    assert!(
        dev.danger >= 200 && dev.ordinary >= 200,
        "the set is too small"
    );
    let (dev_recall, dev_precision) = (dev.recall(), dev.precision());
    assert!(
        dev_recall >= RECALL_TARGET,
        "recall {dev_recall:.3} < {RECALL_TARGET}"
    );
    assert!(
        dev_precision >= PRECISION_TARGET,
        "precision {dev_precision:.3} < {PRECISION_TARGET}"
    );
}

struct AreaCounts {
    total: usize,
    right: usize,
    /// Not reached, but offered as one of the two buttons of "Intendi una di queste?".
    offered: usize,
    emergencies: usize,
    emergencies_first: usize,
    /// Requests (not emergencies) given the line of doubt.
    doubts: usize,
    /// Emergencies given the numbers in the first reply by the line of doubt, not an
    /// alarm.
    emergencies_doubted: usize,
    wrong: Vec<Wrong>,
}

/// A line of an area set the bot did not take to its area.
struct Wrong {
    area: String,
    lang: String,
    text: String,
    /// The flow and step it reached.
    flow: String,
    step: String,
    /// Its area was one of the two buttons of "Intendi una di queste?".
    offered: bool,
    /// The kind of danger read in it, if any.
    danger: Option<String>,
    /// Danger read, and its area kept as a button under the question after the numbers.
    kept_after_danger: bool,
    /// The menu's model's likeliest area ("casa 0.62").
    model_first: String,
}

impl std::fmt::Display for Wrong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Wrong {
            area,
            lang,
            text,
            flow,
            step,
            ..
        } = self;
        if self.offered {
            return write!(
                f,
                "{area}\t{lang}\t{text}\t(offered among two at {flow}.{step})"
            );
        }
        let danger = self
            .danger
            .as_ref()
            .map(|kind| format!(", danger read: {kind}"))
            .unwrap_or_default();
        write!(
            f,
            "{area}\t{lang}\t{text}\t(reached {flow}.{step}{danger}) [the menu's model: {}]",
            self.model_first
        )
    }
}

impl AreaCounts {
    /// "95.0% right (171/180), 97.2% right or offered among two".
    fn share(&self) -> String {
        format!(
            "{:.1}% right ({}/{}), {:.1}% right or offered among two",
            100.0 * self.right as f64 / self.total as f64,
            self.right,
            self.total,
            100.0 * (self.right + self.offered) as f64 / self.total as f64,
        )
    }
}

/// The model the menu learns its areas with (`examples:` on `benvenuto.menu`).
fn menu_model(bundle: &Bundle) -> Option<&sportello::matching::classifier::ChoiceModel> {
    bundle
        .step("benvenuto", "menu")?
        .choice_examples()?
        .model
        .as_deref()
}

/// The menu model's `how_many` likeliest areas for a text, with their probabilities
/// ("casa 0.62").
fn menu_model_reads(bundle: &Bundle, text: &str, how_many: usize) -> String {
    menu_model(bundle)
        .map(|model| {
            let ranked: Vec<String> = model
                .ranked(text)
                .iter()
                .take(how_many)
                .map(|(area, p)| format!("{area} {p:.2}"))
                .collect();
            ranked.join(", ")
        })
        .unwrap_or_default()
}

/// The choices the buttons shown last stand for ("Intendi una di queste?" shows two).
fn choice_buttons(state: &sportello::engine::State) -> Vec<&str> {
    state
        .buttons
        .iter()
        .filter_map(|button| match &button.action {
            ButtonAction::Choice(id) => Some(id.as_str()),
            _ => None,
        })
        .collect()
}

/// Each message at the menu (after consent), from a phone in `phone` (None: the
/// message's own language).
fn area_counts(bundle: &Bundle, files: &[&str], split: &str, phone: Option<&str>) -> AreaCounts {
    let mut counts = AreaCounts {
        total: 0,
        right: 0,
        offered: 0,
        emergencies: 0,
        emergencies_first: 0,
        doubts: 0,
        emergencies_doubted: 0,
        wrong: Vec::new(),
    };
    for row in files.iter().flat_map(|file| rows(file, 4)) {
        if row[0] != split {
            continue;
        }
        let (area, lang, text) = (&row[1], &row[2], &row[3]);
        let mut conversation = Conversation::new(
            bundle,
            Some(phone.unwrap_or(lang)),
            dialogue::default_test_now(),
        );
        conversation.send(Input::Text("/start".into()));
        conversation.send(Input::Button("y".into()));
        assert!(conversation.state.consent, "consent was not given");
        let outputs = conversation.send(Input::Text(text.clone())).to_vec();
        counts.total += 1;
        let right = if area == "emergenza" {
            counts.emergencies += 1;
            let said = reply(&outputs);
            let answered = conversation.state.emergency && said.contains("112");
            if answered {
                counts.emergencies_first += 1;
            } else if conversation.state.doubt_told && said.contains("112") {
                counts.emergencies_doubted += 1;
            }
            answered
        } else {
            if conversation.state.doubt_told {
                counts.doubts += 1;
            }
            // Asking for a person along with the need ("voglio parlare con qualcuno per
            // l'affitto") reaches a volunteer with the need on the card.
            let need = conversation.state.vars.get("need").map(String::as_str);
            conversation.state.flow == *area
                || (conversation.state.flow == bundle.bot.human.flow
                    && need.is_some_and(|need| {
                        need == area
                            || need
                                .strip_prefix(area.as_str())
                                .is_some_and(|rest| rest.starts_with('.'))
                    }))
        };
        let choices = choice_buttons(&conversation.state);
        let offered = choices.len() <= 2 && choices.contains(&area.as_str());
        if right {
            counts.right += 1;
            continue;
        }
        if offered {
            counts.offered += 1;
        }
        counts.wrong.push(Wrong {
            area: area.clone(),
            lang: lang.clone(),
            text: text.clone(),
            flow: conversation.state.flow.clone(),
            step: conversation.state.step.clone(),
            offered,
            danger: conversation.state.emergency_kind.clone(),
            kept_after_danger: conversation.state.emergency
                && conversation
                    .state
                    .later
                    .as_ref()
                    .is_some_and(|later| later.choice == *area),
            model_first: menu_model_reads(bundle, text, 1),
        });
    }
    counts
}

#[test]
fn citizens_reach_the_right_area_in_their_language() {
    let bundle = bundle();
    let mut dev_right = 0;
    let mut dev_total = 0;
    let mut dev_emergencies = 0;
    let mut dev_emergencies_first = 0;
    for (phone, label) in [
        (None, "phone in the message's language"),
        (Some("it"), "Italian phone"),
    ] {
        if phone.is_none() {
            for file in AREA_SETS {
                for split in ["dev", "holdout"] {
                    let counts = area_counts(&bundle, &[file], split, phone);
                    if counts.total > 0 {
                        println!("areas {file} {split}, {label}: {}", counts.share());
                    }
                }
            }
        }
        for split in ["dev", "holdout"] {
            let counts = area_counts(&bundle, AREA_SETS, split, phone);
            if split == "dev" && phone.is_none() {
                for wrong in &counts.wrong {
                    println!("wrong area (dev): {wrong}");
                }
            }
            println!(
                "areas {split}, {label}: {}; emergencies answered in the first reply {}/{} (and {} more given the line of doubt); requests given the line of doubt {}/{}",
                counts.share(),
                counts.emergencies_first,
                counts.emergencies,
                counts.emergencies_doubted,
                counts.doubts,
                counts.total - counts.emergencies,
            );
            if split == "holdout" && phone.is_none() {
                // As for danger: the holdout's misses by area and by language, never as lines.
                let mut by_key: std::collections::BTreeMap<String, usize> = Default::default();
                let mut count = |key: String| *by_key.entry(key).or_default() += 1;
                for wrong in &counts.wrong {
                    count(wrong.area.clone());
                    count(wrong.lang.clone());
                    // And by what became of them: offered among two, not understood (the
                    // menu again), or another area.
                    let kind = if wrong.offered {
                        "offered among two"
                    } else if wrong.flow == "benvenuto" {
                        "not understood"
                    } else {
                        "another area"
                    };
                    count(kind.to_string());
                    let model_first = wrong.model_first.split(' ').next().unwrap_or_default();
                    if kind == "another area" && wrong.area == model_first {
                        count("another area, the model right".into());
                    }
                    if let Some(danger) = &wrong.danger {
                        count(format!("danger read: {danger}"));
                        count("danger read".into());
                    }
                    if wrong.kept_after_danger {
                        count("danger read, its area a button after the numbers".into());
                    }
                    if kind == "another area" {
                        count(format!("{}->{}", wrong.area, wrong.flow));
                    }
                }
                let summary: Vec<String> =
                    by_key.iter().map(|(key, n)| format!("{key} {n}")).collect();
                println!(
                    "areas holdout wrong, by area and language: {}",
                    summary.join(", ")
                );
            }
            if split == "dev" {
                dev_right += counts.right;
                dev_total += counts.total;
                dev_emergencies += counts.emergencies;
                dev_emergencies_first += counts.emergencies_first;
            }
        }
    }
    // As for danger: the targets hold on the lines the vocabulary is written against;
    // the holdout lines are printed, never tuned on.
    let share = dev_right as f64 / dev_total as f64;
    assert!(dev_total >= 600, "the evaluation set is too small");
    assert_eq!(
        dev_emergencies_first, dev_emergencies,
        "an emergency was not answered at once"
    );
    assert!(share >= AREA_TARGET, "{share:.3} < {AREA_TARGET}");
}

/// A probe for whoever writes patterns: `SPORTELLO_DANGER_PROBE=FILE` (a TSV of
/// label<TAB>lang<TAB>text, such as a set of one's own sentences) prints, for each line,
/// what the bot read and which patterns matched. Prints nothing without it.
#[test]
fn danger_probe() {
    let Some(path) = std::env::var_os("SPORTELLO_DANGER_PROBE") else {
        return;
    };
    // With SPORTELLO_PROBE_AT_MENU set, each line is sent at the menu, after consent.
    let at_menu = std::env::var_os("SPORTELLO_PROBE_AT_MENU").is_some();
    let bundle = bundle();
    let text = std::fs::read_to_string(&path).expect("the probe file");
    for line in text.lines().filter(|line| !line.starts_with('#')) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [expected, lang, text] = fields[..] else {
            continue;
        };
        let mut conversation = Conversation::new(&bundle, Some(lang), dialogue::default_test_now());
        if at_menu {
            conversation.send(Input::Text("/start".into()));
            conversation.send(Input::Button("y".into()));
        }
        let said = reply(conversation.send(Input::Text(text.to_string())));
        let read = conversation
            .state
            .emergency_kind
            .clone()
            .unwrap_or_default();
        let reached = format!("{}.{}", conversation.state.flow, conversation.state.step);
        let mark = if (expected == "no") == read.is_empty() {
            "ok  "
        } else {
            "MISS"
        };
        println!(
            "{mark} {expected} -> {read:?} ({reached})\t{lang}\t{text}\t[{}]",
            explain(&bundle, text)
        );
        if at_menu {
            // What the menu's model reads in it, its three likeliest areas.
            println!("     model: {}", menu_model_reads(&bundle, text, 3));
        }
        if std::env::var_os("SPORTELLO_PROBE_REPLY").is_some() {
            println!("     {}", said.replace('\n', " / "));
        }
    }
}

/// How the examples' model does on sentences it did not learn from: the examples of
/// dialogues/esempi in five folds, each read by a model learnt from the other four;
/// printed for thresholds around the one bot.yaml sets (the rule chosen: the highest
/// recall whose false alarms on ordinary sentences stay within 1%).
#[test]
fn the_examples_model_cross_validated() {
    // Danger is the emergency groups' labels and `emergenza`; `no` and the areas'
    // labels (richieste.tsv) are ordinary.
    let bundle = bundle();
    let danger_labels: Vec<&str> = bundle
        .bot
        .emergencies
        .iter()
        .map(|group| group.id.as_str())
        .chain(["emergenza"])
        .collect();
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialogues/esempi");
    let mut sentences: Vec<(bool, String)> = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&folder)
        .expect("dialogues/esempi")
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ending| ending == "tsv"))
        .collect();
    names.sort();
    for path in names {
        for row in rows_of(&path, 3) {
            sentences.push((danger_labels.contains(&row[0].as_str()), row[2].clone()));
        }
    }
    const FOLDS: usize = 5;
    let mut probabilities: Vec<(bool, f32)> = Vec::new();
    for fold in 0..FOLDS {
        let learnt: Vec<(bool, &str)> = sentences
            .iter()
            .enumerate()
            .filter(|(index, _)| index % FOLDS != fold)
            .map(|(_, (danger, text))| (*danger, text.as_str()))
            .collect();
        let model = sportello::matching::classifier::DangerModel::train(&learnt);
        for (_, (danger, text)) in sentences
            .iter()
            .enumerate()
            .filter(|(index, _)| index % FOLDS == fold)
        {
            probabilities.push((*danger, model.probability(text)));
        }
    }
    let danger = probabilities.iter().filter(|(danger, _)| *danger).count();
    let ordinary = probabilities.len() - danger;
    for threshold in [
        0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9,
    ] {
        let found = probabilities
            .iter()
            .filter(|(d, p)| *d && *p >= threshold)
            .count();
        let alarms = probabilities
            .iter()
            .filter(|(d, p)| !*d && *p >= threshold)
            .count();
        println!(
            "examples model, cross-validated, threshold {threshold}: recall {:.1}% ({found}/{danger}), false alarms {:.1}% ({alarms}/{ordinary})",
            100.0 * found as f64 / danger as f64,
            100.0 * alarms as f64 / ordinary as f64,
        );
    }
}

/// The menu's model of the areas measured as on requests it never saw: for each area
/// set, the model is learnt again without that set's lines (from the other sets' dev
/// lines and the menu's own words) and the set's dev lines are sent at the menu. The
/// vocabulary was written against every dev line, so the figures favour it a little;
/// the holdout lines, which neither saw, are the test's other figure.
#[test]
fn the_menu_model_cross_validated() {
    use sportello::dialogue::Action;
    use sportello::matching::classifier::ChoiceModel;
    let bundle = bundle();
    let menu = bundle.step("benvenuto", "menu").expect("the menu step");
    let Action::Choices {
        choices,
        examples: Some(examples),
        ..
    } = &menu.action
    else {
        panic!("the menu learns no areas from examples");
    };
    let ids: Vec<String> = choices.iter().map(|choice| choice.id.clone()).collect();
    let words: Vec<(String, String)> = choices
        .iter()
        .flat_map(|choice| {
            choice
                .own_texts()
                .map(|text| (choice.id.clone(), text.to_string()))
        })
        .collect();
    let (mut right, mut total) = (0, 0);
    let mut alone = (0, 0);
    for held in AREA_SETS
        .iter()
        .filter(|file| rows(file, 4).iter().any(|row| row[0] == "dev"))
    {
        let learnt: Vec<(String, String)> = AREA_SETS
            .iter()
            .filter(|file| *file != held)
            .flat_map(|file| rows(file, 4))
            .filter(|row| row[0] == "dev")
            .map(|row| (row[1].clone(), row[3].clone()))
            .chain(words.iter().cloned())
            .collect();
        let pairs: Vec<(&str, &str)> = learnt
            .iter()
            .map(|(choice, text)| (choice.as_str(), text.as_str()))
            .collect();
        let model = ChoiceModel::train(&ids, &pairs);
        for row in rows(held, 4) {
            if row[0] == "dev" && ids.contains(&row[1]) {
                alone.1 += 1;
                if model.ranked(&row[3])[0].0 == row[1] {
                    alone.0 += 1;
                }
            }
        }
        let mut unseen = bundle.clone();
        let menu = unseen
            .flows
            .iter_mut()
            .flat_map(|flow| flow.steps.iter_mut())
            .find(|step| step.id == "menu")
            .expect("the menu step");
        if let Action::Choices {
            examples: Some(examples),
            ..
        } = &mut menu.action
        {
            examples.model = Some(std::sync::Arc::new(model));
        }
        let counts = area_counts(&unseen, &[held], "dev", None);
        // Dev lines may be read: SPORTELLO_SHOW_UNSEEN=1 prints what the unseen model
        // got wrong, to tune the vocabulary and the rules by family.
        if std::env::var_os("SPORTELLO_SHOW_UNSEEN").is_some() {
            for wrong in &counts.wrong {
                println!("wrong area (dev, {held} unseen by the model): {wrong}");
            }
        }
        println!(
            "areas {held} dev, the menu's model learnt without it: {}",
            counts.share()
        );
        right += counts.right;
        total += counts.total;
    }
    // The model alone on the holdout lines (counted, never printed).
    let model = menu_model(&bundle).expect("the menu's model");
    let mut holdout = (0, 0);
    for row in AREA_SETS.iter().flat_map(|file| rows(file, 4)) {
        if row[0] == "holdout" && ids.contains(&row[1]) {
            holdout.1 += 1;
            if model.ranked(&row[3])[0].0 == row[1] {
                holdout.0 += 1;
            }
        }
    }
    println!(
        "areas holdout, the menu's model alone, its first area: {:.1}% ({}/{})",
        100.0 * holdout.0 as f64 / holdout.1 as f64,
        holdout.0,
        holdout.1
    );
    println!(
        "areas dev, each set unseen by the menu's model (threshold {}): {:.1}% right ({right}/{total}); the model alone, its first area: {:.1}% ({}/{})",
        examples.threshold,
        100.0 * right as f64 / total as f64,
        100.0 * alone.0 as f64 / alone.1 as f64,
        alone.0,
        alone.1,
    );
}

/// For whoever weighs the menu's vocabulary against its model: with
/// `SPORTELLO_AREA_FEATURES=FILE`, each line of the area sets is sent at the menu twice,
/// once with the model and once without (the vocabulary alone), and FILE gets one row
/// per line: set, split, area, what the vocabulary alone did, what both did, and the
/// model's three likeliest areas. No message text is written (holdout lines stay unread).
#[test]
fn area_features() {
    let Some(path) = std::env::var_os("SPORTELLO_AREA_FEATURES") else {
        return;
    };
    let bundle = bundle();
    let mut vocabulary_only = bundle.clone();
    for flow in &mut vocabulary_only.flows {
        for step in &mut flow.steps {
            if let sportello::dialogue::Action::Choices { examples, .. } = &mut step.action {
                *examples = None;
            }
        }
    }
    let outcome = |bundle: &Bundle, lang: &str, text: &str| {
        let mut conversation = Conversation::new(bundle, Some(lang), dialogue::default_test_now());
        conversation.send(Input::Text("/start".into()));
        conversation.send(Input::Button("y".into()));
        conversation.send(Input::Text(text.to_string()));
        let state = &conversation.state;
        if state.emergency {
            return "emergenza".to_string();
        }
        if state.flow == "benvenuto" {
            let choices = choice_buttons(state);
            return if choices.len() <= 2 && !choices.is_empty() {
                format!("offered:{}", choices.join("+"))
            } else {
                "none".into()
            };
        }
        let later = state
            .later
            .as_ref()
            .map(|later| format!("+later:{}", later.choice))
            .unwrap_or_default();
        let need = state
            .vars
            .get("need")
            .filter(|_| state.flow == bundle.bot.human.flow)
            .map(|need| format!(":{need}"))
            .unwrap_or_default();
        format!("{}{need}{later}", state.flow)
    };
    let mut out = String::new();
    for file in AREA_SETS {
        for row in rows(file, 4) {
            let (split, area, lang, text) = (&row[0], &row[1], &row[2], &row[3]);
            let model = menu_model(&bundle)
                .map(|model| {
                    model
                        .ranked(text)
                        .iter()
                        .take(3)
                        .map(|(area, p)| format!("{area}:{p:.3}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "{file}\t{split}\t{area}\t{lang}\t{}\t{}\t{model}\n",
                outcome(&vocabulary_only, lang, text),
                outcome(&bundle, lang, text),
            ));
        }
    }
    std::fs::write(&path, out).expect("the features file");
}

/// Asking for a person, and nothing else, puts no area on the volunteer's card: the
/// menu's model reads only what a message says besides the request ("parlare con
/// qualcuno" is also how loneliness is said, and would read as `ascolto`).
#[test]
fn asking_for_a_person_alone_puts_no_need_on_the_card() {
    let bundle = bundle();
    for (lang, text) in [
        ("it", "vorrei parlare con una persona"),
        ("it", "voglio parlare con un volontario per favore"),
        ("it", "mi passi un operatore?"),
        ("en", "I want to talk to a real person"),
        ("es", "quiero hablar con una persona"),
        ("fr", "je veux parler a un benevole"),
        ("ar", "أريد التحدث مع شخص حقيقي"),
        ("uk", "хочу поговорити з людиною"),
    ] {
        let mut conversation = Conversation::new(&bundle, Some(lang), dialogue::default_test_now());
        conversation.send(Input::Text("/start".into()));
        conversation.send(Input::Button("y".into()));
        let outputs = conversation.send(Input::Text(text.into())).to_vec();
        let handover = outputs.iter().find_map(|output| match output {
            Output::Handover(handover) => Some(handover),
            _ => None,
        });
        let handover = handover.unwrap_or_else(|| panic!("no handover for {text:?}"));
        assert_eq!(handover.need, "", "{text:?} put a need on the card");
    }
}

/// Danger in doubt while the conversation is with the volunteers: the volunteer reads
/// the message and judges; the citizen, who chats there, gets no line from the bot.
#[test]
fn danger_in_doubt_with_a_volunteer_is_the_volunteers_to_judge() {
    let bundle = bundle();
    let doubtful = "no veo ningún futuro y ya no sé para quién levantarme por la mañana";
    let mut conversation = Conversation::new(&bundle, Some("es"), dialogue::default_test_now());
    conversation.send(Input::Text("/start".into()));
    conversation.send(Input::Button("y".into()));
    conversation.send(Input::Text("quiero hablar con una persona".into()));
    conversation.send(Input::VolunteerJoined(Some("Anna".into())));
    let outputs = conversation.send(Input::Text(doubtful.into())).to_vec();
    assert!(!reply(&outputs).contains("1522"), "{outputs:?}");
    assert!(
        outputs.iter().any(|output| matches!(
            output,
            Output::ToVolunteer { text, alert: None } if text == doubtful
        )),
        "{outputs:?}"
    );
    // The same words at the menu: the line, once per conversation.
    let mut conversation = Conversation::new(&bundle, Some("es"), dialogue::default_test_now());
    conversation.send(Input::Text("/start".into()));
    conversation.send(Input::Button("y".into()));
    let outputs = conversation.send(Input::Text(doubtful.into())).to_vec();
    assert!(reply(&outputs).contains("1522"), "{outputs:?}");
    assert!(!conversation.state.emergency);
    conversation.send(Input::Text("/menu".into()));
    let outputs = conversation.send(Input::Text(doubtful.into())).to_vec();
    assert!(!reply(&outputs).contains("1522"), "{outputs:?}");
}
