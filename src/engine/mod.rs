//! The conversation state machine: `step(bundle, state, input, now) -> (state, outputs)`.
//!
//! Pure: no I/O, no clock (the moment is an argument), no randomness. It imports
//! neither teloxide, matrix_sdk nor sqlx: channels translate platform updates into an
//! [`Input`] and carry out the [`Output`]s; the store keeps the [`State`] between turns.

mod free_text;
mod render;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dialogue::{Action, Bundle, Step, Target};
use crate::directory::hours::Availability;
use crate::directory::{Place, PlaceKind, Point, Reach};
use crate::matching::{self, Lang, Words};
use crate::text::{ITALIAN, Text, fill};

pub use render::{format_when, transcript};

/// Longer messages are matched on their beginning only: nobody types more to a front
/// desk, and matching a novel would only be slow. Danger is read in the whole message,
/// and a volunteer receives it whole.
pub const MAX_INPUT_CHARS: usize = 1000;
/// An automatic chain of steps longer than this is a loop the checker missed.
const MAX_AUTOMATIC_STEPS: usize = 64;

/// What the citizen did.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A message; commands such as `/start` arrive as text too.
    Text(String),
    /// A button pressed, by its payload (see [`ButtonAction::payload`]).
    Button(String),
    Location(Point),
    /// A photo, a voice message, a sticker...: something the bot cannot read.
    Unsupported,
    /// Show the current question again (a channel that restarted, a terminal reopened).
    Repeat,
    /// A button from an older question or another conversation: refused, the current
    /// question shown again, nothing changed.
    StaleButton,
    /// The volunteers' side: a volunteer took the case (their first name, if shown).
    VolunteerJoined(Option<String>),
    /// A volunteer's message for the citizen.
    FromVolunteer(String),
    /// The volunteer gave the case back to the queue.
    VolunteerReleased,
    /// The volunteer closed the case: the bot takes the conversation back.
    VolunteerClosed,
    /// The case still waits for a volunteer: the citizen is told they are not forgotten.
    VolunteerReminder,
    /// The volunteers' side cannot be reached for now (homeserver down, slow or
    /// rate-limited): the citizen is told, once, that the answer is delayed.
    VolunteerDelayed,
}

/// A short tag binding buttons to the conversation and the question they were shown
/// at; a channel puts it in the callback data and hands back `StaleButton` when a
/// pressed button's tag is not the current one. Deterministic (FNV-1a), not a secret:
/// a payload must still be one of the current buttons.
pub fn button_tag(chat_id: &str, state: &State) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mode = format!("{:?}", state.mode);
    for part in [chat_id, &state.flow, &state.step, &mode] {
        for byte in part.bytes().chain(std::iter::once(0xff)) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{:08x}", hash as u32)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Start,
    Language,
    Volunteer,
    Restart,
    Privacy,
    Forget,
}

impl Command {
    /// `/start`, `/lingua`, ... (with English aliases); Telegram may add `@botname`.
    pub fn parse(text: &str) -> Option<Command> {
        let word = text.trim().strip_prefix('/')?;
        let word = word.split([' ', '@']).next().unwrap_or("").to_lowercase();
        Some(match word.as_str() {
            "start" => Command::Start,
            "lingua" | "language" => Command::Language,
            "volontario" | "operatore" | "human" => Command::Volunteer,
            "ricomincia" | "menu" | "restart" => Command::Restart,
            "privacy" => Command::Privacy,
            "dimentica" | "forget" => Command::Forget,
            _ => return None,
        })
    }
}

/// What a button does when pressed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ButtonAction {
    Choice(String),
    Place(String),
    Language(String),
    Menu,
    Human,
    ConsentYes,
    ConsentNo,
    ForgetYes,
    ForgetNo,
    /// The second need the citizen wrote in one message, offered after the first.
    Later,
}

