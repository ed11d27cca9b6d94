//! `devenv ci [--keep] [--timeout D] -- CMD [ARGS…]`: a throwaway environment around one
//! command. Brings the environment of this job up (the same pipeline as `up`, in CI mode),
//! runs CMD with its coordinates ([`crate::ci::coordinates`]), and always removes it as
//! `down --purge --yes` would: on success, failure, SIGINT/SIGTERM (passed on to CMD, or
//! stopping `up`) and timeout. A script over [`crate::converge::up`], [`crate::ci::command`]
//! and [`crate::ci::remove`].

use std::sync::Arc;

use tokio::time::Instant;

use crate::ci::{self, command::Ended, command::Signals};
use crate::cli::CiArgs;
use crate::converge::{self, Options, deadline, summary};
use crate::dns;
use crate::docker::Engine;
use crate::error::PassedOn;
use crate::output::{Printer, progress, table};
use crate::state;

use super::Settings;

/// How long each of `up`'s waits (health, nodes, rollouts) may take inside `devenv ci`.
const UP_WAITS: std::time::Duration = std::time::Duration::from_secs(300);

/// Why `up` did not get to CMD.
enum Stopped {
    Failed(anyhow::Error),
    Signal(i32),
}

pub fn run(settings: &Settings, args: CiArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let until = started + args.timeout;
    let settings = Settings {
        ci: true,
        ..settings.clone()
    };
    let mut loaded = settings.load_environment(true)?;
    let name = loaded.config.name.clone();
    let state_dir = state::dir(&name)?;
    let made_dir = !state_dir.exists();
    let owner = state::Owner::new(loaded.path.as_deref(), &state_dir);
    settings.confirm_owner(&name, &owner, false, false)?;
    let options = Options {
        // Each wait as long as `up`'s default, so that a service that never gets healthy is
        // named with its logs instead of holding the job to the end of --timeout.
        timeout: args.timeout.min(UP_WAITS),
        kubeconfig: settings.kubeconfig(&loaded.config)?,
        install_kind: args.install_kind,
        gateway_crds: args.gateway_crds,
        owner: Some(owner),
        waits_end: Some(until.checked_sub(deadline::REPORTING).unwrap_or(until)),
        ..Options::default()
    };
    let keep = args.keep.then(|| {
        remove_command(
            loaded.path.as_deref(),
            &name,
            made_dir.then_some(&*state_dir),
        )
    });
    let keep = keep.as_deref();
    let p = &settings.printer;
    p.status(format!(
        "environment `{name}` (state in {})",
        state_dir.display()
    ));
    settings.runtime.block_on(async {
        let mut signals = Signals::catch()?;
        let watch = deadline::Watch::new(progress::reporter(p));
        let up = async {
            let _lock = state::lock(&name, &state_dir, args.timeout, |m| p.status(m))?;
            if let Some(assigned) = settings.assign(&mut loaded).await? {
                assigned.store(&state_dir)?;
            }
            if loaded.config.dns.enabled {
                converge::preflight::fail_on(dns::service::preflight(&loaded, &state_dir))?;
            }
            let reporter: Arc<dyn progress::Reporter> = watch.clone();
            let mut outcome = converge::up(&loaded.config, &options, &state_dir, reporter).await?;
            if let Some(e) = outcome.take_failure() {
                return Err(e);
            }
            // The resolver on the job's own port (DEVENV_DNS), as `up` starts it.
            if loaded.config.dns.enabled {
                let resolver = dns::service::ensure_running(&loaded, &state_dir)?;
                p.step(
                    "resolving",
                    format!("*.{} on {}", loaded.config.domain, resolver.run.udp),
                );
            }
            Ok(outcome)
        };
        let up = tokio::select! {
            r = deadline::within(until, args.timeout, &watch, up) => r.map_err(Stopped::Failed),
            sig = signals.next() => Err(Stopped::Signal(sig)),
        };
        let config = &loaded.config;
        let outcome = match up {
            Ok(outcome) => outcome,
            Err(stopped) => {
                if let Stopped::Signal(sig) = stopped {
                    p.status(format!("signal {sig} while bringing `{name}` up"));
                }
                finish(p, config, &state_dir, made_dir, keep).await?;
                return Err(match stopped {
                    Stopped::Failed(e) => e,
                    Stopped::Signal(sig) => PassedOn(128 + sig).into(),
                });
            }
        };
        let rows = outcome.rows();
        p.status(table(&summary::table(rows.iter().copied())));
        let vars = ci::coordinates::coordinates(config, &state_dir, &options.kubeconfig);
        for (k, v) in &vars {
            p.status(format!("  {k}={v}"));
        }
        let shown = args
            .command
            .iter()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ");
        p.step("running", &shown);
        let finished = ci::command::run(&args.command, &vars, until, &mut signals).await;
        finish(p, config, &state_dir, made_dir, keep).await?;
        let finished = finished?;
        if finished.timed_out {
            return Err(deadline::expired(args.timeout, &format!("`{shown}`")));
        }
        match finished.ended {
            Ended::Exited(0) => Ok(()),
            Ended::Exited(code) => Err(PassedOn(code).into()),
            Ended::NotStarted(code, why) => {
                p.error(why, Some("check the command after `--` and PATH"));
                Err(PassedOn(code).into())
            }
        }
    })
}

