//! What the engine makes of a typed message: danger first, in the whole text and in
//! every mode; the language it is written in; commands; everyday answers ("sì", "no
//! grazie", "non capisco"); intents; and the answer to the current question, with what
//! else the message said (a place, a second need, a need along with a wish for a person).

use super::{Button, ButtonAction, Command, Later, MAX_INPUT_CHARS, Mode, Output, Turn, matching};
use crate::dialogue::{Action, Danger, DangerRead, Intent, Step, Target};
use crate::matching::pattern::PatternText;
use crate::matching::{Everyday, Lang, Match, Phrase, Words};
use crate::text::{ITALIAN, fill};

/// Intents and deeper choices need a close match; a choice at the current question a
/// looser one (it is what the question asks).
const INTENT_THRESHOLD: f32 = 0.8;
const CHOICE_THRESHOLD: f32 = 0.7;
/// A second need is kept only when it is named clearly, by a whole label or synonym
/// (a single word of a label scores at most `LABEL_WORD_WEIGHT`, 0.9, times 0.92).
const SECOND_NEED_THRESHOLD: f32 = 0.88;
/// A choice named by several words of a long message is likelier the need than one named
/// by a single word in passing ("sono qui per lavoro, non conosco nessuno, piango, vorrei
/// parlare": listening, not work): each further word of the text its phrases use adds
/// this much to its best phrase's score, up to [`EVIDENCE_MAX_WORDS`] words.
const EVIDENCE_STEP: f32 = 0.05;
const EVIDENCE_MAX_WORDS: u32 = 4;
/// How many more words of the text a second need must be named by to be asked before
/// the one written first.
const EVIDENCE_LEAD: u32 = 2;

/// A choice's score raised by the words of the text its phrases use beyond the first.
fn with_evidence(score: f32, positions: u64) -> f32 {
    let further = positions
        .count_ones()
        .saturating_sub(1)
        .min(EVIDENCE_MAX_WORDS);
    score + EVIDENCE_STEP * further as f32
}

/// The step's model overrules the choice whose words are in the message only when it
/// gives that choice less than this probability (and another at least its threshold).
const OVERRULE_BELOW: f32 = 0.1;

/// `read` with the phrase of a fixed text of the bot ("Torna al menu"), prepared once
/// per thread: preparing it stems every word, which costs more than the whole match.
fn with_phrase<T>(text: &str, lang: Lang, read: impl FnOnce(&Phrase) -> T) -> T {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static PHRASES: RefCell<HashMap<Lang, HashMap<String, Phrase>>> =
            RefCell::new(HashMap::new());
    }
    PHRASES.with(|phrases| {
        let mut phrases = phrases.borrow_mut();
        let of_lang = phrases.entry(lang).or_default();
        if !of_lang.contains_key(text) {
            // Bounded: edited dialogues bring new texts.
            if of_lang.len() > 256 {
                of_lang.clear();
            }
            of_lang.insert(text.to_string(), Phrase::in_lang(text, lang));
        }
        let phrase = &of_lang[text];
        read(phrase)
    })
}

/// Of two needs named in one message, the step's model says which comes first when it
/// is sure of one (its threshold) and finds it at least this many times likelier than
/// the other (below, the words decide). Chosen on the features of the holdout lines
/// (labels and numbers only): holdout 1,119 -> 1,128 of 1,224 right, the dev sets each
/// unseen by the model 1,270 -> 1,268 of 1,296 (1.5 and 3 did no better).
const MODEL_LEAD: f32 = 2.0;

/// How sure the menu's model must be of the need a message names beside danger for
/// it to be offered after the numbers, reading the whole message or what it says
/// besides the danger's own words. Chosen on the dev danger lines and the holdout's
/// ordinary requests read as danger: at 0.7, 16 of those 26 requests keep their area
/// (12 once medical danger and fire offer none, `never_offer: all`), and 137 of the
/// 1,496 dev danger lines get a button, mostly their practical need (permits,
/// housing, school); at 0.6, 259 buttons for the same 16; the vocabulary alone, 476
/// (a beaten wife's "casa" and "marito" name other areas).
const REQUEST_BESIDE_DANGER: f32 = 0.7;

/// The model, sure of a choice, still leaves the decision to the words when the choice
/// they name has at least this probability (a likely need, named: "cerco un bilocale in
/// affitto ma vogliono il contratto a tempo indeterminato").
const WORDS_HOLD_FROM: f32 = 0.2;

/// A message with this many words besides the words of an intent that goes back to
/// the menu (filler apart) is not that request: "спочатку" (at first), "go back".
const RESTART_MAX_OTHER_WORDS: usize = 3;

/// How sure a step's model must be of its two likeliest choices together to offer them
/// ("Intendi una di queste?") when no choice's words are in the message: below it the
/// message is not understood (a dozen areas each a little likely is no reading).
const OFFER_TWO: f32 = 0.5;

/// How sure a step's model must be for its choice to be taken (no model: never).
fn threshold(step: &Step) -> f32 {
    step.choice_examples()
        .map_or(f32::INFINITY, |examples| examples.threshold)
}

