//! A real `sportello chat --user` process killed in the middle of a conversation: the
//! conversation continues at the right step, its transcript whole, nothing owed lost,
//! nothing handled twice.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use sportello::store::Store;

struct Bot {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    seen: String,
}

impl Bot {
    fn start(database_url: &str, abort_after_commit: Option<usize>) -> Bot {
        let mut command = Command::new(env!("CARGO_BIN_EXE_sportello"));
        command
            .args([
                "chat",
                "--user",
                "ada",
                "--now",
                "2026-03-17T10:00:00+01:00",
            ])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("SPORTELLO_DATABASE_URL", database_url)
            .env_remove("SPORTELLO_DIALOGUES")
            .env_remove("SPORTELLO_TEST_ABORT_AFTER_COMMIT")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if let Some(turn) = abort_after_commit {
            command.env("SPORTELLO_TEST_ABORT_AFTER_COMMIT", turn.to_string());
        }
        let mut child = command.spawn().expect("the binary starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if sender.send(line).is_err() {
                    return;
                }
            }
        });
        Bot {
            child,
            stdin,
            lines,
            seen: String::new(),
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
    }

    /// Reads the bot's output until `wanted` appears (the deadline only stops a hang).
    fn expect(&mut self, wanted: &str) {
        loop {
            if self.seen.contains(wanted) {
                self.seen.clear();
                return;
            }
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("the bot never said {wanted:?}; it said:\n{}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the bot stopped before saying {wanted:?}; it said:\n{}",
                    self.seen
                ),
            }
        }
    }

    fn sigkill(mut self) {
        // std's kill sends SIGKILL on Unix: no destructor, no flush, no goodbye.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Leaves as a person would, so that the last reply is recorded as delivered.
    fn quit(mut self) {
        self.send("/esci");
        assert!(self.child.wait().unwrap().success());
    }

    fn wait_for_crash(mut self) {
        let status = self.child.wait().unwrap();
        assert!(!status.success(), "the process was meant to abort");
    }
}

#[tokio::test]
async fn killed_in_the_middle_of_a_conversation_it_continues_with_its_transcript_whole() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sportello.db", dir.path().display());

    let mut bot = Bot::start(&url, None);
    bot.send("/start");
    bot.expect("Sei d'accordo?");
    bot.send("1");
    bot.expect("Di cosa hai bisogno?");
    bot.send("2");
    bot.expect("Che aiuto ti serve per la casa?");
    bot.sigkill();

    // Restarted: the same step, the same variables.
    let mut bot = Bot::start(&url, None);
    bot.send("1");
    bot.expect("In che comune abiti?");
    bot.sigkill();

    // Killed right after committing a turn, before printing its reply: the reply is owed,
    // and the restarted process delivers it without the citizen writing again.
    let mut bot = Bot::start(&url, Some(1));
    bot.send("Pioltello");
    bot.wait_for_crash();
    let mut bot = Bot::start(&url, None);
    bot.expect("Ecco dove puoi trovare aiuto vicino a te:");
    bot.send("2");
    bot.expect("[conversation ended]");
    bot.quit();

    let store = Store::open(&url).await.unwrap();
    let transcript = store.transcript("terminal", "ada").await.unwrap();
    let said: Vec<&str> = transcript
        .iter()
        .filter(|(author, _)| author == "citizen")
        .map(|(_, text)| text.as_str())
        .collect();
    assert_eq!(
        said,
        ["/start", "1", "2", "1", "Pioltello", "2"],
        "each message once, in order"
    );
    let replies = transcript
        .iter()
        .filter(|(author, _)| author == "bot")
        .count();
    assert_eq!(replies, 6);
    assert!(
        store
            .outbox_unsent("terminal", "ada")
            .await
            .unwrap()
            .is_empty(),
        "nothing owed is left"
    );
    let conversation = store
        .conversation("terminal", "ada")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.status, "closed");
    assert_eq!(
        conversation.state.vars.get("need").map(String::as_str),
        Some("casa.affitto")
    );
    store.close().await;
}