impl ButtonAction {
    /// A compact payload (a Telegram `callback_data` is at most 64 bytes; ids are at most 40).
    pub fn payload(&self) -> String {
        match self {
            ButtonAction::Choice(id) => format!("c:{id}"),
            ButtonAction::Place(id) => format!("p:{id}"),
            ButtonAction::Language(code) => format!("l:{code}"),
            ButtonAction::Menu => "m".into(),
            ButtonAction::Human => "h".into(),
            ButtonAction::ConsentYes => "y".into(),
            ButtonAction::ConsentNo => "n".into(),
            ButtonAction::ForgetYes => "fy".into(),
            ButtonAction::ForgetNo => "fn".into(),
            ButtonAction::Later => "lt".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Button {
    pub label: String,
    pub action: ButtonAction,
}

/// What the engine asks the channel to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// A message; the channel shows the buttons under it and, if asked, a button that
    /// shares the location.
    Message {
        text: String,
        buttons: Vec<Button>,
        request_location: bool,
    },
    /// The organisations just suggested (their text is in the following message).
    Suggestions {
        need: String,
        organisations: Vec<String>,
    },
    /// A volunteer should take over.
    Handover(Handover),
    /// A message for the volunteer who has the conversation; `alert` names the kind of
    /// danger the bot read in it (the citizen was given the numbers).
    ToVolunteer { text: String, alert: Option<String> },
    /// Erase this citizen's personal data now.
    Forget,
    /// The conversation is over.
    Ended,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Handover {
    pub need: String,
    pub note: String,
    pub comune: Option<String>,
    pub lang: String,
    /// Answers the citizen gave (variable, value), for the handover card.
    pub summary: Vec<(String, String)>,
    pub in_hours: bool,
    pub emergency: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Mode {
    /// Nothing said yet.
    #[default]
    New,
    /// The privacy notice is shown; waiting for consent.
    Consent,
    /// Waiting at `State::flow`/`State::step`.
    AtStep,
    ChooseLanguage,
    ConfirmForget,
    /// Handed over: messages go to a volunteer.
    WithVolunteer,
    Ended,
}

/// One citizen's conversation, as a value the store can keep between turns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub lang: String,
    pub consent: bool,
    pub mode: Mode,
    /// Where to go back after a language choice or a forget question.
    pub resume: Option<Mode>,
    pub flow: String,
    pub step: String,
    pub vars: BTreeMap<String, String>,
    /// Where the citizen is: their place's centre or the location they shared.
    pub point: Option<Point>,
    /// The comune (place id) the citizen lives in, once known.
    pub comune_id: Option<String>,
    /// Answers at this step that matched nothing.
    pub misses: u8,
    /// The buttons last shown: a pressed button must be one of them.
    pub buttons: Vec<Button>,
    /// Whether an emergency was detected in this conversation.
    pub emergency: bool,
    /// What the citizen wrote before consenting, answered at the menu once they consent.
    pub pending: Option<String>,
    /// The kind of danger detected last (an emergency group id).
    #[serde(default)]
    pub emergency_kind: Option<String>,
    /// A second need written in the same message as the first, offered after it.
    #[serde(default)]
    pub later: Option<Later>,
    /// A place the citizen named in passing ("l'affitto a Pioltello"), used when the
    /// flow asks where they live.
    #[serde(default)]
    pub known_place: Option<String>,
    /// The citizen lives outside the district: only district-wide services are offered.
    #[serde(default)]
    pub outside: bool,
    /// The numbers were given once for danger in doubt (`danger_doubt`): not again.
    #[serde(default)]
    pub doubt_told: bool,
}

/// A need kept for later: the choice of a step that the citizen's words named.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Later {
    pub flow: String,
    pub step: String,
    pub choice: String,
    /// The citizen's words, to go on choosing at the following questions.
    pub text: String,
    /// The question it was offered at: offered there only, then forgotten.
    #[serde(default)]
    pub offered_at: Option<(String, String)>,
}

impl State {
    /// A new conversation; `interface_lang` (Telegram's `language_code`) proposes the
    /// language when the bot speaks it.
    pub fn new(bundle: &Bundle, interface_lang: Option<&str>) -> State {
        let lang = interface_lang
            .map(|code| code.split(['-', '_']).next().unwrap_or(code).to_lowercase())
            .filter(|code| bundle.bot.speaks(code))
            .unwrap_or_else(|| ITALIAN.to_string());
        State {
            lang,
            consent: false,
            mode: Mode::New,
            resume: None,
            flow: String::new(),
            step: String::new(),
            vars: BTreeMap::new(),
            point: None,
            comune_id: None,
            misses: 0,
            buttons: Vec::new(),
            emergency: false,
            pending: None,
            emergency_kind: None,
            later: None,
            known_place: None,
            outside: false,
            doubt_told: false,
        }
    }
}

/// One turn of the conversation.
pub fn step(
    bundle: &Bundle,
    state: State,
    input: Input,
    now: DateTime<Utc>,
) -> (State, Vec<Output>) {
    let mut turn = Turn {
        bundle,
        state,
        now,
        out: Vec::new(),
        offer: None,
        written: None,
        pattern_text: None,
    };
    // One message is normalised once for all its readers (see `matching::with_memo`).
    matching::with_memo(|| {
        turn.handle(input);
        turn.offer_language();
    });
    (turn.state, turn.out)
}

struct Turn<'b> {
    bundle: &'b Bundle,
    state: State,
    now: DateTime<Utc>,
    out: Vec<Output>,
    /// A language to offer with one button under the question (the citizen wrote in
    /// it, and the bot does not switch by itself).
    offer: Option<String>,
    /// The language the citizen's message is written in, when it is clear.
    written: Option<Lang>,
    /// The message read for patterns (danger, intents), once per turn, with the text
    /// it was read from.
    pattern_text: Option<(String, crate::matching::pattern::PatternText)>,
}

impl<'b> Turn<'b> {
    fn message(&self, key: &str) -> String {
        self.bundle
            .bot
            .messages
            .get(key)
            .render(&self.state.lang, &self.state.vars)
    }

