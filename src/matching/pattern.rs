//! Patterns operators write to recognise danger, in bot.yaml, readable without knowing
//! regular expressions:
//!
//! - words in order, each found within a few words of the one before ("mani addosso"
//!   finds "mi mette sempre le mani addosso");
//! - `picchi*` for any ending ("picchia", "picchiato", "picchiano"), `*ضرب` for any
//!   beginning (Arabic writes "and", "the", "he" on the front of a word), `*ضرب*` for
//!   either;
//! - `mi|ci|ti` for alternatives of one word;
//! - `el?` for a word that may be missing ("tira el? pelo");
//! - `paura & stanotte` for parts found in any order, within [`WINDOW`] words of each
//!   other ("stanotte torna e ho paura", "ho paura, stanotte torna").
//!
//! Unlike the need matcher every word counts, function words too ("mi taglio" is not
//! "taglio"), and a word of nine letters or more tolerates one typo ("uccidermi"), a `*`
//! stem of six letters or more one typo in the stem ("pichia"). Shorter whole words
//! must be exact: one letter apart, verbs are other words ("sposarlo", "spostarlo").
//! Texts and patterns are normalised alike ([`super::tokens`]: no accents, Arabic letter variants unified,
//! Chinese read character by character, "nn" read as "non").
//!
//! Pure: a pattern set is built once at load time and then only read.

use rustc_hash::FxHashMap as HashMap;

use super::tokens;

/// How many other words may stand between two words of a pattern.
pub const MAX_GAP: usize = 4;

/// How far apart (in words) the parts of an `a & b` pattern may be found.
pub const WINDOW: usize = 12;

/// The fewest letters of a whole word that tolerates a typo; shorter words are found
/// only as written (and so can be indexed by the word itself).
const TYPO_WORD_CHARS: usize = 9;
/// The fewest letters of a `*` stem that tolerates a typo.
const TYPO_STEM_CHARS: usize = 6;

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

    fn matches(&self, word: &TextWord) -> bool {
        if self.matches_as_written(&word.text, word.chars) {
            return true;
        }
        // Arabic writes "and", "the", "with", "for" on the front of a word: "والموتور" is
        // "and the engine". A word of the pattern is also found behind those.
        if !word.behind_clitics.is_empty()
            && matches!(self, Alternative::Exact(..) | Alternative::Prefix(..))
        {
            return word
                .behind_clitics
                .iter()
                .any(|&(at, chars)| self.matches_as_written(&word.text[at..], chars));
        }
        false
    }

    fn matches_as_written(&self, word: &str, word_chars: usize) -> bool {
        match self {
            Alternative::Exact(text, chars) => {
                word == text
                    || (*chars >= TYPO_WORD_CHARS
                        && word_chars.abs_diff(*chars) <= 1
                        && same_start(word, text)
                        && one_edit_apart(word, text, false))
            }
            Alternative::Prefix(text, chars) => {
                if word.starts_with(text.as_str()) {
                    return true;
                }
                // The stem with one typo: a letter changed, doubled, left out or two
                // swapped, somewhere after the first two.
                *chars >= TYPO_STEM_CHARS
                    && word_chars + 1 >= *chars
                    && same_start(word, text)
                    && one_edit_apart(word, text, true)
            }
            Alternative::Suffix(text, _) => word.ends_with(text.as_str()),
            Alternative::Contains(text, _) => word.contains(text.as_str()),
        }
    }
}

