//! `devenv up`: bring the platform to what devenv.yaml describes, idempotently — a script over
//! [`crate::converge::up`]: settings from the arguments, the lock, converge, the summary.

use std::sync::Arc;

use crate::cli::UpArgs;
use crate::converge::{self, Options, Outcome, deadline, summary};
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
            timeout: args.timeout,
            pull: args.pull.into(),
            kubeconfig: settings.kubeconfig(config)?,
            recreate: args.recreate,
            install_kind: args.install_kind || (kind && ask_to_install_kind(settings)),
            owner: None,
        })
    }
}

/// On a terminal, when no usable kind is found and installing one would help, ask whether to
/// install the pinned release; never elsewhere (CI passes `--install-kind`).
fn ask_to_install_kind(settings: &Settings) -> bool {
    if !super::interactive() {
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
    let started = tokio::time::Instant::now();
    let mut loaded = settings.load_environment(false)?;
    let force = args.force;
    let mut options = Options::from_arguments(args, settings, &loaded.config)?;
    let printer = &settings.printer;
    let outcome = (|| {
        let state_dir = state::dir(&loaded.config.name)?;
        let _lock = state::lock(&loaded.config.name, &state_dir, options.timeout, |m| {
            printer.status(m)
        })?;
        let owner = state::Owner::new(loaded.path.as_deref(), &state_dir);
        settings.confirm_owner(&loaded.config.name, &owner, false, force)?;
        options.owner = Some(owner);
        let watch = deadline::Watch::new(progress::reporter(printer));
        // The deadline counts from the start, the wait for the lock included; the waits
        // inside get `--timeout` each and report first (with the service's last log lines).
        let limit = options.timeout + deadline::REPORTING;
        settings
            .runtime
            .block_on(deadline::within(started + limit, limit, &watch, async {
                let assigned = settings.assign(&mut loaded).await?;
                let reporter: Arc<dyn progress::Reporter> = watch.clone();
                let outcome = converge::up(&loaded.config, &options, &state_dir, reporter).await?;
                if let Some(a) = assigned {
                    a.store(&state_dir)?;
                }
                Ok(outcome)
            }))
    })();
    match outcome {
        Ok(outcome) => summary_step(printer, outcome),
        Err(e) => {
            // `--output json` promises one document on every path, also when up stopped
            // before the summary (the lock, preflight, a missing engine); the exit code stays
            // the failure's.
            if printer.format == Format::Json {
                printer.json(&converge::stopped_json(&e))?;
            }
            Err(e)
        }
    }
}

/// Say what happened — the table on stdout, or one JSON document, which is printed also when
/// some services did not come up (with the `error`; the exit code is the failure's).
fn summary_step(printer: &Printer, mut outcome: Outcome) -> anyhow::Result<()> {
    let failure = outcome.take_failure();
    if printer.format == Format::Json {
        printer.json(&outcome.json(failure.as_ref()))?;
    }
    if let Some(e) = failure {
        return Err(e);
    }
    if printer.format == Format::Json {
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
