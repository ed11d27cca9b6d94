//! How devenv talks to people and programs: data on stdout (human tables, one JSON document,
//! or the JSON Lines event stream of [`events`]), status and warnings on stderr, colour only
//! where it is wanted, progress through one seam ([`progress::Reporter`]), drawn as bars only on
//! a terminal and never in CI mode, and GitHub Actions' annotations and step summary
//! ([`github`]).
//!
//! Not for: deciding what to say; commands and converge's steps do that.

pub mod events;
pub mod github;
pub mod progress;

use std::io::{IsTerminal, Write};
use std::sync::Arc;

use serde::Serialize;

use crate::env;

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Human,
    Json,
    /// The event stream of a command that works in steps ([`events`]).
    Jsonl,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

/// Whether to colour stderr: `--color`, then `NO_COLOR`, then `FORCE_COLOR`, then whether
/// stderr is a terminal outside CI mode (plain lines in CI).
pub fn resolve_color(choice: ColorChoice, ci: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            if env::flag(env::NO_COLOR) {
                false
            } else if env::flag(env::FORCE_COLOR) {
                true
            } else {
                !ci && std::io::stderr().is_terminal()
            }
        }
    }
}

/// Whether devenv runs in CI mode: `--ci`, or `CI` set to a true value (not empty, `0`,
/// `false`, `no` or `off`). CI mode never prompts and never draws bars.
pub fn resolve_ci(flag: bool) -> bool {
    flag || env::enabled(env::CI)
}

/// The one place output goes through.
#[derive(Debug, Clone)]
pub struct Printer {
    pub format: Format,
    pub quiet: bool,
    pub color: bool,
    /// CI mode: plain lines, never bars.
    pub ci: bool,
    /// The command's units of work (streamed on stdout with [`Format::Jsonl`]).
    pub events: Arc<events::Events>,
}

impl Printer {
    /// A printer for tests and library use: human, no colour.
    pub fn plain() -> Printer {
        Printer {
            format: Format::Human,
            quiet: false,
            color: false,
            ci: false,
            events: Arc::new(events::Events::new(false)),
        }
    }

    fn paint(&self, style: anstyle::Style, text: &str) -> String {
        if self.color {
            format!("{}{text}{}", style.render(), style.render_reset())
        } else {
            text.to_string()
        }
    }

    /// A status line on stderr (not with `--quiet`).
    pub fn status(&self, text: impl AsRef<str>) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr(), "{}", text.as_ref());
        }
    }

    /// A status line with a coloured leading word (`created`, `ok`), on stderr.
    pub fn step(&self, word: &str, text: impl AsRef<str>) {
        if !self.quiet {
            let style = anstyle::Style::new()
                .bold()
                .fg_color(Some(anstyle::AnsiColor::Green.into()));
            let _ = writeln!(
                std::io::stderr(),
                "{:>10} {}",
                self.paint(style, word),
                text.as_ref()
            );
        }
    }

    /// A warning on stderr, shown even with `--quiet`.
    pub fn warn(&self, text: impl AsRef<str>) {
        let style = anstyle::Style::new()
            .bold()
            .fg_color(Some(anstyle::AnsiColor::Yellow.into()));
        let _ = writeln!(
            std::io::stderr(),
            "{}: {}",
            self.paint(style, "warning"),
            text.as_ref()
        );
    }

    /// An error and its hint on stderr.
    pub fn error(&self, text: impl AsRef<str>, hint: Option<&str>) {
        let red = anstyle::Style::new()
            .bold()
            .fg_color(Some(anstyle::AnsiColor::Red.into()));
        let cyan = anstyle::Style::new()
            .bold()
            .fg_color(Some(anstyle::AnsiColor::Cyan.into()));
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "{}: {}", self.paint(red, "error"), text.as_ref());
        if let Some(hint) = hint {
            let _ = writeln!(err, "{}: {hint}", self.paint(cyan, "hint"));
        }
    }

    /// Data on stdout. A closed pipe surfaces as an `io::Error` of kind `BrokenPipe`.
    pub fn data(&self, text: impl AsRef<str>) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_ref().as_bytes())?;
        if !text.as_ref().ends_with('\n') {
            out.write_all(b"\n")?;
        }
        out.flush()
    }

    /// One JSON document on stdout.
    pub fn json<T: Serialize>(&self, value: &T) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(value)?;
        self.data(text)?;
        Ok(())
    }

    /// Whether progress bars may be drawn: human output, not quiet, not CI, stderr a terminal.
    pub fn progress_enabled(&self) -> bool {
        self.format == Format::Human && !self.quiet && !self.ci && std::io::stderr().is_terminal()
    }
}

/// Lay out rows as aligned columns (the first row is the header).
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  ", width = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_aligns_columns() {
        let t = super::table(&[
            vec!["A".into(), "BB".into(), "C".into()],
            vec!["aaa".into(), "b".into(), "c".into()],
        ]);
        assert_eq!(t, "A    BB  C\naaa  b   c\n");
    }
}