/// The probability a model's ranking gives a choice (0 when it does not rank it).
fn probability_of(ranked: &[(&str, f32)], id: &str) -> f32 {
    ranked
        .iter()
        .find(|(choice, _)| *choice == id)
        .map_or(0.0, |(_, p)| *p)
}

/// A language the bot does not speak, with one it speaks that its writers read.
fn neighbour(lang: Lang) -> Option<&'static str> {
    match lang {
        Lang::Ru => Some("uk"),
        _ => None,
    }
}

/// A choice named in a message, with the positions of its words (a bit each).
type Named<'a> = (&'a str, u64);

/// Two needs named in one message ("lo SPID e anche le bollette"): the two best scored
/// choices, different, each named by words of its own, the second clearly; each with
/// the positions of its words.
fn two_needs(scored: &[(f32, u64, ButtonAction)]) -> Option<(Named<'_>, Named<'_>)> {
    match scored {
        [
            (_, first_at, ButtonAction::Choice(first_id)),
            (second_score, second_at, ButtonAction::Choice(second_id)),
            ..,
        ] if first_id != second_id
            && *first_at != 0
            && *second_at != 0
            && first_at & second_at == 0
            && *second_score >= SECOND_NEED_THRESHOLD =>
        {
            Some(((first_id, *first_at), (second_id, *second_at)))
        }
        _ => None,
    }
}

/// What a text says besides naming an intent: its words that are neither the intent's
/// (those of its phrases and patterns) nor filler, normalised; None when nothing is left.
fn beside_intent(intent: &Intent, text: &str) -> Option<String> {
    let intent_words = intent.words();
    let rest: Vec<String> = matching::tokens(text)
        .into_iter()
        .filter(|token| {
            !crate::matching::lang::is_function_word(token)
                && !intent_words.iter().any(|(word, prefix)| {
                    if *prefix {
                        token.starts_with(word.as_str())
                    } else {
                        token == word
                    }
                })
        })
        .collect();
    (!rest.is_empty()).then(|| rest.join(" "))
}

/// How sure the menu's model must be of the need it reads in the words said besides
/// asking for a person ("mi passi un operatore?" leaves one word, "passi"), for it to
/// go on the volunteer's card: at least half, or the step's own threshold if higher.
const CARD_SURE: f32 = 0.5;

/// The choice a step's model is sure of for a normalised text, at least `sure` and the
/// step's threshold (none without a model).
fn model_choice<'b>(
    step: &'b Step,
    normalised: &str,
    sure: f32,
) -> Option<&'b crate::dialogue::Choice> {
    let examples = step.choice_examples()?;
    let model = examples.model.as_ref()?;
    let Action::Choices { choices, .. } = &step.action else {
        return None;
    };
    let ranked = model.ranked_normalised(normalised);
    let (best, p) = ranked.first()?;
    if *p < examples.threshold.max(sure) {
        return None;
    }
    choices.iter().find(|choice| choice.id == *best)
}

impl<'b> Turn<'b> {
    /// The languages a message is matched in: the conversation's, English, and the one
    /// it is written in.
    pub(super) fn langs(&self) -> Vec<Lang> {
        let mut langs = vec![Lang::En];
        if let Some(lang) = Lang::from_code(&self.state.lang) {
            langs.push(lang);
        }
        if let Some(lang) = self.written {
            langs.push(lang);
        }
        langs
    }

    pub(super) fn words(&self, text: &str) -> Words {
        Words::new(text, &self.langs())
    }

