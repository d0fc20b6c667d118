//! Patterns operators write to recognise danger, in bot.yaml, readable without knowing
//! regular expressions:
//!
//! - words in order, each found within a few words of the one before ("mani addosso"
//!   finds "mi mette sempre le mani addosso");
//! - `picchi*` for any ending ("picchia", "picchiato", "picchiano"), `*ضرب` for any
//!   beginning (Arabic writes "and", "the", "he" on the front of a word), `*ضرب*` for
//!   either;
//! - `mi|ci|ti` for alternatives of one word;
//! - `el?` for a word that may be missing ("tira el? pelo").
//!
//! Unlike the need matcher every word counts, function words too ("mi taglio" is not
//! "taglio"), and a word of nine letters or more tolerates one typo ("uccidermi"), a `*`
//! stem of six letters or more one typo in the stem ("pichia"). Shorter whole words
//! must be exact: one letter apart, verbs are other words ("sposarlo", "spostarlo").
//! Texts and patterns are normalised alike ([`super::tokens`]: no accents, Arabic letter variants unified,
//! Chinese read character by character, "nn" read as "non").
//!
//! Pure: a pattern set is built once at load time and then only read.

use std::collections::HashMap;

use super::tokens;

/// How many other words may stand between two words of a pattern.
pub const MAX_GAP: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Alternative {
    Exact(String, usize),
    Prefix(String, usize),
    Suffix(String, usize),
    Contains(String, usize),
}

impl Alternative {
    fn text(&self) -> &str {
        match self {
            Alternative::Exact(text, _)
            | Alternative::Prefix(text, _)
            | Alternative::Suffix(text, _)
            | Alternative::Contains(text, _) => text,
        }
    }

    fn matches(&self, word: &str, word_chars: usize) -> bool {
        if self.matches_as_written(word, word_chars) {
            return true;
        }
        // Arabic writes "and", "the", "with", "for" on the front of a word: "والموتور" is
        // "and the engine". A word of the pattern is also found behind those.
        if matches!(self, Alternative::Exact(..) | Alternative::Prefix(..))
            && super::script_of(word) == super::Script::Arabic
        {
            return ARABIC_PROCLITICS.iter().any(|clitic| {
                word.strip_prefix(clitic).is_some_and(|rest| {
                    !rest.is_empty() && self.matches_as_written(rest, rest.chars().count())
                })
            });
        }
        false
    }

    fn matches_as_written(&self, word: &str, word_chars: usize) -> bool {
        match self {
            Alternative::Exact(text, chars) => {
                word == text
                    || (*chars >= 9
                        && word_chars.abs_diff(*chars) <= 1
                        && same_start(word, text)
                        && strsim::osa_distance(word, text) <= 1)
            }
            Alternative::Prefix(text, chars) => {
                if word.starts_with(text.as_str()) {
                    return true;
                }
                if *chars < 6 || word_chars + 1 < *chars || !same_start(word, text) {
                    return false;
                }
                // The stem with one typo: compare it with the word's first letters,
                // one fewer or one more to allow a letter left out or doubled.
                (chars.saturating_sub(1)..=chars + 1).any(|length| {
                    let head: String = word.chars().take(length).collect();
                    head.chars().count() == length && strsim::osa_distance(&head, text) <= 1
                })
            }
            Alternative::Suffix(text, _) => word.ends_with(text.as_str()),
            Alternative::Contains(text, _) => word.contains(text.as_str()),
        }
    }
}

/// What Arabic writes on the front of a word, longest first (normalised: no hamza).
const ARABIC_PROCLITICS: &[&str] = &[
    "وال", "فال", "بال", "كال", "ولل", "وب", "ول", "وك", "ال", "لل", "و", "ف", "ب", "ل", "ك",
];

/// A typo is tolerated only after the first two letters: "pichia" is "picchia", but
/// "pacchi" (parcels) is not; and never in Arabic or Chinese.
fn same_start(word: &str, wanted: &str) -> bool {
    // Arabic words one letter apart are often other words ("يطردني" evicts me,
    // "يطاردني" stalks me): no typo tolerance there, nor in Chinese.
    if matches!(
        super::script_of(wanted),
        super::Script::Arabic | super::Script::Han
    ) {
        return false;
    }
    let mut word = word.chars();
    let mut wanted = wanted.chars();
    (0..2).all(|_| word.next() == wanted.next())
}

