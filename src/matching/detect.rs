//! Which language a citizen's message is written in, whatever their phone says.
//!
//! The script is the strong signal: Arabic letters are Arabic, Chinese characters
//! Chinese, Cyrillic is Ukrainian when it has і, ї, є or ґ and Russian when it has ы, э,
//! ъ or ё. Latin-script texts are told apart by a statistical language identifier, only
//! when the message is long enough for it to be right (a short "ok" or "SPID" says
//! nothing).

use super::Lang;
use super::lang::{Script, script_of};

/// A language found for a text, and whether it is sure enough to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub lang: Lang,
    /// The script alone decided (Arabic, Cyrillic, Chinese letters).
    pub by_script: bool,
}

/// The language of `text`, when the text says it clearly enough. Arabic-script text with
/// the letters of Urdu or Persian (پ چ ژ گ ٹ ڈ ڑ ں ے) is not taken for Arabic.
pub fn detect(text: &str) -> Option<Detected> {
    detect_beside(text, None)
}

/// [`detect`], for a conversation already in `current`: a Latin-script text whose little
/// words are clearly that language's (at least two, more than twice any other's) is
/// taken as written in it without the statistical identifier, which costs a sixth of
/// an engine step and would only confirm it.
pub fn detect_beside(text: &str, current: Option<Lang>) -> Option<Detected> {
    if text
        .chars()
        .any(|c| matches!(c, 'پ' | 'چ' | 'ژ' | 'گ' | 'ٹ' | 'ڈ' | 'ڑ' | 'ں' | 'ے'))
    {
        return None;
    }
    let mut counts = [0usize; 4];
    let mut ukrainian = 0usize;
    let mut russian = 0usize;
    let mut letters = 0usize;
    for character in text.chars() {
        if !character.is_alphabetic() {
            continue;
        }
        letters += 1;
        let mut buffer = [0u8; 4];
        match script_of(character.encode_utf8(&mut buffer)) {
            Script::Latin => counts[0] += 1,
            Script::Arabic => counts[1] += 1,
            Script::Cyrillic => {
                counts[2] += 1;
                match character.to_lowercase().next().unwrap_or(character) {
                    'і' | 'ї' | 'є' | 'ґ' => ukrainian += 1,
                    'ы' | 'э' | 'ъ' | 'ё' => russian += 1,
                    _ => {}
                }
            }
            Script::Han => counts[3] += 1,
            Script::Other => {}
        }
    }
    if letters == 0 {
        return None;
    }
    let (best, count) = counts
        .iter()
        .enumerate()
        .max_by_key(|(_, count)| **count)
        .map(|(index, count)| (index, *count))?;
    // The script of most letters, when it is most of the text.
    if count * 2 < letters {
        return None;
    }
    let by_script = |lang| {
        Some(Detected {
            lang,
            by_script: true,
        })
    };
    match best {
        1 if count >= 2 => by_script(Lang::Ar),
        3 if count >= 1 => by_script(Lang::Zh),
        2 if count >= 3 => {
            if russian > ukrainian {
                by_script(Lang::Ru)
            } else {
                by_script(Lang::Uk)
            }
        }
        // Arabic written in Latin letters with digits for its sounds ("ma3ndich",
        // "tfar9na"): no Latin-script language, whatever the identifier would guess.
        0 if text.split_whitespace().any(is_arabizi) => None,
        0 => {
            let markers = marker_counts(text);
            if let Some(current) = current
                && markers_confirm(&markers, current)
            {
                return Some(Detected {
                    lang: current,
                    by_script: false,
                });
            }
            latin(text, markers)
        }
        _ => None,
    }
}

/// A word of Arabic written in Latin letters: a digit that stands for an Arabic sound
/// (2 3 5 7 9) before a letter, in a word of two letters or more ("3andi", "ma3ndich",
/// "7ta"; not "h24", "mp3", "a2" or "covid19").
fn is_arabizi(word: &str) -> bool {
    let characters: Vec<char> = word.chars().collect();
    characters
        .iter()
        .filter(|c| c.is_ascii_alphabetic())
        .count()
        >= 2
        && characters.windows(2).any(|pair| {
            matches!(pair[0], '2' | '3' | '5' | '7' | '9') && pair[1].is_ascii_alphabetic()
        })
}

/// whatlang's confidence under which a Latin-script guess is not acted on (see the
/// measurement in Cargo.toml).
const LATIN_CONFIDENCE: f64 = 0.5;
/// Fewer words than this say too little of their language.
const LATIN_MIN_WORDS: usize = 3;

/// A Latin-script language, from the statistical identifier, among those the bot reads;
/// `markers` are the text's [`marker_counts`].
fn latin(text: &str, markers: Vec<(usize, Lang)>) -> Option<Detected> {
    if text.split_whitespace().count() < LATIN_MIN_WORDS {
        return None;
    }
    static DETECTOR: std::sync::OnceLock<whatlang::Detector> = std::sync::OnceLock::new();
    let detector = DETECTOR.get_or_init(|| {
        whatlang::Detector::with_allowlist(vec![
            whatlang::Lang::Ita,
            whatlang::Lang::Eng,
            whatlang::Lang::Spa,
            whatlang::Lang::Fra,
            whatlang::Lang::Ron,
        ])
    });
    let info = detector.detect(text)?;
    let lang = match info.lang() {
        whatlang::Lang::Ita => Lang::It,
        whatlang::Lang::Eng => Lang::En,
        whatlang::Lang::Spa => Lang::Es,
        whatlang::Lang::Fra => Lang::Fr,
        whatlang::Lang::Ron => Lang::Ro,
        _ => return None,
    };
    // A less confident guess stands when the little words agree: at least two of the
    // language's own, more than of any other.
    if info.confidence() < LATIN_CONFIDENCE && marker_winner(markers) != Some(lang) {
        return None;
    }
    Some(Detected {
        lang,
        by_script: false,
    })
}