/// The command that removes environment `name` of devenv.yaml `config` (`None`: the
/// defaults) later, as a shell takes it: `down --purge`, then, when the job made it, the
/// state directory `made` (the job's kubeconfig, the gateway's live files, the lock), as the
/// teardown without `--keep` removes it.
fn remove_command(
    config: Option<&std::path::Path>,
    name: &str,
    made: Option<&std::path::Path>,
) -> String {
    let quote = |s: &str| {
        if s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@".contains(c))
        {
            s.to_string()
        } else {
            format!("'{}'", s.replace('\'', "'\\''"))
        }
    };
    let mut words = Vec::new();
    // A state directory given by the environment must be given again.
    if let Some(dir) = std::env::var_os(crate::env::STATE_DIR).filter(|d| !d.is_empty()) {
        words.push(format!(
            "{}={}",
            crate::env::STATE_DIR,
            quote(&dir.to_string_lossy())
        ));
    }
    words.push("devenv".to_string());
    if let Some(path) = config {
        let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        words.push("--config".into());
        words.push(quote(&path.display().to_string()));
    }
    words.extend([
        "--name".into(),
        quote(name),
        "down".into(),
        "--purge".into(),
        "--yes".into(),
    ]);
    if let Some(dir) = made {
        words.extend([
            "&&".into(),
            "rm".into(),
            "-rf".into(),
            "--".into(),
            quote(&dir.display().to_string()),
        ]);
    }
    words.join(" ")
}

/// Tear the environment down (or, with `keep`, print `keep`: the command that does), reporting
/// what was removed.
async fn finish(
    p: &Printer,
    config: &crate::config::Config,
    state_dir: &std::path::Path,
    made_dir: bool,
    keep: Option<&str>,
) -> anyhow::Result<()> {
    if let Some(remove) = keep {
        p.status(format!("kept `{}`; remove it with: {remove}", config.name));
        return Ok(());
    }
    let _lock = state::lock(
        &config.name,
        state_dir,
        std::time::Duration::from_secs(300),
        |m| p.status(m),
    )?;
    dns::service::stop(state_dir)?;
    let engine = Engine::connect().await?;
    let removed = ci::remove(&engine, config, state_dir, made_dir).await?;
    p.step(
        "removed",
        format!(
            "`{}`: {} containers, {} networks, {} volumes{}{}",
            config.name,
            removed.containers,
            removed.networks,
            removed.volumes,
            removed
                .cluster
                .map(|c| format!(", cluster {c}"))
                .unwrap_or_default(),
            if removed.state_dir {
                ", its state directory"
            } else {
                ""
            }
        ),
    );
    for (n, why) in &removed.networks_refused {
        p.status(crate::converge::teardown::refused_message(n, why));
    }
    Ok(())
}
