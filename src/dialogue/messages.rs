//! The bot's fixed sentences (consent, re-asks, buttons, hours...). Operators override
//! any of them under `messages:` in bot.yaml; these Italian and English defaults make a
//! dialogue folder work without them.

use std::collections::BTreeMap;

use crate::text::Text;

/// Every message key, with its Italian and English default.
pub const DEFAULTS: &[(&str, &str, &str)] = &[
    ("consent_ask", "Sei d'accordo?", "Do you agree?"),
    ("consent_accept", "Sì, accetto", "Yes, I agree"),
    ("consent_decline", "No", "No"),
    (
        "consent_declined",
        "Va bene. Senza il tuo consenso non posso continuare. Puoi cambiare idea quando vuoi. Se sei in pericolo chiama il 112.",
        "All right. Without your consent I cannot go on. You can change your mind at any time. If you are in danger, call 112.",
    ),
    (
        "not_understood",
        "Non ho capito. Scegli un pulsante o scrivi il numero.",
        "I did not understand. Choose a button or type its number.",
    ),
    (
        "not_understood_again",
        "Scusa, non riesco a capire. Vuoi parlare con una persona?",
        "Sorry, I cannot understand. Do you want to talk to a person?",
    ),
    (
        "did_you_mean",
        "Intendi una di queste?",
        "Do you mean one of these?",
    ),
    ("menu_button", "Torna al menu", "Back to the menu"),
    ("human_button", "Parla con una persona", "Talk to a person"),
    (
        "choose_language",
        "Scegli la lingua:",
        "Choose your language:",
    ),
    (
        "language_set",
        "Va bene, parliamo in italiano.",
        "OK, let's speak English.",
    ),
    (
        "location_button",
        "Manda la mia posizione",
        "Send my location",
    ),
    (
        "place_not_found",
        "Non trovo questo posto. Scrivi il comune o il CAP, o manda la posizione.",
        "I cannot find this place. Write the town or the postcode, or send your location.",
    ),
    (
        "suggestions_intro",
        "Ecco dove puoi trovare aiuto vicino a te:",
        "Here is where you can find help near you:",
    ),
    (
        "suggestions_district",
        "Per tutto il distretto:",
        "For the whole district:",
    ),
    (
        "no_suggestions",
        "Non conosco ancora un posto per questo bisogno. Un volontario può aiutarti.",
        "I do not know a place for this need yet. A volunteer can help you.",
    ),
    (
        "address_unknown",
        "indirizzo da confermare",
        "address to be confirmed",
    ),
    (
        "hours_unknown",
        "orari da confermare",
        "opening hours to be confirmed",
    ),
    (
        "open_now",
        "aperto ora, fino alle {until}",
        "open now, until {until}",
    ),
    (
        "opens_at",
        "chiuso ora, apre {when}",
        "closed now, opens {when}",
    ),
    ("distance", "a {km} km", "{km} km away"),
    (
        "handover_in_hours",
        "Ho chiesto a un volontario di aiutarti. Ti scriverà qui, appena possibile.",
        "I asked a volunteer to help you. They will write to you here as soon as possible.",
    ),
    (
        "handover_out_of_hours",
        "Adesso i volontari non ci sono. Tornano {when}. Ti scriveranno qui. Se è urgente chiama il 112. Per violenza o stalking chiama il 1522, gratis, giorno e notte.",
        "The volunteers are not here now. They are back {when}. They will write to you here. If it is urgent, call 112. For violence or stalking call 1522, free, day and night.",
    ),
    (
        "unsupported_input",
        "Posso leggere solo messaggi scritti, i pulsanti e la posizione.",
        "I can only read written messages, buttons and locations.",
    ),
    (
        "too_long",
        "Il messaggio è molto lungo: ho letto solo l'inizio.",
        "Your message is very long: I read only the beginning.",
    ),
    (
        "stale_button",
        "Questo pulsante è vecchio. Ecco la domanda di adesso.",
        "This button is old. Here is the current question.",
    ),
    (
        "forget_confirm",
        "Vuoi cancellare tutto quello che hai scritto qui? Non si può annullare.",
        "Do you want to erase everything you wrote here? It cannot be undone.",
    ),
    ("forget_yes", "Sì, cancella tutto", "Yes, erase everything"),
    ("forget_no", "No, lascia stare", "No, keep it"),
    (
        "forgotten",
        "Ho cancellato i tuoi dati. Per ricominciare scrivi /start.",
        "I erased your data. To start again, write /start.",
    ),
    (
        "forget_cancelled",
        "Va bene, non ho cancellato niente.",
        "All right, I erased nothing.",
    ),
    (
        "ended",
        "Se ti serve altro, scrivi /start.",
        "If you need anything else, write /start.",
    ),
    (
        "with_volunteer",
        "Il tuo messaggio è per il volontario. Ti risponderà qui.",
        "Your message is for the volunteer. They will answer here.",
    ),
    (
        "volunteer_joined",
        "Un volontario è con te adesso. Scrivi qui la tua domanda.",
        "A volunteer is with you now. Write your question here.",
    ),
    (
        "volunteer_joined_named",
        "Ciao, sono {name}, un volontario dello sportello. Scrivi qui la tua domanda.",
        "Hello, I am {name}, a volunteer of the help desk. Write your question here.",
    ),
    (
        "volunteer_released",
        "Il volontario ha dovuto lasciare la conversazione. Ti scriverà presto un'altra persona.",
        "The volunteer had to leave the conversation. Another person will write to you soon.",
    ),
    (
        "volunteer_closed",
        "Il volontario ha chiuso la conversazione. Grazie! Se ti serve altro, scrivi qui o premi il pulsante.",
        "The volunteer closed the conversation. Thank you! If you need anything else, write here or press the button.",
    ),
    (
        "volunteer_reminder",
        "Non ti abbiamo dimenticato: la tua richiesta aspetta il primo volontario libero. Se è urgente chiama il 112.",
        "We have not forgotten you: your request is waiting for the first free volunteer. If it is urgent, call 112.",
    ),
    (
        "volunteer_delayed",
        "In questo momento non riesco a raggiungere i volontari. Il tuo messaggio non è perso: arriverà appena possibile. Se è urgente chiama il 112.",
        "Right now I cannot reach the volunteers. Your message is not lost: it will arrive as soon as possible. If it is urgent, call 112.",
    ),
    (
        "meanwhile_open",
        "Intanto puoi trovare aiuto anche qui:",
        "Meanwhile you can also find help here:",
    ),
    (
        "consent_explain",
        "Prima di aiutarti ti chiedo il permesso di usare quello che scrivi, solo per trovare il servizio giusto.\nSe sei d'accordo, premi «Sì, accetto».",
        "Before I help you, I ask your permission to use what you write, only to find the right service.\nIf you agree, press «Yes, I agree».",
    ),
    (
        "help_hint",
        "Sono qui per aiutarti. Tocca un pulsante o scrivi il numero. Se preferisci, premi «Parla con una persona».",
        "I am here to help you. Tap a button or write its number. If you prefer, press «Talk to a person».",
    ),
    (
        "hello_again",
        "Ciao! Ti ripeto la domanda.",
        "Hello! Here is the question again.",
    ),
    (
        "danger_doubt",
        "Se sei in pericolo o pensi di farti del male, chiama il 112 (gratis, giorno e notte). Violenza o stalking: 1522. Per parlare con qualcuno: Telefono Amico 02 2327 2327 (dalle 9 alle 24).",
        "If you are in danger or think of hurting yourself, call 112 (free, day and night). Violence or stalking: 1522. To talk to someone: Telefono Amico 02 2327 2327 (from 9:00 to 24:00).",
    ),
    (
        "you_are_welcome",
        "Prego! Se ti serve altro, scrivimi quando vuoi.",
        "You are welcome! If you need anything else, write to me any time.",
    ),
    (
        "place_known",
        "Cerco vicino a {place}.",
        "I am looking near {place}.",
    ),
    (
        "also_asked",
        "Mi avevi scritto anche di «{topic}». Vuoi vedere anche questo?",
        "You also wrote about «{topic}». Do you want to see that too?",
    ),
    (
        "also_asked_after_danger",
        "Mi avevi scritto anche di «{topic}»: se vuoi, c'è il pulsante qui sotto.",
        "You also wrote about «{topic}»: if you want, the button is below.",
    ),
    (
        "out_of_district",
        "Questo sportello serve chi abita a {district}. Per {place} chiedi ai Servizi Sociali del tuo comune. Se sei in pericolo chiama il 112; per violenza o stalking il 1522 (gratis, giorno e notte).",
        "This help desk serves people who live in {district}. For {place}, ask the Social Services of your town. If you are in danger, call 112; for violence or stalking, 1522 (free, day and night).",
    ),
    (
        "no_service_for_need",
        "Per questo non conosco ancora un posto nel distretto. Un volontario può aiutarti a trovare la strada giusta.",
        "I do not know a place for this in the district yet. A volunteer can help you find the right way.",
    ),
    (
        "language_offer",
        "Posso scriverti in italiano. Premi il pulsante.",
        "I can write to you in English. Press the button.",
    ),
    ("bring", "Da portare: {what}", "Bring: {what}"),
    ("when_today", "oggi alle {time}", "today at {time}"),
    ("when_tomorrow", "domani alle {time}", "tomorrow at {time}"),
    (
        "when_weekday",
        "{weekday} alle {time}",
        "on {weekday} at {time}",
    ),
    (
        "when_date",
        "{weekday} {date} alle {time}",
        "on {weekday} {date} at {time}",
    ),
    ("day_mon", "lunedì", "Monday"),
    ("day_tue", "martedì", "Tuesday"),
    ("day_wed", "mercoledì", "Wednesday"),
    ("day_thu", "giovedì", "Thursday"),
    ("day_fri", "venerdì", "Friday"),
    ("day_sat", "sabato", "Saturday"),
    ("day_sun", "domenica", "Sunday"),
    (
        "unknown_command",
        "Non conosco questo comando. Puoi usare /start, /lingua, /volontario, /ricomincia, /privacy, /dimentica.",
        "I do not know this command. You can use /start, /lingua, /volontario, /ricomincia, /privacy, /dimentica.",
    ),
];

