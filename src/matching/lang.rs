//! What the matcher knows of each language it reads: its script, its Snowball stemmer
//! (where Snowball has one), the function words that never name a need ("ho bisogno",
//! "vorrei sapere", "мені", "أحتاج") and the everyday answers ("sì", "ok", "no grazie",
//! "non capisco") that fit a question whatever its buttons say.
//!
//! The languages here are those citizens write in, a superset of those the bot speaks:
//! Russian is read (many Ukrainians in Italy type it) but never written.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};

use super::normalise;

/// A language whose words the matcher can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    It,
    En,
    Ar,
    Es,
    Fr,
    Uk,
    Ru,
    Ro,
    Zh,
}

/// How many [`Lang`]s there are (the size of per-language tables).
pub const LANG_COUNT: usize = 9;

/// The writing system of a word: a strong signal of its language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Script {
    Latin,
    Arabic,
    Cyrillic,
    Han,
    /// Digits only, or a script no language here uses.
    Other,
}

impl Lang {
    pub const ALL: [Lang; LANG_COUNT] = [
        Lang::It,
        Lang::En,
        Lang::Ar,
        Lang::Es,
        Lang::Fr,
        Lang::Uk,
        Lang::Ru,
        Lang::Ro,
        Lang::Zh,
    ];

    /// The language of an ISO 639-1 code ("it", "uk"; "it-IT" and "pt_BR" are cut).
    pub fn from_code(code: &str) -> Option<Lang> {
        let base = code.split(['-', '_']).next().unwrap_or(code);
        Some(match base.to_ascii_lowercase().as_str() {
            "it" => Lang::It,
            "en" => Lang::En,
            "ar" => Lang::Ar,
            "es" => Lang::Es,
            "fr" => Lang::Fr,
            "uk" => Lang::Uk,
            "ru" => Lang::Ru,
            "ro" => Lang::Ro,
            "zh" => Lang::Zh,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::It => "it",
            Lang::En => "en",
            Lang::Ar => "ar",
            Lang::Es => "es",
            Lang::Fr => "fr",
            Lang::Uk => "uk",
            Lang::Ru => "ru",
            Lang::Ro => "ro",
            Lang::Zh => "zh",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn script(self) -> Script {
        match self {
            Lang::Ar => Script::Arabic,
            Lang::Uk | Lang::Ru => Script::Cyrillic,
            Lang::Zh => Script::Han,
            _ => Script::Latin,
        }
    }

    /// The stem of a normalised word: Snowball where it has the language, a light
    /// suffix stripper for Ukrainian (Snowball has none), nothing for Chinese.
    pub fn stem(self, word: &str) -> Option<Cow<'_, str>> {
        match self {
            Lang::Uk => Some(ukrainian_stem(word)),
            Lang::Zh => None,
            _ => snowball(self).map(|stemmer| stemmer.stem(word)),
        }
    }
}

fn snowball(lang: Lang) -> Option<&'static Stemmer> {
    static STEMMERS: OnceLock<Vec<Option<Stemmer>>> = OnceLock::new();
    STEMMERS
        .get_or_init(|| {
            Lang::ALL
                .iter()
                .map(|lang| {
                    let algorithm = match lang {
                        Lang::It => Algorithm::Italian,
                        Lang::En => Algorithm::English,
                        Lang::Ar => Algorithm::Arabic,
                        Lang::Es => Algorithm::Spanish,
                        Lang::Fr => Algorithm::French,
                        Lang::Ru => Algorithm::Russian,
                        Lang::Ro => Algorithm::Romanian,
                        Lang::Uk | Lang::Zh => return None,
                    };
                    Some(Stemmer::create(algorithm))
                })
                .collect()
        })
        .get(lang.index())?
        .as_ref()
}

/// Ukrainian endings of nouns, adjectives and verbs, longest first. Snowball has no
/// Ukrainian stemmer; this strips one ending and keeps at least three letters, which
/// is enough to find "оренди" for "оренда" and "роботу" for "робота".
const UKRAINIAN_ENDINGS: &[&str] = &[
    "ями", "ами", "ові", "еві", "ого", "ому", "ими", "ій", "ий", "их", "ім", "им", "ою", "ею",
    "ів", "ам", "ям", "ах", "ях", "ом", "ем", "ти", "ть", "ла", "ли", "ло", "а", "я", "и", "і",
    "у", "ю", "о", "е", "ь",
];

fn ukrainian_stem(word: &str) -> Cow<'_, str> {
    let length = word.chars().count();
    for ending in UKRAINIAN_ENDINGS {
        let ending_length = ending.chars().count();
        if length >= ending_length + 3
            && let Some(stem) = word.strip_suffix(ending)
        {
            return Cow::Borrowed(stem);
        }
    }
    Cow::Borrowed(word)
}

