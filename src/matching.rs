//! Free text to choices, places and intents.
//!
//! A text is normalised (Unicode compatibility decomposition, accents and case dropped,
//! apostrophes and punctuation turned into spaces, stopwords removed) and each word is
//! stemmed with the Snowball Italian stemmer. A phrase matches a text when every word of
//! the phrase is found among the text's words, exactly, by stem, or within a small edit
//! distance that grows with the word's length ("afitto" finds "affitto", "Pioltelo"
//! finds "Pioltello", but "mor" never finds "amor").
//!
//! Pure and deterministic: no I/O, no randomness.

use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};
use unicode_normalization::UnicodeNormalization;

/// Words that say nothing about what the citizen needs. "no", "non" and "si" are kept
/// on purpose: they are answers.
const STOPWORDS: &[&str] = &[
    "a",
    "ad",
    "al",
    "alla",
    "alle",
    "allo",
    "ai",
    "agli",
    "anche",
    "che",
    "ci",
    "con",
    "da",
    "dal",
    "dalla",
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
    "mio",
    "mia",
    "ne",
    "nel",
    "nella",
    "o",
    "per",
    "piu",
    "po",
    "qui",
    "se",
    "sono",
    "su",
    "sul",
    "sulla",
    "ti",
    "tra",
    "tu",
    "un",
    "una",
    "uno",
    "vorrei",
    "voglio",
    "ciao",
    "buongiorno",
    "buonasera",
    "grazie",
    "prego",
    "perfavore",
    "favore",
    "the",
    "an",
    "of",
    "to",
    "for",
    "and",
    "or",
    "my",
    "is",
    "please",
    "i",
    "me",
    "with",
    "hello",
    "hi",
    "want",
    "would",
    "like",
    "need",
];

/// One word of a text: its normalised spelling and its stem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub plain: String,
    pub stem: String,
}

/// A synonym, label or place name, prepared once at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    pub words: Vec<Word>,
}

