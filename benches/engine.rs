//! Engine and loader speed over the real `dialogues/`:
//! `cargo bench --bench engine` (figures in target/criterion). The first four steps
//! are those measured since the engine was written, to compare before and after.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use sportello::dialogue::{self, testing::Conversation};
use sportello::engine::{self, Input};

fn dialogues() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dialogues")
}

fn load_and_check(c: &mut Criterion) {
    let dir = dialogues();
    c.bench_function("load_and_check_dialogues", |b| {
        b.iter(|| {
            let (bundle, diagnostics) = dialogue::load(black_box(&dir));
            assert!(diagnostics.iter().all(|d| !d.is_error()));
            bundle
        })
    });
    let (bundle, _) = dialogue::load(&dir);
    c.bench_function("run_all_dialogue_tests", |b| {
        b.iter(|| dialogue::testing::run_all(black_box(&bundle)))
    });
}

fn engine_step(c: &mut Criterion) {
    let (bundle, _) = dialogue::load(&dialogues());
    let now = dialogue::default_test_now();
    let mut at_menu = Conversation::new(&bundle, None, now);
    at_menu.say("/start");
    at_menu.say("1");
    let mut at_place = Conversation::new(&bundle, None, now);
    for line in ["/start", "1", "2", "1"] {
        at_place.say(line);
    }
    let cases = [
        (
            "engine_step_free_text_at_menu",
            &at_menu.state,
            "ho un problema con l'afitto",
        ),
        ("engine_step_button_number", &at_menu.state, "2"),
        (
            "engine_step_place_with_typo_and_suggestions",
            &at_place.state,
            "Pioltelo",
        ),
        (
            "engine_step_unmatched_text",
            &at_menu.state,
            "boh non lo so proprio",
        ),
        (
            "engine_step_danger_in_a_sentence",
            &at_menu.state,
            "mio marito quando beve mi mette le mani addosso",
        ),
        (
            "engine_step_arabic_at_menu",
            &at_menu.state,
            "أحتاج مساعدة في الإيجار، صاحب البيت يريد طردي",
        ),
        (
            "engine_step_two_needs_and_a_place",
            &at_menu.state,
            "mi serve lo spid e anche aiuto per le bollette, abito a Segrate",
        ),
    ];
    let long = format!(
        "{}e poi quando beve mi picchia",
        "scrivo per l'affitto e le bollette, siamo in difficoltà da mesi. ".repeat(160)
    );
    c.bench_function("engine_step_danger_after_10000_characters", |b| {
        b.iter(|| {
            engine::step(
                &bundle,
                black_box(at_menu.state.clone()),
                Input::Text(black_box(&long).clone()),
                now,
            )
        })
    });
    for (name, state, text) in cases {
        c.bench_function(name, |b| {
            b.iter(|| {
                engine::step(
                    &bundle,
                    black_box(state.clone()),
                    Input::Text(black_box(text).to_string()),
                    now,
                )
            })
        });
    }
}

criterion_group!(benches, load_and_check, engine_step);
criterion_main!(benches);