/// Whether `wanted` is `word` (or, with `prefix`, the beginning of `word`) but for one
/// edit: a letter changed, added, left out, or two neighbours swapped. Walks the two
/// once, without allocating: it runs for every candidate pattern word of every message.
fn one_edit_apart(word: &str, wanted: &str, prefix: bool) -> bool {
    let rest_agrees = |word_rest: &str, wanted_rest: &str| {
        if prefix {
            word_rest.starts_with(wanted_rest)
        } else {
            word_rest == wanted_rest
        }
    };
    let mut word_chars = word.char_indices();
    let mut wanted_chars = wanted.char_indices();
    loop {
        match (word_chars.next(), wanted_chars.next()) {
            (Some((at, found)), Some((wanted_at, expected))) => {
                if found == expected {
                    continue;
                }
                let after = at + found.len_utf8();
                let wanted_after = wanted_at + expected.len_utf8();
                if rest_agrees(&word[after..], &wanted[wanted_after..])
                    || rest_agrees(&word[after..], &wanted[wanted_at..])
                    || rest_agrees(&word[at..], &wanted[wanted_after..])
                {
                    return true;
                }
                let mut word_next = word[after..].chars();
                let mut wanted_next = wanted[wanted_after..].chars();
                return match (word_next.next(), wanted_next.next()) {
                    (Some(second), Some(wanted_second))
                        if second == expected && wanted_second == found =>
                    {
                        rest_agrees(
                            &word[after + second.len_utf8()..],
                            &wanted[wanted_after + wanted_second.len_utf8()..],
                        )
                    }
                    _ => false,
                };
            }
            (None, None) => return true,
            // The word goes on after all of `wanted`: a prefix, or one letter added.
            (Some(_), None) => return prefix || word_chars.next().is_none(),
            // The word stops one letter short of `wanted`.
            (None, Some(_)) => return wanted_chars.next().is_none(),
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

/// One pattern, as written and as read: one or more parts (`a & b`), each words in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    pub source: String,
    parts: Vec<Sequence>,
}

/// Words in order, each within [`MAX_GAP`] words of the one before.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Sequence {
    words: Vec<Vec<Alternative>>,
    /// Words written with a final `?` may be missing ("tira el? pelo").
    optional: Vec<bool>,
    /// For each later word that must be there and is found by its first letters (not
    /// `*x`), the [`key_bit`]s of its alternatives: a text none of whose words has one
    /// of them cannot hold the sequence, and is not read for it.
    needs: Vec<u64>,
}

/// A word's first letters ([`start_key`]) as one bit of 64. A text's bits say, cheaply
/// and with few false positives, which first letters its words have: most patterns
/// whose first word a text holds ("mi", "non") miss a later word it cannot have.
fn key_bit(key: &str) -> u64 {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    1 << (hash % 64)
}

/// Why a pattern cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub message: String,
    pub hint: String,
}

impl Pattern {
    pub fn parse(source: &str) -> Result<Pattern, PatternError> {
        let mut parts = Vec::new();
        for part in source.split('&') {
            if part.trim().is_empty() && source.contains('&') {
                return Err(PatternError {
                    message: "a side of `&` is empty".into(),
                    hint: "write words on both sides, like \"paura & stanotte\"".into(),
                });
            }
            parts.push(Sequence::parse(part)?);
        }
        Ok(Pattern {
            source: source.to_string(),
            parts,
        })
    }
}

impl Sequence {
    fn parse(source: &str) -> Result<Sequence, PatternError> {
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
        // A word is found only behind its own first two letters (a typo is tolerated
        // after them), so its alternatives' keys say whether a text can hold it.
        let needs = words
            .iter()
            .zip(&optional)
            .skip(1)
            .filter(|(alternatives, maybe)| {
                !**maybe
                    && alternatives.iter().all(|alternative| {
                        matches!(
                            alternative,
                            Alternative::Exact(..) | Alternative::Prefix(..)
                        )
                    })
            })
            .map(|(alternatives, _)| {
                alternatives.iter().fold(0, |bits, alternative| {
                    bits | key_bit(start_key(alternative.text()))
                })
            })
            .collect();
        Ok(Sequence {
            words,
            optional,
            needs,
        })
    }

    /// Where the pattern is found in `words`, as (first word, last word), trying each start.
    fn find(&self, words: &[TextWord], start: usize) -> Option<(usize, usize)> {
        let first = &self.words[0];
        if !first.iter().any(|alt| alt.matches(&words[start])) {
            return None;
        }
        self.rest(words, 1, start).map(|end| (start, end))
    }

