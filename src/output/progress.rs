//! The one progress seam: what a long operation says while it runs. Every step of `up` (and
//! the cluster's steps as they join) reports through a [`Reporter`]; which one is decided once,
//! from the [`Printer`]: spinners and byte bars on a terminal ([`Bars`]), plain status lines
//! elsewhere ([`Lines`]), nothing at all with `--output json` or `--quiet` ([`Silent`]). Units
//! of work (pipeline steps, services, pulls, cluster steps) are also started as
//! [`Span`](super::events::Span)s, which [`Recorded`] keeps and, with `--output jsonl`, streams.
//!
//! Not for: data (tables, JSON documents go through the [`Printer`]), warnings or errors.

use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use super::events::{Events, Kind, Span};
use super::{Format, Printer};

/// Where the steps of a long operation report what they do. Shared between concurrent tasks.
pub trait Reporter: Send + Sync {
    /// A finished step, one line: `created network macula-infra`.
    fn step(&self, word: &str, text: &str);
    /// Something that runs a while (a service coming up), shown as a spinner named `name` on a
    /// terminal.
    fn task(&self, name: &str) -> Box<dyn Task>;
    /// Bytes moving: `word` (`pulling`, `saving`) `what` (an image, a volume), shown as a byte
    /// bar on a terminal; elsewhere one `<word> <what>` line.
    fn transfer(&self, word: &str, what: &str) -> Box<dyn Task>;
    /// The start of one unit of work (a pipeline step, a service, a pull, a cluster step), for
    /// the record and the event stream; the span finishes it exactly once. What people see is
    /// said by `task`, `transfer` and `step`: bars, lines and silence record nothing.
    fn start(&self, kind: Kind, name: &str) -> Span {
        let _ = (kind, name);
        Span::none()
    }
}

/// One running task of a [`Reporter`].
pub trait Task: Send + Sync {
    /// A passing state (`waiting for registry`), shown on a terminal only.
    fn note(&self, text: &str);
    /// A milestone of the task (`created`), kept as a line where there is no terminal.
    fn step(&self, word: &str);
    /// Bytes done of the total known so far.
    fn bytes(&self, done: u64, total: u64);
    /// The end, with its verdict (`healthy`, `skipped`) and details appended to the name.
    fn finish(&self, word: &str, detail: &str);
    /// The end, leaving nothing on a terminal.
    fn clear(&self);
}

/// The reporter `printer` calls for: bars on a terminal, lines for a human elsewhere (also
/// on stderr beside the `--output jsonl` stream), nothing for JSON or `--quiet`; every unit of
/// work recorded in the printer's [`Events`].
pub fn reporter(printer: &Printer) -> Arc<dyn Reporter> {
    let shown: Arc<dyn Reporter> = if printer.progress_enabled() {
        Arc::new(Bars::new())
    } else if printer.format == Format::Json || printer.quiet {
        Arc::new(Silent)
    } else {
        Arc::new(Lines(printer.clone()))
    };
    Arc::new(Recorded {
        shown,
        events: Arc::clone(&printer.events),
    })
}

/// A reporter that shows through another and records every unit of work in [`Events`] (which
/// streams them with `--output jsonl`).
pub struct Recorded {
    pub shown: Arc<dyn Reporter>,
    pub events: Arc<Events>,
}

impl Reporter for Recorded {
    fn step(&self, word: &str, text: &str) {
        self.shown.step(word, text);
    }

    fn task(&self, name: &str) -> Box<dyn Task> {
        self.shown.task(name)
    }

    fn transfer(&self, word: &str, what: &str) -> Box<dyn Task> {
        self.shown.transfer(word, what)
    }

    fn start(&self, kind: Kind, name: &str) -> Span {
        self.events.start(kind, name)
    }
}

/// Spinners and byte bars drawn with indicatif on stderr (a terminal).
pub struct Bars {
    bars: MultiProgress,
}

impl Bars {
    /// Bars on stderr.
    pub fn new() -> Bars {
        Bars {
            bars: MultiProgress::new(),
        }
    }
}

impl Default for Bars {
    fn default() -> Self {
        Bars::new()
    }
}

impl Reporter for Bars {
    fn step(&self, word: &str, text: &str) {
        let _ = self.bars.println(format!("{word:>10} {text}"));
    }

    fn task(&self, name: &str) -> Box<dyn Task> {
        let bar = self.bars.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner:.green} {prefix:.bold} {msg}")
                .expect("a valid progress template"),
        );
        bar.set_prefix(name.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        Box::new(Bar {
            bar,
            name: name.to_string(),
            transfer: false,
        })
    }

    fn transfer(&self, word: &str, what: &str) -> Box<dyn Task> {
        let bar = self.bars.add(ProgressBar::new(0));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>10.green.bold} {msg} [{bar:30}] {binary_bytes}/{binary_total_bytes}",
            )
            .expect("a valid progress template")
            .progress_chars("=> "),
        );
        bar.set_prefix(word.to_string());
        bar.set_message(what.to_string());
        Box::new(Bar {
            bar,
            name: what.to_string(),
            transfer: true,
        })
    }
}

/// One bar of [`Bars`].
struct Bar {
    bar: ProgressBar,
    name: String,
    /// A byte bar (prefix: the verb) rather than a spinner (prefix: the name).
    transfer: bool,
}

impl Task for Bar {
    fn note(&self, text: &str) {
        self.bar.set_message(text.to_string());
    }

    fn step(&self, word: &str) {
        self.bar.set_message(format!("{word} {}", self.name));
    }

    fn bytes(&self, done: u64, total: u64) {
        self.bar.set_length(total);
        self.bar.set_position(done);
    }

    fn finish(&self, word: &str, detail: &str) {
        if self.transfer {
            self.bar.set_prefix(word.to_string());
            self.bar
                .finish_with_message(format!("{}{detail}", self.name));
        } else {
            self.bar.finish_with_message(format!("{word} {detail}"));
        }
    }

    fn clear(&self) {
        self.bar.finish_and_clear();
    }
}

/// Plain status lines on stderr (not a terminal): milestones and verdicts, no passing states.
pub struct Lines(pub Printer);

impl Reporter for Lines {
    fn step(&self, word: &str, text: &str) {
        self.0.step(word, text);
    }

    fn task(&self, name: &str) -> Box<dyn Task> {
        Box::new(Line {
            printer: self.0.clone(),
            name: name.to_string(),
        })
    }

    fn transfer(&self, word: &str, what: &str) -> Box<dyn Task> {
        self.0.step(word, what);
        self.task(what)
    }
}

/// One task of [`Lines`].
struct Line {
    printer: Printer,
    name: String,
}

impl Task for Line {
    fn note(&self, _: &str) {}

    fn step(&self, word: &str) {
        self.printer.step(word, &self.name);
    }

    fn bytes(&self, _: u64, _: u64) {}

    fn finish(&self, word: &str, detail: &str) {
        self.printer.step(word, format!("{}{detail}", self.name));
    }

    fn clear(&self) {}
}

/// Says nothing: `--output json` prints one document and no progress; `--quiet`.
pub struct Silent;

impl Reporter for Silent {
    fn step(&self, _: &str, _: &str) {}

    fn task(&self, _: &str) -> Box<dyn Task> {
        Box::new(Silent)
    }

    fn transfer(&self, _: &str, _: &str) -> Box<dyn Task> {
        Box::new(Silent)
    }
}

impl Task for Silent {
    fn note(&self, _: &str) {}
    fn step(&self, _: &str) {}
    fn bytes(&self, _: u64, _: u64) {}
    fn finish(&self, _: &str, _: &str) {}
    fn clear(&self) {}
}
