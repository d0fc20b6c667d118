//! An inverted index of every phrase of a bundle (labels, synonyms, intents, places),
//! built once at load time.
//!
//! Matching a text word against every phrase word of a step costs an edit distance per
//! pair: with synonyms in seven languages the main menu holds some two thousand words,
//! far too many to compare one by one. The index keeps each distinct phrase word once
//! and finds the words a text word can match without comparing it to the others: by
//! spelling (a hash map), by stem in each phrase language (a hash map per language), by
//! a swap of two letters for four-letter words, and by edit distance through a
//! deletion index (every spelling with one, or for long words two, letters deleted: two
//! words within that many edits share such a spelling). Only the few candidates found
//! there are measured, and only the phrases that hold a found word are scored.

use rustc_hash::FxHashMap as HashMap;

use super::{Lang, Phrase, TextWord, Words, combine, fuzzy, is_one_swap};

/// The phrases of one candidate (a choice, an intent, a place) as a range of the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PhraseSet {
    pub start: u32,
    pub end: u32,
}

impl PhraseSet {
    pub fn is_empty(self) -> bool {
        self.start >= self.end
    }

    /// The first `count` phrases of the set.
    pub fn first(self, count: usize) -> PhraseSet {
        PhraseSet {
            start: self.start,
            end: (self.start + count as u32).min(self.end),
        }
    }
}

/// How well a candidate matched, and which words of the text it used (bit i: word i,
/// for the first 64 words).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored {
    pub score: f32,
    pub positions: u64,
}

impl Scored {
    /// The first word of the text the match used.
    pub fn first_position(&self) -> u32 {
        self.positions.trailing_zeros()
    }

    /// Whether this match used every word the other used, and more: "Milano 2" names
    /// Milano Due, not Milano; "cerco lavoro" is the synonym, not the label's "lavoro".
    pub fn subsumes(&self, other: &Scored) -> bool {
        self.positions != other.positions && other.positions & !self.positions == 0
    }
}

#[derive(Debug, Clone)]
struct Entry {
    plain: Box<str>,
    chars: usize,
    digits: bool,
    stem: Box<str>,
}

#[derive(Clone, Default)]
pub struct Index {
    /// Changes whenever a phrase is added: the key under which [`Words`] keep the hits.
    generation: Generation,
    entries: Vec<Entry>,
    ids: HashMap<(Box<str>, Lang), u32>,
    by_plain: HashMap<Box<str>, Vec<u32>>,
    by_stem: HashMap<Lang, HashMap<Box<str>, Vec<u32>>>,
    deletes: HashMap<Box<str>, Vec<u32>>,
    phrases: Vec<Box<[u32]>>,
    /// A phrase's score is multiplied by its weight (see [`Index::add_with_strong`]).
    weights: Vec<f32>,
    postings: Vec<Vec<u32>>,
}

/// A number no other index (or earlier state of this one) has had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Generation(u64);