/// One pattern, as written and as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub source: String,
    words: Vec<Vec<Alternative>>,
    /// Words written with a final `?` may be missing ("tira el? pelo").
    optional: Vec<bool>,
}

/// Why a pattern cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub message: String,
    pub hint: String,
}

impl Pattern {
    pub fn parse(source: &str) -> Result<Pattern, PatternError> {
        let mut words: Vec<Vec<Alternative>> = Vec::new();
        let mut optional: Vec<bool> = Vec::new();
        for written in source.split_whitespace() {
            let maybe = written.len() > 1 && written.ends_with('?');
            let raw = if maybe {
                &written[..written.len() - 1]
            } else {
                written
            };
            if maybe && words.is_empty() {
                return Err(PatternError {
                    message: format!("the pattern starts with the optional word '{written}'"),
                    hint: "a `?` marks a word that may be missing, after the first word: write it without `?` or move it".into(),
                });
            }
            if raw.split('|').any(|part| part.trim_matches('*').is_empty()) {
                return Err(PatternError {
                    message: format!("'{raw}' has an empty word"),
                    hint: "a `*` goes at the start or the end of a word, like picchi*; `|` goes between two words, like mi|ci".into(),
                });
            }
            let parts: Vec<&str> = raw.split('|').collect();
            let mut alternatives = Vec::new();
            let mut extra_words: Vec<Vec<Alternative>> = Vec::new();
            for part in &parts {
                let starts = part.starts_with('*');
                let ends = part.ends_with('*');
                let normalised = tokens(part.trim_matches('*'));
                if normalised.is_empty() {
                    return Err(PatternError {
                        message: format!("'{part}' has no letters or digits"),
                        hint: "write words, like \"mi picchia\"".into(),
                    });
                }
                if normalised.len() > 1 {
                    if parts.len() > 1 {
                        return Err(PatternError {
                            message: format!("'{part}' is more than one word"),
                            hint: "alternatives with `|` are single words; write a second pattern for a longer phrase".into(),
                        });
                    }
                    // "c'è" or a Chinese phrase: several words in a row. A `*` applies
                    // to the first word (at the start) or the last (at the end).
                    let count = normalised.len();
                    for (index, word) in normalised.into_iter().enumerate() {
                        let chars = word.chars().count();
                        let alternative = match (starts && index == 0, ends && index + 1 == count) {
                            (true, true) => Alternative::Contains(word, chars),
                            (true, false) => Alternative::Suffix(word, chars),
                            (false, true) => Alternative::Prefix(word, chars),
                            (false, false) => Alternative::Exact(word, chars),
                        };
                        extra_words.push(vec![alternative]);
                    }
                    continue;
                }
                let word = normalised.into_iter().next().unwrap_or_default();
                let chars = word.chars().count();
                if (starts || ends) && chars < 3 {
                    return Err(PatternError {
                        message: format!("'{part}' is too short for a `*`"),
                        hint: "a `*` needs at least three letters before or after it, or it matches almost every word".into(),
                    });
                }
                alternatives.push(match (starts, ends) {
                    (true, true) => Alternative::Contains(word, chars),
                    (true, false) => Alternative::Suffix(word, chars),
                    (false, true) => Alternative::Prefix(word, chars),
                    (false, false) => Alternative::Exact(word, chars),
                });
            }
            if extra_words.is_empty() {
                words.push(alternatives);
                optional.push(maybe);
            } else {
                optional.extend(std::iter::repeat_n(maybe, extra_words.len()));
                words.extend(extra_words);
            }
        }
        if words.is_empty() {
            return Err(PatternError {
                message: "the pattern is empty".into(),
                hint: "write words, like \"mi picchia\"".into(),
            });
        }
        Ok(Pattern {
            source: source.to_string(),
            words,
            optional,
        })
    }

    /// Where the pattern is found in `words`, as (first word, last word), trying each start.
    fn find(&self, words: &[(String, usize)], start: usize) -> Option<(usize, usize)> {
        let first = &self.words[0];
        let (word, chars) = &words[start];
        if !first.iter().any(|alt| alt.matches(word, *chars)) {
            return None;
        }
        self.rest(words, 1, start).map(|end| (start, end))
    }

