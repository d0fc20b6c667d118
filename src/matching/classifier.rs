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

/// The buckets (of `buckets`) of a text's letter sequences, each with its count.
fn counts(text: &str, buckets: usize) -> Vec<(u32, f32)> {
    counts_normalised(&super::normalise(text), buckets)
}

/// [`counts`] of a text already normalised.
fn counts_normalised(normalised: &str, bucket_count: usize) -> Vec<(u32, f32)> {
    // About one letter sequence of each length per letter.
    let mut buckets: Vec<u32> = Vec::with_capacity(normalised.len() * (LONGEST - SHORTEST + 1));
    let mut padded: Vec<char> = Vec::new();
    for word in normalised.split(' ').filter(|word| !word.is_empty()) {
        padded.clear();
        padded.push(' ');
        padded.extend(word.chars());
        padded.push(' ');
        // Each sequence's hash extends the one a letter shorter from the same start:
        // one step per letter and length, not one per letter of every sequence.
        for start in 0..padded.len() {
            let mut hash = SEED;
            for (length, letter) in padded[start..].iter().take(LONGEST).enumerate() {
                hash = mix(hash, *letter);
                if length + 1 >= SHORTEST {
                    buckets.push((finish(hash) % bucket_count as u64) as u32);
                }
            }
        }
    }
    buckets.sort_unstable();
    let mut out: Vec<(u32, f32)> = Vec::with_capacity(buckets.len());
    for bucket in buckets {
        match out.last_mut() {
            Some((last, count)) if *last == bucket => *count += 1.0,
            _ => out.push((bucket, 1.0)),
        }
    }
    out
}

/// The letter sequences' hash: FxHash's step (rotate, xor, multiply) per letter, and
/// MurmurHash3's finaliser so that the low bits, which choose the bucket, depend on
/// every letter.
const SEED: u64 = 0x2545_f491_4f6c_dd1d;
fn mix(hash: u64, letter: char) -> u64 {
    (hash.rotate_left(5) ^ u64::from(u32::from(letter))).wrapping_mul(0x517c_c1b7_2722_0a95)
}
fn finish(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^ (hash >> 33)
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

/// What a training reads of its texts: each bucket's inverse document frequency among
/// them (the rarer, the more it says), and each text's features.
fn learnt_features<'a>(
    texts: impl Iterator<Item = &'a str>,
    buckets: usize,
) -> (Vec<f32>, Vec<Vec<(u32, f32)>>) {
    let counted: Vec<Vec<(u32, f32)>> = texts.map(|text| counts(text, buckets)).collect();
    let documents = counted.len().max(1) as f32;
    let mut frequency = vec![0u32; buckets];
    for text in &counted {
        for (bucket, _) in text {
            frequency[*bucket as usize] += 1;
        }
    }
    let idf: Vec<f32> = frequency
        .iter()
        .map(|&seen| ((1.0 + documents) / (1.0 + seen as f32)).ln() + 1.0)
        .collect();
    let vectors = counted
        .into_iter()
        .map(|counts| features(counts, &idf))
        .collect();
    (idf, vectors)
}

/// The step of stochastic gradient descent, shrinking with the passes.
fn learning_rate(epoch: usize) -> f32 {
    LEARNING_RATE / (1.0 + epoch as f32 * 0.2)
}