impl Default for Generation {
    fn default() -> Generation {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Generation(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// The weight of a single word of a label matched alone: less than a whole synonym, so
/// that "cerco lavoro" prefers the choice whose synonym it is to the one whose label
/// merely holds "lavoro".
pub const LABEL_WORD_WEIGHT: f32 = 0.9;

impl std::fmt::Debug for Index {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Index")
            .field("words", &self.entries.len())
            .field("phrases", &self.phrases.len())
            .finish()
    }
}

/// Every spelling of `word` with `depth` (at most two) letters or fewer deleted, the
/// word itself too, each handed to `visit` from one reused buffer: it runs for every
/// word of every message. A spelling may come twice (from a doubled letter); the
/// callers tolerate that.
fn for_each_deletion(word: &str, depth: usize, mut visit: impl FnMut(&str)) {
    visit(word);
    if depth == 0 {
        return;
    }
    let letters: Vec<(usize, usize)> = word
        .char_indices()
        .map(|(at, letter)| (at, at + letter.len_utf8()))
        .collect();
    let mut spelling = String::with_capacity(word.len());
    for (index, &(from, to)) in letters.iter().enumerate() {
        spelling.clear();
        spelling.push_str(&word[..from]);
        spelling.push_str(&word[to..]);
        visit(&spelling);
        if depth >= 2 {
            for &(second_from, second_to) in &letters[index + 1..] {
                spelling.clear();
                spelling.push_str(&word[..from]);
                spelling.push_str(&word[to..second_from]);
                spelling.push_str(&word[second_to..]);
                visit(&spelling);
            }
        }
    }
}

/// How many deletions to index for a word of this length (the edits it tolerates).
fn deletion_depth(chars: usize) -> usize {
    super::tolerated_edits(chars)
}

impl Index {
    /// Adds the phrases of one candidate; they keep their order, so that the first ones
    /// can be asked for alone ([`PhraseSet::first`]).
    pub fn add(&mut self, phrases: &[Phrase]) -> PhraseSet {
        self.add_with_strong(phrases, phrases.len())
    }

    /// Adds the phrases of one candidate, the first `strong` whole (labels, synonyms),
    /// the others single words of a label, weighted [`LABEL_WORD_WEIGHT`].
    pub fn add_with_strong(&mut self, phrases: &[Phrase], strong: usize) -> PhraseSet {
        self.generation = Generation::default();
        let start = self.phrases.len() as u32;
        for (position, phrase) in phrases.iter().enumerate() {
            if phrase.is_empty() {
                continue;
            }
            self.weights.push(if position < strong {
                1.0
            } else {
                LABEL_WORD_WEIGHT
            });
            let id = self.phrases.len() as u32;
            let words: Vec<u32> = phrase.words.iter().map(|word| self.entry(word)).collect();
            for &entry in &words {
                let postings = &mut self.postings[entry as usize];
                if postings.last() != Some(&id) {
                    postings.push(id);
                }
            }
            self.phrases.push(words.into_boxed_slice());
        }
        PhraseSet {
            start,
            end: self.phrases.len() as u32,
        }
    }

    fn entry(&mut self, word: &super::Word) -> u32 {
        let key = (Box::<str>::from(word.plain.as_str()), word.lang);
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.entries.len() as u32;
        let chars = word.chars();
        let digits = word.plain.chars().any(|c| c.is_ascii_digit());
        self.by_plain
            .entry(word.plain.as_str().into())
            .or_default()
            .push(id);
        if !word.stem.is_empty() {
            self.by_stem
                .entry(word.lang)
                .or_default()
                .entry(word.stem.as_str().into())
                .or_default()
                .push(id);
        }
        if !digits && chars >= 5 {
            for_each_deletion(&word.plain, deletion_depth(chars), |spelling| {
                let list = self.deletes.entry(spelling.into()).or_default();
                if list.last() != Some(&id) {
                    list.push(id);
                }
            });
        }
        self.entries.push(Entry {
            plain: word.plain.as_str().into(),
            chars,
            digits,
            stem: word.stem.as_str().into(),
        });
        self.postings.push(Vec::new());
        self.ids.insert(key, id);
        id
    }

    /// Which indexed words the text's words match, and how well: worked out once per
    /// text and index, then read from `words`.
    pub fn hits<'w>(&self, words: &'w Words) -> std::borrow::Cow<'w, Hits> {
        let generation = self.generation.0;
        let cached = words
            .hits
            .get_or_init(|| (generation, self.find_hits(words)));
        if cached.0 == generation {
            std::borrow::Cow::Borrowed(&cached.1)
        } else {
            std::borrow::Cow::Owned(self.find_hits(words))
        }
    }

