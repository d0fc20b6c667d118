//! The command line: `sportello chat | check | graph | run | report | migrate | forget | purge`.
//! Exit codes are decided here only: 0 success, 1 failure, 2 usage error.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::config::Config;
use crate::diagnostics::{Diagnostic, render_fancy};
use crate::dialogue::{self, Bundle, graph, testing};
use crate::directory::Point;
use crate::engine::{self, Input, State};
use crate::store::{Delivery, Inbound, Processed, Store, redact};

#[derive(Debug, Parser)]
#[command(
    name = "sportello",
    version,
    about = "Il front desk del Segretariato Sociale Diffuso (Distretto Sociale Est Milano)"
)]
pub struct Cli {
    /// The configuration file (default: SPORTELLO_CONFIG, or ./sportello.toml if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Talk with the bot in the terminal (no token, no network).
    Chat {
        /// The citizen's interface language, as Telegram would tell it (it, en, ar, ...).
        #[arg(long)]
        lang: Option<String>,
        /// A fixed clock for the conversation, RFC 3339 (2026-03-17T10:00:00+01:00).
        #[arg(long, value_parser = parse_now)]
        now: Option<DateTime<Utc>>,
        /// The dialogue folder (default: SPORTELLO_DIALOGUES or ./dialogues).
        #[arg(long)]
        dialogues: Option<PathBuf>,
        /// Keep this terminal user's conversation in the database (SPORTELLO_DATABASE_URL):
        /// quit, or kill the process, and it continues where it was.
        #[arg(long)]
        user: Option<String>,
    },
    /// Check the dialogue folder and run its tests.
    Check {
        /// The dialogue folder (default: SPORTELLO_DIALOGUES or ./dialogues).
        dir: Option<PathBuf>,
        /// Warnings fail too.
        #[arg(long)]
        strict: bool,
        /// One line per problem (for scripts) instead of the source excerpt.
        #[arg(long, value_enum, default_value_t = CheckFormat::Fancy)]
        format: CheckFormat,
        /// Do not print warnings, only count them.
        #[arg(long)]
        quiet: bool,
        /// The day facts are aged against (YYYY-MM-DD; default: today), to find facts
        /// of directory.yaml checked longer ago than bot.yaml's facts_max_age_days.
        #[arg(long, value_parser = parse_day)]
        today: Option<chrono::NaiveDate>,
    },
    /// Print a flow as a diagram.
    Graph {
        /// The flow's name (the file name under flows/ without .yaml).
        flow: String,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
        /// The dialogue folder (default: SPORTELLO_DIALOGUES or ./dialogues).
        #[arg(long)]
        dialogues: Option<PathBuf>,
    },
    /// Run the bot on the configured channels (Telegram, Matrix).
    Run,
    /// The anonymous needs report.
    Report,
    /// Apply the database migrations (every command that uses the database does it too).
    Migrate,
    /// Erase one citizen's personal data at once.
    Forget {
        /// The chat, as CHANNEL:ID (terminal:ada, telegram:123456789).
        #[arg(long)]
        chat: String,
    },
    /// Erase the personal data of conversations closed (or silent) for longer than
    /// SPORTELLO_RETENTION_DAYS; `run` does it periodically.
    Purge,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum CheckFormat {
    Fancy,
    Short,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum GraphFormat {
    Mermaid,
    Dot,
}

fn parse_now(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| "expected a date and time like 2026-03-17T10:00:00+01:00".to_string())
}

pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(crate::logging::filter(
            std::env::var("SPORTELLO_LOG").ok().as_deref(),
        ))
        .init();
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Chat {
            lang,
            now,
            dialogues,
            user,
        } => {
            let dialogues = dialogues.unwrap_or_else(|| config.dialogues.clone());
            match user {
                Some(user) => block_on(chat_stored(
                    &config,
                    &dialogues,
                    &user,
                    lang.as_deref(),
                    now,
                )),
                None => chat(&dialogues, lang.as_deref(), now),
            }
        }
        Command::Check {
            dir,
            strict,
            today,
            format,
            quiet,
        } => {
            let dir = dir.unwrap_or_else(|| config.dialogues.clone());
            let today = today.unwrap_or_else(|| {
                chrono::Utc::now()
                    .with_timezone(&chrono_tz::Europe::Rome)
                    .date_naive()
            });
            return check(&dir, strict, format, quiet, today);
        }
        Command::Graph {
            flow,
            format,
            dialogues,
        } => graph_command(
            &dialogues.unwrap_or_else(|| config.dialogues.clone()),
            &flow,
            format,
        ),
        Command::Migrate => block_on(async {
            let store = Store::open(&config.database_url).await?;
            println!(
                "{}: the database schema is up to date",
                redact(&config.database_url)
            );
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Forget { chat } => block_on(forget(&config, &chat)),
        Command::Purge => block_on(async {
            let store = Store::open(&config.database_url).await?;
            let report = store.purge(Utc::now(), config.retention_days).await?;
            println!(
                "erased the personal data of {} conversations ({} of them abandoned) older than {} days",
                report.erased, report.abandoned, config.retention_days
            );
            store.close().await;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Run => block_on(async {
            let app = crate::app::App::build(config).await?;
            app.run(shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }),
        Command::Report => {
            eprintln!(
                "error: the report comes with the report work and is not in this version yet"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match terminate.as_mut() {
                Some(signal) => { signal.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

fn block_on(
    future: impl std::future::Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

async fn forget(config: &Config, chat: &str) -> anyhow::Result<ExitCode> {
    let Some((channel, id)) = chat
        .split_once(':')
        .filter(|(channel, id)| !channel.is_empty() && !id.is_empty())
    else {
        eprintln!("error: write the chat as CHANNEL:ID, e.g. telegram:123456789 or terminal:ada");
        return Ok(ExitCode::from(2));
    };
    let store = Store::open(&config.database_url).await?;
    if store.forget(channel, id).await? {
        println!("erased the personal data of {channel}:{id}");
    } else {
        println!("nothing is stored for {channel}:{id}");
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}

fn print_diagnostics(
    bundle: &Bundle,
    diagnostics: &[Diagnostic],
    format: CheckFormat,
    warnings: bool,
) {
    let colour = std::io::stderr().is_terminal();
    let mut out = std::io::stdout().lock();
    for diagnostic in diagnostics.iter().filter(|d| warnings || d.is_error()) {
        let text = match format {
            CheckFormat::Short => format!("{diagnostic}\n"),
            CheckFormat::Fancy => format!(
                "{}\n",
                render_fancy(diagnostic, bundle.sources.get(&diagnostic.file), colour)
            ),
        };
        let _ = out.write_all(text.as_bytes());
    }
}

fn parse_day(text: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .map_err(|_| format!("'{text}' is not a day: write it like 2026-12-01"))
}

fn check(
    dir: &Path,
    strict: bool,
    format: CheckFormat,
    quiet: bool,
    today: chrono::NaiveDate,
) -> ExitCode {
    if !dir.is_dir() {
        eprintln!(
            "error: {} is not a folder: give the dialogue folder, e.g. `sportello check dialogues`",
            dir.display()
        );
        return ExitCode::from(2);
    }
    let (bundle, mut diagnostics) = dialogue::load(dir);
    diagnostics.extend(dialogue::stale_facts(&bundle, today));
    print_diagnostics(&bundle, &diagnostics, format, !quiet);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    let failures = if errors == 0 {
        testing::run_all(&bundle)
    } else {
        Vec::new()
    };
    for failure in &failures {
        println!("{failure}\n");
    }
    let tests = if errors == 0 {
        format!(
            ", {} of {} dialogue tests passed",
            bundle.tests.len() - failures.len(),
            bundle.tests.len()
        )
    } else {
        ", dialogue tests not run because of the errors".to_string()
    };
    println!(
        "{}: {} flows, {errors} errors, {warnings} warnings{tests}",
        dir.display(),
        bundle.flows.len()
    );
    if errors > 0 || !failures.is_empty() || (strict && warnings > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Loads a dialogue folder for running; errors are printed and refuse the start.
fn load_clean(dir: &Path) -> anyhow::Result<Bundle> {
    if !dir.is_dir() {
        anyhow::bail!(
            "the dialogue folder {} does not exist (set SPORTELLO_DIALOGUES or --dialogues)",
            dir.display()
        );
    }
    let (bundle, diagnostics) = dialogue::load(dir);
    let errors: Vec<&Diagnostic> = diagnostics.iter().filter(|d| d.is_error()).collect();
    if !errors.is_empty() {
        for error in &errors {
            eprintln!("{error}");
        }
        anyhow::bail!(
            "the dialogue folder has {} errors: run `sportello check {}`",
            errors.len(),
            dir.display()
        );
    }
    Ok(bundle)
}

fn graph_command(dir: &Path, flow: &str, format: GraphFormat) -> anyhow::Result<ExitCode> {
    let bundle = load_clean(dir)?;
    let Some(flow) = bundle.flow(flow) else {
        let known: Vec<&str> = bundle.flows.iter().map(|flow| flow.id.as_str()).collect();
        anyhow::bail!(
            "there is no flow '{flow}'; the flows are: {}",
            known.join(", ")
        );
    };
    let format = match format {
        GraphFormat::Mermaid => graph::Format::Mermaid,
        GraphFormat::Dot => graph::Format::Dot,
    };
    print!("{}", graph::render(flow, format));
    Ok(ExitCode::SUCCESS)
}

/// One line typed in the terminal as an engine input.
fn terminal_input(line: &str) -> Option<Input> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return None;
    }
    if let Some(rest) = trimmed.strip_prefix("/posizione") {
        let numbers: Vec<f64> = rest
            .split([' ', ','])
            .filter(|part| !part.is_empty())
            .filter_map(|part| part.parse().ok())
            .collect();
        if let [lat, lon] = numbers[..] {
            return Some(Input::Location(Point { lat, lon }));
        }
        return Some(Input::Unsupported);
    }
    Some(Input::Text(trimmed.to_string()))
}

fn chat(dir: &Path, lang: Option<&str>, now: Option<DateTime<Utc>>) -> anyhow::Result<ExitCode> {
    let bundle = load_clean(dir)?;
    let interactive = std::io::stdin().is_terminal();
    let mut state = State::new(&bundle, lang);
    let stdout = std::io::stdout();
    let clock = || now.unwrap_or_else(Utc::now);
    if interactive {
        println!(
            "sportello: scrivi un messaggio (un numero sceglie un pulsante; /posizione LAT LON manda la posizione; Ctrl-D per uscire)\n"
        );
        let (next, outputs) = engine::step(&bundle, state, Input::Text("/start".into()), clock());
        state = next;
        print!("{}", engine::transcript(&outputs));
    }
    let stdin = std::io::stdin().lock();
    let mut lines = stdin.split(b'\n');
    loop {
        if interactive {
            print!("> ");
            stdout
                .lock()
                .flush()
                .context("cannot write to the terminal")?;
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("cannot read the standard input")?;
        let line = String::from_utf8_lossy(&line);
        if line.trim() == "/esci" || line.trim() == "/quit" {
            break;
        }
        let Some(input) = terminal_input(&line) else {
            continue;
        };
        let (next, outputs) = engine::step(&bundle, state, input, clock());
        state = next;
        let mut out = stdout.lock();
        let _ = writeln!(out, "{}", engine::transcript(&outputs));
    }
    Ok(ExitCode::SUCCESS)
}

/// A delivery replayed from the outbox, as the terminal shows a turn.
fn render_delivery(delivery: &Delivery) -> String {
    engine::transcript(&[engine::Output::Message {
        text: delivery.text.clone(),
        buttons: delivery.buttons.clone(),
        request_location: delivery.request_location,
    }])
}

/// `chat --user NAME`: the conversation lives in the database, each message one
/// transaction, each reply delivered from the outbox and marked sent once printed.
async fn chat_stored(
    config: &Config,
    dir: &Path,
    user: &str,
    lang: Option<&str>,
    now: Option<DateTime<Utc>>,
) -> anyhow::Result<ExitCode> {
    const CHANNEL: &str = "terminal";
    let bundle = load_clean(dir)?;
    let store = Store::open(&config.database_url).await?;
    let interactive = std::io::stdin().is_terminal();
    let clock = || now.unwrap_or_else(Utc::now);
    // Replies owed from before a crash come first.
    for row in store.outbox_unsent(CHANNEL, user).await? {
        if let Ok(delivery) = serde_json::from_str::<Delivery>(&row.payload) {
            println!("{}", render_delivery(&delivery));
        }
        store.outbox_sent(row.id, clock()).await?;
    }
    // A test hook: abort right after the Nth commit, before printing, as a crash would.
    let abort_after: Option<usize> = std::env::var("SPORTELLO_TEST_ABORT_AFTER_COMMIT")
        .ok()
        .and_then(|n| n.parse().ok());
    let mut turns = 0usize;
    let mut first: Option<Input> = None;
    if interactive {
        println!(
            "sportello ({user}): scrivi un messaggio (un numero sceglie un pulsante; /posizione LAT LON manda la posizione; Ctrl-D per uscire)\n"
        );
        match store.conversation(CHANNEL, user).await? {
            Some(conversation) => {
                let (_, outputs) =
                    engine::step(&bundle, conversation.state, Input::Repeat, clock());
                print!("{}", engine::transcript(&outputs));
            }
            None => first = Some(Input::Text("/start".into())),
        }
    }
    // Standard input is read on a thread of its own, a line at a time.
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<String>(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().split(b'\n') {
            let Ok(line) = line else { return };
            if sender
                .blocking_send(String::from_utf8_lossy(&line).into_owned())
                .is_err()
            {
                return;
            }
        }
    });
    loop {
        let input = match first.take() {
            Some(input) => input,
            None => {
                if interactive {
                    print!("> ");
                    std::io::stdout()
                        .flush()
                        .context("cannot write to the terminal")?;
                }
                let Some(line) = receiver.recv().await else {
                    break;
                };
                if line.trim() == "/esci" || line.trim() == "/quit" {
                    break;
                }
                let Some(input) = terminal_input(&line) else {
                    continue;
                };
                input
            }
        };
        let inbound = Inbound {
            channel: CHANNEL.into(),
            chat_id: user.into(),
            update_id: None,
            input,
            interface_lang: lang.map(str::to_string),
            button_tag: None,
            now: clock(),
        };
        let Processed::Done(turn) = store.process(&bundle, inbound).await? else {
            continue;
        };
        turns += 1;
        if abort_after == Some(turns) {
            std::process::abort();
        }
        println!("{}", engine::transcript(&turn.outputs));
        std::io::stdout()
            .flush()
            .context("cannot write to the terminal")?;
        if let Some(id) = turn.outbox_id {
            store.outbox_sent(id, clock()).await?;
        }
    }
    store.close().await;
    Ok(ExitCode::SUCCESS)
}
