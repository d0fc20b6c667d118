//! Cross-reference checks over a parsed bundle: targets resolve, ids are unique, every
//! step is reachable and leads somewhere, needs and variables exist, synonyms are not
//! shared, translations are complete, texts fit Telegram.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use super::{Action, Bundle, Flow, Step, Target, TestItem};
use crate::diagnostics::{Diagnostic, Sink, did_you_mean};
use crate::text::{Text, placeholders};
use crate::yaml::Span;

/// Telegram refuses longer messages.
pub const MAX_MESSAGE_CHARS: usize = 4096;
/// Longer button labels are cut on small phones.
pub const MAX_LABEL_CHARS: usize = 40;

/// Variables the engine sets by itself.
pub const BUILTIN_VARIABLES: &[&str] = &["need", "place", "comune", "lang", "emergency"];

pub fn check(bundle: &mut Bundle, out: &mut Vec<Diagnostic>) {
    duplicates(bundle, out);
    resolve_all(bundle, out);
    reachability(bundle, out);
    loops_without_questions(bundle, out);
    needs_and_variables(bundle, out);
    shared_synonyms(bundle, out);
    translations_and_limits(bundle, out);
    tests_refer_to_known_things(bundle, out);
}

fn duplicates(bundle: &Bundle, out: &mut Vec<Diagnostic>) {
    let mut seen_flows: HashSet<&str> = HashSet::new();
    for flow in &bundle.flows {
        let mut sink = Sink {
            file: &flow.file,
            out,
        };
        if !seen_flows.insert(&flow.id) {
            sink.error(
                flow.span,
                format!("there are two flows called '{}'", flow.id),
            );
        }
        let mut seen_steps: HashSet<&str> = HashSet::new();
        for step in &flow.steps {
            if !seen_steps.insert(&step.id) {
                sink.error_hint(
                    step.span,
                    format!(
                        "there are two steps called '{}' in flow '{}'",
                        step.id, flow.id
                    ),
                    "give each step its own id",
                );
            }
            if let Action::Choices { choices, .. } = &step.action {
                let mut seen_choices: HashSet<&str> = HashSet::new();
                for choice in choices {
                    if !seen_choices.insert(&choice.id) {
                        sink.error(
                            choice.span,
                            format!(
                                "there are two choices called '{}' in step '{}'",
                                choice.id, step.id
                            ),
                        );
                    }
                }
            }
        }
    }
    let mut sink = Sink {
        file: "bot.yaml",
        out,
    };
    report_repeated_ids(
        &mut sink,
        "intent",
        bundle.bot.intents.iter().map(|i| (i.id.as_str(), i.span)),
    );
    let mut sink = Sink {
        file: "directory.yaml",
        out,
    };
    report_repeated_ids(
        &mut sink,
        "need",
        bundle
            .directory
            .needs
            .iter()
            .map(|n| (n.id.as_str(), n.span)),
    );
    let organisations = bundle.directory.organisations.iter();
    report_repeated_ids(
        &mut sink,
        "organisation",
        organisations.map(|o| (o.id.as_str(), o.span)),
    );
    let mut sink = Sink {
        file: "places.yaml",
        out,
    };
    report_repeated_ids(
        &mut sink,
        "place",
        bundle
            .gazetteer
            .places
            .iter()
            .map(|p| (p.id.as_str(), p.span)),
    );
    for place in &bundle.gazetteer.places {
        if let Some(of) = &place.of {
            match bundle.gazetteer.get(of) {
                None => {
                    let hint =
                        did_you_mean(of, bundle.gazetteer.places.iter().map(|p| p.id.as_str()))
                            .unwrap_or_else(|| "use the id of a comune".into());
                    sink.error_hint(
                        place.span,
                        format!(
                            "place '{}' is of '{of}', which is not in places.yaml",
                            place.id
                        ),
                        hint,
                    );
                }
                Some(parent) if parent.of.is_some() => {
                    sink.error(
                        place.span,
                        format!("place '{}' is of '{of}', which is not a comune", place.id),
                    );
                }
                Some(_) => {}
            }
        }
    }
}