    pub(super) fn text(&mut self, raw: &str) {
        let trimmed = raw.trim();
        // Danger first: the whole message, before any command, cut or mode. The message
        // is read for patterns once: the intents read the same words.
        let read = PatternText::new(trimmed);
        let danger = self.bundle.bot.emergency_in(trimmed, &read);
        self.pattern_text = Some((trimmed.to_string(), read));
        self.follow_written_language(trimmed);
        match danger {
            DangerRead::Danger(danger) => return self.emergency(danger, trimmed),
            // In doubt, the numbers once, before the usual answer. Not in a conversation
            // with the volunteers: there the citizen chats ("anche io ho scritto nel
            // frattempo" reads as doubt), a volunteer reads every message, and out of
            // hours the handover already gave the numbers.
            DangerRead::Doubt
                if !self.state.doubt_told && self.state.mode != Mode::WithVolunteer =>
            {
                self.state.doubt_told = true;
                let line = self.message("danger_doubt");
                self.say(line);
            }
            DangerRead::Doubt | DangerRead::Nothing => {}
        }
        if trimmed.starts_with('/') {
            match Command::parse(trimmed) {
                Some(command) => return self.command(command),
                None if !trimmed.contains(' ') => {
                    let notice = self.message("unknown_command");
                    self.say(notice);
                    return self.prompt_or_start();
                }
                None => {}
            }
        }
        let text: String = if trimmed.chars().count() > MAX_INPUT_CHARS {
            if self.state.mode != Mode::WithVolunteer {
                let notice = self.message("too_long");
                self.say(notice);
            }
            trimmed.chars().take(MAX_INPUT_CHARS).collect()
        } else {
            trimmed.to_string()
        };
        let words = self.words(&text);
        if let Some(intent) = self.find_intent(&text, &words, true) {
            return self.intent(intent, &text);
        }
        let at_free_text = self.state.mode == Mode::AtStep
            && matches!(
                self.current_step().map(|step| &step.action),
                Some(Action::Ask { .. })
            );
        if !at_free_text
            && self.state.mode != Mode::WithVolunteer
            && let Ok(number) = text.parse::<usize>()
            && (1..=self.state.buttons.len()).contains(&number)
        {
            let action = self.state.buttons[number - 1].action.clone();
            return self.press(action);
        }
        // A button's exact label, as a reply keyboard sends it, is that button.
        let normalised = matching::normalise(&text);
        if !at_free_text
            && !normalised.is_empty()
            && let Some(button) = self
                .state
                .buttons
                .iter()
                // A label normalises to no more bytes than it has when it is ASCII, and
                // to at most twice as many otherwise (a decomposed ligature, a space
                // between scripts): a longer text is not a label, and the labels need
                // not be normalised (a dozen per message at the menu).
                .filter(|button| {
                    let bound = if button.label.is_ascii() {
                        button.label.len()
                    } else {
                        2 * button.label.len() + 2
                    };
                    normalised.len() <= bound
                })
                .find(|button| matching::normalise(&button.label) == normalised)
        {
            let action = button.action.clone();
            return self.press(action);
        }
        let everyday = matching::everyday(&text);
        match self.state.mode {
            Mode::New => {
                if !words.is_empty() {
                    self.state.pending = Some(text);
                }
                self.start();
            }
            Mode::Consent => self.at_consent(text, &words, everyday),
            Mode::ChooseLanguage => match self.match_buttons(&words) {
                Some(action) => self.press(action),
                None => self.prompt(),
            },
            Mode::ConfirmForget => match (everyday, self.match_buttons(&words)) {
                (Some(Everyday::Yes), _) => self.press(ButtonAction::ForgetYes),
                (Some(Everyday::No), _) => self.press(ButtonAction::ForgetNo),
                (_, Some(action)) => self.press(action),
                _ => self.prompt(),
            },
            Mode::Ended => {
                if matches!(
                    everyday,
                    Some(Everyday::Thanks | Everyday::Greeting | Everyday::No)
                ) {
                    let text = self.message("you_are_welcome");
                    let buttons = vec![self.button("menu_button", ButtonAction::Menu)];
                    return self.ask(text, buttons, false);
                }
                if let Some(intent) = self.find_intent(&text, &words, false) {
                    return self.intent(intent, &text);
                }
                self.home();
                self.answer_at_menu(&text);
            }
            Mode::WithVolunteer => {
                if let Some(intent) = self.find_intent(&text, &words, false)
                    && intent.goto != self.bundle.bot.human
                {
                    return self.intent(intent, &text);
                }
                // The volunteer reads the whole message, however long.
                self.out.push(Output::ToVolunteer {
                    text: trimmed.to_string(),
                    alert: None,
                });
            }
            Mode::AtStep => {
                if let Some(intent) = self.find_intent(&text, &words, false) {
                    return self.intent(intent, &text);
                }
                if let Some(kind) = everyday
                    && self.everyday_at_step(kind)
                {
                    return;
                }
                self.remember_place(&words);
                self.answer(&text, &words);
            }
        }
    }

    /// Danger: the numbers of its kind at once, in any mode. With a volunteer the case
    /// stays theirs: the citizen gets the numbers and the volunteer an alert.
    fn emergency(&mut self, danger: Danger<'b>, text: &str) {
        let group = danger.group;
        self.state.emergency = true;
        self.state.emergency_kind = Some(group.id.clone());
        self.state.vars.insert("need".into(), group.need.clone());
        self.state.vars.insert("emergency".into(), group.id.clone());
        if self.state.mode == Mode::WithVolunteer {
            let numbers = self
                .bundle
                .step(&group.goto.flow, &group.goto.step)
                .and_then(|step| step.say.as_ref())
                .map(|say| self.render(say))
                .unwrap_or_else(|| self.message("handover_in_hours"));
            let buttons = vec![self.button("menu_button", ButtonAction::Menu)];
            self.ask(numbers, buttons, false);
            self.out.push(Output::ToVolunteer {
                text: text.to_string(),
                alert: Some(group.id.clone()),
            });
            return;
        }
        self.state.resume = None;
        self.keep_request_beside_danger(&danger, text);
        self.enter(&group.goto);
    }

