//! The loader never panics and never hangs, whatever the bytes; a bundle that loads is
//! safe for the engine whatever the citizen sends. Property tests over random and
//! mutated YAML, bounded so that they run in the normal test suite.

mod common;

use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::Config;
use sportello::dialogue::{self, sources_from};
use sportello::directory::Point;
use sportello::directory::hours::rome;
use sportello::engine::{self, Input, State};

fn config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

/// The real dialogue files, to mutate.
fn real_files() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialogues");
    dialogue::load_sources(&dir)
        .into_iter()
        .filter_map(|(name, text)| text.ok().map(|text| (name, text)))
        .chain(
            common::files(&[])
                .into_iter()
                .map(|(name, text)| (name.to_string(), text.to_string())),
        )
        .collect()
}

#[derive(Debug, Clone)]
enum Mutation {
    Delete { at: usize, len: usize },
    Insert { at: usize, text: String },
    DuplicateLine { line: usize },
    SwapLines { first: usize, second: usize },
    Indent { line: usize, by: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let yaml_bits = prop::sample::select(vec![
        ":",
        "- ",
        "  ",
        "\t",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "'",
        "&a ",
        "*a",
        "null",
        "~",
        "#",
        "\n",
        ">",
        "|",
        "!!str ",
        "? ",
        "%YAML 1.2\n",
        "---\n",
        "...\n",
        "é",
        "🙂",
        "\u{0}",
        "\r\n",
        "1e999",
        "-1",
        "{need}",
        "{",
    ]);
    prop_oneof![
        (any::<usize>(), 1usize..40).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), prop::collection::vec(yaml_bits, 1..4)).prop_map(|(at, bits)| {
            Mutation::Insert {
                at,
                text: bits.concat(),
            }
        }),
        any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        (any::<usize>(), any::<usize>())
            .prop_map(|(first, second)| Mutation::SwapLines { first, second }),
        (any::<usize>(), 0usize..6).prop_map(|(line, by)| Mutation::Indent { line, by }),
    ]
}

fn floor_char_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn apply(text: &str, mutation: &Mutation) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    match mutation {
        Mutation::Delete { at, len } => {
            let start = floor_char_boundary(text, at % (text.len() + 1));
            let end = floor_char_boundary(text, start + len);
            return format!("{}{}", &text[..start], &text[end..]);
        }
        Mutation::Insert { at, text: inserted } => {
            let at = floor_char_boundary(text, at % (text.len() + 1));
            return format!("{}{inserted}{}", &text[..at], &text[at..]);
        }
        Mutation::DuplicateLine { line } if !lines.is_empty() => {
            let line = line % lines.len();
            let copy = lines[line].clone();
            lines.insert(line, copy);
        }
        Mutation::SwapLines { first, second } if !lines.is_empty() => {
            let len = lines.len();
            lines.swap(first % len, second % len);
        }
        Mutation::Indent { line, by } if !lines.is_empty() => {
            let len = lines.len();
            let line = &mut lines[line % len];
            *line = format!("{}{}", " ".repeat(*by), line.trim_start());
        }
        _ => {}
    }
    lines.join("\n")
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), slot in 0usize..5) {
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let name = ["bot.yaml", "flows/casa.yaml", "directory.yaml", "places.yaml", "tests/x.yaml"][slot];
        let files = common::files(&[(name, &text)]);
        let _ = dialogue::load_from(Path::new("fuzz"), sources_from(&files));
    }
}

proptest! {
    #![proptest_config(config(400))]

    #[test]
    fn mutated_real_files_never_panic_and_clean_ones_run(
        file in any::<prop::sample::Index>(),
        mutations in prop::collection::vec(mutation(), 1..6),
        inputs in prop::collection::vec((0usize..6, "[a-z0-9 àè']{0,20}"), 0..8),
    ) {
        let files = real_files();
        let (name, original) = &files[file.index(files.len())];
        let mutated = mutations.iter().fold(original.clone(), |text, mutation| apply(&text, mutation));
        let is_real = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialogues").join(name).exists();
        let sources = if is_real {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("dialogues");
            dialogue::load_sources(&dir)
                .into_iter()
                .map(|(file, text)| if &file == name { (file, Ok(mutated.clone())) } else { (file, text) })
                .collect()
        } else {
            sources_from(&common::files(&[(name.as_str(), &mutated)]))
        };
        let (bundle, diagnostics) = dialogue::load_from(Path::new("fuzz"), sources);
        if diagnostics.iter().any(|d| d.is_error()) {
            return Ok(());
        }
        // A bundle without errors must carry any conversation without panicking.
        let mut state = State::new(&bundle, None);
        let now = rome(2026, 3, 17, 10, 0);
        for (kind, text) in inputs.iter().cloned().chain([(0, "/start".to_string()), (0, "1".to_string())]) {
            let input = match kind {
                0 | 1 => Input::Text(text),
                2 => Input::Text(format!("{}", text.len() % 5)),
                3 => Input::Button(text),
                4 => Input::Location(Point { lat: 45.49, lon: 9.3 }),
                _ => Input::Unsupported,
            };
            state = engine::step(&bundle, state, input, now).0;
        }
    }
}

#[test]
fn a_billion_laughs_is_refused_quickly() {
    let mut text = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for level in 1..10 {
        let previous = (b'a' + level - 1) as char;
        let name = (b'a' + level) as char;
        text.push_str(&format!("{name}: &{name} [*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous},*{previous}]\n"));
    }
    let (_, diagnostics) = dialogue::load_from(
        Path::new("x"),
        sources_from(&common::files(&[("places.yaml", &text)])),
    );
    assert!(
        diagnostics.iter().any(|d| d.message.contains("anchors")),
        "{diagnostics:?}"
    );
}