/// Reports every id that appears a second time among `items`.
fn report_repeated_ids<'a>(
    sink: &mut Sink,
    what: &str,
    items: impl Iterator<Item = (&'a str, Span)>,
) {
    let mut seen: HashSet<&str> = HashSet::new();
    for (id, span) in items {
        if !seen.insert(id) {
            sink.error_hint(
                span,
                format!("the {what} '{id}' is written twice"),
                format!("give each {what} its own id"),
            );
        }
    }
}

/// Fills `flow` and `step` of a target, or reports why it cannot.
fn resolve(bundle: &Bundle, current: Option<&Flow>, target: &mut Target, sink: &mut Sink) {
    let raw = target.raw.as_str();
    let found = match raw.split_once('.') {
        Some((flow_id, step_id)) => match bundle.flow(flow_id) {
            None => Err((
                format!("unknown flow '{flow_id}'"),
                did_you_mean(flow_id, bundle.flows.iter().map(|flow| flow.id.as_str())),
            )),
            Some(flow) if step_id.is_empty() => flow
                .first_step()
                .map(|step| (flow, step))
                .ok_or((format!("flow '{flow_id}' has no steps"), None)),
            Some(flow) => flow.step(step_id).map(|step| (flow, step)).ok_or_else(|| {
                (
                    format!("unknown step '{step_id}' in flow '{flow_id}'"),
                    did_you_mean(step_id, flow.steps.iter().map(|step| step.id.as_str())),
                )
            }),
        },
        None => {
            let in_current = current.and_then(|flow| flow.step(raw).map(|step| (flow, step)));
            let as_flow = || {
                bundle
                    .flow(raw)
                    .and_then(|flow| flow.first_step().map(|step| (flow, step)))
            };
            in_current.or_else(as_flow).ok_or_else(|| {
                let mut names: Vec<&str> =
                    bundle.flows.iter().map(|flow| flow.id.as_str()).collect();
                if let Some(flow) = current {
                    names.extend(flow.steps.iter().map(|step| step.id.as_str()));
                }
                let what = if current.is_some() { "step" } else { "flow" };
                (format!("unknown {what} '{raw}'"), did_you_mean(raw, names))
            })
        }
    };
    match found {
        Ok((flow, step)) => {
            target.flow = flow.id.clone();
            target.step = step.id.clone();
        }
        Err((message, hint)) => {
            if raw.is_empty() {
                return;
            }
            match hint {
                Some(hint) => sink.error_hint(target.span, message, hint),
                None => sink.error_hint(
                    target.span,
                    message,
                    "write the id of a step of this flow, a flow name, or flow.step",
                ),
            }
        }
    }
}

fn targets_of_step_mut(step: &mut Step) -> Vec<&mut Target> {
    let mut targets: Vec<&mut Target> = Vec::new();
    match &mut step.action {
        Action::Choices {
            choices, otherwise, ..
        } => {
            targets.extend(choices.iter_mut().filter_map(|choice| choice.next.as_mut()));
            targets.extend(otherwise.as_mut());
        }
        Action::Goto(target) => targets.push(target),
        Action::Branch { arms, otherwise } => {
            targets.extend(arms.iter_mut().map(|(_, target)| target));
            targets.extend(otherwise.as_mut());
        }
        _ => {}
    }
    targets.extend(step.next.as_mut());
    targets
}

pub fn targets_of_step(step: &Step) -> Vec<&Target> {
    let mut targets: Vec<&Target> = Vec::new();
    match &step.action {
        Action::Choices {
            choices, otherwise, ..
        } => {
            targets.extend(choices.iter().filter_map(|choice| choice.next.as_ref()));
            targets.extend(otherwise.as_ref());
        }
        Action::Goto(target) => targets.push(target),
        Action::Branch { arms, otherwise } => {
            targets.extend(arms.iter().map(|(_, target)| target));
            targets.extend(otherwise.as_ref());
        }
        _ => {}
    }
    targets.extend(step.next.as_ref());
    targets
}