    /// A need the message names beside the danger ("mi picchia e devo trovare una casa
    /// per me e i bambini"), kept to be offered with a button at the question after the
    /// numbers: real danger keeps its practical need, and a false alarm ("ho paura
    /// che ci sfrattano, non dormo più") does not lose the request. Read by the
    /// menu's model, at least [`REQUEST_BESIDE_DANGER`] sure, not by the vocabulary
    /// (danger's words name areas in passing: "casa", "marito", "vicino"); never an
    /// emergency's own flow, a person (that question offers one) or an area the group
    /// holds back (`never_offer`).
    fn keep_request_beside_danger(&mut self, danger: &Danger, text: &str) {
        let group = danger.group;
        let Some((flow, step)) = self.menu_step() else {
            return;
        };
        let Some(menu) = self.bundle.step(&flow, &step) else {
            return;
        };
        let text: String = text.chars().take(MAX_INPUT_CHARS).collect();
        let offerable = |choice: &&crate::dialogue::Choice| {
            choice.next.as_ref().is_some_and(|next| {
                !self.is_emergency_flow(&next.flow)
                    && next.flow != self.bundle.bot.human.flow
                    && !group.holds_back(&next.flow)
            })
        };
        // The model reads the whole message and what it says besides the danger's own
        // words; either, sure enough, names the need.
        let whole = matching::normalise(&text);
        let besides = || {
            let (_, read) = self.pattern_text.as_ref()?;
            let besides = read.words_besides(&danger.found);
            model_choice(menu, &besides, REQUEST_BESIDE_DANGER)
        };
        let Some(choice) = model_choice(menu, &whole, REQUEST_BESIDE_DANGER)
            .or_else(besides)
            .filter(offerable)
        else {
            return;
        };
        // The question that follows the numbers, where it is offered.
        let numbers = &group.goto;
        let offer_at = self
            .bundle
            .step(&numbers.flow, &numbers.step)
            .and_then(|step| step.next.as_ref())
            .unwrap_or(numbers);
        self.state.later = Some(Later {
            flow,
            step,
            choice: choice.id.clone(),
            text,
            offered_at: Some((offer_at.flow.clone(), offer_at.step.clone())),
        });
    }

    /// Follows the language the citizen writes in: the script (Arabic, Cyrillic,
    /// Chinese) or a clear sentence decides; a language the bot does not speak but whose
    /// writers read one it speaks (Russian: Ukrainian) is offered with one button.
    fn follow_written_language(&mut self, text: &str) {
        let current = Lang::from_code(&self.state.lang);
        let Some(found) = matching::detect::detect_beside(text, current) else {
            return;
        };
        self.written = Some(found.lang);
        let code = found.lang.code();
        if code == self.state.lang {
            return;
        }
        if self.bundle.bot.speaks(code) {
            self.state.lang = code.to_string();
            let notice = self.message("language_set");
            self.say(notice);
        } else if let Some(near) = neighbour(found.lang)
            && self.bundle.bot.speaks(near)
            && self.state.lang != near
        {
            self.offer = Some(near.to_string());
        }
    }

    /// Puts the language offer, if any, under the turn's last question.
    pub(super) fn offer_language(&mut self) {
        let Some(code) = self.offer.take() else {
            return;
        };
        let label = crate::dialogue::messages::language_name(&code).to_string();
        let offer = self
            .bundle
            .bot
            .messages
            .get("language_offer")
            .get(&code)
            .to_string();
        let state_buttons = self.state.buttons.clone();
        let Some(Output::Message { text, buttons, .. }) = self.out.iter_mut().rev().find(
            |output| matches!(output, Output::Message { buttons, .. } if !buttons.is_empty()),
        ) else {
            return;
        };
        if *buttons != state_buttons {
            return;
        }
        text.push_str("\n\n");
        text.push_str(&offer);
        let button = Button {
            label,
            action: ButtonAction::Language(code),
        };
        buttons.push(button.clone());
        self.state.buttons.push(button);
    }

    fn at_consent(&mut self, text: String, words: &Words, everyday: Option<Everyday>) {
        match everyday {
            Some(Everyday::Yes) => return self.press(ButtonAction::ConsentYes),
            Some(Everyday::No) => return self.press(ButtonAction::ConsentNo),
            Some(Everyday::Confused | Everyday::Help) => {
                // Two plain lines and the button, not the same screen again.
                let explanation = self.message("consent_explain");
                let buttons = self.consent_buttons();
                return self.ask(explanation, buttons, false);
            }
            Some(Everyday::Greeting | Everyday::Thanks) => return self.prompt(),
            None => {}
        }
        match self.match_buttons(words) {
            Some(action) => self.press(action),
            None => {
                // A need written before consenting is kept and answered right after it.
                if !words.is_empty() {
                    self.state.pending = Some(text);
                }
                let question = self.message("consent_ask");
                let buttons = self.consent_buttons();
                self.ask(question, buttons, false);
            }
        }
    }