/// The bot's fixed sentences, defaults overridden by bot.yaml.
#[derive(Debug, Clone, PartialEq)]
pub struct Messages {
    texts: BTreeMap<&'static str, Text>,
}

impl Default for Messages {
    fn default() -> Self {
        Messages {
            texts: DEFAULTS
                .iter()
                .map(|&(key, italian, english)| (key, Text::italian(italian).with("en", english)))
                .collect(),
        }
    }
}

impl Messages {
    /// The text for `key`; an unknown key (a bug in the engine) gives an empty text.
    pub fn get(&self, key: &str) -> &Text {
        static EMPTY: std::sync::OnceLock<Text> = std::sync::OnceLock::new();
        self.texts
            .get(key)
            .unwrap_or_else(|| EMPTY.get_or_init(Text::default))
    }

    /// Replaces a default; false when `key` is not a message key.
    pub fn set(&mut self, key: &str, text: Text) -> bool {
        match DEFAULTS.iter().find(|(known, _, _)| *known == key) {
            Some((known, _, _)) => {
                self.texts.insert(known, text);
                true
            }
            None => false,
        }
    }

    /// Every message with its text, defaults included.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Text)> {
        self.texts.iter().map(|(key, text)| (*key, text))
    }

    pub fn keys() -> impl Iterator<Item = &'static str> {
        DEFAULTS.iter().map(|(key, _, _)| *key)
    }
}

/// The language's own name, for the language buttons.
pub fn language_name(code: &str) -> &str {
    match code {
        "it" => "Italiano",
        "en" => "English",
        "ar" => "العربية",
        "es" => "Español",
        "fr" => "Français",
        "uk" => "Українська",
        "ro" => "Română",
        "zh" => "中文",
        "ur" => "اردو",
        "de" => "Deutsch",
        "pt" => "Português",
        "sq" => "Shqip",
        "ru" => "Русский",
        "bn" => "বাংলা",
        "hi" => "हिन्दी",
        "tl" => "Tagalog",
        other => other,
    }
}
