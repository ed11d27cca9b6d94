//! `devenv down [--purge]`: stop the cluster's nodes and remove devenv's containers and network;
//! the cluster and named volumes stay so workloads and data survive, unless `--purge`, which
//! also deletes the cluster, the volumes, the generated secrets and the local CA.
//!
//! Only what carries devenv's project label for this environment is touched, and only the
//! resolver `up` started in the background is stopped (never one run in a terminal or by the
//! login service). A script over [`crate::converge::teardown`] and
//! [`crate::dns::service::stop`]: confirmation, the lock, teardown, the report.

use std::time::Duration;

use crate::cli::DownArgs;
use crate::converge;
use crate::dns::service::{self, Stopped};
use crate::docker::Engine;
use crate::error::Failure;
use crate::output::Format;
use crate::output::events::Kind;
use crate::snapshot::Store;
use crate::state;

use super::Settings;

/// How long `down` waits for a running `up` on the same environment.
const LOCK_TIMEOUT: Duration = Duration::from_secs(300);

/// `down`'s settings, from its arguments.
struct Down {
    /// Also remove volumes and generated secrets.
    purge: bool,
    /// The purge was confirmed on the command line (`--yes`).
    confirmed: bool,
    /// Also delete the snapshots (`--snapshots`); a terminal is asked otherwise.
    snapshots: bool,
    /// Act on another owner's environment without asking.
    force: bool,
}

impl Down {
    fn from_arguments(args: DownArgs) -> Down {
        Down {
            purge: args.purge,
            confirmed: args.yes,
            snapshots: args.snapshots,
            force: args.force,
        }
    }
}