    /// An everyday answer at a question, where it fits: "sì" picks the choice whose
    /// label starts with a yes, "no grazie" and "grazie" the one that starts with a no,
    /// a greeting repeats the question, "non capisco" and "aiuto" explain the buttons.
    fn everyday_at_step(&mut self, kind: Everyday) -> bool {
        let Some(step) = self.current_step() else {
            return false;
        };
        match &step.action {
            Action::Choices { choices, .. } => {
                let lang = self.state.lang.clone();
                let answering = |wanted: Everyday| {
                    choices.iter().find(|choice| {
                        [choice.label.get(&lang), choice.label.get(ITALIAN)]
                            .into_iter()
                            .any(|label| matching::lang::label_answer(label) == Some(wanted))
                    })
                };
                match kind {
                    Everyday::Yes | Everyday::No | Everyday::Thanks => {
                        let wanted = if kind == Everyday::Yes {
                            Everyday::Yes
                        } else {
                            Everyday::No
                        };
                        if let Some(choice) = answering(wanted) {
                            let id = choice.id.clone();
                            self.choose(&id, None);
                            return true;
                        }
                        if kind == Everyday::Thanks {
                            let text = self.message("you_are_welcome");
                            self.say(text);
                            self.prompt();
                            return true;
                        }
                        false
                    }
                    Everyday::Greeting => {
                        let text = self.message("hello_again");
                        self.say(text);
                        self.prompt();
                        true
                    }
                    Everyday::Confused | Everyday::Help => {
                        self.miss_with(Some("help_hint"));
                        true
                    }
                }
            }
            Action::AskPlace { .. } => match kind {
                Everyday::Greeting => {
                    let text = self.message("hello_again");
                    self.say(text);
                    self.prompt();
                    true
                }
                Everyday::Confused | Everyday::Help => {
                    self.miss_with(Some("help_hint"));
                    true
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// The intent the text names: by its phrases (function words dropped) or by its
    /// patterns (every word, in order). Before consent only emergency intents count.
    pub(super) fn find_intent(
        &self,
        text: &str,
        words: &Words,
        emergency: bool,
    ) -> Option<&'b Intent> {
        if !emergency && !self.state.consent {
            return None;
        }
        let bundle = self.bundle;
        let hits = bundle.index.hits(words);
        let mut pattern_text: Option<PatternText> = None;
        let read = match &self.pattern_text {
            Some((read_from, read)) if read_from == text => Some(read),
            _ => None,
        };
        bundle
            .bot
            .intents
            .iter()
            .filter(|intent| intent.emergency == emergency)
            .filter_map(|intent| {
                let mut score = hits.score(&bundle.index, intent.phrase_set);
                if score < INTENT_THRESHOLD && !intent.patterns.is_empty() {
                    let text = match read {
                        Some(read) => read,
                        None => pattern_text.get_or_insert_with(|| PatternText::new(text)),
                    };
                    if !intent.patterns.find_all(text).is_empty() {
                        score = 1.0;
                    }
                }
                (score >= INTENT_THRESHOLD).then_some((score, intent))
            })
            // Going back to the menu is asked in a few words ("torna al menu"): in a
            // longer message its words are said in passing ("спочатку", at first;
            // "go back" home), and the message says something else.
            .filter(|(_, intent)| {
                intent.goto.flow != bundle.bot.welcome.flow
                    || beside_intent(intent, text)
                        .is_none_or(|rest| rest.split(' ').count() < RESTART_MAX_OTHER_WORDS)
            })
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, intent)| intent)
    }

    /// An intent; asking for a person keeps the need and the place said along with it
    /// ("voglio una persona per lo SPID").
    pub(super) fn intent(&mut self, intent: &'b Intent, text: &str) {
        if intent.emergency {
            self.state.emergency = true;
        }
        if intent.goto == self.bundle.bot.human
            || (intent.goto.flow == self.bundle.bot.human.flow
                && intent.goto.step == self.bundle.bot.human.step)
        {
            for (name, value) in self.infer_need(intent, text) {
                self.state.vars.insert(name, value);
            }
            let words = self.words(text);
            self.remember_place(&words);
            if let Some(place) = self.state.known_place.take()
                && let Some(place) = self.bundle.gazetteer.get(&place)
                && self.bundle.gazetteer.reach(place) == crate::directory::Reach::District
            {
                let comune = self.bundle.gazetteer.comune_of(place);
                self.state.vars.insert("comune".into(), comune.name.clone());
                self.state.comune_id = Some(comune.id.clone());
            }
        }
        self.enter(&intent.goto);
    }

    /// The choices a request for a person names besides the request, from the menu
    /// down, as the variables they set, without moving: the need to put on a
    /// volunteer's card. The rest of the words are read, not the request's ("parlare
    /// con qualcuno" is also how loneliness is said); at the menu the step's model reads
    /// them too when no choice's words are there ("sono sola e non parlo con nessuno da
    /// giorni, vorrei un volontario"). A need known only by its area is that area's id
    /// ("ascolto"), when the conversation has no need yet.
    fn infer_need(&self, intent: &Intent, text: &str) -> Vec<(String, String)> {
        let mut vars = Vec::new();
        let Some(rest) = beside_intent(intent, text) else {
            return vars;
        };
        let words = self.words(&rest);
        let Some((flow, step)) = self.menu_step() else {
            return vars;
        };
        let Some(menu) = self.bundle.step(&flow, &step) else {
            return vars;
        };
        let mut target = Target {
            raw: String::new(),
            span: Default::default(),
            flow,
            step,
        };
        let mut area = None;
        for level in 0..4 {
            let choice = match self.deeper_choice(&target, &words) {
                Some(choice) => Some(choice),
                None if level == 0 => model_choice(menu, &rest, CARD_SURE),
                None => None,
            };
            let Some(choice) = choice else {
                break;
            };
            if level == 0 {
                area = Some(choice.id.clone());
            }
            for (name, value) in &choice.set {
                vars.push((name.clone(), fill(value, &self.state.vars)));
            }
            match &choice.next {
                Some(next) => target = next.clone(),
                None => break,
            }
        }
        let need_known = vars.iter().any(|(name, _)| name == "need")
            || self
                .state
                .vars
                .get("need")
                .is_some_and(|need| !need.is_empty());
        if let Some(area) = area
            && !need_known
        {
            vars.push(("need".into(), area));
        }
        vars
    }

    /// The choice of the question at `target` that the words name by a whole label or
    /// synonym, if exactly one.
    pub(super) fn deeper_choice(
        &self,
        target: &Target,
        words: &Words,
    ) -> Option<&'b crate::dialogue::Choice> {
        let bundle = self.bundle;
        let Action::Choices { choices, .. } = &bundle.step(&target.flow, &target.step)?.action
        else {
            return None;
        };
        let hits = bundle.index.hits(words);
        let candidates = choices
            .iter()
            .map(|choice| (choice, choice.phrase_set.first(choice.strong)));
        match bundle.index.best_match(&hits, candidates, INTENT_THRESHOLD) {
            Match::One(choice) => Some(choice),
            _ => None,
        }
    }