/// Little words that belong to one Latin-script language only.
const MARKERS: &[(Lang, &[&str])] = &[
    (
        Lang::It,
        &[
            "il",
            "gli",
            "della",
            "delle",
            "sono",
            "ho",
            "non",
            "per",
            "anche",
            "vorrei",
            "bisogno",
            "aiuto",
            "grazie",
            "ciao",
            "buongiorno",
            "perche",
            "come",
            "dove",
            "questo",
            "quando",
            "mio",
            "mia",
            "casa",
        ],
    ),
    (
        Lang::Es,
        &[
            "el", "los", "las", "del", "necesito", "quiero", "tengo", "estoy", "para", "pero",
            "tambien", "ayuda", "hola", "gracias", "porque", "donde", "cuando", "muy", "soy",
            "mis", "piso", "una",
        ],
    ),
    (
        Lang::Fr,
        &[
            "le", "les", "je", "suis", "est", "des", "du", "pour", "avec", "mais", "aussi",
            "besoin", "aide", "bonjour", "merci", "parce", "ou", "vous", "nous", "ne", "pas",
            "mon",
        ],
    ),
    (
        Lang::En,
        &[
            "the", "i", "is", "are", "my", "need", "help", "please", "with", "for", "and", "but",
            "have", "can", "hello", "thanks", "where", "when", "this",
        ],
    ),
    (
        Lang::Ro,
        &[
            "si",
            "sunt",
            "am",
            "nevoie",
            "ajutor",
            "buna",
            "multumesc",
            "pentru",
            "cu",
            "dar",
            "este",
            "eu",
            "va",
            "rog",
            "unde",
            "cand",
        ],
    ),
];

/// The language whose little words the text holds most, if clearly.
fn marker_winner(mut counts: Vec<(usize, Lang)>) -> Option<Lang> {
    counts.sort_by_key(|count| std::cmp::Reverse(count.0));
    match counts.as_slice() {
        [(first, lang), (second, _), ..] if *first >= 2 && first > second => Some(*lang),
        _ => None,
    }
}

/// Whether the little words say `lang` plainly: two or more of its own, more than twice
/// those of any other language.
fn markers_confirm(counts: &[(usize, Lang)], lang: Lang) -> bool {
    let own = counts
        .iter()
        .find(|(_, marked)| *marked == lang)
        .map_or(0, |(count, _)| *count);
    own >= 2
        && counts
            .iter()
            .filter(|(_, marked)| *marked != lang)
            .all(|(count, _)| own > 2 * count)
}

/// How many little words of each Latin-script language the text holds.
fn marker_counts(text: &str) -> Vec<(usize, Lang)> {
    let words = super::tokens(text);
    MARKERS
        .iter()
        .map(|(lang, markers)| {
            (
                words
                    .iter()
                    .filter(|word| markers.contains(&word.as_str()))
                    .count(),
                *lang,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_conversation_s_language_is_confirmed_by_its_little_words() {
        let italian = "mi serve lo spid e anche aiuto per le bollette";
        assert_eq!(
            detect_beside(italian, Some(Lang::It)).map(|d| d.lang),
            Some(Lang::It)
        );
        // Another language still wins when it is the one written.
        let spanish = "hola necesito ayuda para el alquiler de mi piso";
        assert_eq!(
            detect_beside(spanish, Some(Lang::It)).map(|d| d.lang),
            Some(Lang::Es)
        );
        // Little words of two languages: the identifier decides, as without a current one.
        let mixed = "il permesso est pour mon mari";
        assert_eq!(
            detect_beside(mixed, Some(Lang::It)),
            detect_beside(mixed, None)
        );
    }

    #[test]
    fn arabic_in_latin_letters_is_no_latin_language() {
        // whatlang read these as Spanish and Italian, and the bot switched an Arabic
        // conversation to them.
        for text in [
            "ma3ndich bach nkhlas lfactura dyal dow w lma",
            "ana o rajli tfar9na w bghit n3ref chkoun ghadi ikhod lwlad",
        ] {
            assert_eq!(detect_beside(text, Some(Lang::Ar)), None, "{text}");
            assert_eq!(detect(text), None, "{text}");
        }
        assert!(!is_arabizi("h24") && !is_arabizi("mp3") && !is_arabizi("covid19"));
        assert_eq!(
            detect("il negozio è aperto h24 anche la domenica").map(|d| d.lang),
            Some(Lang::It)
        );
    }

    #[test]
    fn scripts_decide() {
        assert_eq!(
            detect("أحتاج مساعدة في السكن").map(|d| d.lang),
            Some(Lang::Ar)
        );
        assert_eq!(
            detect("Мені потрібна допомога").map(|d| d.lang),
            Some(Lang::Uk)
        );
        assert_eq!(
            detect("Мне нужна помощь, мы ищем квартиру").map(|d| d.lang),
            Some(Lang::Ru)
        );
        assert_eq!(detect("我需要帮助").map(|d| d.lang), Some(Lang::Zh));
        assert_eq!(detect("🙏🙏"), None);
        assert_eq!(detect("SPID"), None);
        assert_eq!(
            detect("Hola, necesito ayuda con el alquiler de mi casa por favor").map(|d| d.lang),
            Some(Lang::Es)
        );
        assert_eq!(
            detect("Bonjour, je cherche un logement pour ma famille").map(|d| d.lang),
            Some(Lang::Fr)
        );
        assert_eq!(detect("ok grazie").map(|d| d.lang), None);
        assert_eq!(
            detect("hola, necesito ayuda con el alquiler de mi piso").map(|d| d.lang),
            Some(Lang::Es)
        );
    }
}
