//! A statistical reader of danger, learnt from labelled example sentences, beside the
//! patterns: the patterns catch what operators wrote; the model catches sentences that
//! resemble the examples in their letters ("ho messo da parte le pastiglie", "stasera il
//! balcone mi sembra l'unica porta") without any pattern's exact words.
//!
//! The text is normalised as everywhere ([`super::normalise`]); each word, with a space
//! on either side, gives its letter sequences of two to five characters, hashed into a
//! fixed number of buckets; their counts are weighed as TF-IDF (logarithmic counts, the
//! rarer a sequence among the examples the more it says) and scaled to length one, and a
//! logistic regression learnt from the examples gives the probability of danger.
//!
//! Pure and deterministic: the examples are read in their order, the training has no
//! randomness, the same examples give the same model.

use std::hash::{Hash, Hasher};

use rustc_hash::FxHasher;

/// How many buckets the letter sequences are hashed into: enough that few sequences of
/// the examples share one, small enough to read quickly (one float each).
const BUCKETS: usize = 1 << 18;
/// The shortest and longest letter sequences read.
const SHORTEST: usize = 2;
const LONGEST: usize = 5;
/// Passes over the examples, learning rate and the weight decay (L2) of the training.
const EPOCHS: usize = 40;
const LEARNING_RATE: f32 = 0.5;
const DECAY: f32 = 1e-5;

/// What the examples taught: a weight and an inverse document frequency per bucket,
/// side by side, so that reading a letter sequence costs one cache line, not two (the
/// table is 2 MB: it does not stay in the cache between messages).
#[derive(Debug, Clone, PartialEq)]
pub struct DangerModel {
    /// (weight, inverse document frequency) of each bucket.
    table: Vec<(f32, f32)>,
    bias: f32,
    /// How many examples it was learnt from, of danger and ordinary.
    pub examples: (usize, usize),
}

/// The buckets of a text's letter sequences, each with its count.
fn counts(text: &str) -> Vec<(u32, f32)> {
    counts_normalised(&super::normalise(text))
}

/// [`counts`] of a text already normalised.
fn counts_normalised(normalised: &str) -> Vec<(u32, f32)> {
    let mut buckets: Vec<u32> = Vec::new();
    let mut padded: Vec<char> = Vec::new();
    for word in normalised.split(' ').filter(|word| !word.is_empty()) {
        padded.clear();
        padded.push(' ');
        padded.extend(word.chars());
        padded.push(' ');
        for length in SHORTEST..=LONGEST {
            if length > padded.len() {
                break;
            }
            for window in padded.windows(length) {
                let mut hasher = FxHasher::default();
                window.hash(&mut hasher);
                buckets.push((hasher.finish() % BUCKETS as u64) as u32);
            }
        }
    }
    buckets.sort_unstable();
    let mut out: Vec<(u32, f32)> = Vec::new();
    for bucket in buckets {
        match out.last_mut() {
            Some((last, count)) if *last == bucket => *count += 1.0,
            _ => out.push((bucket, 1.0)),
        }
    }
    out
}

/// A bucket's TF-IDF: its count in the text, on a logarithmic scale, times its idf.
fn tf_idf(count: f32, idf: f32) -> f32 {
    (1.0 + count.ln()) * idf
}

