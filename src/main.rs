//! The thin entry point: parse arguments, set up logging and the one async runtime, run, map
//! the result to an exit code. Not for: anything else (the library does it).

use std::process::ExitCode;

use clap::Parser;
use devenv::{cli::Cli, env, error, output};

fn main() -> ExitCode {
    let cli = Cli::parse();
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