/// The order the training reads `n` examples in: interleaved by a fixed stride prime
/// to `n`, so that examples written one after another (a file of one kind, then of the
/// other) are not learnt in blocks, with no randomness.
fn interleaved(n: usize) -> Vec<usize> {
    let stride = (1..n.max(2))
        .rev()
        .find(|s| gcd(*s, n) == 1 && *s <= n / 2 + 1)
        .unwrap_or(1);
    (0..n).map(|i| (i * stride) % n.max(1)).collect()
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl DangerModel {
    /// Learns from `examples` (danger or not, text). Both kinds weigh the same in all,
    /// however many of each there are.
    pub fn train(examples: &[(bool, &str)]) -> DangerModel {
        let documents = examples.len().max(1) as f32;
        let (idf, vectors) = learnt_features(examples.iter().map(|(_, text)| *text), BUCKETS);
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
        let order = interleaved(examples.len());
        for epoch in 0..EPOCHS {
            let rate = learning_rate(epoch);
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
        for (bucket, count) in counts_normalised(normalised, BUCKETS) {
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

/// How many buckets the choices' model hashes letter sequences into: it keeps a weight
/// per bucket for each choice (a dozen areas: 3 MB), so fewer than the danger model's.
/// Measured on the areas' sets by leave-one-set-out: 2^16, 2^17 and 2^18 buckets read
/// alike (90.8%, 91.1%, 90.8% right on unseen sets).
const CHOICE_BUCKETS: usize = 1 << 16;
/// Passes over the examples when learning the choices. Measured on 2026-12-07 (fourth
/// session) with 4,000 requests: 20 passes left the model unsure (holdout lines, the
/// model alone: 90.9% right; each dev set unseen: 94.7%), 40 read 94.8% and 96.0%, 80
/// read 94.8% and 96.4% for twice the loading time (`sportello check` 0.9 s, 1.2 s,
/// 2.2 s).
const CHOICE_EPOCHS: usize = 40;

/// Which of a step's choices a text names, learnt from labelled requests and from the
/// choices' own labels and words: a multinomial logistic regression (softmax) over the
/// same letter sequences as [`DangerModel`]. It reads what no vocabulary phrase
/// matched ("la lettera del comune dice che devo pagare online e non ho la carta").
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceModel {
    /// The choices, in the order of the probabilities.
    pub choices: Vec<String>,
    /// Per bucket, its inverse document frequency, then one weight per choice: one
    /// read per letter sequence.
    table: Vec<f32>,
    bias: Vec<f32>,
    /// How many examples it was learnt from.
    pub examples: usize,
}

impl ChoiceModel {
    /// Learns from `examples` (choice, text); `choices` are the classes, in order. An
    /// example whose choice is not among them is left out.
    pub fn train(choices: &[String], examples: &[(&str, &str)]) -> ChoiceModel {
        let classes = choices.len();
        let labelled: Vec<(usize, &str)> = examples
            .iter()
            .filter_map(|(choice, text)| {
                choices
                    .iter()
                    .position(|known| known == choice)
                    .map(|class| (class, *text))
            })
            .collect();
        let (idf, vectors) =
            learnt_features(labelled.iter().map(|(_, text)| *text), CHOICE_BUCKETS);
        let width = classes + 1;
        let mut table = vec![0.0f32; CHOICE_BUCKETS * width];
        for (bucket, value) in idf.iter().enumerate() {
            table[bucket * width] = *value;
        }
        let mut bias = vec![0.0f32; classes];
        let mut probabilities = vec![0.0f32; classes];
        let order = interleaved(labelled.len());
        for epoch in 0..CHOICE_EPOCHS {
            let rate = learning_rate(epoch);
            for &index in &order {
                let (class, _) = labelled[index];
                let vector = &vectors[index];
                probabilities.copy_from_slice(&bias);
                for (bucket, value) in vector {
                    let row = &table[*bucket as usize * width + 1..][..classes];
                    for (score, weight) in probabilities.iter_mut().zip(row) {
                        *score += weight * value;
                    }
                }
                softmax(&mut probabilities);
                // The gradient of each choice's score: its probability, less one for
                // the right choice.
                probabilities[class] -= 1.0;
                for (bucket, value) in vector {
                    let row = &mut table[*bucket as usize * width + 1..][..classes];
                    for (weight, gradient) in row.iter_mut().zip(&probabilities) {
                        *weight -= rate * (gradient * value + DECAY * *weight);
                    }
                }
                for (bias, gradient) in bias.iter_mut().zip(&probabilities) {
                    *bias -= rate * gradient * 0.1;
                }
            }
        }
        ChoiceModel {
            choices: choices.to_vec(),
            table,
            bias,
            examples: labelled.len(),
        }
    }

    /// The probability of each choice (in the order of [`ChoiceModel::choices`]) for a
    /// text already normalised ([`super::normalise`]); they add up to one.
    pub fn probabilities_normalised(&self, normalised: &str) -> Vec<f32> {
        let classes = self.choices.len();
        let width = classes + 1;
        let mut scores = vec![0.0f32; classes];
        let mut squares = 0.0f32;
        for (bucket, count) in counts_normalised(normalised, CHOICE_BUCKETS) {
            let row = &self.table[bucket as usize * width..][..width];
            let value = tf_idf(count, row[0]);
            squares += value * value;
            for (score, weight) in scores.iter_mut().zip(&row[1..]) {
                *score += weight * value;
            }
        }
        let norm = squares.sqrt();
        for (score, bias) in scores.iter_mut().zip(&self.bias) {
            *score = if norm > 0.0 { *score / norm } else { 0.0 } + bias;
        }
        softmax(&mut scores);
        scores
    }

    /// The likeliest choices for a text, most likely first, each with its probability.
    pub fn ranked(&self, text: &str) -> Vec<(&str, f32)> {
        self.ranked_normalised(&super::normalise(text))
    }

    /// [`ChoiceModel::ranked`] of a text already normalised.
    pub fn ranked_normalised(&self, normalised: &str) -> Vec<(&str, f32)> {
        let mut ranked: Vec<(&str, f32)> = self
            .choices
            .iter()
            .map(String::as_str)
            .zip(self.probabilities_normalised(normalised))
            .collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        ranked
    }
}

/// Scores to probabilities that add up to one, in place.
fn softmax(scores: &mut [f32]) {
    let highest = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for score in scores.iter_mut() {
        *score = (*score - highest).exp();
        total += *score;
    }
    if total > 0.0 {
        for score in scores.iter_mut() {
            *score /= total;
        }
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
    fn learns_which_choice_a_text_names() {
        let choices: Vec<String> = ["casa", "lavoro", "digitale"].map(String::from).to_vec();
        let examples = [
            ("casa", "non riesco a pagare l'affitto"),
            ("casa", "il padrone di casa mi vuole sfrattare"),
            ("casa", "cerco una casa popolare"),
            ("lavoro", "cerco lavoro come badante"),
            ("lavoro", "mi hanno licenziato e cerco un impiego"),
            ("lavoro", "come si fa il curriculum per un lavoro"),
            ("digitale", "non riesco a fare lo spid"),
            ("digitale", "ho perso la password della mail"),
            ("digitale", "come scarico l'app io sul telefono"),
            ("altro", "this choice is not among them"),
        ];
        let model = ChoiceModel::train(&choices, &examples);
        assert_eq!(model.examples, 9);
        for (choice, text) in &examples[..9] {
            assert_eq!(model.ranked(text)[0].0, *choice, "{text}");
        }
        // Unseen spellings of learnt requests.
        assert_eq!(model.ranked("nn riesco a pagre affito")[0].0, "casa");
        assert_eq!(
            model.ranked("scaricare app sul telefonino")[0].0,
            "digitale"
        );
        let total: f32 = model.ranked("ciao").iter().map(|(_, p)| p).sum();
        assert!((total - 1.0).abs() < 1e-4);
        assert_eq!(ChoiceModel::train(&choices, &examples), model);
        let empty = ChoiceModel::train(&choices, &[]);
        assert!(empty.ranked("🙏").iter().all(|(_, p)| p.is_finite()));
    }

    #[test]
    fn empty_texts_and_no_examples_do_not_fail() {
        let model = DangerModel::train(&[]);
        assert!(model.probability("").is_finite());
        assert!(model.probability("🙏").is_finite());
    }
}
