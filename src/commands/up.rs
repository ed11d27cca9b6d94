//! `devenv up`: bring the platform to what devenv.yaml describes, idempotently — a script over
//! [`crate::converge::up`]: settings from the arguments, the lock, converge, the summary.

use std::sync::Arc;
use std::time::Duration;

use crate::cli::UpArgs;
use crate::converge::{self, Options, Outcome, summary};
use crate::output::{Format, Printer, progress, table};
use crate::state;

use super::Settings;

impl Options {
    fn from_arguments(
        args: UpArgs,
        settings: &Settings,
        config: &crate::config::Config,
    ) -> anyhow::Result<Options> {
        let kind = config.cluster.provider == crate::config::ClusterProvider::Kind;
        Ok(Options {
            only: args.only.into_iter().filter(|s| !s.is_empty()).collect(),
            timeout: Duration::from_secs(args.timeout),
            pull: args.pull.into(),
            kubeconfig: settings.kubeconfig()?,
            recreate: args.recreate,
            install_kind: args.install_kind || (kind && ask_to_install_kind(settings)),
            owner: None,
        })
    }
}

/// On a terminal, when no usable kind is found and installing one would help, ask whether to
/// install the pinned release; never elsewhere (CI passes `--install-kind`).
fn ask_to_install_kind(settings: &Settings) -> bool {
    if !settings.interactive() {
        return false;
    }
    let search = crate::cluster::kind::Search::from_env();
    let missing = settings
        .runtime
        .block_on(crate::cluster::kind::Kind::find(&search));
    match missing {
        Ok(_) => false,
        Err(unusable) if unusable.provisioning_helps() => super::confirm(
            &format!(
                "{unusable}. Install kind {} into devenv's own directory (checksum verified)?",
                crate::cluster::provision::PINNED_VERSION
            ),
            true,
        )
        .unwrap_or(false),
        Err(_) => false,
    }
}

pub fn run(settings: &Settings, args: UpArgs) -> anyhow::Result<()> {
    let loaded = settings.load_config()?;
    let config = &loaded.config;
    let force = args.force;
    let mut options = Options::from_arguments(args, settings, config)?;
    let printer = &settings.printer;
    let outcome = (|| {
        let state_dir = state::dir(&config.name)?;
        let _lock = state::lock(&config.name, &state_dir, options.timeout, |m| {
            printer.status(m)
        })?;
        let owner = state::Owner::new(loaded.path.as_deref(), &state_dir);
        settings.confirm_owner(&config.name, &owner, false, force)?;
        options.owner = Some(owner);
        let reporter = progress::reporter(printer);
        settings.runtime.block_on(converge::up(
            config,
            &options,
            &state_dir,
            Arc::clone(&reporter),
        ))
    })();
    match outcome {
        Ok(outcome) => summary_step(settings, outcome),
        Err(e) => {
            // `--output json` promises one document on every path, also when up stopped
            // before the summary (the lock, preflight, a missing engine); the exit code stays
            // the failure's.
            document(printer, converge::stopped_json(&e))?;
            step_summary(
                settings,
                &[],
                &format!("failed: {}", crate::error::describe(&e).0),
            );
            Err(e)
        }
    }
}

/// The `-o json` document: printed, or carried by the `result` event of `-o jsonl`.
fn document(printer: &Printer, doc: serde_json::Value) -> anyhow::Result<()> {
    match printer.format {
        Format::Json => printer.json(&doc),
        Format::Jsonl => {
            printer.events.document(doc);
            Ok(())
        }
        Format::Human => Ok(()),
    }
}

/// On GitHub Actions, append the markdown summary of this `up` to the step summary file. A
/// file that cannot be written is a warning: the job's own result stands.
fn step_summary(settings: &Settings, rows: &[&converge::Row], result: &str) {
    let Some(path) = &settings.step_summary else {
        return;
    };
    let durations = settings.printer.events.finished();
    let text = summary::markdown(rows, &durations, result);
    if let Err(e) = crate::output::github::append_summary(path, &text) {
        settings.printer.warn(format!("{e:#}"));
    }
}

/// Say what happened — the table on stdout, or one JSON document, which is printed also when
/// some services did not come up (with the `error`; the exit code is the failure's).
fn summary_step(settings: &Settings, mut outcome: Outcome) -> anyhow::Result<()> {
    let printer = &settings.printer;
    let failure = outcome.take_failure();
    document(printer, outcome.json(failure.as_ref()))?;
    let verdict = match &failure {
        Some(e) => format!("failed: {e:#}"),
        None => format!("ok in {:.1}s", outcome.elapsed.as_secs_f64()),
    };
    step_summary(settings, &outcome.rows(), &verdict);
    if let Some(e) = failure {
        return Err(e);
    }
    if printer.format != Format::Human {
        return Ok(());
    }
    let rows = outcome.rows();
    printer.data(table(&summary::table(rows.iter().copied())))?;
    if let Some(c) = outcome.details(converge::cluster::UNIT) {
        let text = |key: &str| c.get(key).and_then(|v| v.as_str()).unwrap_or_default();
        printer.status(format!(
            "cluster: kubectl context `{}` in {}",
            text("context"),
            text("kubeconfig")
        ));
        for note in c
            .get("notes")
            .and_then(|n| n.as_array())
            .into_iter()
            .flatten()
        {
            printer.warn(note.as_str().unwrap_or_default());
        }
    }
    if outcome.unchanged() {
        printer.status(format!(
            "nothing to do: {} services up to date ({} ms)",
            rows.len(),
            outcome.elapsed.as_millis()
        ));
    } else {
        printer.status(format!(
            "{} of {} services changed, all healthy ({:.1}s)",
            outcome.units_changed(),
            rows.len(),
            outcome.elapsed.as_secs_f64()
        ));
    }
    Ok(())
}
