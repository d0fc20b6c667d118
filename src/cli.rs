//! The command line: `sportello chat | check | graph | run | report | migrate | forget`.
//! Exit codes are decided here only: 0 success, 1 failure, 2 usage error.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};

use crate::diagnostics::{Diagnostic, render_fancy};
use crate::dialogue::{self, Bundle, graph, testing};
use crate::directory::Point;
use crate::engine::{self, Input, State};

#[derive(Debug, Parser)]
#[command(
    name = "sportello",
    version,
    about = "Il front desk del Segretariato Sociale Diffuso (Distretto Sociale Est Milano)"
)]
pub struct Cli {
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
        /// The dialogue folder.
        #[arg(long, env = "SPORTELLO_DIALOGUES", default_value = "dialogues")]
        dialogues: PathBuf,
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
    },
    /// Print a flow as a diagram.
    Graph {
        /// The flow's name (the file name under flows/ without .yaml).
        flow: String,
        #[arg(long, value_enum, default_value_t = GraphFormat::Mermaid)]
        format: GraphFormat,
        #[arg(long, env = "SPORTELLO_DIALOGUES", default_value = "dialogues")]
        dialogues: PathBuf,
    },
    /// Run the bot on the configured channels (Telegram, Matrix).
    Run,
    /// The anonymous needs report.
    Report,
    /// Apply the database migrations.
    Migrate,
    /// Erase one citizen's personal data.
    Forget,
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
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SPORTELLO_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Chat {
            lang,
            now,
            dialogues,
        } => chat(&dialogues, lang.as_deref(), now),
        Command::Check {
            dir,
            strict,
            format,
            quiet,
        } => {
            let dir = dir
                .or_else(|| std::env::var_os("SPORTELLO_DIALOGUES").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("dialogues"));
            return check(&dir, strict, format, quiet);
        }
        Command::Graph {
            flow,
            format,
            dialogues,
        } => graph_command(&dialogues, &flow, format),
        Command::Run | Command::Report | Command::Migrate | Command::Forget => {
            eprintln!(
                "error: this command comes with the storage and channel work and is not in this version yet"
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

fn check(dir: &Path, strict: bool, format: CheckFormat, quiet: bool) -> ExitCode {
    if !dir.is_dir() {
        eprintln!(
            "error: {} is not a folder: give the dialogue folder, e.g. `sportello check dialogues`",
            dir.display()
        );
        return ExitCode::from(2);
    }
    let (bundle, diagnostics) = dialogue::load(dir);
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