fn resolve_all(bundle: &mut Bundle, out: &mut Vec<Diagnostic>) {
    let snapshot = bundle.clone();
    let mut sink = Sink {
        file: "bot.yaml",
        out,
    };
    resolve(&snapshot, None, &mut bundle.bot.welcome, &mut sink);
    if bundle.bot.welcome.step.is_empty()
        && bundle.bot.welcome.raw.is_empty()
        && snapshot.sources.contains_key("bot.yaml")
    {
        // Reported as missing by the loader already.
    }
    if snapshot.flow(&bundle.bot.human.raw).is_some() || bundle.bot.human.raw.contains('.') {
        resolve(&snapshot, None, &mut bundle.bot.human, &mut sink);
    } else {
        // No volunteer flow: "talk to a person" hands over directly (see the engine).
        bundle.bot.human.flow.clear();
        bundle.bot.human.step.clear();
    }
    for intent in &mut bundle.bot.intents {
        resolve(&snapshot, None, &mut intent.goto, &mut sink);
    }
    for group in &mut bundle.bot.emergencies {
        resolve(&snapshot, None, &mut group.goto, &mut sink);
    }
    for flow in &mut bundle.flows {
        let current = snapshot.flow(&flow.id);
        let mut sink = Sink {
            file: &flow.file,
            out,
        };
        for step in &mut flow.steps {
            for target in targets_of_step_mut(step) {
                resolve(&snapshot, current, target, &mut sink);
            }
        }
    }
}

fn reachability(bundle: &Bundle, out: &mut Vec<Diagnostic>) {
    let mut reached: BTreeSet<(String, String)> = BTreeSet::new();
    let mut queue: Vec<(String, String)> = Vec::new();
    let roots = std::iter::once(&bundle.bot.welcome)
        .chain(std::iter::once(&bundle.bot.human))
        .chain(bundle.bot.intents.iter().map(|intent| &intent.goto))
        .chain(bundle.bot.emergencies.iter().map(|group| &group.goto));
    for target in roots {
        if !target.step.is_empty() {
            queue.push((target.flow.clone(), target.step.clone()));
        }
    }
    while let Some(position) = queue.pop() {
        if !reached.insert(position.clone()) {
            continue;
        }
        let Some(step) = bundle.step(&position.0, &position.1) else {
            continue;
        };
        for target in targets_of_step(step) {
            if !target.step.is_empty() {
                queue.push((target.flow.clone(), target.step.clone()));
            }
        }
    }
    if bundle.bot.welcome.step.is_empty() {
        return; // Nothing is reachable without a welcome; that error is reported already.
    }
    for flow in &bundle.flows {
        let mut sink = Sink {
            file: &flow.file,
            out,
        };
        let unreached: Vec<&Step> = flow
            .steps
            .iter()
            .filter(|step| !reached.contains(&(flow.id.clone(), step.id.clone())))
            .collect();
        if unreached.len() == flow.steps.len() && !flow.steps.is_empty() {
            sink.warning_hint(
                flow.span,
                format!("flow '{}' is never reached", flow.id),
                "add a choice or an intent that leads to it",
            );
            continue;
        }
        for step in unreached {
            sink.warning_hint(
                step.span,
                format!("step '{}' is never reached", step.id),
                "no choice, next or goto leads here: link it or remove it",
            );
        }
    }
}