    fn find_hits(&self, words: &Words) -> Hits {
        let mut found: HashMap<u32, (f32, u32)> = HashMap::default();
        let mut note = |entry: u32, similarity: f32, position: u32| {
            let slot = found.entry(entry).or_insert((0.0, position));
            if similarity > slot.0 {
                *slot = (similarity, position);
            }
        };
        let mut compared: Vec<u32> = Vec::new();
        for (position, word) in words.words.iter().enumerate() {
            let position = position as u32;
            if let Some(ids) = self.by_plain.get(word.plain.as_str()) {
                for &id in ids {
                    note(id, 1.0, position);
                }
            }
            for &lang in &words.langs {
                let (Some(stems), Some(stem)) = (self.by_stem.get(&lang), word.stem(lang)) else {
                    continue;
                };
                for &id in stems.get(stem).into_iter().flatten() {
                    let entry = &self.entries[id as usize];
                    if entry.chars >= 4 && super::lengths_close_for_stems(entry.chars, word.chars) {
                        note(id, 1.0, position);
                    }
                }
            }
            if word.digits {
                continue;
            }
            if word.chars == 4 {
                self.swaps(word, position, &mut note);
            } else if word.chars >= 5 {
                compared.clear();
                for_each_deletion(&word.plain, deletion_depth(word.chars), |spelling| {
                    for &id in self.deletes.get(spelling).into_iter().flatten() {
                        // Several deletions lead to the same entry: compare it once.
                        if compared.contains(&id) {
                            continue;
                        }
                        compared.push(id);
                        let entry = &self.entries[id as usize];
                        let similarity = fuzzy(&entry.plain, entry.chars, &word.plain, word.chars);
                        if similarity > 0.0 {
                            note(id, similarity, position);
                        }
                    }
                });
            }
        }
        let mut touched: Vec<u32> = found
            .keys()
            .flat_map(|&entry| self.postings[entry as usize].iter().copied())
            .collect();
        touched.sort_unstable();
        touched.dedup();
        Hits {
            found,
            touched,
            words: words.len(),
        }
    }

    /// Four-letter words swapped once: "sipd" finds "spid".
    fn swaps(&self, word: &TextWord, position: u32, note: &mut impl FnMut(u32, f32, u32)) {
        let characters: Vec<char> = word.plain.chars().collect();
        for index in 0..characters.len().saturating_sub(1) {
            let mut swapped = characters.clone();
            swapped.swap(index, index + 1);
            let swapped: String = swapped.into_iter().collect();
            for &id in self.by_plain.get(swapped.as_str()).into_iter().flatten() {
                let entry = &self.entries[id as usize];
                if entry.chars == 4 && !entry.digits && is_one_swap(&entry.plain, &word.plain) {
                    note(id, 0.75, position);
                }
            }
        }
    }

    pub fn phrase_count(&self) -> usize {
        self.phrases.len()
    }

    /// The stem an indexed word was given, for tests.
    pub fn stem_of(&self, plain: &str, lang: Lang) -> Option<&str> {
        let id = *self.ids.get(&(Box::<str>::from(plain), lang))?;
        Some(&self.entries[id as usize].stem)
    }
}

/// The words of one text found in an [`Index`].
#[derive(Debug, Clone, Default)]
pub struct Hits {
    /// Indexed word → (best similarity, position of the text word that gave it).
    found: HashMap<u32, (f32, u32)>,
    /// Phrases holding at least one found word, sorted.
    touched: Vec<u32>,
    words: usize,
}

impl Hits {
    fn phrase(&self, index: &Index, id: u32) -> Option<Scored> {
        let words = index.phrases.get(id as usize)?;
        let mut total = 0.0;
        let mut positions = 0u64;
        for entry in words.iter() {
            let (similarity, position) = self.found.get(entry)?;
            total += similarity;
            positions |= 1u64 << (*position).min(63);
        }
        let weight = index.weights.get(id as usize).copied().unwrap_or(1.0);
        Some(Scored {
            score: combine(total, words.len(), self.words) * weight,
            positions,
        })
    }

    /// The best match among a candidate's phrases, if any phrase is found whole: the
    /// best phrase's score, and the words of every phrase found (so that "no soldi,
    /// bambini fame, mangiare" places money before children).
    pub fn best(&self, index: &Index, set: PhraseSet) -> Option<Scored> {
        let from = self.touched.partition_point(|&id| id < set.start);
        let mut best: Option<Scored> = None;
        for scored in self.touched[from..]
            .iter()
            .take_while(|&&id| id < set.end)
            .filter_map(|&id| self.phrase(index, id))
        {
            best = Some(match best {
                None => scored,
                Some(best) => Scored {
                    score: best.score.max(scored.score),
                    positions: best.positions | scored.positions,
                },
            });
        }
        best
    }

