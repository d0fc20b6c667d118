//! Free text to choices, places and intents, in every language the citizens write.
//!
//! A text is normalised ([`normalise`]: Unicode compatibility decomposition, accents,
//! case, punctuation and emoji dropped, Arabic letter variants unified, Chinese read
//! character by character, Italian chat shorthand such as "nn" and "xke" spelt out),
//! then its function words are dropped ([`lang::is_function_word`]: "ho bisogno",
//! "vorrei", "мені", "أحتاج" never choose a need). A phrase (a label, a synonym, a place
//! name) matches when every one of its words is found among the text's words: the same
//! spelling, the same stem in the phrase's language (Snowball), or within a small edit
//! distance that grows with the word's length ("afitto" finds "affitto"). Words of up to
//! three letters and words with digits ("sap", "adi", "104") match only whole.
//!
//! The phrases of a bundle are indexed once ([`index::Index`]) so that a step with
//! hundreds of synonyms in seven languages is matched in microseconds. Danger is read
//! by a different matcher ([`pattern`]) that keeps every word and their order.
//!
//! Pure and deterministic: no I/O, no randomness.

pub mod classifier;
pub mod detect;
pub mod index;
pub mod lang;
pub mod pattern;

use std::borrow::Cow;
use std::cell::OnceCell;

use unicode_normalization::UnicodeNormalization;

pub use index::{Hits, Index, PhraseSet, Scored};
pub use lang::{Everyday, Lang, Script, everyday, script_of};

/// Lowercase, without accents, apostrophes, punctuation and emoji; Arabic letter
/// variants unified (ى as ي, ة as ه, no tatweel, Arabic-Indic digits as 0-9); letters
/// repeated three times or more written once ("aiutooo"); Chinese characters separated;
/// words separated by one space. An apostrophe inside a Cyrillic word ("б'є") is dropped
/// without splitting it.
pub fn normalise(text: &str) -> String {
    if text.len() >= MEMO_SHORTEST
        && let Some(memoised) = MEMO.with_borrow(|memo| {
            memo.as_ref()?
                .iter()
                .find(|(key, _)| key == text)
                .map(|(_, normalised)| normalised.clone())
        })
    {
        return memoised;
    }
    let normalised = normalise_uncached(text);
    if text.len() >= MEMO_SHORTEST {
        MEMO.with_borrow_mut(|memo| {
            if let Some(memo) = memo {
                if memo.len() == MEMO_ENTRIES {
                    memo.remove(0);
                }
                memo.push((text.to_string(), normalised.clone()));
            }
        });
    }
    normalised
}

/// Texts shorter than this are normalised again rather than looked up.
const MEMO_SHORTEST: usize = 16;
/// How many texts a turn's memo keeps (the message, its sentences, a long label).
const MEMO_ENTRIES: usize = 4;