/// Steps that go on without waiting for the citizen: a cycle of them never stops.
fn loops_without_questions(bundle: &Bundle, out: &mut Vec<Diagnostic>) {
    let automatic = |step: &Step| {
        matches!(
            step.action,
            Action::Message | Action::Suggest { .. } | Action::Goto(_) | Action::Branch { .. }
        )
    };
    let mut reported: HashSet<(String, String)> = HashSet::new();
    for flow in &bundle.flows {
        for start in flow.steps.iter().filter(|step| automatic(step)) {
            // Depth-first search over automatic steps from `start`, looking for `start` again.
            let origin = (flow.id.clone(), start.id.clone());
            let mut stack: Vec<(String, String)> = targets_of_step(start)
                .into_iter()
                .map(|t| (t.flow.clone(), t.step.clone()))
                .collect();
            let mut seen: HashSet<(String, String)> = HashSet::new();
            while let Some(position) = stack.pop() {
                if position == origin {
                    if reported.insert(origin.clone()) {
                        let mut sink = Sink {
                            file: &flow.file,
                            out,
                        };
                        sink.error_hint(
                            start.span,
                            format!("step '{}' leads back to itself without asking anything", start.id),
                            "the citizen would receive messages forever: put a question (choices, ask or ask_place) in the loop",
                        );
                    }
                    break;
                }
                if !seen.insert(position.clone()) {
                    continue;
                }
                if let Some(step) = bundle.step(&position.0, &position.1)
                    && automatic(step)
                {
                    stack.extend(
                        targets_of_step(step)
                            .into_iter()
                            .map(|t| (t.flow.clone(), t.step.clone())),
                    );
                }
            }
        }
        let mut sink = Sink {
            file: &flow.file,
            out,
        };
        for step in &flow.steps {
            let needs_next = matches!(
                step.action,
                Action::Message
                    | Action::Ask { .. }
                    | Action::AskPlace { .. }
                    | Action::Suggest { .. }
            );
            if needs_next && step.next.is_none() {
                sink.error_hint(
                    step.span,
                    format!("step '{}' has no way forward", step.id),
                    "add `next:` with the following step, or `end: true` to close the conversation",
                );
            }
        }
    }
}