    /// The score of the best phrase of a candidate (0 when none is found).
    pub fn score(&self, index: &Index, set: PhraseSet) -> f32 {
        self.best(index, set).map_or(0.0, |scored| scored.score)
    }

    pub fn is_empty(&self) -> bool {
        self.found.is_empty()
    }
}

impl Index {
    /// Picks the candidate whose phrases best match, as [`super::best_match`] does for
    /// unindexed phrases.
    pub fn best_match<K: Clone + PartialEq>(
        &self,
        hits: &Hits,
        candidates: impl IntoIterator<Item = (K, PhraseSet)>,
        threshold: f32,
    ) -> super::Match<K> {
        let mut scored: Vec<(Scored, K)> = candidates
            .into_iter()
            .filter_map(|(key, set)| hits.best(self, set).map(|scored| (scored, key)))
            .filter(|(scored, _)| scored.score >= threshold)
            .collect();
        scored.sort_by(|a, b| b.0.score.total_cmp(&a.0.score));
        match scored.as_slice() {
            [] => super::Match::None,
            [(_, only)] => super::Match::One(only.clone()),
            [(first, first_key), (second, second_key), ..] => {
                if first.score - second.score < super::AMBIGUITY
                    && first_key != second_key
                    && !first.subsumes(second)
                {
                    super::Match::Two(first_key.clone(), second_key.clone())
                } else {
                    super::Match::One(first_key.clone())
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matching::{Match, best_match, phrase_score};

    fn index_of(groups: &[&[(&str, Lang)]]) -> (Index, Vec<PhraseSet>) {
        let mut index = Index::default();
        let sets = groups
            .iter()
            .map(|group| {
                let phrases: Vec<Phrase> = group
                    .iter()
                    .map(|(text, lang)| Phrase::in_lang(text, *lang))
                    .collect();
                index.add(&phrases)
            })
            .collect();
        (index, sets)
    }

    #[test]
    fn the_index_scores_as_the_plain_comparison_does() {
        let groups: &[&[(&str, Lang)]] = &[
            &[
                ("affitto", Lang::It),
                ("padrone di casa", Lang::It),
                ("alquiler", Lang::Es),
            ],
            &[
                ("bollette", Lang::It),
                ("luce", Lang::It),
                ("bills", Lang::En),
            ],
            &[("spid", Lang::It), ("identità digitale", Lang::It)],
            &[("Сеграте", Lang::Uk), ("اكل", Lang::Ar)],
        ];
        let (index, sets) = index_of(groups);
        for text in [
            "ho un problema con l'afitto",
            "il mio padrone di casa",
            "non pago le bollete",
            "mi serve lo sipd",
            "identita digitale",
            "alquileres caros",
            "я живу в Сеграте",
            "ما عندي اكل",
            "niente di tutto questo",
        ] {
            let words = Words::new(text, &[Lang::Es, Lang::Uk, Lang::Ar]);
            let hits = index.hits(&words);
            for (group, set) in groups.iter().zip(&sets) {
                let phrases: Vec<Phrase> = group
                    .iter()
                    .map(|(text, lang)| Phrase::in_lang(text, *lang))
                    .collect();
                let plain = phrases
                    .iter()
                    .map(|phrase| phrase_score(phrase, &words))
                    .fold(0.0, f32::max);
                let indexed = hits.score(&index, *set);
                assert!(
                    (plain - indexed).abs() < 1e-6,
                    "{text}: {plain} vs {indexed}"
                );
            }
        }
    }

    #[test]
    fn best_match_through_the_index() {
        let (index, sets) = index_of(&[&[("affitto", Lang::It)], &[("bollette", Lang::It)]]);
        let words = Words::italian("affitto e bollette");
        let hits = index.hits(&words);
        assert_eq!(
            index.best_match(&hits, [("rent", sets[0]), ("bills", sets[1])], 0.7),
            Match::Two("rent", "bills")
        );
        let rent = [Phrase::new("affitto")];
        assert_eq!(
            best_match(&Words::italian("affitto"), [("rent", &rent[..])], 0.7),
            Match::One("rent")
        );
        let scored = hits.best(&index, sets[1]).unwrap();
        assert_eq!(scored.first_position(), 1);
    }
}