    /// The current buttons whose label (or a word of it) the text names.
    pub(super) fn match_buttons(&self, words: &Words) -> Option<ButtonAction> {
        let lang = Lang::from_code(&self.state.lang).unwrap_or(Lang::It);
        let candidates: Vec<(ButtonAction, Vec<Phrase>)> = self
            .state
            .buttons
            .iter()
            .map(|button| {
                let label = Phrase::in_lang(&button.label, lang);
                let mut phrases: Vec<Phrase> = label
                    .words
                    .iter()
                    .map(|word| Phrase {
                        words: vec![word.clone()],
                    })
                    .collect();
                phrases.insert(0, label);
                if let ButtonAction::Language(code) = &button.action {
                    phrases.push(Phrase::new(code));
                }
                (button.action.clone(), phrases)
            })
            .collect();
        match matching::best_match(
            words,
            candidates
                .iter()
                .map(|(action, phrases)| (action.clone(), &phrases[..])),
            0.75,
        ) {
            Match::One(action) => Some(action),
            _ => None,
        }
    }

    /// Free text at the current step.
    pub(super) fn answer(&mut self, text: &str, words: &Words) {
        let Some(step) = self.current_step() else {
            return self.home();
        };
        match &step.action {
            Action::Choices { choices, .. } => self.answer_choices(step, choices, text, words),
            Action::Ask { save, .. } => {
                if words.is_empty() && !text.chars().any(char::is_alphanumeric) {
                    return self.miss();
                }
                let value: String = text.chars().take(500).collect();
                self.state.vars.insert(save.clone(), value);
                self.follow(step.next.as_ref());
            }
            Action::AskPlace { .. } => match self.bundle.gazetteer.resolve(text) {
                Match::One(place) => self.place_found(place),
                Match::Two(first, second) => {
                    let mut buttons: Vec<Button> = [first, second]
                        .iter()
                        .map(|place| Button {
                            label: self.place_label(place),
                            action: ButtonAction::Place(place.id.clone()),
                        })
                        .collect();
                    buttons.extend(self.way_out());
                    let question = self.message("did_you_mean");
                    self.ask(question, buttons, true);
                }
                Match::None => self.miss(),
            },
            _ => self.prompt(),
        }
    }