/// A text's features: TF-IDF of its buckets (`counts`), scaled to length one.
fn features(counts: Vec<(u32, f32)>, idf: &[f32]) -> Vec<(u32, f32)> {
    let mut features: Vec<(u32, f32)> = counts
        .into_iter()
        .map(|(bucket, count)| (bucket, tf_idf(count, idf[bucket as usize])))
        .collect();
    let norm = features
        .iter()
        .map(|(_, value)| value * value)
        .sum::<f32>()
        .sqrt();
    if norm > 0.0 {
        for (_, value) in &mut features {
            *value /= norm;
        }
    }
    features
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl DangerModel {
    /// Learns from `examples` (danger or not, text). Both kinds weigh the same in all,
    /// however many of each there are.
    pub fn train(examples: &[(bool, &str)]) -> DangerModel {
        let documents = examples.len().max(1) as f32;
        let mut frequency = vec![0u32; BUCKETS];
        let counted: Vec<Vec<(u32, f32)>> = examples.iter().map(|(_, text)| counts(text)).collect();
        for buckets in &counted {
            for (bucket, _) in buckets {
                frequency[*bucket as usize] += 1;
            }
        }
        let idf: Vec<f32> = frequency
            .iter()
            .map(|&seen| ((1.0 + documents) / (1.0 + seen as f32)).ln() + 1.0)
            .collect();
        let vectors: Vec<Vec<(u32, f32)>> = counted
            .into_iter()
            .map(|counts| features(counts, &idf))
            .collect();
        let danger_count = examples.iter().filter(|(danger, _)| *danger).count();
        let ordinary_count = examples.len() - danger_count;
        let positives = danger_count.max(1) as f32;
        let negatives = ordinary_count.max(1) as f32;
        let (positive_weight, negative_weight) =
            (documents / (2.0 * positives), documents / (2.0 * negatives));
        let mut weights = vec![0.0f32; BUCKETS];
        let mut bias = 0.0f32;
        // Plain stochastic gradient descent, the examples in a fixed interleaved order
        // (no randomness), the step shrinking with the passes.
        let order: Vec<usize> = {
            let n = examples.len();
            let stride = (1..n.max(2))
                .rev()
                .find(|s| gcd(*s, n) == 1 && *s <= n / 2 + 1)
                .unwrap_or(1);
            (0..n).map(|i| (i * stride) % n.max(1)).collect()
        };
        for epoch in 0..EPOCHS {
            let rate = LEARNING_RATE / (1.0 + epoch as f32 * 0.2);
            for &index in &order {
                let (danger, _) = examples[index];
                let vector = &vectors[index];
                let score: f32 = bias
                    + vector
                        .iter()
                        .map(|(bucket, value)| weights[*bucket as usize] * value)
                        .sum::<f32>();
                let target = if danger { 1.0 } else { 0.0 };
                let class_weight = if danger {
                    positive_weight
                } else {
                    negative_weight
                };
                let gradient = (sigmoid(score) - target) * class_weight;
                for (bucket, value) in vector {
                    let weight = &mut weights[*bucket as usize];
                    *weight -= rate * (gradient * value + DECAY * *weight);
                }
                bias -= rate * gradient * 0.1;
            }
        }
        DangerModel {
            table: weights.into_iter().zip(idf).collect(),
            bias,
            examples: (danger_count, ordinary_count),
        }
    }

    /// The probability, from 0 to 1, that `text` tells of danger like the examples.
    pub fn probability(&self, text: &str) -> f32 {
        self.probability_normalised(&super::normalise(text))
    }

    /// [`DangerModel::probability`] of a text already normalised ([`super::normalise`]).
    pub fn probability_normalised(&self, normalised: &str) -> f32 {
        // As `features`, with each bucket's weight read in the same look-up as its idf.
        let (mut dot, mut squares) = (0.0f32, 0.0f32);
        for (bucket, count) in counts_normalised(normalised) {
            let (weight, idf) = self.table[bucket as usize];
            let value = tf_idf(count, idf);
            dot += weight * value;
            squares += value * value;
        }
        let norm = squares.sqrt();
        let score = if norm > 0.0 { dot / norm } else { 0.0 };
        sigmoid(self.bias + score)
    }
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_the_examples_and_reads_their_neighbours() {
        let examples = [
            (true, "mio marito mi picchia ogni sera"),
            (true, "lui mi picchia e ho paura"),
            (true, "voglio farla finita stanotte"),
            (true, "ho deciso di farla finita"),
            (false, "cerco lavoro come badante"),
            (false, "non riesco a pagare la bolletta della luce"),
            (false, "mi serve lo spid per l'inps"),
            (false, "vorrei iscrivere mio figlio all'asilo"),
        ];
        let model = DangerModel::train(&examples);
        assert_eq!(model.examples, (4, 4));
        for (danger, text) in examples {
            assert_eq!(model.probability(text) >= 0.5, danger, "{text}");
        }
        // An unseen spelling of a learnt sentence.
        assert!(model.probability("il mio compagno mi pichia") > 0.5);
        assert!(model.probability("dove pago la bolletta del gas") < 0.5);
        // The same examples, the same model.
        assert_eq!(DangerModel::train(&examples), model);
    }

    #[test]
    fn empty_texts_and_no_examples_do_not_fail() {
        let model = DangerModel::train(&[]);
        assert!(model.probability("").is_finite());
        assert!(model.probability("🙏").is_finite());
    }
}