    fn rest(&self, words: &[(String, usize)], next: usize, at: usize) -> Option<usize> {
        let Some(wanted) = self.words.get(next) else {
            return Some(at);
        };
        // Chinese is read character by character: its words follow one another.
        let gap = if is_han(&words[at].0) { 0 } else { MAX_GAP };
        let last = (at + 1 + gap).min(words.len().saturating_sub(1));
        for position in at + 1..=last {
            if position >= words.len() {
                break;
            }
            let (word, chars) = &words[position];
            if wanted.iter().any(|alt| alt.matches(word, *chars))
                && let Some(end) = self.rest(words, next + 1, position)
            {
                return Some(end);
            }
        }
        if self.optional.get(next).copied().unwrap_or(false) {
            return self.rest(words, next + 1, at);
        }
        None
    }
}

fn is_han(word: &str) -> bool {
    super::script_of(word) == super::Script::Han
}

/// A text read once for patterns: its words, with their lengths, and the sentence each
/// word is in.
#[derive(Debug, Clone)]
pub struct PatternText {
    words: Vec<(String, usize)>,
    sentences: Vec<usize>,
}

impl PatternText {
    pub fn new(text: &str) -> PatternText {
        let mut words = Vec::new();
        let mut sentences = Vec::new();
        for (number, sentence) in split_sentences(text).enumerate() {
            for word in tokens(sentence) {
                let chars = word.chars().count();
                words.push((word, chars));
                sentences.push(number);
            }
        }
        PatternText { words, sentences }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The sentence (0, 1, …) that word `index` is in.
    pub fn sentence_of(&self, index: usize) -> usize {
        self.sentences.get(index).copied().unwrap_or(0)
    }
}

/// The sentences of a text: it ends one at `!`, `?`, `;`, a new line and their Arabic and
/// Chinese forms, and at a `.` (or `…`) followed by a space or the end ("9.30" and
/// "v.le" stay whole). Patterns still match across sentences; the sentence only scopes
/// what `history: past` applies to.
pub fn split_sentences(text: &str) -> impl Iterator<Item = &str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut characters = text.char_indices().peekable();
    while let Some((at, character)) = characters.next() {
        let next_is_space = characters
            .peek()
            .is_none_or(|&(_, next)| next.is_whitespace());
        let ends = match character {
            '!' | '?' | ';' | '\n' | '。' | '！' | '？' | '؟' | '؛' => true,
            '.' | '…' => next_is_space,
            _ => false,
        };
        if ends {
            let end = at + character.len_utf8();
            pieces.push(&text[start..end]);
            start = end;
        }
    }
    pieces.push(&text[start..]);
    pieces.into_iter().filter(|piece| !piece.trim().is_empty())
}

/// Many patterns, indexed by the first letters of their first word so that a long text
/// is read once and not once per pattern.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PatternSet {
    patterns: Vec<Pattern>,
    by_start: HashMap<String, Vec<usize>>,
    /// Patterns whose first word can match anywhere in a word (`*ضرب`): tried at every word.
    anywhere: Vec<usize>,
}

/// The letters a first word is indexed by: its first two (or its only one).
fn start_key(text: &str) -> String {
    text.chars().take(2).collect()
}