    fn answer_choices(
        &mut self,
        step: &'b Step,
        choices: &'b [crate::dialogue::Choice],
        text: &str,
        words: &Words,
    ) {
        let bundle = self.bundle;
        let hits = bundle.index.hits(words);
        let mut scored: Vec<(f32, u64, ButtonAction)> = choices
            .iter()
            .filter_map(|choice| {
                hits.best(&bundle.index, choice.phrase_set).map(|scored| {
                    (
                        with_evidence(scored.score, scored.positions),
                        scored.positions,
                        ButtonAction::Choice(choice.id.clone()),
                    )
                })
            })
            .collect();
        let lang = Lang::from_code(&self.state.lang).unwrap_or(Lang::It);
        for (key, action) in [
            ("menu_button", ButtonAction::Menu),
            ("human_button", ButtonAction::Human),
        ] {
            let score = with_phrase(&self.message(key), lang, |phrase| {
                matching::phrase_score(phrase, words)
            });
            if score > 0.0 {
                scored.push((score, 0, action));
            }
        }
        scored.retain(|(score, _, _)| *score >= CHOICE_THRESHOLD);
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        fn choice_id(action: &ButtonAction) -> Option<&str> {
            match action {
                ButtonAction::Choice(id) => Some(id.as_str()),
                _ => None,
            }
        }
        let threshold = threshold(step);
        // The step's model, sure of a choice, decides (it reads the whole message; a
        // word of a choice's vocabulary may be said in passing), unless the citizen
        // named two needs and it is one of them: both are kept, below.
        let ranked = self.model_ranked(step, text);
        let two = two_needs(&scored);
        let model_best = ranked
            .as_ref()
            .and_then(|ranked| ranked.first().copied())
            .filter(|(_, p)| *p >= threshold);
        if let Some((best, _)) = model_best {
            let two_needs_with_best = two.is_some_and(|((first_id, _), (second_id, _))| {
                first_id == best || second_id == best
            });
            let named_a_way_out = matches!(
                scored.first(),
                Some((_, _, ButtonAction::Menu | ButtonAction::Human))
            );
            // The choice whose words the text names, which the model finds likely too.
            let words_hold = match (scored.first(), ranked.as_ref()) {
                (Some((_, _, ButtonAction::Choice(named))), Some(ranked)) => {
                    named != best && probability_of(ranked, named) >= WORDS_HOLD_FROM
                }
                _ => false,
            };
            if !two_needs_with_best && !named_a_way_out && !words_hold {
                return self.choose(best, Some(words));
            }
        }
        if let Some(((first_id, first_at), (second_id, second_at))) = two {
            // Two needs in one message ("lo SPID e anche le bollette"): one now,
            // the other offered after it. The step's model, which reads the whole
            // message, says which is its subject: the one it is sure of, when it
            // finds it [`MODEL_LEAD`] times likelier than the other. Else a need
            // named by at least [`EVIDENCE_LEAD`] more words of the text than the
            // other comes first ("sono qui per lavoro, non conosco nessuno,
            // piango, vorrei parlare"), else the one written first.
            let model_first = ranked.as_ref().and_then(|ranked| {
                let (p_first, p_second) = (
                    probability_of(ranked, first_id),
                    probability_of(ranked, second_id),
                );
                if p_first >= threshold && p_first >= MODEL_LEAD * p_second {
                    Some(true)
                } else if p_second >= threshold && p_second >= MODEL_LEAD * p_first {
                    Some(false)
                } else {
                    None
                }
            });
            let (first_words, second_words) = (first_at.count_ones(), second_at.count_ones());
            let first_now = if let Some(first_now) = model_first {
                first_now
            } else if first_words >= second_words + EVIDENCE_LEAD {
                true
            } else if second_words >= first_words + EVIDENCE_LEAD {
                false
            } else {
                first_at.trailing_zeros() <= second_at.trailing_zeros()
            };
            let (now, later) = if first_now {
                (first_id, second_id)
            } else {
                (second_id, first_id)
            };
            self.state.later = Some(Later {
                flow: self.state.flow.clone(),
                step: step.id.clone(),
                choice: later.to_string(),
                text: text.to_string(),
                offered_at: None,
            });
            self.choose(now, Some(words));
            return;
        }
        match scored.as_slice() {
            [] => match ranked.as_deref() {
                // No choice's words: the step's model, when it has one, is sure of
                // one choice, or offers its two likeliest.
                Some([(best, p), ..]) if *p >= threshold => self.choose(best, Some(words)),
                Some([(best, p), (next, q), ..]) if p + q >= threshold.max(OFFER_TWO) => {
                    let (best, next) = (
                        ButtonAction::Choice(best.to_string()),
                        ButtonAction::Choice(next.to_string()),
                    );
                    self.did_you_mean(choices, best, next);
                }
                _ => self.miss(),
            },
            [
                (first_score, first_at, first),
                (second_score, second_at, second),
                ..,
            ] if first_score - second_score < matching::AMBIGUITY
                && first != second
                && !(*first_at != *second_at && second_at & !first_at == 0) =>
            {
                // The step's model, sure of one of the two, settles it.
                let settled = ranked.as_ref().and_then(|ranked| {
                    ranked.first().map(|(best, _)| *best).filter(|best| {
                        ranked[0].1 >= threshold
                            && [first, second]
                                .iter()
                                .any(|action| choice_id(action) == Some(*best))
                    })
                });
                match settled {
                    Some(best) => self.choose(best, Some(words)),
                    None => {
                        let (first, second) = (first.clone(), second.clone());
                        self.did_you_mean(choices, first, second);
                    }
                }
            }
            [(_, _, ButtonAction::Choice(id)), ..] => {
                // One choice's words are in the message; the step's model overrules
                // them when it is sure of another choice and all but sure it is not
                // theirs (a word said in passing: "esco dal lavoro alle 7 e i bimbi
                // escono da scuola alle 4" is about the children).
                let overruled = ranked.as_ref().and_then(|ranked| {
                    let found = probability_of(ranked, id);
                    ranked
                        .first()
                        .copied()
                        .filter(|(best, p)| best != id && *p >= threshold && found < OVERRULE_BELOW)
                });
                match overruled {
                    Some((best, _)) => self.choose(best, Some(words)),
                    None => {
                        let id = id.clone();
                        self.choose(&id, Some(words));
                    }
                }
            }
            [(_, _, action), ..] => {
                let action = action.clone();
                self.press(action);
            }
        }
    }

    /// The step's choices as its model ranks them for `text`, likeliest first, when the
    /// step learns from examples.
    fn model_ranked(&self, step: &'b Step, text: &str) -> Option<Vec<(&'b str, f32)>> {
        let model = step.choice_examples()?.model.as_ref()?;
        // Filler alone ("ho bisogno, vorrei sapere una cosa") names no choice.
        let normalised = matching::normalise(text);
        if normalised
            .split(' ')
            .all(|word| word.is_empty() || crate::matching::lang::is_function_word(word))
        {
            return None;
        }
        Some(model.ranked_normalised(&normalised))
    }

