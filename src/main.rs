//! The thin entry point: parse arguments, set up logging and the one async runtime, run, map
//! the result to an exit code. Not for: anything else (the library does it).

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;
use devenv::{cli::Cli, env, error, output};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return refused(e),
    };
    let ci = output::resolve_ci(cli.global.ci);
    let color = output::resolve_color(cli.global.color.into(), ci);
    let level = match (cli.global.quiet, cli.global.verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env(env::LOG)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("devenv={level}")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(color)
        .without_time()
        .init();
    let result = devenv::runtime().and_then(|runtime| devenv::run(cli, runtime.handle().clone()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if error::is_broken_pipe(&err) => ExitCode::SUCCESS,
        // Another program's exit code (`devenv ci`): it said what it had to say.
        Err(err) if error::passed_on(&err).is_some() => {
            ExitCode::from(u8::try_from(error::exit_code(&err)).unwrap_or(1))
        }
        Err(err) => {
            let printer = output::Printer {
                color,
                ..output::Printer::plain()
            };
            let (message, hint, code) = error::describe(&err);
            printer.error(message, hint.as_deref());
            ExitCode::from(u8::try_from(code).unwrap_or(1))
        }
    }
}

/// Arguments clap refused (or help and version, which it prints): its message and exit code,
/// and, when the words asked for the JSON Lines stream, the stream's `result` event too, so
/// that a CI job reading the stream sees how the run ended.
fn refused(e: clap::Error) -> ExitCode {
    // Help and version asked for are what was wanted: clap prints them, exit 0.
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(name) = devenv::cli::refused_stream(&args) {
        // clap's `error:` line and the indented lines under it (the missing arguments).
        let rendered = e.render().to_string();
        let mut lines = rendered.lines().skip_while(|l| !l.starts_with("error:"));
        let mut detail: Vec<&str> = lines
            .next()
            .map(|l| l.trim_start_matches("error:").trim())
            .into_iter()
            .collect();
        detail.extend(
            lines
                .take_while(|l| l.starts_with(char::is_whitespace) && !l.trim().is_empty())
                .map(str::trim),
        );
        let detail = match detail.join(" ") {
            d if d.is_empty() => format!("`{name}` needs a subcommand"),
            d => d,
        };
        let hint = if name == "devenv" {
            "`devenv --help` lists the commands and flags".to_string()
        } else {
            format!("`devenv {name} --help` lists its flags")
        };
        output::events::Events::new(true).result(&name, Some((&detail, Some(&hint), 2)));
    }
    let _ = e.print();
    ExitCode::from(2)
}
