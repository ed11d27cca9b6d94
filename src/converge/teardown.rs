//! Converge in reverse, for `devenv down`: remove the environment's containers and networks;
//! its named volumes (the data) and generated secrets only with `purge`.
//!
//! Only what carries devenv's project label for this environment is touched; the shared
//! `kind` network stays (see [`removable`]). Not for: asking for
//! confirmation or taking the lock (the command does both).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use serde::Serialize;

use crate::config::KIND_NETWORK;
use crate::docker::{Engine, NetworkRemoval};
use crate::state::{self, RENDERED_DIR};

/// What [`teardown`] removed and kept.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Teardown {
    pub containers_removed: Vec<String>,
    pub networks_removed: Vec<String>,
    /// Networks devenv made that stay: the shared `kind` network (without `purge`), one that
    /// something is still attached to, or one the engine refuses to remove.
    pub networks_kept: Vec<String>,
    /// Those of `networks_kept` the engine would not let go although no container is attached,
    /// and why: its refusal ("has active endpoints": its count of their endpoints went wrong,
    /// moby/moby#43286), or endpoints of removed containers it still lists.
    pub networks_refused: BTreeMap<String, Refusal>,
    /// For each network kept because something is attached, what is attached.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub network_users: BTreeMap<String, Vec<String>>,
    pub volumes_removed: Vec<String>,
    /// The environment's volumes left in place (without `purge`).
    pub volumes_kept: Vec<String>,
    pub secrets_removed: bool,
}

impl Teardown {
    /// Whether there was nothing to remove.
    pub fn nothing(&self) -> bool {
        self.containers_removed.is_empty()
            && self.networks_removed.is_empty()
            && self.volumes_removed.is_empty()
    }
}

/// Why the engine would not let a network go although no container is attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason", content = "detail")]
pub enum Refusal {
    /// The engine refused the removal, in these words.
    Refused(String),
    /// The engine still lists endpoints (by name) of containers that no longer exist.
    StaleEndpoints(Vec<String>),
}

/// Why network `name` stays although no container is attached, and the way out, for the user.
pub fn refused_message(name: &str, why: &Refusal) -> String {
    match why {
        Refusal::Refused(said) => format!(
            "kept network {name}: the Docker engine refuses to remove it although no container is attached ({said}); when `devenv down` keeps saying so, the engine's count of its endpoints went wrong (moby/moby#43286), which restarting the engine clears; `devenv up` reuses the network meanwhile"
        ),
        Refusal::StaleEndpoints(endpoints) => format!(
            "kept network {name}: the Docker engine still lists endpoints of removed containers ({}) that a forced disconnect did not clear; restart the engine, then `devenv down` removes it",
            endpoints.join(", ")
        ),
    }
}

/// Whether `down` may remove network `name` that devenv made for the environment. The shared
/// `kind` network is KinD's as much as devenv's (devenv makes it only when it is missing, as
/// kind would): plain `down` always keeps it, whoever made it, so every run treats it the
/// same way; `--purge` removes it when devenv made it for this environment — and, like every
/// network, only when nothing is attached.
pub fn removable(name: &str, purge: bool) -> bool {
    name != KIND_NETWORK || purge
}

/// Remove what devenv made for environment `project`; with `purge` also its volumes and the
/// generated secrets and rendered files in `state_dir`.
pub async fn teardown(
    engine: &Engine,
    project: &str,
    state_dir: &Path,
    purge: bool,
) -> anyhow::Result<Teardown> {
    let observed = engine.observe().await?;
    let ours = |p: &Option<String>| p.as_deref() == Some(project);

    let containers: Vec<_> = observed
        .containers
        .iter()
        .filter(|c| ours(&c.project))
        .collect();
    // Stopped all at once (each may take its grace period), removed one at a time: Docker's
    // count of a network's endpoints can go wrong under concurrent changes to the network
    // (moby/moby#43286), leaving a network the engine refuses to remove until it restarts.
    // Fewer concurrent changes make that rarer, not impossible: it is reported when it happens.
    let stops = containers
        .iter()
        .map(|c| async move { engine.stop_container(&c.id, &c.name).await });
    for r in futures_util::future::join_all(stops).await {
        r?;
    }
    for c in &containers {
        engine.stop_and_remove(&c.id, &c.name).await?;
    }
    let mut out = Teardown {
        containers_removed: containers.iter().map(|c| c.name.clone()).collect(),
        ..Teardown::default()
    };
    for n in observed.networks.iter().filter(|n| ours(&n.project)) {
        if !removable(&n.name, purge) {
            tracing::info!("keeping network {} (shared with KinD)", n.name);
            out.networks_kept.push(n.name.clone());
            continue;
        }
        // Never while anything is attached: a KinD node, another environment's registry.
        match engine.remove_network_if_unused(&n.name).await? {
            NetworkRemoval::Removed => out.networks_removed.push(n.name.clone()),
            NetworkRemoval::Gone => {}
            NetworkRemoval::InUse(users) => {
                tracing::info!("keeping network {}: attached: {}", n.name, users.join(", "));
                out.networks_kept.push(n.name.clone());
                out.network_users.insert(n.name.clone(), users);
            }
            NetworkRemoval::Refused(said) => {
                tracing::info!("keeping network {}: the engine refuses: {said}", n.name);
                out.networks_kept.push(n.name.clone());
                out.networks_refused
                    .insert(n.name.clone(), Refusal::Refused(said));
            }
            NetworkRemoval::StaleEndpoints(endpoints) => {
                tracing::info!("keeping network {}: stale endpoints: {endpoints:?}", n.name);
                out.networks_kept.push(n.name.clone());
                out.networks_refused
                    .insert(n.name.clone(), Refusal::StaleEndpoints(endpoints));
            }
        }
    }
    let volumes: Vec<String> = observed
        .volumes
        .iter()
        .filter(|v| ours(&v.project))
        .map(|v| v.name.clone())
        .collect();
    if !purge {
        out.volumes_kept = volumes;
        return Ok(out);
    }
    for v in &volumes {
        engine.remove_volume(v).await?;
        out.volumes_removed.push(v.clone());
    }
    for path in [
        state_dir.join(state::SECRETS_FILE),
        state_dir.join(RENDERED_DIR),
        state_dir.join(crate::ci::ASSIGNMENT_FILE),
    ] {
        let result = if path.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match result {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
    }
    out.secrets_removed = true;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_keeps_the_shared_kind_network_every_time_and_purge_may_remove_it() {
        assert!(!removable(KIND_NETWORK, false));
        assert!(removable(KIND_NETWORK, true));
        assert!(removable("macula-infra", false));
        assert!(removable("macula-infra", true));
    }
}