impl Phrase {
    pub fn new(text: &str) -> Phrase {
        Phrase { words: words(text) }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The phrase as its normalised words, to compare two synonyms.
    pub fn key(&self) -> String {
        self.words
            .iter()
            .map(|word| word.stem.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::Italian))
}

/// Lowercase, without accents, apostrophes and punctuation, words separated by one space.
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last_space = true;
    for character in text.nfkd() {
        if unicode_normalization::char::is_combining_mark(character) {
            continue;
        }
        if character.is_alphanumeric() {
            out.extend(character.to_lowercase());
            last_space = false;
        } else if !last_space {
            out.push(' ');
            last_space = true;
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// The words of a text that carry meaning, normalised and stemmed. When every word is a
/// stopword ("no", "a me") the stopwords are kept: an answer is never empty.
pub fn words(text: &str) -> Vec<Word> {
    let normalised = normalise(text);
    let all: Vec<&str> = normalised
        .split(' ')
        .filter(|word| !word.is_empty())
        .collect();
    let meaningful: Vec<&str> = all
        .iter()
        .copied()
        .filter(|word| !STOPWORDS.contains(word))
        .collect();
    let chosen = if meaningful.is_empty() {
        all
    } else {
        meaningful
    };
    chosen
        .into_iter()
        .map(|word| Word {
            plain: word.to_string(),
            stem: stemmer().stem(word).into_owned(),
        })
        .collect()
}

/// Edits tolerated for a word of this many characters.
fn tolerated_edits(length: usize) -> usize {
    match length {
        0..=4 => 0,
        5..=7 => 1,
        _ => 2,
    }
}

/// How well two words agree, from 0 (not at all) to 1 (the same word or stem).
fn word_similarity(wanted: &Word, given: &Word) -> f32 {
    if wanted.plain == given.plain || wanted.stem == given.stem {
        return 1.0;
    }
    let wanted_length = wanted.plain.chars().count();
    let given_length = given.plain.chars().count();
    // Four letters tolerate two swapped neighbours ("sipd" for "spid"), nothing else.
    if wanted_length == 4 && given_length == 4 {
        return if is_one_swap(&wanted.plain, &given.plain) {
            0.75
        } else {
            0.0
        };
    }
    let tolerated = tolerated_edits(wanted_length.min(given_length));
    // Digits never tolerate edits ("20054" is not "20055"); lengths further apart than
    // the tolerated edits cannot be close, and need no edit distance.
    if tolerated == 0
        || wanted_length.abs_diff(given_length) > tolerated
        || wanted.plain.chars().any(|c| c.is_ascii_digit())
    {
        return 0.0;
    }
    let edits = strsim::osa_distance(&wanted.plain, &given.plain);
    if edits <= tolerated {
        return 1.0 - edits as f32 / wanted_length.max(given_length) as f32;
    }
    0.0
}

fn is_one_swap(first: &str, second: &str) -> bool {
    let first: Vec<char> = first.chars().collect();
    let second: Vec<char> = second.chars().collect();
    let differing: Vec<usize> = (0..first.len().min(second.len()))
        .filter(|&i| first[i] != second[i])
        .collect();
    matches!(differing[..], [a, b] if b == a + 1 && first[a] == second[b] && first[b] == second[a])
}

/// How well a phrase is found in the text's words: 0 when one of its words is missing,
/// otherwise the mean similarity of its words, slightly raised when the phrase covers
/// more of the text.
pub fn phrase_score(phrase: &Phrase, text: &[Word]) -> f32 {
    if phrase.words.is_empty() || text.is_empty() {
        return 0.0;
    }
    let mut total = 0.0;
    for wanted in &phrase.words {
        let best = text
            .iter()
            .map(|given| word_similarity(wanted, given))
            .fold(0.0, f32::max);
        if best == 0.0 {
            return 0.0;
        }
        total += best;
    }
    let mean = total / phrase.words.len() as f32;
    let coverage = (phrase.words.len() as f32 / text.len() as f32).min(1.0);
    mean * (0.9 + 0.1 * coverage)
}

/// The best score of any of a candidate's phrases.
pub fn best_score(phrases: &[Phrase], text: &[Word]) -> f32 {
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
const AMBIGUITY: f32 = 0.06;

/// Picks the candidate whose phrases best match the text, scoring at least `threshold`.
pub fn best_match<'p, K: Clone + PartialEq>(
    text: &[Word],
    candidates: impl IntoIterator<Item = (K, &'p [Phrase])>,
    threshold: f32,
) -> Match<K> {
    let mut scored: Vec<(f32, K)> = candidates
        .into_iter()
        .map(|(key, phrases)| (best_score(phrases, text), key))
        .filter(|(score, _)| *score >= threshold)
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn score(phrase: &str, text: &str) -> f32 {
        phrase_score(&Phrase::new(phrase), &words(text))
    }

    #[test]
    fn normalises_accents_apostrophes_and_case() {
        assert_eq!(normalise("L'AFFITTO è   caro!!"), "l affitto e caro");
        assert_eq!(normalise("Sì"), "si");
        assert_eq!(normalise("🙏🙏"), "");
    }

    #[test]
    fn tolerates_typos_and_inflections() {
        assert!(score("affitto", "ho un problema con l'afitto") > 0.8);
        assert!(score("Pioltello", "Pioltelo") > 0.8);
        assert!(score("bolletta", "non pago le bollette") > 0.8);
        assert!(score("padrone di casa", "il mio padrone di casa") > 0.8);
    }

    #[test]
    fn short_words_must_be_exact() {
        assert_eq!(score("voglio morire", "amore"), 0.0);
        assert_eq!(score("gas", "gap"), 0.0);
        assert_eq!(score("20054", "20055"), 0.0);
        assert!(score("spid", "mi serve lo sipd") > 0.6);
        assert_eq!(score("spid", "spia"), 0.0);
    }

    #[test]
    fn answers_made_of_stopwords_survive() {
        assert!(score("No, grazie", "no") > 0.8);
        assert!(score("Sì", "si") > 0.8);
    }

    #[test]
    fn close_candidates_are_ambiguous() {
        let rent = [Phrase::new("affitto")];
        let bills = [Phrase::new("bollette")];
        let text = words("affitto e bollette");
        assert_eq!(
            best_match(&text, [("rent", &rent[..]), ("bills", &bills[..])], 0.7),
            Match::Two("rent", "bills")
        );
        let text = words("le bollette");
        assert_eq!(
            best_match(&text, [("rent", &rent[..]), ("bills", &bills[..])], 0.7),
            Match::One("bills")
        );
    }
}