std::thread_local! {
    /// The texts normalised during the current [`with_memo`], with what they became:
    /// a message is read by several readers in one turn (danger, its language, its
    /// words, the intents, the models). None outside a turn, so that no citizen's words
    /// stay in memory after it.
    static MEMO: std::cell::RefCell<Option<Vec<(String, String)>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `turn` with [`normalise`] remembering its last few texts, and forgets them
/// afterwards.
pub fn with_memo<T>(turn: impl FnOnce() -> T) -> T {
    struct Forget(Option<Vec<(String, String)>>);
    impl Drop for Forget {
        fn drop(&mut self) {
            let outer = self.0.take();
            MEMO.with_borrow_mut(|memo| *memo = outer);
        }
    }
    let outer = MEMO.with_borrow_mut(|memo| memo.replace(Vec::with_capacity(MEMO_ENTRIES)));
    // Restored (emptied, or the caller's memo) even if the turn panics.
    let _forget = Forget(outer);
    turn()
}

fn normalise_uncached(text: &str) -> String {
    // ASCII decomposes to itself: the Unicode tables are read only for other text.
    if text.is_ascii() {
        normalise_characters(text.chars(), text.len())
    } else {
        normalise_characters(text.nfkd(), text.len())
    }
}

fn normalise_characters(characters: impl Iterator<Item = char>, length: usize) -> String {
    let mut out = String::with_capacity(length);
    let mut last_space = true;
    let mut previous: Option<char> = None;
    let mut characters = characters.peekable();
    while let Some(character) = characters.next() {
        let character = match character {
            'ى' | 'ی' => 'ي',
            'ة' => 'ه',
            'ک' => 'ك',
            'ـ' => continue,
            '٠'..='٩' => char::from(b'0' + (character as u32 - '٠' as u32) as u8),
            '۰'..='۹' => char::from(b'0' + (character as u32 - '۰' as u32) as u8),
            other => other,
        };
        // Most letters are plain Latin or Arabic: no table lookups for them.
        if character.is_ascii_alphanumeric() || is_arabic_letter(character) {
            let lower = character.to_ascii_lowercase();
            // Arabic writes "the" on the front of an Italian word too ("الpermesso",
            // "الINPS"): the two scripts are two words.
            if previous.is_some_and(|before| {
                (is_arabic_letter(before) && lower.is_ascii_alphabetic())
                    || (before.is_ascii_alphabetic() && is_arabic_letter(lower))
            }) {
                out.push(' ');
            }
            out.push(lower);
            previous = Some(lower);
            last_space = false;
            continue;
        }
        if unicode_normalization::char::is_combining_mark(character) {
            continue;
        }
        if is_apostrophe(character)
            && previous.is_some_and(|c| script_of_char(c) == Script::Cyrillic)
            && characters
                .peek()
                .is_some_and(|&next| script_of_char(next) == Script::Cyrillic)
        {
            continue;
        } else if character.is_alphanumeric() && !is_apostrophe(character) {
            for lower in character.to_lowercase() {
                let han = script_of_char(lower) == Script::Han;
                if han && !last_space {
                    out.push(' ');
                }
                out.push(lower);
                previous = Some(lower);
                last_space = false;
                if han {
                    out.push(' ');
                    last_space = true;
                    previous = None;
                }
            }
        } else if !last_space {
            out.push(' ');
            last_space = true;
            previous = None;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    collapse_tripled(out)
}

/// A letter written three times or more in a row is written once: "aiutooo" is
/// "aiuto", "nooo" is "no"; a true double ("affitto") stays.
fn collapse_tripled(text: String) -> String {
    let bytes = text.as_bytes();
    if !bytes.windows(3).any(|w| w[0] == w[1] && w[1] == w[2]) && text.is_ascii() {
        return text;
    }
    let characters: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut index = 0;
    while index < characters.len() {
        let character = characters[index];
        let mut end = index;
        while end < characters.len() && characters[end] == character {
            end += 1;
        }
        let run = end - index;
        let kept = if run >= 3 && character.is_alphabetic() {
            1
        } else {
            run
        };
        out.extend(std::iter::repeat_n(character, kept));
        index = end;
    }
    out
}

fn is_arabic_letter(character: char) -> bool {
    ('\u{0621}'..='\u{064A}').contains(&character)
}

fn is_apostrophe(character: char) -> bool {
    matches!(character, '\'' | '’' | 'ʼ' | 'ʻ' | 'ʹ' | '`' | '´')
}

fn script_of_char(character: char) -> Script {
    lang::letter_script(character).unwrap_or(Script::Other)
}

/// Italian chat shorthand, spelt out before matching.
fn expand_shorthand(word: &str) -> &str {
    match word {
        "nn" => "non",
        "x" => "per",
        "xke" | "xche" | "perke" => "perche",
        "cmq" => "comunque",
        "qlc" | "qlcn" | "qualcun" => "qualcuno",
        "sn" => "sono",
        "tt" => "tutto",
        "dv" => "dove",
        "k" | "ke" => "che",
        "bn" => "bene",
        other => other,
    }
}

/// The normalised words of a text, in order, shorthand spelt out, function words kept.
pub fn tokens(text: &str) -> Vec<String> {
    normalise(text)
        .split(' ')
        .filter(|word| !word.is_empty())
        .map(|word| expand_shorthand(word).to_string())
        .collect()
}

/// One word of a phrase: its normalised spelling and its stem in the phrase's language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub plain: String,
    /// Empty when the language has no stemmer or the word is too short to stem.
    pub stem: String,
    pub lang: Lang,
    chars: usize,
    digits: bool,
}

impl Word {
    pub fn new(plain: &str, lang: Lang) -> Word {
        let chars = plain.chars().count();
        let digits = plain.chars().any(|c| c.is_ascii_digit());
        let stem = if chars >= 4 && !digits && script_of(plain) == lang.script() {
            lang.stem(plain).map(Cow::into_owned).unwrap_or_default()
        } else {
            String::new()
        };
        Word {
            plain: plain.to_string(),
            stem,
            lang,
            chars,
            digits,
        }
    }

    pub fn chars(&self) -> usize {
        self.chars
    }
}

/// A synonym, label or place name, prepared once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    pub words: Vec<Word>,
}

impl Phrase {
    /// An Italian phrase.
    pub fn new(text: &str) -> Phrase {
        Phrase::in_lang(text, Lang::It)
    }

    /// A phrase in `lang`, stemmed with that language's stemmer. Its function words are
    /// dropped like a text's, so that "Ho bisogno di parlare" is the phrase "parlare".
    pub fn in_lang(text: &str, lang: Lang) -> Phrase {
        Phrase {
            words: content_words(&tokens(text))
                .into_iter()
                .map(|word| Word::new(word, lang))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The phrase as its stems (or spellings), to tell whether two synonyms are one.
    pub fn key(&self) -> String {
        self.words
            .iter()
            .map(|word| {
                if word.stem.is_empty() {
                    word.plain.as_str()
                } else {
                    word.stem.as_str()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The words of a token list that carry meaning.
fn content_words(tokens: &[String]) -> Vec<&str> {
    tokens
        .iter()
        .map(String::as_str)
        .filter(|word| !lang::is_function_word(word))
        .collect()
}

/// One word of a citizen's text, with its stems computed when first asked for.
#[derive(Debug, Clone)]
pub struct TextWord {
    pub plain: String,
    chars: usize,
    digits: bool,
    script: Script,
    stems: [OnceCell<Option<String>>; lang::LANG_COUNT],
}

impl TextWord {
    fn new(plain: &str) -> TextWord {
        TextWord {
            plain: plain.to_string(),
            chars: plain.chars().count(),
            digits: plain.chars().any(|c| c.is_ascii_digit()),
            script: script_of(plain),
            stems: Default::default(),
        }
    }

    /// The word's stem in `lang`, when the word is written in that language's script.
    pub fn stem(&self, lang: Lang) -> Option<&str> {
        if self.script != lang.script() || self.chars < 4 || self.digits {
            return None;
        }
        self.stems[lang.index()]
            .get_or_init(|| lang.stem(&self.plain).map(Cow::into_owned))
            .as_deref()
    }

    pub fn script(&self) -> Script {
        self.script
    }
}

/// The meaningful words of a citizen's text, and the languages to stem them in.
#[derive(Debug, Clone)]
pub struct Words {
    pub words: Vec<TextWord>,
    /// Languages whose stems are compared (the conversation's, Italian, English and the
    /// language the text seems written in): stemming in every language would cost more
    /// than the rest of the match.
    pub langs: Vec<Lang>,
    /// The hits of the last index asked ([`index::Index::hits`]): a step asks the same
    /// index several times (intent, choice, deeper choice), the text does not change.
    hits: OnceCell<(u64, index::Hits)>,
}

/// Italian, then `langs`, each once.
fn with_italian(langs: &[Lang]) -> Vec<Lang> {
    let mut all = vec![Lang::It];
    for lang in langs {
        if !all.contains(lang) {
            all.push(*lang);
        }
    }
    all
}

impl Words {
    /// The content words of `text`, to be compared in `langs` (Italian is always added).
    pub fn new(text: &str, langs: &[Lang]) -> Words {
        let tokens = tokens(text);
        Words {
            words: content_words(&tokens)
                .into_iter()
                .map(TextWord::new)
                .collect(),
            langs: with_italian(langs),
            hits: OnceCell::new(),
        }
    }

    /// The same words compared in `langs` (Italian is always added): the stems already
    /// worked out are kept.
    pub fn in_langs(&self, langs: &[Lang]) -> Words {
        Words {
            words: self.words.clone(),
            langs: with_italian(langs),
            hits: OnceCell::new(),
        }
    }

    /// An Italian text (tests, places).
    pub fn italian(text: &str) -> Words {
        Words::new(text, &[Lang::En])
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    pub fn len(&self) -> usize {
        self.words.len()
    }
}

/// Edits tolerated between two words, by the shorter one's length.
pub(crate) fn tolerated_edits(length: usize) -> usize {
    match length {
        0..=4 => 0,
        5..=7 => 1,
        _ => 2,
    }
}

/// How well a phrase word and a text word agree, from 0 (not at all) to 1.
pub fn word_similarity(wanted: &Word, given: &TextWord) -> f32 {
    if wanted.plain == given.plain {
        return 1.0;
    }
    if stems_agree(wanted, given) {
        return 1.0;
    }
    if wanted.digits || given.digits {
        return 0.0;
    }
    // Four letters tolerate two swapped neighbours ("sipd" for "spid"), nothing else.
    if wanted.chars == 4 && given.chars == 4 {
        return if is_one_swap(&wanted.plain, &given.plain) {
            0.75
        } else {
            0.0
        };
    }
    fuzzy(&wanted.plain, wanted.chars, &given.plain, given.chars)
}

/// The same stem in the phrase's language, for words long enough that a stem says
/// something: "sap" (SAP) never finds "sapere", whose Italian stem is "sap".
pub(crate) fn stems_agree(wanted: &Word, given: &TextWord) -> bool {
    !wanted.stem.is_empty()
        && wanted.chars >= 4
        && given.chars >= 4
        && lengths_close_for_stems(wanted.chars, given.chars)
        && given.stem(wanted.lang) == Some(wanted.stem.as_str())
}

/// Words whose stem may say they are one: "casa" and "case", "affitto" and "affitti",
/// but not "capo" and "capito" (both "cap" in Italian): a short word's forms differ
/// by one letter at most.
pub(crate) fn lengths_close_for_stems(first: usize, second: usize) -> bool {
    let limit = if first.min(second) <= 5 { 1 } else { 3 };
    first.abs_diff(second) <= limit
}

/// The similarity of two spellings within the tolerated edits, else 0.
pub(crate) fn fuzzy(wanted: &str, wanted_chars: usize, given: &str, given_chars: usize) -> f32 {
    let tolerated = tolerated_edits(wanted_chars.min(given_chars));
    if tolerated == 0 || wanted_chars.abs_diff(given_chars) > tolerated {
        return 0.0;
    }
    let edits = strsim::osa_distance(wanted, given);
    if edits <= tolerated {
        return 1.0 - edits as f32 / wanted_chars.max(given_chars) as f32;
    }
    0.0
}

pub(crate) fn is_one_swap(first: &str, second: &str) -> bool {
    let first: Vec<char> = first.chars().collect();
    let second: Vec<char> = second.chars().collect();
    if first.len() != second.len() {
        return false;
    }
    let differing: Vec<usize> = (0..first.len())
        .filter(|&i| first[i] != second[i])
        .collect();
    matches!(differing[..], [a, b] if b == a + 1 && first[a] == second[b] && first[b] == second[a])
}

/// How well a phrase is found in the text's words: 0 when one of its words is missing,
/// otherwise the mean similarity of its words, slightly raised when the phrase covers
/// more of the text. For phrases that are not in an [`Index`] (button labels).
pub fn phrase_score(phrase: &Phrase, text: &Words) -> f32 {
    if phrase.words.is_empty() || text.words.is_empty() {
        return 0.0;
    }
    let mut total = 0.0;
    for wanted in &phrase.words {
        let best = text
            .words
            .iter()
            .map(|given| word_similarity(wanted, given))
            .fold(0.0, f32::max);
        if best == 0.0 {
            return 0.0;
        }
        total += best;
    }
    combine(total, phrase.words.len(), text.words.len())
}

/// The score of a phrase whose words' similarities add up to `total`.
pub(crate) fn combine(total: f32, phrase_words: usize, text_words: usize) -> f32 {
    let mean = total / phrase_words as f32;
    let coverage = (phrase_words as f32 / text_words.max(1) as f32).min(1.0);
    mean * (0.9 + 0.1 * coverage)
}

/// The best score of any of a candidate's phrases.
pub fn best_score(phrases: &[Phrase], text: &Words) -> f32 {
    phrases
        .iter()
        .map(|phrase| phrase_score(phrase, text))
        .fold(0.0, f32::max)
}

#[derive(Debug, Clone, PartialEq)]
pub enum Match<K> {
    One(K),
    /// Two candidates scored too close to choose: ask the citizen.
    Two(K, K),
    None,
}

/// Two candidates whose scores differ by less than this are ambiguous.
pub const AMBIGUITY: f32 = 0.06;

/// One, two (too close to choose) or no candidate of a list scored best first.
pub fn decide<K: Clone + PartialEq>(mut scored: Vec<(f32, K)>, threshold: f32) -> Match<K> {
    scored.retain(|(score, _)| *score >= threshold);
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    match scored.as_slice() {
        [] => Match::None,
        [(_, only)] => Match::One(only.clone()),
        [(first_score, first), (second_score, second), ..] => {
            if first_score - second_score < AMBIGUITY && first != second {
                Match::Two(first.clone(), second.clone())
            } else {
                Match::One(first.clone())
            }
        }
    }
}

/// Picks the candidate whose (unindexed) phrases best match the text.
pub fn best_match<'p, K: Clone + PartialEq>(
    text: &Words,
    candidates: impl IntoIterator<Item = (K, &'p [Phrase])>,
    threshold: f32,
) -> Match<K> {
    let scored = candidates
        .into_iter()
        .map(|(key, phrases)| (best_score(phrases, text), key))
        .collect();
    decide(scored, threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(phrase: &str, text: &str) -> f32 {
        phrase_score(&Phrase::new(phrase), &Words::italian(text))
    }

    #[test]
    fn normalises_accents_apostrophes_case_and_scripts() {
        assert_eq!(normalise("L'AFFITTO è   caro!!"), "l affitto e caro");
        assert_eq!(normalise("Sì"), "si");
        assert_eq!(normalise("🙏🙏"), "");
        assert_eq!(normalise("мене б'є"), "мене бє");
        assert_eq!(normalise("مدرسةٌ"), "مدرسه");
        assert_eq!(normalise("住房"), "住 房");
        assert_eq!(normalise("١٠٤"), "104");
        // An Arabic article on an Italian word is two words.
        assert_eq!(normalise("الINPS والpermesso"), "ال inps وال permesso");
        assert_eq!(
            tokens("nn ho soldi x la spesa"),
            ["non", "ho", "soldi", "per", "la", "spesa"]
        );
    }

    #[test]
    fn tolerates_typos_and_inflections() {
        assert!(score("affitto", "ho un problema con l'afitto") > 0.8);
        assert!(score("Pioltello", "Pioltelo") > 0.8);
        assert!(score("bolletta", "non pago le bollette") > 0.8);
        assert!(score("padrone di casa", "il mio padrone di casa") > 0.8);
        let comida = Phrase::in_lang("comida", Lang::Es);
        assert!(phrase_score(&comida, &Words::new("necesito comidas", &[Lang::Es])) > 0.8);
    }

    #[test]
    fn short_words_must_be_whole() {
        assert_eq!(score("voglio morire", "amore"), 0.0);
        assert_eq!(score("gas", "gap"), 0.0);
        assert_eq!(score("20054", "20055"), 0.0);
        assert!(score("spid", "mi serve lo sipd") > 0.6);
        assert_eq!(score("spid", "spia"), 0.0);
        assert_eq!(score("sap", "vorrei sapere una cosa"), 0.0);
        assert_eq!(score("adi", "adiacente"), 0.0);
        assert!(score("sap", "graduatoria sap") > 0.8);
    }

    #[test]
    fn function_words_never_match() {
        assert!(Words::italian("ho bisogno di aiuto, vorrei sapere").is_empty());
        assert!(Words::new("Мені потрібна допомога", &[Lang::Uk]).is_empty());
        assert!(Words::new("أحتاج مساعدة", &[Lang::Ar]).is_empty());
        assert_eq!(Phrase::new("Ho bisogno di parlare").key(), "parl");
    }

    #[test]
    fn close_candidates_are_ambiguous() {
        let rent = [Phrase::new("affitto")];
        let bills = [Phrase::new("bollette")];
        let text = Words::italian("affitto e bollette");
        assert_eq!(
            best_match(&text, [("rent", &rent[..]), ("bills", &bills[..])], 0.7),
            Match::Two("rent", "bills")
        );
        let text = Words::italian("le bollette");
        assert_eq!(
            best_match(&text, [("rent", &rent[..]), ("bills", &bills[..])], 0.7),
            Match::One("bills")
        );
    }
}