impl PatternSet {
    pub fn new(patterns: Vec<Pattern>) -> PatternSet {
        let mut set = PatternSet {
            patterns,
            ..PatternSet::default()
        };
        for (index, pattern) in set.patterns.iter().enumerate() {
            let mut keys: Vec<String> = Vec::new();
            let mut anywhere = false;
            for alternative in &pattern.words[0] {
                match alternative {
                    Alternative::Exact(..) | Alternative::Prefix(..) => {
                        keys.push(start_key(alternative.text()))
                    }
                    Alternative::Suffix(..) | Alternative::Contains(..) => anywhere = true,
                }
            }
            if anywhere {
                set.anywhere.push(index);
                continue;
            }
            keys.sort();
            keys.dedup();
            for key in keys {
                set.by_start.entry(key).or_default().push(index);
            }
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    /// Every place a pattern is found: (pattern index, first word, last word).
    pub fn find_all(&self, text: &PatternText) -> Vec<(usize, usize, usize)> {
        let mut found = Vec::new();
        let mut candidates: Vec<usize> = Vec::new();
        for (start, (word, _)) in text.words.iter().enumerate() {
            candidates.clear();
            let key = start_key(word);
            candidates.extend(self.by_start.get(&key).into_iter().flatten());
            // A one-letter first word ("я", "x") is indexed by that letter alone.
            let first: String = word.chars().take(1).collect();
            if first != key {
                candidates.extend(self.by_start.get(&first).into_iter().flatten());
            }
            if super::script_of(word) == super::Script::Arabic {
                for clitic in ARABIC_PROCLITICS {
                    if let Some(rest) = word.strip_prefix(clitic) {
                        candidates
                            .extend(self.by_start.get(&start_key(rest)).into_iter().flatten());
                    }
                }
            }
            candidates.extend(&self.anywhere);
            candidates.sort_unstable();
            candidates.dedup();
            for &index in &candidates {
                if let Some((from, to)) = self.patterns[index].find(&text.words, start) {
                    found.push((index, from, to));
                }
            }
        }
        found
    }

    pub fn pattern(&self, index: usize) -> &Pattern {
        &self.patterns[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(patterns: &[&str]) -> PatternSet {
        PatternSet::new(
            patterns
                .iter()
                .map(|p| Pattern::parse(p).unwrap())
                .collect(),
        )
    }

    fn finds(patterns: &[&str], text: &str) -> bool {
        !set(patterns).find_all(&PatternText::new(text)).is_empty()
    }

    #[test]
    fn stems_order_gaps_and_alternatives() {
        assert!(finds(&["picchi*"], "mio marito mi picchia"));
        assert!(finds(&["picchi*"], "mi ha picchiata ieri"));
        assert!(finds(&["picchi*"], "mi pichia sempre"));
        assert!(!finds(&["picchi*"], "mi hanno mandato dei pacchi"));
        assert!(finds(&["mani addosso"], "mi mette sempre le mani addosso"));
        assert!(!finds(&["mani addosso"], "addosso le mani"));
        assert!(finds(&["mi|me mena"], "quello me mena"));
        assert!(finds(
            &["farla|falla|faccio finita"],
            "stanotte la faccio finita"
        ));
        assert!(finds(&["ammazzarmi"], "penso di amazzarmi"));
        assert!(!finds(&["sposarlo"], "posso spostarlo"));
        assert!(!finds(&["mi taglio"], "taglio i capelli"));
        assert!(finds(&["non ce la faccio piu"], "nn ce la faccio più"));
        assert!(finds(&["tira el? pelo"], "me tira el pelo"));
        assert!(finds(&["tira el? pelo"], "me tira pelo"));
        assert!(!finds(&["tira el? pelo"], "me tira"));
    }

    #[test]
    fn sentences_end_at_stops_not_inside_numbers() {
        let pieces: Vec<&str> = split_sentences("Alle 9.30 in v.le Roma. Poi? Sì!\nCiao").collect();
        assert_eq!(pieces, ["Alle 9.30 in v.le Roma.", " Poi?", " Sì!", "Ciao"]);
        let text = PatternText::new("anni fa stavo male. adesso mi picchia");
        assert_eq!(text.sentence_of(0), 0);
        assert_eq!(text.sentence_of(text.words.len() - 1), 1);
    }

    #[test]
    fn other_scripts() {
        assert!(finds(&["*ضرب*"], "زوجي يضربني كل يوم"));
        assert!(finds(&["الموتور شغال"], "قاعد في العربية والموتور شغال"));
        assert!(finds(&["мене б'є"], "чоловік мене бʼє"));
        assert!(finds(&["想死"], "我想死"));
        assert!(!finds(&["想死"], "我想吃饭"));
        assert!(!finds(&["打我"], "我要打电话给我妈妈"));
        assert!(finds(&["打我"], "他打我"));
    }

    #[test]
    fn danger_at_the_end_of_a_long_text_is_found() {
        let mut text = "parlo dell'affitto e delle bollette. ".repeat(400);
        text.push_str("e poi lui quando beve mi picchia");
        assert!(text.chars().count() > 10_000);
        assert!(finds(&["picchi*"], &text));
    }

    #[test]
    fn bad_patterns_are_explained() {
        assert!(Pattern::parse("").is_err());
        assert!(Pattern::parse("mi *").is_err());
        assert!(Pattern::parse("a*").is_err());
        assert!(Pattern::parse("mi|ci ha picchiato|mani addosso").is_ok());
        assert!(Pattern::parse("c'è|mani").is_err());
        assert!(Pattern::parse("el? pelo").is_err());
    }
}