fn needs_and_variables(bundle: &Bundle, out: &mut Vec<Diagnostic>) {
    let needs: Vec<&str> = bundle
        .directory
        .needs
        .iter()
        .map(|need| need.id.as_str())
        .collect();
    let check_need = |sink: &mut Sink, need: &str, span: Span| {
        if need.is_empty() || need.contains('{') || needs.is_empty() || needs.contains(&need) {
            return;
        }
        let hint = did_you_mean(need, needs.iter().copied())
            .unwrap_or_else(|| "use a need listed in directory.yaml".into());
        sink.error_hint(span, format!("unknown need '{need}'"), hint);
    };
    let mut known: BTreeSet<String> = BUILTIN_VARIABLES
        .iter()
        .map(|name| name.to_string())
        .collect();
    for flow in &bundle.flows {
        for step in &flow.steps {
            match &step.action {
                Action::Ask { save, .. } => {
                    known.insert(save.clone());
                }
                Action::Choices { choices, .. } => {
                    known.extend(
                        choices
                            .iter()
                            .flat_map(|choice| choice.set.iter().map(|(name, _)| name.clone())),
                    );
                }
                _ => {}
            }
        }
    }
    let check_text = |sink: &mut Sink, text: &str, span: Span| {
        for name in placeholders(text) {
            if !known.contains(&name) {
                let hint =
                    did_you_mean(&name, known.iter().map(String::as_str)).unwrap_or_else(|| {
                        "a variable is set by a choice's `set:` or an `ask`'s `save:`".into()
                    });
                sink.error_hint(span, format!("unknown variable '{{{name}}}'"), hint);
            }
        }
    };
    for flow in &bundle.flows {
        let mut sink = Sink {
            file: &flow.file,
            out,
        };
        for step in &flow.steps {
            for text in step_texts(step) {
                for value in text.all() {
                    check_text(&mut sink, value, text.span);
                }
            }
            match &step.action {
                Action::Choices { choices, .. } => {
                    for choice in choices {
                        for (name, value) in &choice.set {
                            if name == "need" {
                                check_need(&mut sink, value, choice.span);
                            }
                        }
                    }
                }
                Action::Suggest { need, .. } => {
                    check_need(&mut sink, need, step.span);
                    check_text(&mut sink, need, step.span);
                }
                Action::Handover { need, note } => {
                    check_need(&mut sink, need, step.span);
                    check_text(&mut sink, need, step.span);
                    check_text(&mut sink, note, step.span);
                }
                Action::Branch { arms, .. } => {
                    for (condition, _) in arms {
                        if !known.contains(&condition.var) {
                            sink.error(
                                condition.span,
                                format!("unknown variable '{}'", condition.var),
                            );
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let mut sink = Sink {
        file: "bot.yaml",
        out,
    };
    for group in &bundle.bot.emergencies {
        check_need(&mut sink, &group.need, group.span);
        for (flow, span) in &group.never_offer {
            if flow != crate::dialogue::NEVER_OFFER_ANY && bundle.flow(flow).is_none() {
                sink.error_hint(
                    *span,
                    format!("never_offer: there is no flow '{flow}'"),
                    "write the id of an area's flow, as in `flow:` at the top of its file (conflitti), or `all` to offer none",
                );
            }
        }
    }
    let mut sink = Sink {
        file: "directory.yaml",
        out,
    };
    for organisation in &bundle.directory.organisations {
        for need in organisation.needs.iter().chain(
            organisation
                .services
                .iter()
                .flat_map(|service| &service.needs),
        ) {
            check_need(&mut sink, need, organisation.span);
        }
    }
    // A need chosen in a flow that no organisation offers leaves the citizen with
    // nothing: the engine says so and offers a volunteer, and the operators should know.
    let chosen: BTreeSet<&str> = bundle
        .flows
        .iter()
        .flat_map(|flow| &flow.steps)
        .filter_map(|step| match &step.action {
            Action::Choices { choices, .. } => Some(choices),
            _ => None,
        })
        .flatten()
        .flat_map(|choice| &choice.set)
        .filter(|(name, _)| name == "need")
        .map(|(_, value)| value.as_str())
        .collect();
    for need in &bundle.directory.needs {
        if chosen.contains(need.id.as_str()) && !bundle.directory.offers(&need.id, None) {
            sink.warning_hint(
                need.span,
                format!("no organisation offers '{}'", need.id),
                "citizens who choose it are offered a volunteer: add the organisations that help with it",
            );
        }
    }
    for organisation in &bundle.directory.organisations {
        for fact in &organisation.facts {
            if fact.source.is_none() {
                sink.warning_hint(
                    fact.span,
                    format!("no source is written for {}", fact.what),
                    "write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 }",
                );
            } else if fact.checked.is_none() {
                sink.warning_hint(
                    fact.span,
                    format!("no `checked:` date is written for {}", fact.what),
                    "write the day it was read or confirmed, like checked: 2026-12-01",
                );
            }
        }
    }
}

/// Facts of the directory read longer ago than `facts_max_age_days` (bot.yaml), as
/// warnings: the operators should confirm them again. `today` comes from the caller
/// (the command line), the checker having no clock.
pub fn stale_facts(bundle: &Bundle, today: chrono::NaiveDate) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let max_age = i64::from(bundle.bot.facts_max_age_days);
    let mut sink = Sink {
        file: "directory.yaml",
        out: &mut out,
    };
    for organisation in &bundle.directory.organisations {
        for fact in &organisation.facts {
            if let Some(checked) = fact.checked {
                let age = (today - checked).num_days();
                if age > max_age {
                    sink.warning_hint(
                        fact.span,
                        format!("{} was checked {age} days ago ({checked})", fact.what),
                        format!("confirm it with the organisation and update `checked:` (facts older than {max_age} days are reported; bot.yaml facts_max_age_days)"),
                    );
                }
            }
        }
    }
    out
}

/// Every text a step shows the citizen.
pub fn step_texts(step: &Step) -> Vec<&Text> {
    let mut texts: Vec<&Text> = step.say.iter().collect();
    match &step.action {
        Action::Choices { choices, .. } => texts.extend(choices.iter().map(|choice| &choice.label)),
        Action::Ask { text, .. } | Action::AskPlace { text } => texts.push(text),
        _ => {}
    }
    texts
}

fn shared_synonyms(bundle: &Bundle, out: &mut Vec<Diagnostic>) {
    for flow in &bundle.flows {
        let mut sink = Sink {
            file: &flow.file,
            out,
        };
        for step in &flow.steps {
            let Action::Choices { choices, .. } = &step.action else {
                continue;
            };
            let mut owner: BTreeMap<String, &str> = BTreeMap::new();
            for choice in choices {
                let mut own: Vec<(String, Span, String)> = choice
                    .synonyms
                    .iter()
                    .map(|synonym| {
                        (
                            crate::matching::Phrase::in_lang(&synonym.text, synonym.lang).key(),
                            synonym.span,
                            synonym.text.clone(),
                        )
                    })
                    .collect();
                own.extend(choice.label.by_lang.iter().map(|(code, text)| {
                    let lang =
                        crate::matching::Lang::from_code(code).unwrap_or(crate::matching::Lang::It);
                    (
                        crate::matching::Phrase::in_lang(text, lang).key(),
                        choice.label.span,
                        text.to_string(),
                    )
                }));
                let mut within: HashSet<String> = HashSet::new();
                for (key, span, text) in own {
                    if key.is_empty() || !within.insert(key.clone()) {
                        continue;
                    }
                    match owner.get(&key) {
                        Some(other) if *other != choice.id => sink.error_hint(
                            span,
                            format!("'{text}' matches both choice '{other}' and choice '{}' of step '{}'", choice.id, step.id),
                            "keep it in one choice only, so the bot knows what the citizen means",
                        ),
                        _ => {
                            owner.insert(key, &choice.id);
                        }
                    }
                }
            }
        }
    }
}

/// The bot's messages a partly translated language must have: those of the privacy
/// consent, the menu, the emergency and the way to a person.
pub const PARTIAL_MESSAGE_KEYS: &[&str] = &[
    "consent_ask",
    "consent_accept",
    "consent_decline",
    "consent_declined",
    "consent_explain",
    "not_understood",
    "menu_button",
    "human_button",
    "choose_language",
    "language_set",
    "handover_in_hours",
    "handover_out_of_hours",
    "danger_doubt",
];

fn translations_and_limits(bundle: &Bundle, out: &mut Vec<Diagnostic>) {
    let full = &bundle.bot.languages;
    let partial = &bundle.bot.partial_languages;
    // Flows a partly translated language must have whole: the welcome (with the menu)
    // and the emergency flows.
    let mut whole_flows: BTreeSet<&str> = BTreeSet::new();
    whole_flows.insert(bundle.bot.welcome.flow.as_str());
    for group in &bundle.bot.emergencies {
        whole_flows.insert(group.goto.flow.as_str());
    }
    for intent in bundle.bot.intents.iter().filter(|intent| intent.emergency) {
        whole_flows.insert(intent.goto.flow.as_str());
    }
    let missing_in = |text: &Text, with_partial: bool| -> Vec<&str> {
        full.iter()
            .chain(partial.iter().filter(|_| with_partial))
            .filter(|lang| !text.by_lang.contains_key(lang.as_str()))
            .map(String::as_str)
            .collect()
    };
    let report = |sink: &mut Sink, text: &Text, what: &str, missing: Vec<&str>| {
        if missing.is_empty() {
            return;
        }
        let quoted: Vec<String> = missing.iter().map(|lang| format!("'{lang}'")).collect();
        sink.warning_hint(
            text.span,
            format!("{what} has no {} translation", quoted.join(", ")),
            "citizens who chose that language read the Italian text instead",
        );
    };
    for flow in &bundle.flows {
        let with_partial = whole_flows.contains(flow.id.as_str());
        let mut sink = Sink {
            file: &flow.file,
            out,
        };
        for text in flow.title.iter() {
            report(&mut sink, text, "the title", missing_in(text, with_partial));
        }
        for step in &flow.steps {
            for text in step_texts(step) {
                let what = format!("a text of step '{}'", step.id);
                report(&mut sink, text, &what, missing_in(text, with_partial));
                for value in text.all() {
                    if value.chars().count() > MAX_MESSAGE_CHARS {
                        sink.error_hint(
                            text.span,
                            format!("this text is longer than {MAX_MESSAGE_CHARS} characters"),
                            "Telegram refuses it: split it into two steps",
                        );
                    }
                }
            }
            if let Action::Choices { choices, .. } = &step.action {
                for choice in choices {
                    for value in choice.label.all() {
                        if value.chars().count() > MAX_LABEL_CHARS {
                            sink.warning_hint(
                                choice.label.span,
                                format!("the label '{value}' is longer than {MAX_LABEL_CHARS} characters"),
                                "phones cut long buttons: shorten it",
                            );
                        }
                    }
                }
            }
        }
    }
    let mut sink = Sink {
        file: "bot.yaml",
        out,
    };
    report(
        &mut sink,
        &bundle.bot.privacy,
        "the privacy notice",
        missing_in(&bundle.bot.privacy, true),
    );
    for (key, text) in bundle.bot.messages.iter() {
        let with_partial = PARTIAL_MESSAGE_KEYS.contains(&key);
        let what = if text.span == Span::default() {
            format!("message `{key}` (not in bot.yaml: the built-in Italian and English)")
        } else {
            format!("message `{key}`")
        };
        let mut text = text.clone();
        if text.span == Span::default() {
            text.span = Span { line: 1, col: 1 };
        }
        report(&mut sink, &text, &what, missing_in(&text, with_partial));
    }
    // A group that learns from examples may have no patterns of its own.
    for group in bundle
        .bot
        .emergencies
        .iter()
        .filter(|group| group.examples.is_none())
    {
        for lang in full.iter().chain(partial) {
            if !group.pattern_langs.iter().any(|(code, _)| code == lang) {
                sink.warning_hint(
                    group.span,
                    format!("emergency '{}' has no patterns in '{lang}'", group.id),
                    format!("add `{lang}: [...]` under its patterns: danger written in that language would be missed"),
                );
            }
        }
    }
    let mut sink = Sink {
        file: "directory.yaml",
        out,
    };
    // Need labels are read by volunteers and in the report, not by citizens: no
    // translations are asked of them.
    for organisation in &bundle.directory.organisations {
        for service in &organisation.services {
            for (text, kind) in [
                (&service.name, "the name"),
                (&service.bring, "what to bring"),
                (&service.note, "the note"),
            ] {
                if let Some(text) = text {
                    let what = format!(
                        "{kind} of service '{}' of '{}'",
                        service.id, organisation.id
                    );
                    report(&mut sink, text, &what, missing_in(text, false));
                }
            }
        }
    }
}

fn tests_refer_to_known_things(bundle: &Bundle, out: &mut Vec<Diagnostic>) {
    for test in &bundle.tests {
        let mut sink = Sink {
            file: &test.file,
            out,
        };
        if let Some(lang) = &test.lang
            && !bundle.bot.languages.contains(lang)
        {
            sink.warning(
                test.span,
                format!("the bot does not speak '{lang}': the test starts in Italian"),
            );
        }
        for item in &test.items {
            match item {
                TestItem::Suggests(ids, span) => {
                    for id in ids {
                        if bundle.directory.organisation(id).is_none() {
                            let hint = did_you_mean(
                                id,
                                bundle
                                    .directory
                                    .organisations
                                    .iter()
                                    .map(|org| org.id.as_str()),
                            )
                            .unwrap_or_else(|| "use an organisation id from directory.yaml".into());
                            sink.error_hint(*span, format!("unknown organisation '{id}'"), hint);
                        }
                    }
                }
                // A need known only by its area is the area's flow ("ascolto").
                TestItem::Handover(Some(need), span)
                    if bundle.directory.need(need).is_none()
                        && bundle.flow(need).is_none()
                        && !bundle.directory.needs.is_empty() =>
                {
                    sink.error(*span, format!("unknown need '{need}'"));
                }
                _ => {}
            }
        }
    }
}