    fn rest(&self, words: &[TextWord], next: usize, at: usize) -> Option<usize> {
        let Some(wanted) = self.words.get(next) else {
            return Some(at);
        };
        // Chinese is read character by character: its words follow one another.
        let gap = if words[at].script == super::Script::Han {
            0
        } else {
            MAX_GAP
        };
        let last = (at + 1 + gap).min(words.len().saturating_sub(1));
        for position in at + 1..=last {
            if position >= words.len() {
                break;
            }
            if wanted.iter().any(|alt| alt.matches(&words[position]))
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

/// A word of a text read for patterns, with what every pattern asks of it worked out once.
#[derive(Debug, Clone)]
struct TextWord {
    text: String,
    chars: usize,
    script: super::Script,
    /// An Arabic word without each proclitic it starts with: (byte offset, characters
    /// left). Worked out once per text, not once per pattern word compared.
    behind_clitics: Vec<(usize, usize)>,
}

impl TextWord {
    fn new(text: String) -> TextWord {
        let chars = text.chars().count();
        let script = super::script_of(&text);
        let mut behind_clitics = Vec::new();
        if script == super::Script::Arabic {
            for clitic in ARABIC_PROCLITICS {
                if text.len() > clitic.len() && text.starts_with(clitic) {
                    behind_clitics.push((clitic.len(), chars - clitic.chars().count()));
                }
            }
        }
        TextWord {
            text,
            chars,
            script,
            behind_clitics,
        }
    }
}

/// A text read once for patterns: its words, with their lengths, and the sentence each
/// word is in.
#[derive(Debug, Clone)]
pub struct PatternText {
    words: Vec<TextWord>,
    sentences: Vec<usize>,
    /// The [`key_bit`]s of every word's first letters (and of an Arabic word's behind
    /// its proclitics).
    keys: u64,
}

impl PatternText {
    pub fn new(text: &str) -> PatternText {
        let mut words = Vec::new();
        let mut sentences = Vec::new();
        for (number, sentence) in split_sentences(text).enumerate() {
            for text in tokens(sentence) {
                words.push(TextWord::new(text));
                sentences.push(number);
            }
        }
        let keys = words.iter().fold(0, |bits, word: &TextWord| {
            word.behind_clitics
                .iter()
                .fold(bits | key_bit(start_key(&word.text)), |bits, &(at, _)| {
                    bits | key_bit(start_key(&word.text[at..]))
                })
        });
        PatternText {
            words,
            sentences,
            keys,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The sentence (0, 1, …) that word `index` is in.
    pub fn sentence_of(&self, index: usize) -> usize {
        self.sentences.get(index).copied().unwrap_or(0)
    }

    /// The text's words that the matches `found` ([`PatternSet::find_all`]) did not
    /// take, joined by spaces: what a message says besides its danger. A match of up
    /// to [`WORDS_TAKEN_WHOLE`] words is taken whole; of a longer one, which may span
    /// other words (a part after `&`, the words allowed between), its first and last.
    pub fn words_besides(&self, found: &[(usize, usize, usize)]) -> String {
        let taken = |index: usize| {
            found.iter().any(|&(_, from, to)| {
                if to + 1 - from <= WORDS_TAKEN_WHOLE {
                    (from..=to).contains(&index)
                } else {
                    index == from || index == to
                }
            })
        };
        let kept: Vec<&str> = self
            .words
            .iter()
            .enumerate()
            .filter(|&(index, _)| !taken(index))
            .map(|(_, word)| word.text.as_str())
            .collect();
        kept.join(" ")
    }
}

/// The longest match [`PatternText::words_besides`] takes whole.
const WORDS_TAKEN_WHOLE: usize = 4;

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
    /// Every part of every pattern, with its (pattern, part).
    sequences: Vec<(usize, usize)>,
    by_start: HashMap<String, Vec<usize>>,
    /// Sequences whose first word is a whole word short enough to be matched only as
    /// written (no typo: fewer than [`TYPO_WORD_CHARS`] letters), by that word: most first words
    /// ("mi", "non", "ho", "لا") are, and a text's word then finds only the sequences
    /// that start with it, not every one that starts with its first two letters.
    by_word: HashMap<String, Vec<usize>>,
    /// Sequences whose first word may end a word (`*ضرب`), by the last two letters.
    by_end: HashMap<String, Vec<usize>>,
    /// Sequences whose first word may stand inside a word (`*ضرب*`), by its first two
    /// letters: looked up at every two letters of a text's word.
    by_inside: HashMap<String, Vec<usize>>,
    /// Sequences whose first word is a one-letter `*x` (from a phrase like "*c'è"):
    /// tried at every word.
    everywhere: Vec<usize>,
}

/// Where in a word a first word's alternative may be found, for the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Place {
    Word,
    Start,
    End,
    Inside,
}

/// The last `count` characters of `text` (all of it when shorter), without copying.
fn last_chars(text: &str, count: usize) -> &str {
    let start = text
        .char_indices()
        .rev()
        .nth(count - 1)
        .map_or(0, |(at, _)| at);
    &text[start..]
}

/// The letters a first word is indexed by: its first two (or its only one).
fn start_key(text: &str) -> &str {
    first_chars(text, 2)
}

/// The first `count` characters of `text` (all of it when shorter), without copying.
fn first_chars(text: &str, count: usize) -> &str {
    let end = text
        .char_indices()
        .nth(count)
        .map_or(text.len(), |(at, _)| at);
    &text[..end]
}

impl PatternSet {
    pub fn new(patterns: Vec<Pattern>) -> PatternSet {
        let mut set = PatternSet {
            patterns,
            ..PatternSet::default()
        };
        for (pattern_index, pattern) in set.patterns.iter().enumerate() {
            for part_index in 0..pattern.parts.len() {
                set.sequences.push((pattern_index, part_index));
            }
        }
        for (index, &(pattern_index, part_index)) in set.sequences.iter().enumerate() {
            let sequence = &set.patterns[pattern_index].parts[part_index];
            let mut keys: Vec<(Place, String)> = Vec::new();
            for alternative in &sequence.words[0] {
                let text = alternative.text();
                keys.push(match alternative {
                    Alternative::Exact(text, chars) if *chars < TYPO_WORD_CHARS => {
                        (Place::Word, text.clone())
                    }
                    Alternative::Exact(..) | Alternative::Prefix(..) => {
                        (Place::Start, start_key(text).to_string())
                    }
                    Alternative::Suffix(..) => (Place::End, last_chars(text, 2).to_string()),
                    Alternative::Contains(..) => (Place::Inside, start_key(text).to_string()),
                });
            }
            keys.sort();
            keys.dedup();
            if keys.iter().any(|(place, key)| {
                matches!(place, Place::End | Place::Inside) && key.chars().count() < 2
            }) {
                set.everywhere.push(index);
                continue;
            }
            for (place, key) in keys {
                let map = match place {
                    Place::Word => &mut set.by_word,
                    Place::Start => &mut set.by_start,
                    Place::End => &mut set.by_end,
                    Place::Inside => &mut set.by_inside,
                };
                map.entry(key).or_default().push(index);
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
        let mut parts_found: Vec<(usize, usize, usize, usize)> = Vec::new();
        let mut candidates: Vec<usize> = Vec::new();
        for (start, word) in text.words.iter().enumerate() {
            candidates.clear();
            candidates.extend(self.by_word.get(word.text.as_str()).into_iter().flatten());
            let key = start_key(&word.text);
            candidates.extend(self.by_start.get(key).into_iter().flatten());
            // A one-letter first word ("я", "x") is indexed by that letter alone.
            let first = first_chars(&word.text, 1);
            if first != key {
                candidates.extend(self.by_start.get(first).into_iter().flatten());
            }
            for &(at, _) in &word.behind_clitics {
                let rest = &word.text[at..];
                candidates.extend(self.by_word.get(rest).into_iter().flatten());
                candidates.extend(self.by_start.get(start_key(rest)).into_iter().flatten());
            }
            if !self.by_end.is_empty() {
                let end = last_chars(&word.text, 2);
                candidates.extend(self.by_end.get(end).into_iter().flatten());
            }
            if !self.by_inside.is_empty() {
                // Every two letters in a row: (start of the first, end of the second).
                let mut bounds = word.text.char_indices().map(|(at, _)| at).skip(2);
                let mut first = 0;
                let mut second = word.text.chars().next().map_or(0, char::len_utf8);
                while second < word.text.len() {
                    let end = bounds.next().unwrap_or(word.text.len());
                    let pair = &word.text[first..end];
                    candidates.extend(self.by_inside.get(pair).into_iter().flatten());
                    (first, second) = (second, end);
                }
            }
            candidates.extend(&self.everywhere);
            candidates.sort_unstable();
            candidates.dedup();
            for &index in &candidates {
                let (pattern, part) = self.sequences[index];
                let sequence = &self.patterns[pattern].parts[part];
                if !sequence.needs.iter().all(|bits| bits & text.keys != 0) {
                    continue;
                }
                if let Some((from, to)) = sequence.find(&text.words, start) {
                    if self.patterns[pattern].parts.len() == 1 {
                        found.push((pattern, from, to));
                    } else {
                        parts_found.push((pattern, part, from, to));
                    }
                }
            }
        }
        if !parts_found.is_empty() {
            self.join_parts(&mut parts_found, &mut found);
        }
        found
    }

    /// The `a & b` patterns all of whose parts were found within [`WINDOW`] words of the
    /// first part's place: (pattern, first word, last word) of each.
    fn join_parts(
        &self,
        parts_found: &mut [(usize, usize, usize, usize)],
        found: &mut Vec<(usize, usize, usize)>,
    ) {
        parts_found.sort_unstable();
        for chunk in parts_found.chunk_by(|a, b| a.0 == b.0) {
            let pattern = chunk[0].0;
            let count = self.patterns[pattern].parts.len();
            for &(_, _, from, to) in chunk.iter().filter(|found| found.1 == 0) {
                let (mut first, mut last) = (from, to);
                let all = (1..count).all(|other| {
                    let near = chunk.iter().find(|&&(_, p, f, t)| {
                        p == other && f.abs_diff(from) <= WINDOW && t.abs_diff(to) <= WINDOW
                    });
                    if let Some(&(_, _, f, t)) = near {
                        first = first.min(f);
                        last = last.max(t);
                    }
                    near.is_some()
                });
                if all {
                    found.push((pattern, first, last));
                    break;
                }
            }
        }
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
    fn the_words_besides_a_danger_match() {
        let besides = |patterns: &[&str], text: &str| {
            let read = PatternText::new(text);
            read.words_besides(&set(patterns).find_all(&read))
        };
        assert_eq!(
            besides(&["mi|me picchi*"], "mio marito mi picchia, cerco una casa"),
            "mio marito cerco una casa"
        );
        // A long match keeps the words it spans, but not its ends.
        assert_eq!(
            besides(
                &["paura & stanotte"],
                "ho paura del permesso di soggiorno e stanotte"
            ),
            "ho del permesso di soggiorno e"
        );
        assert_eq!(
            besides(&["picchi*"], "mi serve lo spid"),
            "mi serve lo spid"
        );
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
    fn parts_joined_by_and_are_found_in_any_order_near_each_other() {
        let pattern = ["paura & stanotte|adesso"];
        assert!(finds(&pattern, "ho paura, stanotte torna"));
        assert!(finds(
            &pattern,
            "adesso sento che sale le scale e ho tanta paura"
        ));
        assert!(!finds(&pattern, "ho paura"));
        let far = format!("ho paura {} adesso", "di non pagare la bolletta ".repeat(4));
        assert!(!finds(&pattern, &far));
        assert!(finds(
            &["ponte|cavalcavia & guardo giu"],
            "sono sul cavalcavia da mezz ora e guardo giu"
        ));
        assert!(Pattern::parse("paura &").is_err());
        assert!(Pattern::parse("& paura").is_err());
    }

    #[test]
    fn one_edit_is_one_letter_changed_added_left_out_or_swapped() {
        for (word, wanted) in [
            ("uccidermi", "uccidermi"),
            ("ucciderni", "uccidermi"),
            ("ucciddermi", "uccidermi"),
            ("ucidermi", "uccidermi"),
            ("uccdiermi", "uccidermi"),
            ("uccidermi", "uccidermii"),
            ("uccidermii", "uccidermi"),
            ("убиватися", "убиваться"),
        ] {
            assert!(one_edit_apart(word, wanted, false), "{word} {wanted}");
        }
        for (word, wanted) in [
            ("uccidercii", "uccidermi"),
            ("uccid", "uccidermi"),
            ("ab", "abcd"),
            ("ucicdremi", "uccidermi"),
        ] {
            assert!(!one_edit_apart(word, wanted, false), "{word} {wanted}");
        }
        assert!(one_edit_apart("pichiata", "picchi", true));
        assert!(one_edit_apart("picchhiata", "picchi", true));
        assert!(one_edit_apart("picchata", "picchi", true));
        assert!(one_edit_apart("picchi", "picchia", true));
        assert!(!one_edit_apart("picc", "picchi", true));
        assert!(!one_edit_apart("pacchetto", "picchi", true));
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
    fn first_words_are_found_at_their_start_end_or_inside() {
        // `*x` by its last letters, `*x*` at every two letters of a word, the
        // behind-proclitic form of an Arabic word by its own first letters.
        assert!(finds(&["*ضرب"], "هو يضرب"));
        assert!(!finds(&["*ضرب"], "هو يضربني"));
        assert!(finds(&["*ضرب* كل"], "زوجي يضربني كل يوم"));
        assert!(finds(&["*ضرب*"], "ضرب"));
        assert!(finds(&["*uccid* me"], "vuole uccidermi me"));
        assert!(finds(&["مشكله"], "والمشكله كبيره"));
        // A later word the text cannot hold (no word with its first letters): no match,
        // and one it holds: a match, also with a typo after the first two letters.
        assert!(!finds(&["mi picchia"], "mi serve lo spid"));
        assert!(finds(&["mi ammazzerebbe"], "lui mi amazzerebbe"));
        assert!(finds(&["mi picchi*"], "mi pichia sempre"));
        // A one-letter `*x` from a phrase is still tried everywhere.
        assert!(finds(&["*c'è pericolo"], "qui c'è pericolo"));
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