/// The script of a normalised word, by its first letter.
pub fn script_of(word: &str) -> Script {
    word.chars()
        .find_map(letter_script)
        .unwrap_or(Script::Other)
}

/// The script of a letter; None for a character that is no letter.
pub(crate) fn letter_script(character: char) -> Option<Script> {
    // The common letters first, without the Unicode tables.
    if character.is_ascii() {
        return character.is_ascii_alphabetic().then_some(Script::Latin);
    }
    match character {
        '\u{0621}'..='\u{064A}' => return Some(Script::Arabic),
        '\u{0400}'..='\u{045F}' => return Some(Script::Cyrillic),
        '\u{4E00}'..='\u{9FFF}' => return Some(Script::Han),
        _ => {}
    }
    if !character.is_alphabetic() {
        return None;
    }
    let code = character as u32;
    Some(match code {
        0x0600..=0x06FF | 0x0750..=0x077F | 0x08A0..=0x08FF | 0xFB50..=0xFDFF | 0xFE70..=0xFEFF => {
            Script::Arabic
        }
        0x0400..=0x052F => Script::Cyrillic,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF => Script::Han,
        _ if character.is_ascii_alphabetic() || (0x00C0..=0x024F).contains(&code) => Script::Latin,
        _ => Script::Other,
    })
}

