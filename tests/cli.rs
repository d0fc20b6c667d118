//! The real `sportello` binary, as operators and scripts run it.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn sportello(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sportello"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("SPORTELLO_DIALOGUES")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Writes the small fixture folder, with changes, into a temporary folder.
fn folder(changes: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, contents) in common::files(changes) {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    dir
}

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

#[test]
fn check_passes_on_the_district_dialogues() {
    let output = sportello(&["check", "dialogues", "--quiet"], "");
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        text(&output).contains("dialogue tests passed"),
        "{}",
        text(&output)
    );
}

#[test]
fn check_exit_codes_clean_errors_warnings_and_usage() {
    let clean = folder(&[]);
    let output = sportello(&["check", path(&clean)], "");
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // The fixture has warnings (unknown addresses, missing translations): --strict fails.
    let output = sportello(&["check", path(&clean), "--strict"], "");
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));

    let broken = common::HOUSING.replace("next: fine", "next: fien");
    let broken = folder(&[("flows/casa.yaml", &broken)]);
    let output = sportello(&["check", path(&broken), "--format", "short"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output)
            .contains("flows/casa.yaml:20:46: error: unknown step 'fien' (did you mean 'fine'?)"),
        "{}",
        text(&output)
    );
    let output = sportello(&["check", path(&broken)], "");
    let fancy = text(&output);
    assert!(
        fancy.contains("flows/casa.yaml:20:46") && fancy.contains("did you mean 'fine'?"),
        "{fancy}"
    );

    assert_eq!(
        sportello(&["check", "--no-such-flag"], "").status.code(),
        Some(2)
    );
    assert_eq!(
        sportello(&["check", "/no/such/folder"], "").status.code(),
        Some(2)
    );
}

#[test]
fn a_failing_dialogue_test_fails_check_with_expected_and_actual() {
    let test = "test: sbagliato\nconversation:\n  - user: /start\n  - bot: { contains: \"arrivederci\" }\n";
    let dir = folder(&[("tests/sbagliato.yaml", test)]);
    let output = sportello(&["check", path(&dir), "--quiet"], "");
    assert_eq!(output.status.code(), Some(1));
    let said = text(&output);
    assert!(
        said.contains("tests/sbagliato.yaml:4:5: test 'sbagliato' failed"),
        "{said}"
    );
    assert!(
        said.contains("expected: a reply containing \"arrivederci\""),
        "{said}"
    );
    assert!(said.contains("Informativa privacy"), "{said}");
}

#[test]
fn chat_reads_one_message_per_line_when_scripted() {
    let output = sportello(
        &["chat", "--now", "2026-03-17T10:00:00+01:00"],
        "/start\n1\nho un problema con l'afitto\nPioltelo\n/posizione 45.5 9.33\n",
    );
    assert!(output.status.success(), "{}", text(&output));
    let said = text(&output).to_lowercase();
    assert!(said.contains("privacy"), "{said}");
    assert!(said.contains("comune"), "{said}");
    assert!(said.contains("servizi sociali"), "{said}");
    assert!(said.contains("posso aiutarti in altro"), "{said}");
}

#[test]
fn chat_in_english_and_with_invalid_utf8_and_long_lines() {
    let mut input = b"/start\n1\n\xff\xfe broken bytes\n".to_vec();
    input.extend("x".repeat(10_000).as_bytes());
    input.push(b'\n');
    let mut child = Command::new(env!("CARGO_BIN_EXE_sportello"))
        .args(["chat", "--lang", "en"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", text(&output));
    let said = text(&output);
    assert!(
        said.contains("What do you need") || said.contains("need"),
        "{said}"
    );
    assert!(said.contains("very long"), "{said}");
}

#[test]
fn chat_refuses_a_broken_folder_with_one_clear_message() {
    let broken = folder(&[(
        "bot.yaml",
        "languages: [it]\nwelcome: { flow: nessuno }\nprivacy: x\n",
    )]);
    let output = sportello(&["chat", "--dialogues", path(&broken)], "/start\n");
    assert_eq!(output.status.code(), Some(1));
    let said = text(&output);
    assert!(said.contains("unknown flow 'nessuno'"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn graph_prints_mermaid_and_dot() {
    let output = sportello(&["graph", "casa"], "");
    assert!(output.status.success(), "{}", text(&output));
    let mermaid = String::from_utf8_lossy(&output.stdout);
    assert!(mermaid.starts_with("flowchart TD"), "{mermaid}");
    assert!(mermaid.contains("-->|"), "{mermaid}");
    let output = sportello(&["graph", "casa", "--format", "dot"], "");
    let dot = String::from_utf8_lossy(&output.stdout);
    assert!(
        dot.starts_with("digraph") && dot.trim_end().ends_with('}'),
        "{dot}"
    );
    assert!(dot.contains("shape=hexagon"), "handover marked: {dot}");
    let output = sportello(&["graph", "nessuno"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output).contains("the flows are"), "{}", text(&output));
}

#[test]
fn the_fixture_folder_exists_on_disk_only_in_tests() {
    assert!(!Path::new(env!("CARGO_MANIFEST_DIR")).join("mini").exists());
}

#[test]
fn bad_database_urls_give_one_clear_line_and_no_secret() {
    let cases = [
        ("nonsense", "is not valid"),
        (
            "postgres://postgres:s3cret@127.0.0.1:1/sportello",
            "Connection refused",
        ),
        (
            "sqlite:///proc/no/such/folder/sportello.db",
            "cannot open the database",
        ),
    ];
    for (url, wanted) in cases {
        let stderr = one_line_error("migrate", &[("SPORTELLO_DATABASE_URL", url)], 1, wanted);
        assert!(
            !stderr.contains("s3cret") && !stderr.contains("panicked"),
            "{stderr}"
        );
    }
    let output = sportello(&["forget", "--chat", "ada"], "");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn chat_user_keeps_the_conversation_between_runs() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let run = |input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sportello"))
            .args(["chat", "--user", "bruno"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("SPORTELLO_DATABASE_URL", &url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(run("/start\n1\n").contains("Di cosa hai bisogno?"));
    assert!(run("2\n").contains("Che aiuto ti serve per la casa?"));
    let output = Command::new(env!("CARGO_BIN_EXE_sportello"))
        .args(["forget", "--chat", "terminal:bruno"])
        .env("SPORTELLO_DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        text(&output).contains("erased the personal data of terminal:bruno"),
        "{}",
        text(&output)
    );
}

#[test]
fn bad_settings_stop_the_start_with_one_clear_line_and_no_secret() {
    let cases = [
        ("SPORTELLO_RETENTION_DAYS", "0", "at least 1 day"),
        ("SPORTELLO_TELEGRAM_WEBHOOK_SECRET", "short1", "too short"),
        (
            "SPORTELLO_TELEGRAM_WEBHOOK_SECRET",
            "a long secret with spaces",
            "only letters",
        ),
    ];
    for (name, value, wanted) in cases {
        // A configuration that cannot work is a usage error, as for a bad argument.
        let environment = [("SPORTELLO_DATABASE_URL", "sqlite::memory:"), (name, value)];
        let stderr = one_line_error("run", &environment, 2, wanted);
        assert!(!stderr.contains(value) || value == "0", "{stderr}");
    }
}

/// Runs `sportello COMMAND` with `environment`, checks that it exits with `code` and one
/// line on stderr holding `wanted`, and gives that line back.
fn one_line_error(command: &str, environment: &[(&str, &str)], code: i32, wanted: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_sportello"))
        .arg(command)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .envs(environment.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(code),
        "{environment:?}: {stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains(wanted), "{stderr}");
    stderr
}