pub fn run(settings: &Settings, args: DownArgs) -> anyhow::Result<()> {
    let down = Down::from_arguments(args);
    let loaded = settings.load_environment(false)?;
    let config = &loaded.config;
    let p = &settings.printer;
    if down.purge && !down.confirmed {
        confirm_purge(settings, &config.name)?;
    }
    let state_dir = state::dir(&config.name)?;
    // Snapshots are data too: deleted only when asked for, never silently (and asked before
    // anything is removed).
    let snapshots = Store::new(&state_dir, None);
    let saved = if down.purge {
        snapshots.list()?
    } else {
        Vec::new()
    };
    let delete_snapshots = !saved.is_empty()
        && (down.snapshots || (settings.interactive() && confirm_snapshots(&snapshots, &saved)?));
    let _lock = state::lock(&config.name, &state_dir, LOCK_TIMEOUT, |m| p.status(m))?;
    let owner = state::Owner::new(loaded.path.as_deref(), &state_dir);
    settings.confirm_owner(&config.name, &owner, down.purge, down.force)?;
    // Stopped first: it needs no engine, and answers for containers about to go are no use.
    let resolver = service::stop(&state_dir)?;
    let (done, cluster) = settings.runtime.block_on(async {
        let engine = Engine::connect().await?;
        let span = p.events.start(Kind::Step, "cluster");
        let cluster = converge::cluster::down(&engine, config, &state_dir, down.purge).await;
        let cluster = span.end(cluster)?;
        let span = p.events.start(Kind::Step, "teardown");
        let done = converge::teardown(&engine, &config.name, &state_dir, down.purge).await;
        anyhow::Ok((span.end(done)?, cluster))
    })?;
    let mut snapshots_removed = Vec::new();
    if delete_snapshots {
        for s in &saved {
            snapshots.remove(&s.name)?;
            snapshots_removed.push(s.name.clone());
        }
    }
    let snapshots_kept: Vec<String> = saved
        .iter()
        .map(|s| s.name.clone())
        .filter(|n| !snapshots_removed.contains(n))
        .collect();
    if p.format != Format::Human {
        let mut doc = serde_json::to_value(&done)?;
        doc["snapshots_removed"] = serde_json::to_value(&snapshots_removed)?;
        doc["snapshots_kept"] = serde_json::to_value(&snapshots_kept)?;
        doc["cluster"] = serde_json::to_value(&cluster)?;
        doc["resolver_stopped"] = match resolver {
            Stopped::Stopped(pid) => pid.into(),
            _ => serde_json::Value::Null,
        };
        if p.format == Format::Jsonl {
            p.events.document(doc);
            return Ok(());
        }
        return p.json(&doc);
    }
    match resolver {
        Stopped::Stopped(pid) => p.step("stopped", format!("resolver (pid {pid})")),
        Stopped::NotOurs(pid) => p.status(format!(
            "left the resolver running (pid {pid}): `devenv up` did not start it"
        )),
        Stopped::NotRunning => {}
    }
    if !cluster.nodes_stopped.is_empty() {
        p.step(
            "stopped",
            format!(
                "cluster `{}` ({} nodes; `devenv up` starts it again with its workloads)",
                config.name,
                cluster.nodes_stopped.len()
            ),
        );
    }
    if let Some(name) = &cluster.deleted {
        p.step("deleted", format!("cluster `{name}`"));
    }
    if let Some(why) = &cluster.left_alone {
        p.status(format!("cluster left alone: {why}"));
    }
    for n in &done.containers_removed {
        p.step("removed", format!("container {n}"));
    }
    for n in &done.networks_removed {
        p.step("removed", format!("network {n}"));
    }
    for n in &done.networks_kept {
        if let Some(why) = done.networks_refused.get(n) {
            p.status(converge::teardown::refused_message(n, why));
        } else if n == crate::config::KIND_NETWORK && !down.purge {
            p.status(format!("kept network {n}: shared with KinD"));
        } else {
            match done.network_users.get(n).filter(|u| !u.is_empty()) {
                Some(users) => p.status(format!(
                    "kept network {n}: still in use by {}",
                    users.join(", ")
                )),
                None => p.status(format!("kept network {n}: still in use")),
            }
        }
    }
    for v in &done.volumes_removed {
        p.step("removed", format!("volume {v}"));
    }
    if done.secrets_removed {
        p.step("removed", "generated secrets");
    } else if !done.volumes_kept.is_empty() {
        p.status(format!(
            "kept {} volumes with your data (`devenv down --purge` removes them)",
            done.volumes_kept.len()
        ));
    }
    for n in &snapshots_removed {
        p.step("removed", format!("snapshot `{n}`"));
    }
    if !snapshots_kept.is_empty() {
        p.status(format!(
            "kept {} snapshot{} in {} ({}): `devenv snapshot restore NAME` brings the data back, `devenv snapshot rm NAME` deletes one, `down --purge --snapshots` all",
            snapshots_kept.len(),
            if snapshots_kept.len() == 1 { "" } else { "s" },
            snapshots.dir.display(),
            snapshots_kept.join(", ")
        ));
    }
    if done.nothing()
        && cluster.nodes_stopped.is_empty()
        && cluster.deleted.is_none()
        && !matches!(resolver, Stopped::Stopped(_))
    {
        p.status(format!("nothing of `{}` was running", config.name));
    }
    Ok(())
}

/// On a terminal, whether the snapshots go too (the default: they stay).
fn confirm_snapshots(store: &Store, saved: &[crate::snapshot::Listed]) -> anyhow::Result<bool> {
    let stored: u64 = saved
        .iter()
        .filter_map(|s| s.manifest.as_ref())
        .map(|m| m.stored())
        .sum();
    super::confirm(
        &format!(
            "Also delete the {} snapshots in {} ({})? They may be the only copy of the data",
            saved.len(),
            store.dir.display(),
            crate::snapshot::save::size(stored)
        ),
        false,
    )
}

/// Ask before deleting data: on a terminal, a prompt; elsewhere (CI, scripts) only `--yes`.
fn confirm_purge(settings: &Settings, name: &str) -> anyhow::Result<()> {
    let hint = "pass --yes to purge without asking".to_string();
    if !settings.interactive() {
        return Err(Failure::bad_input(
            "--purge deletes the cluster devenv created, every volume of the environment, its secrets and its CA, and needs confirmation",
            hint,
        )
        .into());
    }
    let prompt = format!(
        "Delete the cluster, all data volumes, the generated secrets and the CA of `{name}`?"
    );
    if super::confirm(&prompt, false)? {
        Ok(())
    } else {
        Err(Failure::bad_input("purge cancelled; nothing was removed", None).into())
    }
}