/// Words that carry no need in any of the languages: articles, prepositions, pronouns,
/// greetings and the fillers of a request ("ho bisogno", "vorrei sapere", "aiuto",
/// "problema"). They are dropped before matching, so they never choose a need.
const FUNCTION_WORDS: &[&str] = &[
    // Italian
    "a",
    "ad",
    "al",
    "alla",
    "alle",
    "allo",
    "ai",
    "agli",
    "all",
    "anche",
    "che",
    "chi",
    "ci",
    "con",
    "col",
    "da",
    "dal",
    "dalla",
    "dai",
    "dei",
    "del",
    "della",
    "delle",
    "dello",
    "degli",
    "di",
    "e",
    "ed",
    "gli",
    "ha",
    "hai",
    "ho",
    "abbiamo",
    "hanno",
    "i",
    "il",
    "in",
    "io",
    "l",
    "la",
    "le",
    "lo",
    "ma",
    "mi",
    "me",
    "mio",
    "mia",
    "miei",
    "mie",
    "ne",
    "nel",
    "nella",
    "nelle",
    "nei",
    "o",
    "per",
    "piu",
    "po",
    "qui",
    "qua",
    "se",
    "sono",
    "sei",
    "siamo",
    "e'",
    "su",
    "sul",
    "sulla",
    "ti",
    "te",
    "tra",
    "fra",
    "tu",
    "un",
    "una",
    "uno",
    "vorrei",
    "voglio",
    "volevo",
    "vorremmo",
    "ciao",
    "salve",
    "buongiorno",
    "buonasera",
    "buondi",
    "grazie",
    "prego",
    "perfavore",
    "favore",
    "cortesemente",
    "gentilmente",
    "scusi",
    "scusa",
    "bisogno",
    "sapere",
    "chiedere",
    "chiedo",
    "domanda",
    "domande",
    "aiuto",
    "aiutare",
    "aiutarmi",
    "aiutatemi",
    "aiutami",
    "problema",
    "problemi",
    "info",
    "informazione",
    "informazioni",
    "cosa",
    "qualcosa",
    "come",
    "dove",
    "quando",
    "perche",
    "quale",
    "quali",
    "fare",
    "faccio",
    "posso",
    "puoi",
    "potete",
    "puo",
    "potrei",
    "potreste",
    "serve",
    "servono",
    "servirebbe",
    "avere",
    "avrei",
    "devo",
    "dovrei",
    "essere",
    "stato",
    "sto",
    "stai",
    "sta",
    "questo",
    "questa",
    "quello",
    "quella",
    "mio",
    "vostro",
    "vostra",
    "suo",
    "sua",
    "loro",
    "noi",
    "voi",
    "lei",
    "lui",
    "si",
    "ok",
    "va",
    "bene",
    "tanto",
    "molto",
    "proprio",
    "ancora",
    "gia",
    "comunque",
    "allora",
    "quindi",
    "tipo",
    "magari",
    "sapete",
    "sai",
    "so",
    "dire",
    "dirmi",
    "ditemi",
    "mi",
    // English
    "the",
    "an",
    "of",
    "to",
    "for",
    "and",
    "or",
    "my",
    "is",
    "are",
    "am",
    "was",
    "please",
    "me",
    "with",
    "hello",
    "hi",
    "hey",
    "good",
    "morning",
    "evening",
    "want",
    "would",
    "like",
    "need",
    "needs",
    "help",
    "helping",
    "have",
    "has",
    "get",
    "can",
    "could",
    "how",
    "what",
    "where",
    "when",
    "do",
    "does",
    "know",
    "about",
    "some",
    "problem",
    "problems",
    "information",
    "question",
    "thing",
    "it",
    "this",
    "that",
    "there",
    "you",
    "your",
    "thanks",
    "thank",
    "we",
    "our",
    "m",
    "s",
    "t",
    "d",
    "ll",
    "ve",
    "re",
    "at",
    "on",
    "from",
    "im",
    "dont",
    "sir",
    "madam",
    "someone",
    // Spanish
    "yo",
    "mi",
    "mis",
    "necesito",
    "necesita",
    "necesitamos",
    "quiero",
    "quisiera",
    "queria",
    "saber",
    "ayuda",
    "ayudar",
    "ayudarme",
    "ayudenme",
    "problema",
    "informacion",
    "pregunta",
    "algo",
    "como",
    "donde",
    "cuando",
    "por",
    "hola",
    "buenos",
    "buenas",
    "dias",
    "tardes",
    "noches",
    "gracias",
    "el",
    "los",
    "las",
    "del",
    "en",
    "para",
    "y",
    "que",
    "es",
    "estoy",
    "esta",
    "tengo",
    "tener",
    "hacer",
    "puedo",
    "puede",
    "pueden",
    "lo",
    "les",
    "su",
    "sus",
    "muy",
    "un",
    "una",
    "unos",
    "al",
    "pero",
    "porque",
    "senor",
    "senora",
    // French
    "je",
    "j",
    "moi",
    "mon",
    "ma",
    "mes",
    "besoin",
    "ai",
    "avoir",
    "voudrais",
    "veux",
    "voulais",
    "aide",
    "aider",
    "aidez",
    "probleme",
    "renseignement",
    "chose",
    "comment",
    "ou",
    "quand",
    "pour",
    "plait",
    "svp",
    "bonjour",
    "bonsoir",
    "salut",
    "merci",
    "les",
    "une",
    "des",
    "du",
    "au",
    "aux",
    "avec",
    "et",
    "qui",
    "suis",
    "c",
    "ce",
    "faire",
    "peux",
    "pouvez",
    "il",
    "elle",
    "y",
    "sur",
    "dans",
    "pas",
    "n",
    "nous",
    "vous",
    "madame",
    "monsieur",
    "est",
    // Arabic (normalised: no hamza forms, ة as ه, ى as ي)
    "انا",
    "احتاج",
    "محتاج",
    "محتاجه",
    "بحاجه",
    "اريد",
    "بدي",
    "عايز",
    "عايزه",
    "عاوز",
    "بغيت",
    "ابغي",
    "ممكن",
    "مساعده",
    "ساعدني",
    "ساعدوني",
    "من",
    "في",
    "علي",
    "الي",
    "عن",
    "مع",
    "هل",
    "كيف",
    "ماذا",
    "شو",
    "ايش",
    "اين",
    "وين",
    "لو",
    "سمحت",
    "فضلك",
    "مرحبا",
    "السلام",
    "عليكم",
    "شكرا",
    "و",
    "يا",
    "هذا",
    "هذه",
    "لي",
    "عندي",
    "مشكله",
    "اخي",
    "اختي",
    "استاذ",
    "معلومات",
    "سؤال",
    "اعرف",
    "بدنا",
    "نريد",
    // Ukrainian
    "я",
    "мені",
    "мене",
    "мій",
    "моя",
    "мої",
    "моє",
    "потрібно",
    "потрібна",
    "потрібен",
    "потрібні",
    "треба",
    "хочу",
    "хотів",
    "хотіла",
    "хотілося",
    "б",
    "би",
    "допомога",
    "допомогу",
    "допомоги",
    "допомогти",
    "допоможіть",
    "проблема",
    "питання",
    "як",
    "де",
    "коли",
    "що",
    "чи",
    "будь",
    "ласка",
    "привіт",
    "добрий",
    "день",
    "вечір",
    "дякую",
    "в",
    "у",
    "на",
    "з",
    "із",
    "до",
    "для",
    "про",
    "і",
    "й",
    "та",
    "а",
    "це",
    "є",
    "маю",
    "можна",
    "можете",
    "мною",
    "нам",
    "ми",
    "ви",
    "вас",
    // Russian
    "мне",
    "меня",
    "мой",
    "нужно",
    "нужна",
    "нужен",
    "нужны",
    "надо",
    "хотел",
    "хотела",
    "бы",
    "помощь",
    "помочь",
    "помогите",
    "вопрос",
    "как",
    "где",
    "когда",
    "что",
    "ли",
    "пожалуйста",
    "привет",
    "здравствуйте",
    "спасибо",
    "и",
    "с",
    "это",
    "есть",
    "мы",
    // Romanian
    "eu",
    "nevoie",
    "vreau",
    "as",
    "dori",
    "ajutor",
    "ajutati",
    "informatii",
    "intrebare",
    "cum",
    "unde",
    "cand",
    "pentru",
    "va",
    "rog",
    "buna",
    "ziua",
    "multumesc",
    "de",
    "la",
    "cu",
    "si",
    "sau",
    "pe",
    "ma",
    "imi",
    // Chinese (single characters: Chinese text is read character by character)
    "我",
    "的",
    "了",
    "是",
    "要",
    "想",
    "请",
    "你",
    "好",
    "吗",
    "在",
    "有",
    "帮",
    "助",
    "需",
    "一",
    "个",
    "和",
    "们",
];

