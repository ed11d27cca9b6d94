//! `devenv up`: bring the platform to what devenv.yaml describes, idempotently — a script over
//! [`crate::converge::up`]: settings from the arguments, the lock, converge, the resolver in
//! the background ([`crate::dns::service`]), the summary.
//!
//! The resolver's port is checked with the rest before anything changes; the resolver starts
//! once the containers and the cluster have converged, so that a failed `up` leaves nothing new
//! running (it starts in milliseconds: nothing is gained by starting it alongside).

use std::sync::Arc;

use crate::cli::UpArgs;
use crate::config::LoadedConfig;
use crate::converge::{self, Options, Outcome, deadline, summary};
use crate::dns::{os, service};
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
            gateway_crds: args.gateway_crds,
            owner: None,
            waits_end: None,
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
    let started = tokio::time::Instant::now();
    let mut loaded = settings.load_environment(false)?;
    let force = args.force;
    if let Some(warning) = super::config::domain_warning(&loaded.config) {
        settings.printer.warn(warning);
    }
    let mut options = Options::from_arguments(args, settings, &loaded.config)?;
    options.waits_end = Some(started + options.timeout);
    let printer = &settings.printer;
    let state_dir = state::dir(&loaded.config.name)?;
    let outcome = (|| {
        let _lock = state::lock(&loaded.config.name, &state_dir, options.timeout, |m| {
            printer.status(m)
        })?;
        // Data an interrupted `snapshot restore` was replacing is neither the old nor the new.
        if let Some(journal) = crate::snapshot::journal::Journal::left(&state_dir)? {
            let (message, hint) = crate::snapshot::journal::interrupted(&journal);
            return Err(crate::error::Failure::environment(message, hint).into());
        }
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
                // The resolver's port is checked with the rest, before anything changes (and
                // after CI mode has chosen it).
                if loaded.config.dns.enabled {
                    converge::preflight::fail_on(service::preflight(&loaded, &state_dir))?;
                }
                let reporter: Arc<dyn progress::Reporter> = watch.clone();
                let outcome = converge::up(&loaded.config, &options, &state_dir, reporter).await?;
                if let Some(a) = assigned {
                    a.store(&state_dir)?;
                }
                Ok(outcome)
            }))
    })();
    match outcome {
        Ok(outcome) => summary_step(settings, outcome, &loaded, &state_dir),
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
fn summary_step(
    settings: &Settings,
    mut outcome: Outcome,
    loaded: &LoadedConfig,
    state_dir: &std::path::Path,
) -> anyhow::Result<()> {
    let printer = &settings.printer;
    let mut failure = outcome.take_failure();
    // The resolver when devenv.yaml wants it and everything else came up.
    let mut resolver = None;
    if failure.is_none() && loaded.config.dns.enabled {
        match service::ensure_running(loaded, state_dir) {
            Ok(r) => resolver = Some(r),
            Err(e) => failure = Some(e),
        }
    }
    let mut doc = outcome.json(failure.as_ref());
    doc["resolver"] = resolver.as_ref().map_or(serde_json::Value::Null, |r| {
        serde_json::json!({
            "pid": r.run.pid,
            "udp": r.run.udp,
            "tcp": r.run.tcp,
            "started": r.started,
            "restarted": r.restarted,
            "log": r.log,
        })
    });
    document(printer, doc)?;
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
    if let Some(r) = &resolver {
        report_resolver(printer, r, &loaded.config);
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

/// Where the resolver listens, and what the user may still have to do for the host to use it.
fn report_resolver(printer: &Printer, r: &service::Resolver, config: &crate::config::Config) {
    let at = format!("{}/udp and {}/tcp", r.run.udp, r.run.tcp);
    match (&r.restarted, r.started) {
        (Some(why), _) => printer.status(format!(
            "resolver: restarted ({why}): pid {} on {at}, log {}",
            r.run.pid,
            r.log.display()
        )),
        (None, true) => printer.status(format!(
            "resolver: started in the background: pid {} on {at}, log {}",
            r.run.pid,
            r.log.display()
        )),
        (None, false) => printer.status(format!("resolver: running (pid {}) on {at}", r.run.pid)),
    }
    if let Some(stale) = &r.stale {
        printer.warn(stale);
    }
    let installed = os::record_dir(&config.name)
        .ok()
        .and_then(|d| os::load_record(&d.dir));
    if installed.is_none() {
        printer.status(format!(
            "the host does not send *.{} to it yet: `sudo devenv dns install` (once; `--dry-run` shows the change)",
            config.domain
        ));
    }
}