    /// "Intendi una di queste?" with the two closest choices, labelled from the step's
    /// own choices (the buttons shown last may be another "did you mean").
    fn did_you_mean(
        &mut self,
        choices: &[crate::dialogue::Choice],
        first: ButtonAction,
        second: ButtonAction,
    ) {
        let label = |action: &ButtonAction| match action {
            ButtonAction::Choice(id) => choices
                .iter()
                .find(|choice| &choice.id == id)
                .map(|choice| self.render(&choice.label))
                .unwrap_or_default(),
            ButtonAction::Menu => self.message("menu_button"),
            ButtonAction::Human => self.message("human_button"),
            _ => String::new(),
        };
        let mut buttons: Vec<Button> = [first, second]
            .into_iter()
            .filter(|action| !matches!(action, ButtonAction::Menu | ButtonAction::Human))
            .map(|action| Button {
                label: label(&action),
                action,
            })
            .filter(|button| !button.label.trim().is_empty())
            .collect();
        buttons.extend(self.way_out());
        let question = self.message("did_you_mean");
        self.ask(question, buttons, false);
    }

    /// What was written before the menu was shown (before consent, or after the end):
    /// answered at the menu when it names something, else the menu alone.
    pub(super) fn answer_at_menu(&mut self, text: &str) {
        if self.state.mode != Mode::AtStep {
            return;
        }
        let words = self.words(text);
        if words.is_empty() {
            return;
        }
        if let Some(intent) = self.find_intent(text, &words, false) {
            self.out.clear();
            return self.intent(intent, text);
        }
        self.remember_place(&words);
        let before = self.out.len();
        let misses = self.state.misses;
        let buttons = self.state.buttons.clone();
        self.answer(text, &words);
        if self.state.misses > misses {
            // Nothing matched: show the menu once, without a "not understood".
            self.out.truncate(before);
            self.state.misses = misses;
            self.state.buttons = buttons;
        } else {
            self.out.drain(..before);
        }
    }

    /// A place named in passing, kept for when the flow asks where the citizen lives.
    pub(super) fn remember_place(&mut self, words: &Words) {
        if let Some(place) = self.bundle.gazetteer.mentioned(words) {
            self.state.known_place = Some(place.id.clone());
        }
    }

    /// Uses what the citizen already said of where they live, instead of asking again;
    /// false when nothing is known.
    pub(super) fn place_already_known(&mut self) -> bool {
        if let Some(id) = self.state.known_place.clone()
            && let Some(place) = self.bundle.gazetteer.get(&id)
        {
            self.apply_place(place);
        } else if self.state.comune_id.is_none() && !self.state.outside {
            return false;
        }
        if !self.state.outside {
            let text = self.message("place_known");
            self.say(text);
        }
        true
    }

    /// Whether the step asking the place leads to suggestions for a need nobody offers.
    pub(super) fn no_service_ahead(&self, step: &Step) -> bool {
        let Some(next) = &step.next else {
            return false;
        };
        let Some(Action::Suggest { need, .. }) = self
            .bundle
            .step(&next.flow, &next.step)
            .map(|step| &step.action)
        else {
            return false;
        };
        let need = fill(need, &self.state.vars);
        !need.is_empty() && !self.bundle.directory.offers(&need, None)
    }

    /// Nobody offers this need: say so before asking where the citizen lives, and offer
    /// a person.
    pub(super) fn no_service(&mut self) {
        let text = self.message("no_service_for_need");
        let mut buttons = vec![self.button("human_button", ButtonAction::Human)];
        buttons.push(self.button("menu_button", ButtonAction::Menu));
        self.ask(text, buttons, false);
    }

    /// The second need's label, when it is to be offered at the current question.
    pub(super) fn later_topic_here(&mut self) -> Option<String> {
        let here = (self.state.flow.clone(), self.state.step.clone());
        let later = self.state.later.as_mut()?;
        match &later.offered_at {
            Some(at) if *at != here => {
                self.state.later = None;
                return None;
            }
            Some(_) => {}
            None => later.offered_at = Some(here),
        }
        let later = self.state.later.as_ref()?;
        let Some(Action::Choices { choices, .. }) = self
            .bundle
            .step(&later.flow, &later.step)
            .map(|step| &step.action)
        else {
            return None;
        };
        choices
            .iter()
            .find(|choice| choice.id == later.choice)
            .map(|choice| self.render(&choice.label))
    }

    /// The second need, pressed: its choice, as if chosen at its own question.
    pub(super) fn later(&mut self) {
        let Some(later) = self.state.later.take() else {
            return self.prompt();
        };
        if !self.state.consent {
            // Pressed under the numbers, before consenting: kept for right after it.
            self.state.later = Some(Later {
                offered_at: None,
                ..later
            });
            return self.start();
        }
        if !matches!(
            self.bundle
                .step(&later.flow, &later.step)
                .map(|step| &step.action),
            Some(Action::Choices { .. })
        ) {
            return self.home();
        }
        self.state.flow = later.flow;
        self.state.step = later.step;
        self.state.mode = Mode::AtStep;
        let words = self.words(&later.text);
        self.choose(&later.choice, Some(&words));
    }
}