pub fn is_function_word(word: &str) -> bool {
    static SET: OnceLock<HashSet<String>> = OnceLock::new();
    SET.get_or_init(|| FUNCTION_WORDS.iter().map(|word| normalise(word)).collect())
        .contains(word)
}

/// An answer that fits a question whatever its buttons say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Everyday {
    Yes,
    No,
    Thanks,
    Greeting,
    /// "non capisco", "cosa vuol dire?", "?"
    Confused,
    /// "aiuto", "help": a wish for help with no need named.
    Help,
}

const EVERYDAY: &[(Everyday, &[&str])] = &[
    (
        Everyday::Yes,
        &[
            "si",
            "sì",
            "si si",
            "ok",
            "okay",
            "okk",
            "oki",
            "okei",
            "va bene",
            "vabene",
            "vabbene",
            "va bene grazie",
            "ok grazie",
            "si grazie",
            "sì grazie",
            "certo",
            "certamente",
            "d'accordo",
            "daccordo",
            "accetto",
            "si accetto",
            "sono d'accordo",
            "perfetto",
            "yes",
            "yeah",
            "yep",
            "sure",
            "of course",
            "yes please",
            "i agree",
            "agree",
            "vale",
            "claro",
            "sí",
            "si claro",
            "de acuerdo",
            "oui",
            "d'accord",
            "bien sûr",
            "так",
            "ага",
            "да",
            "добре",
            "хорошо",
            "згоден",
            "згодна",
            "نعم",
            "اه",
            "ايوه",
            "ايوا",
            "أيوة",
            "حاضر",
            "طيب",
            "موافق",
            "موافقه",
            "تمام",
            "da sunt de acord",
            "de acord",
            "好",
            "是",
            "是的",
            "可以",
            "好的",
            "同意",
        ],
    ),
    (
        Everyday::No,
        &[
            "no",
            "nope",
            "non",
            "no grazie",
            "no, grazie",
            "grazie no",
            "niente",
            "nulla",
            "no thanks",
            "no thank you",
            "no gracias",
            "non merci",
            "ні",
            "ні дякую",
            "нет",
            "нет спасибо",
            "لا",
            "لا شكرا",
            "لا شكراً",
            "nu",
            "nu multumesc",
            "不",
            "不要",
            "不用",
            "不用了",
        ],
    ),
    (
        Everyday::Thanks,
        &[
            "grazie",
            "grazie mille",
            "grazie tante",
            "grazie di tutto",
            "ti ringrazio",
            "thanks",
            "thank you",
            "thx",
            "ty",
            "gracias",
            "muchas gracias",
            "merci",
            "merci beaucoup",
            "дякую",
            "спасибі",
            "спасибо",
            "شكرا",
            "شكرا جزيلا",
            "multumesc",
            "mulțumesc",
            "谢谢",
            "多谢",
        ],
    ),
    (
        Everyday::Greeting,
        &[
            "ciao",
            "salve",
            "buongiorno",
            "buonasera",
            "buon giorno",
            "hello",
            "hi",
            "hey",
            "good morning",
            "hola",
            "buenos dias",
            "buenas",
            "bonjour",
            "bonsoir",
            "salut",
            "привіт",
            "добрий день",
            "привет",
            "здравствуйте",
            "مرحبا",
            "السلام عليكم",
            "سلام",
            "اهلا",
            "buna",
            "bună ziua",
            "你好",
            "您好",
        ],
    ),
    (
        Everyday::Confused,
        &[
            "non capisco",
            "non ho capito",
            "nn capisco",
            "non capito",
            "cosa",
            "cosa?",
            "come?",
            "che cosa",
            "che significa",
            "cosa significa",
            "cosa vuol dire",
            "che vuol dire",
            "non so",
            "boh",
            "non lo so",
            "?",
            "??",
            "???",
            "i don't understand",
            "i dont understand",
            "what",
            "what?",
            "what does it mean",
            "no entiendo",
            "no comprendo",
            "que",
            "qué",
            "je ne comprends pas",
            "je comprends pas",
            "quoi",
            "не розумію",
            "не зрозумів",
            "не зрозуміла",
            "не понимаю",
            "لا افهم",
            "ما فهمت",
            "مش فاهم",
            "مش فاهمه",
            "nu inteleg",
            "nu înțeleg",
            "不懂",
            "不明白",
            "什么",
        ],
    ),
    (
        Everyday::Help,
        &[
            "aiuto",
            "aiutatemi",
            "aiutami",
            "help",
            "help me",
            "ayuda",
            "aide",
            "aidez moi",
            "допоможіть",
            "допомога",
            "помогите",
            "مساعده",
            "مساعدة",
            "ساعدني",
            "ajutor",
            "帮助",
            "帮我",
        ],
    ),
];