    fn render(&self, text: &Text) -> String {
        text.render(&self.state.lang, &self.state.vars)
    }

    fn say(&mut self, text: String) {
        if !text.trim().is_empty() {
            self.out.push(Output::Message {
                text,
                buttons: Vec::new(),
                request_location: false,
            });
        }
    }

    fn ask(&mut self, text: String, buttons: Vec<Button>, request_location: bool) {
        self.state.buttons = buttons.clone();
        self.out.push(Output::Message {
            text,
            buttons,
            request_location,
        });
    }

    fn button(&self, key: &str, action: ButtonAction) -> Button {
        Button {
            label: self.message(key),
            action,
        }
    }

    fn consent_buttons(&self) -> Vec<Button> {
        vec![
            self.button("consent_accept", ButtonAction::ConsentYes),
            self.button("consent_decline", ButtonAction::ConsentNo),
        ]
    }

    fn way_out(&self) -> Vec<Button> {
        vec![
            self.button("menu_button", ButtonAction::Menu),
            self.button("human_button", ButtonAction::Human),
        ]
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Text(text) => self.text(&text),
            Input::Button(payload) => {
                let pressed = self
                    .state
                    .buttons
                    .iter()
                    .find(|button| button.action.payload() == payload)
                    .map(|button| button.action.clone());
                match pressed {
                    Some(action) => self.press(action),
                    None if self.state.mode == Mode::New => self.start(),
                    None => {
                        let notice = self.message("stale_button");
                        self.say(notice);
                        self.prompt();
                    }
                }
            }
            Input::Location(point) => self.location(point),
            Input::Repeat => self.prompt_or_start(),
            Input::VolunteerJoined(name) => {
                self.state.mode = Mode::WithVolunteer;
                let text = match name {
                    Some(name) => {
                        let mut vars = self.state.vars.clone();
                        vars.insert("name".into(), name);
                        self.bundle
                            .bot
                            .messages
                            .get("volunteer_joined_named")
                            .render(&self.state.lang, &vars)
                    }
                    None => self.message("volunteer_joined"),
                };
                let buttons = vec![self.button("menu_button", ButtonAction::Menu)];
                self.ask(text, buttons, false);
            }
            Input::FromVolunteer(text) => {
                self.state.mode = Mode::WithVolunteer;
                let buttons = vec![self.button("menu_button", ButtonAction::Menu)];
                self.ask(format!("👤 {text}"), buttons, false);
            }
            Input::VolunteerReleased => {
                self.state.mode = Mode::WithVolunteer;
                let text = self.message("volunteer_released");
                let buttons = vec![self.button("menu_button", ButtonAction::Menu)];
                self.ask(text, buttons, false);
            }
            Input::VolunteerClosed => {
                let text = self.message("volunteer_closed");
                let buttons = vec![self.button("menu_button", ButtonAction::Menu)];
                self.ask(text, buttons, false);
                self.state.mode = Mode::Ended;
                self.out.push(Output::Ended);
            }
            Input::VolunteerReminder | Input::VolunteerDelayed => {
                if self.state.mode == Mode::WithVolunteer {
                    let key = if input == Input::VolunteerReminder {
                        "volunteer_reminder"
                    } else {
                        "volunteer_delayed"
                    };
                    let text = self.message(key);
                    let buttons = vec![self.button("menu_button", ButtonAction::Menu)];
                    self.ask(text, buttons, false);
                }
            }
            Input::StaleButton => {
                let notice = self.message("stale_button");
                self.say(notice);
                self.prompt_or_start();
            }
            Input::Unsupported => {
                let notice = self.message("unsupported_input");
                self.say(notice);
                if self.state.mode == Mode::New {
                    self.start();
                } else {
                    self.prompt();
                }
            }
        }
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Start => self.start(),
            Command::Restart => self.home(),
            Command::Volunteer => {
                if self.state.consent {
                    self.human();
                } else {
                    self.start();
                }
            }
            Command::Privacy => {
                let privacy = self.render(&self.bundle.bot.privacy);
                self.say(privacy);
                self.prompt_or_start();
            }
            Command::Language => {
                self.remember_resume();
                self.state.mode = Mode::ChooseLanguage;
                self.prompt();
            }
            Command::Forget => {
                self.remember_resume();
                self.state.mode = Mode::ConfirmForget;
                self.prompt();
            }
        }
    }

    fn remember_resume(&mut self) {
        if !matches!(self.state.mode, Mode::ChooseLanguage | Mode::ConfirmForget) {
            self.state.resume = Some(self.state.mode);
        }
    }

    fn resume(&mut self) {
        self.state.mode = self.state.resume.take().unwrap_or(Mode::New);
        self.prompt_or_start();
    }

    fn prompt_or_start(&mut self) {
        if self.state.mode == Mode::New {
            self.start();
        } else {
            self.prompt();
        }
    }

    /// First contact, or /start: the privacy notice until consent, then the welcome.
    fn start(&mut self) {
        if self.state.consent {
            return self.home();
        }
        self.state.mode = Mode::Consent;
        self.prompt();
    }

    fn home(&mut self) {
        if !self.state.consent {
            return self.start();
        }
        let welcome = self.bundle.bot.welcome.clone();
        self.enter(&welcome);
    }

    fn human(&mut self) {
        let human = &self.bundle.bot.human;
        if human.step.is_empty() {
            let need = self.state.vars.get("need").cloned().unwrap_or_default();
            self.handover(&need, "");
        } else {
            self.enter(human);
        }
    }

    fn press(&mut self, action: ButtonAction) {
        match action {
            ButtonAction::ConsentYes => {
                self.state.consent = true;
                let later_pressed = self.state.pending.is_none()
                    && self
                        .state
                        .later
                        .as_ref()
                        .is_some_and(|later| later.offered_at.is_none());
                if later_pressed {
                    // A need pressed under the emergency numbers before consenting:
                    // its question at once.
                    return self.later();
                }
                self.home();
                if let Some(pending) = self.state.pending.take() {
                    self.answer_at_menu(&pending);
                }
            }
            ButtonAction::ConsentNo => {
                let declined = self.message("consent_declined");
                let accept = self.button("consent_accept", ButtonAction::ConsentYes);
                self.state.mode = Mode::Consent;
                self.ask(declined, vec![accept], false);
            }
            ButtonAction::Menu => self.home(),
            ButtonAction::Human => {
                if self.state.consent {
                    self.human();
                } else {
                    self.start();
                }
            }
            ButtonAction::Language(code) => {
                if self.bundle.bot.speaks(&code) {
                    self.state.lang = code;
                }
                let confirmation = self.message("language_set");
                self.say(confirmation);
                if self.state.mode == Mode::ChooseLanguage {
                    self.resume();
                } else {
                    // The one-button offer under a question: the same question, in it.
                    self.prompt_or_start();
                }
            }
            ButtonAction::ForgetYes => {
                self.out.push(Output::Forget);
                let lang = std::mem::take(&mut self.state.lang);
                self.state = State::new(self.bundle, Some(&lang));
                let done = self.message("forgotten");
                self.say(done);
            }
            ButtonAction::ForgetNo => {
                let cancelled = self.message("forget_cancelled");
                self.say(cancelled);
                self.resume();
            }
            ButtonAction::Choice(id) => self.choose(&id, None),
            ButtonAction::Place(id) => match self.bundle.gazetteer.get(&id) {
                Some(place) if self.waiting_for_place() => self.place_found(place),
                _ => self.prompt(),
            },
            ButtonAction::Later => self.later(),
        }
    }

    fn current_step(&self) -> Option<&'b Step> {
        self.bundle.step(&self.state.flow, &self.state.step)
    }

    fn waiting_for_place(&self) -> bool {
        self.state.mode == Mode::AtStep
            && matches!(
                self.current_step().map(|step| &step.action),
                Some(Action::AskPlace { .. })
            )
    }

    /// Applies a choice of the current step. With the words of a typed answer, goes on
    /// choosing at the following questions while the same words name one of their
    /// choices by a whole label or synonym: "ho un problema con l'afitto" at the menu
    /// picks "Casa" and then "Affitto", and the citizen is asked the comune at once.
    fn choose(&mut self, id: &str, words: Option<&Words>) {
        let Some(step) = self.current_step() else {
            return self.home();
        };
        let Action::Choices { choices, .. } = &step.action else {
            return self.prompt();
        };
        let Some(mut choice) = choices.iter().find(|choice| choice.id == id) else {
            return self.prompt();
        };
        for _ in 0..4 {
            for (name, value) in &choice.set {
                let value = fill(value, &self.state.vars);
                self.state.vars.insert(name.clone(), value);
            }
            let Some(next) = &choice.next else {
                return self.home();
            };
            let deeper = words.and_then(|words| self.deeper_choice(next, words));
            match deeper {
                Some(deeper) => choice = deeper,
                None => return self.enter(next),
            }
        }
        if let Some(next) = &choice.next {
            self.enter(next);
        }
    }

    fn miss(&mut self) {
        self.miss_with(None);
    }

    /// A reply that does not answer the question; `notice` replaces the usual "not
    /// understood" the first time.
    fn miss_with(&mut self, notice: Option<&str>) {
        self.state.misses = self.state.misses.saturating_add(1);
        if self.state.misses >= 2 {
            if let Some(Action::Choices {
                otherwise: Some(otherwise),
                ..
            }) = self.current_step().map(|step| &step.action)
            {
                return self.enter(otherwise);
            }
            let notice = self.message("not_understood_again");
            self.say(notice);
        } else {
            let key = match notice {
                Some(key) => key,
                None if self.waiting_for_place() => "place_not_found",
                None => "not_understood",
            };
            let notice = self.message(key);
            self.say(notice);
        }
        self.prompt();
    }

    fn place_label(&self, place: &Place) -> String {
        let comune = self.bundle.gazetteer.comune_of(place);
        if comune.id == place.id {
            place.name.clone()
        } else {
            format!("{} ({})", place.name, comune.name)
        }
    }

    fn place_found(&mut self, place: &'b Place) {
        self.apply_place(place);
        let next = self.current_step().and_then(|step| step.next.as_ref());
        self.follow(next);
    }

    /// Records where the citizen lives; a place outside the district is said plainly,
    /// with the emergency numbers, and only district-wide services follow.
    fn apply_place(&mut self, place: &'b Place) {
        self.state.known_place = None;
        if self.bundle.gazetteer.reach(place) == Reach::Outside {
            self.state.vars.insert("place".into(), place.name.clone());
            self.state.vars.insert("comune".into(), place.name.clone());
            self.state.comune_id = None;
            self.state.point = None;
            self.state.outside = true;
            return self.say_out_of_district();
        }
        let comune = self.bundle.gazetteer.comune_of(place);
        self.state
            .vars
            .insert("place".into(), self.place_label(place));
        self.state.vars.insert("comune".into(), comune.name.clone());
        self.state.comune_id = Some(comune.id.clone());
        self.state.point = Some(place.point);
        self.state.outside = false;
    }

    fn say_out_of_district(&mut self) {
        let mut vars = self.state.vars.clone();
        vars.insert(
            "district".into(),
            self.bundle.gazetteer.district_names().join(", "),
        );
        let text = self
            .bundle
            .bot
            .messages
            .get("out_of_district")
            .render(&self.state.lang, &vars);
        self.say(text);
    }

    fn location(&mut self, point: Point) {
        if !point.is_valid() {
            return self.prompt_or_start();
        }
        if !self.waiting_for_place() {
            if self.bundle.gazetteer.point_in_district(point) {
                self.state.point = Some(point);
            }
            return self.prompt_or_start();
        }
        if !self.bundle.gazetteer.point_in_district(point) {
            // Hundreds of kilometres away is not "near": no distances, no local places.
            self.state.vars.insert("place".into(), String::new());
            self.state.comune_id = None;
            self.state.point = None;
            self.state.outside = true;
            self.say_out_of_district();
        } else {
            match self.bundle.gazetteer.nearest_comune(point) {
                Some(comune) => {
                    self.state.vars.insert("place".into(), comune.name.clone());
                    self.state.vars.insert("comune".into(), comune.name.clone());
                    self.state.comune_id = Some(comune.id.clone());
                }
                None => {
                    self.state.vars.insert("place".into(), String::new());
                }
            }
            self.state.point = Some(point);
            self.state.outside = false;
        }
        self.state.known_place = None;
        let next = self.current_step().and_then(|step| step.next.as_ref());
        self.follow(next);
    }

    fn follow(&mut self, next: Option<&Target>) {
        match next {
            Some(next) => self.enter(next),
            None => self.home(),
        }
    }

    /// Shows what the citizen is being asked now, again.
    fn prompt(&mut self) {
        match self.state.mode {
            Mode::New | Mode::Consent => {
                let text = format!(
                    "{}\n\n{}",
                    self.render(&self.bundle.bot.privacy),
                    self.message("consent_ask")
                );
                let buttons = self.consent_buttons();
                self.state.mode = Mode::Consent;
                self.ask(text, buttons, false);
            }
            Mode::ChooseLanguage => {
                let buttons = self
                    .bundle
                    .bot
                    .offered_languages()
                    .map(|code| Button {
                        label: crate::dialogue::messages::language_name(code).to_string(),
                        action: ButtonAction::Language(code.clone()),
                    })
                    .collect();
                let question = self.message("choose_language");
                self.ask(question, buttons, false);
            }
            Mode::ConfirmForget => {
                let question = self.message("forget_confirm");
                let buttons = vec![
                    self.button("forget_yes", ButtonAction::ForgetYes),
                    self.button("forget_no", ButtonAction::ForgetNo),
                ];
                self.ask(question, buttons, false);
            }
            Mode::WithVolunteer => {
                let notice = self.message("with_volunteer");
                let buttons = vec![self.button("menu_button", ButtonAction::Menu)];
                self.ask(notice, buttons, false);
            }
            Mode::Ended => {
                let notice = self.message("ended");
                let buttons = vec![self.button("menu_button", ButtonAction::Menu)];
                self.ask(notice, buttons, false);
            }
            Mode::AtStep => match self.current_step() {
                Some(step) => self.question(step),
                None => self.home(),
            },
        }
    }

    /// The question of a step that waits for the citizen, with its buttons.
    fn question(&mut self, step: &'b Step) {
        match &step.action {
            Action::Choices { choices, .. } => {
                let text = step
                    .say
                    .as_ref()
                    .map(|say| self.render(say))
                    .unwrap_or_default();
                let mut buttons: Vec<Button> = choices
                    .iter()
                    .map(|choice| Button {
                        label: self.render(&choice.label),
                        action: ButtonAction::Choice(choice.id.clone()),
                    })
                    .collect();
                // The way back to the menu and to a person, unless a choice already is one.
                let bundle = self.bundle;
                let welcome = &bundle.bot.welcome;
                let menu = self.menu_step();
                let is_welcome = |flow: &str, step: &str| {
                    (flow == welcome.flow && step == welcome.step)
                        || menu.as_ref().is_some_and(|(menu_flow, menu_step)| {
                            flow == menu_flow && step == menu_step
                        })
                };
                let has_menu = is_welcome(&self.state.flow, &self.state.step)
                    || choices.iter().any(|choice| {
                        choice
                            .next
                            .as_ref()
                            .is_some_and(|next| is_welcome(&next.flow, &next.step))
                    });
                let has_human = choices.iter().any(|choice| {
                    choice.next.as_ref().is_some_and(|next| {
                        *next == self.bundle.bot.human
                            || (next.flow == self.bundle.bot.human.flow
                                && next.step == self.bundle.bot.human.step)
                            || matches!(
                                self.bundle
                                    .step(&next.flow, &next.step)
                                    .map(|step| &step.action),
                                Some(Action::Handover { .. })
                            )
                    })
                });
                for extra in self.way_out() {
                    let redundant = match extra.action {
                        ButtonAction::Menu => has_menu,
                        _ => has_human,
                    };
                    if !redundant {
                        buttons.push(extra);
                    }
                }
                // A second need the citizen wrote: offered at the question that leads
                // back to the menu ("anything else?"), once; a need written beside
                // danger, at the question after the numbers it was kept for, below
                // the volunteer's offer.
                let mut text = text;
                let leads_home = choices.iter().any(|choice| {
                    choice
                        .next
                        .as_ref()
                        .is_some_and(|next| is_welcome(&next.flow, &next.step))
                });
                let after_danger = self.is_emergency_flow(&self.state.flow)
                    && self.state.later.as_ref().is_some_and(|later| {
                        later.offered_at.as_ref().is_some_and(|(flow, step)| {
                            *flow == self.state.flow && *step == self.state.step
                        })
                    });
                if (leads_home || after_danger)
                    && !is_welcome(&self.state.flow, &self.state.step)
                    && let Some(topic) = self.later_topic_here()
                {
                    let mut vars = self.state.vars.clone();
                    vars.insert("topic".into(), topic.clone());
                    let key = if after_danger {
                        "also_asked_after_danger"
                    } else {
                        "also_asked"
                    };
                    let offer = self
                        .bundle
                        .bot
                        .messages
                        .get(key)
                        .render(&self.state.lang, &vars);
                    text = format!("{offer}\n\n{text}");
                    let button = Button {
                        label: topic,
                        action: ButtonAction::Later,
                    };
                    if after_danger {
                        // After the question's own answers, before the way out.
                        let at = choices.len().min(buttons.len());
                        buttons.insert(at, button);
                    } else {
                        buttons.insert(0, button);
                    }
                }
                self.ask(text, buttons, false);
            }
            Action::Ask { text, .. } => {
                let text = self.render(text);
                let buttons = self.way_out();
                self.ask(text, buttons, false);
            }
            Action::AskPlace { text } => {
                let text = self.render(text);
                let mut buttons: Vec<Button> = self
                    .bundle
                    .gazetteer
                    .places
                    .iter()
                    .filter(|place| place.kind == PlaceKind::Comune && place.in_district)
                    .map(|place| Button {
                        label: place.name.clone(),
                        action: ButtonAction::Place(place.id.clone()),
                    })
                    .collect();
                buttons.extend(self.way_out());
                self.ask(text, buttons, true);
            }
            _ => self.home(),
        }
    }

    fn is_emergency_flow(&self, flow: &str) -> bool {
        self.bundle
            .bot
            .intents
            .iter()
            .any(|intent| intent.emergency && intent.goto.flow == flow)
            || self
                .bundle
                .bot
                .emergencies
                .iter()
                .any(|group| group.goto.flow == flow)
    }

    /// The first question reached from the welcome (after its greetings): the menu.
    fn menu_step(&self) -> Option<(String, String)> {
        let welcome = &self.bundle.bot.welcome;
        let mut position = (welcome.flow.clone(), welcome.step.clone());
        for _ in 0..MAX_AUTOMATIC_STEPS {
            let step = self.bundle.step(&position.0, &position.1)?;
            match (&step.action, &step.next) {
                (Action::Message, Some(next)) => position = (next.flow.clone(), next.step.clone()),
                (Action::Choices { .. }, _) => return Some(position),
                _ => return None,
            }
        }
        None
    }

    /// Goes to a step and runs on until a step waits for the citizen.
    fn enter(&mut self, target: &Target) {
        let mut position = (target.flow.clone(), target.step.clone());
        for _ in 0..MAX_AUTOMATIC_STEPS {
            // Without consent only the emergency flows may run, and in an emergency the
            // way to a person: anything else asks for consent first.
            let in_emergency = self.is_emergency_flow(&position.0)
                || (self.state.emergency && position.0 == self.bundle.bot.human.flow);
            if !self.state.consent && !in_emergency {
                return self.start();
            }
            let Some(step) = self.bundle.step(&position.0, &position.1) else {
                // Only a bundle with errors gets here: end politely rather than loop.
                self.state.mode = Mode::Ended;
                self.out.push(Output::Ended);
                return;
            };
            self.state.flow = position.0.clone();
            self.state.step = position.1.clone();
            self.state.mode = Mode::AtStep;
            self.state.misses = 0;
            let says_before = !matches!(step.action, Action::Choices { .. } | Action::End);
            if says_before && let Some(say) = &step.say {
                let text = self.render(say);
                self.say(text);
            }
            let next = match &step.action {
                Action::Message => step.next.as_ref(),
                Action::AskPlace { .. } => {
                    if self.no_service_ahead(step) {
                        return self.no_service();
                    }
                    if !self.place_already_known() {
                        return self.question(step);
                    }
                    step.next.as_ref()
                }
                Action::Choices { .. } | Action::Ask { .. } => {
                    return self.question(step);
                }
                Action::Suggest { need, max } => {
                    let need = fill(need, &self.state.vars);
                    self.suggest(&need, *max);
                    step.next.as_ref()
                }
                Action::Handover { need, note } => {
                    let need = fill(need, &self.state.vars);
                    let note = fill(note, &self.state.vars);
                    return self.handover(&need, &note);
                }
                Action::Goto(target) => Some(target),
                Action::Branch { arms, otherwise } => arms
                    .iter()
                    .find(|(condition, _)| {
                        let value = self
                            .state
                            .vars
                            .get(&condition.var)
                            .map(String::as_str)
                            .unwrap_or("");
                        match &condition.equals {
                            Some(expected) => value == expected,
                            None => !value.is_empty(),
                        }
                    })
                    .map(|(_, target)| target)
                    .or(otherwise.as_ref()),
                Action::End => {
                    let text = step
                        .say
                        .as_ref()
                        .map(|say| self.render(say))
                        .unwrap_or_else(|| self.message("ended"));
                    let buttons = vec![self.button("menu_button", ButtonAction::Menu)];
                    self.ask(text, buttons, false);
                    self.state.mode = Mode::Ended;
                    self.out.push(Output::Ended);
                    return;
                }
            };
            match next {
                Some(next) => position = (next.flow.clone(), next.step.clone()),
                None => return self.home_after_dead_end(),
            }
        }
        self.home_after_dead_end();
    }

    /// A step that leads nowhere (only in a bundle with errors): back to the menu, once.
    fn home_after_dead_end(&mut self) {
        let welcome = &self.bundle.bot.welcome;
        if self.state.flow == welcome.flow && self.state.step == welcome.step {
            self.state.mode = Mode::Ended;
            self.out.push(Output::Ended);
            return;
        }
        self.home();
    }

    fn suggest(&mut self, need: &str, max: usize) {
        let suggestions = if self.state.outside {
            self.bundle.directory.district_wide(need, self.now, max)
        } else {
            self.bundle.directory.nearest(
                need,
                self.state.point,
                self.state.comune_id.as_deref(),
                self.now,
                max,
            )
        };
        self.out.push(Output::Suggestions {
            need: need.to_string(),
            organisations: suggestions
                .iter()
                .map(|s| s.organisation.id.clone())
                .collect(),
        });
        let text = if suggestions.is_empty() {
            if self.state.outside {
                // Told already to ask their own comune's Servizi Sociali.
                return;
            }
            self.message("no_suggestions")
        } else {
            render::suggestions(
                self.bundle,
                &self.state,
                &suggestions,
                self.now,
                if self.state.outside {
                    "suggestions_district"
                } else {
                    "suggestions_intro"
                },
            )
        };
        self.say(text);
    }

    fn handover(&mut self, need: &str, note: &str) {
        let hours = &self.bundle.bot.volunteer_hours;
        let in_hours = hours.is_empty() || hours.is_open(self.now);
        let summary = self
            .state
            .vars
            .iter()
            .filter(|(name, value)| name.as_str() != "lang" && !value.is_empty())
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        self.out.push(Output::Handover(Handover {
            need: need.to_string(),
            note: note.to_string(),
            comune: self.state.vars.get("comune").cloned(),
            lang: self.state.lang.clone(),
            summary,
            in_hours,
            emergency: self.state.emergency,
        }));
        let text = if in_hours {
            self.message("handover_in_hours")
        } else {
            let when = match hours.availability(self.now) {
                Availability::OpensAt(date, time) => {
                    format_when(self.bundle, date, time, self.now, &self.state.lang)
                }
                _ => String::new(),
            };
            let mut vars = self.state.vars.clone();
            vars.insert("when".into(), when);
            let mut text = self
                .bundle
                .bot
                .messages
                .get("handover_out_of_hours")
                .render(&self.state.lang, &vars);
            // Meanwhile: the nearest places open now for this need, if any.
            let open: Vec<_> = self
                .bundle
                .directory
                .nearest(
                    need,
                    self.state.point,
                    self.state.comune_id.as_deref(),
                    self.now,
                    8,
                )
                .into_iter()
                .filter(|s| matches!(s.availability, Some(Availability::OpenUntil(_))))
                .take(2)
                .collect();
            if !open.is_empty() {
                text.push_str("\n\n");
                text.push_str(&render::suggestions(
                    self.bundle,
                    &self.state,
                    &open,
                    self.now,
                    "meanwhile_open",
                ));
            }
            text
        };
        let buttons = vec![self.button("menu_button", ButtonAction::Menu)];
        self.ask(text, buttons, false);
        self.state.mode = Mode::WithVolunteer;
    }
}