/// The everyday answer a whole message is, if it is one ("Sì!", "ok grazie", "?").
pub fn everyday(text: &str) -> Option<Everyday> {
    static TABLE: OnceLock<HashMap<String, Everyday>> = OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = HashMap::new();
        for (kind, phrases) in EVERYDAY {
            for phrase in *phrases {
                let key = normalise(phrase);
                // "?" normalises to nothing: kept apart below.
                if !key.is_empty() {
                    table.entry(key).or_insert(*kind);
                }
            }
        }
        table
    });
    let normalised = normalise(text);
    if normalised.is_empty() {
        let trimmed = text.trim();
        return (!trimmed.is_empty() && trimmed.chars().all(|c| c == '?' || c == '？'))
            .then_some(Everyday::Confused);
    }
    table.get(&normalised).copied()
}

/// Whether a button label starts with a yes or a no ("Sì, scrivetemi", "No, grazie"),
/// so that an everyday answer can pick it.
pub fn label_answer(label: &str) -> Option<Everyday> {
    let normalised = normalise(label);
    let first = normalised.split(' ').next()?;
    match everyday(first)? {
        kind @ (Everyday::Yes | Everyday::No) => Some(kind),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_and_codes() {
        assert_eq!(script_of("affitto"), Script::Latin);
        assert_eq!(script_of("اكل"), Script::Arabic);
        assert_eq!(script_of("сеграте"), Script::Cyrillic);
        assert_eq!(script_of("住房"), Script::Han);
        assert_eq!(script_of("20054"), Script::Other);
        assert_eq!(Lang::from_code("uk-UA"), Some(Lang::Uk));
        assert_eq!(Lang::from_code("de"), None);
    }

    #[test]
    fn everyday_answers() {
        assert_eq!(everyday("Sì!"), Some(Everyday::Yes));
        assert_eq!(everyday("va bene"), Some(Everyday::Yes));
        assert_eq!(everyday("No, grazie"), Some(Everyday::No));
        assert_eq!(everyday("grazie mille"), Some(Everyday::Thanks));
        assert_eq!(everyday("non capisco"), Some(Everyday::Confused));
        assert_eq!(everyday("???"), Some(Everyday::Confused));
        assert_eq!(everyday("aiuto"), Some(Everyday::Help));
        assert_eq!(everyday("نعم"), Some(Everyday::Yes));
        assert_eq!(everyday("ho bisogno dello spid"), None);
        assert_eq!(label_answer("Sì, scrivetemi"), Some(Everyday::Yes));
        assert_eq!(label_answer("No, grazie"), Some(Everyday::No));
        assert_eq!(label_answer("Casa e affitto"), None);
    }

    #[test]
    fn stems_by_language() {
        assert_eq!(
            Lang::Es.stem("comidas").as_deref(),
            Lang::Es.stem("comida").as_deref()
        );
        assert_eq!(
            Lang::Uk.stem("оренди").as_deref(),
            Lang::Uk.stem("оренда").as_deref()
        );
        assert_eq!(Lang::Zh.stem("住房"), None);
    }
}
