//! The cluster driver: everything devenv does to a KinD cluster, as operations over the outside
//! world that the converge pipeline and the commands call.
//!
//! - [`kind`]: the `kind` binary behind a narrow seam — finding it, checking its version, and
//!   the subcommands devenv uses (create, delete, list, kubeconfig, image loads). kind is driven
//!   through its CLI, never as a library, so any supported release works and tests can put a
//!   fake in its place (`DEVENV_KIND`).
//! - [`provision`]: downloading the pinned kind release into devenv's data directory, verified
//!   against the checksums carried here, for a machine that has only Docker.
//! - [`registry`]: wiring the registry into the nodes (containerd host files, the `kind`
//!   network), through the Docker engine.
//! - [`kube`]: the kube-rs operations inside the cluster: server-side apply, waits that explain
//!   themselves, the CoreDNS zone, the in-cluster lookup, status and log reads.
//!
//! Not for: the Kubernetes objects themselves (built, pure, in `render::cluster`), nor the
//! Docker-side operations on node containers (`docker::nodes`).

pub mod kind;
pub mod kube;
pub mod provision;
pub mod record;
pub mod registry;

use std::path::{Path, PathBuf};

use crate::env;

/// The kubeconfig file devenv works with: `explicit` (`--kubeconfig`, `DEVENV_KUBECONFIG`) when
/// given, else the file kind merges a new cluster's context into — the first existing file of
/// `KUBECONFIG` (its first entry when none exists yet), else `~/.kube/config`.
pub fn kubeconfig(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let list = std::env::var_os(env::KUBECONFIG).unwrap_or_default();
    let paths: Vec<PathBuf> = std::env::split_paths(&list)
        .filter(|p| !p.as_os_str().is_empty())
        .collect();
    if let Some(p) = paths.iter().find(|p| p.is_file()).or(paths.first()) {
        return Ok(p.clone());
    }
    match std::env::var_os(env::HOME).filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".kube").join("config")),
        None => anyhow::bail!(
            "neither --kubeconfig, {}, {} nor {} is set: cannot place the kubeconfig",
            env::KUBECONFIG_FILE,
            env::KUBECONFIG,
            env::HOME
        ),
    }
}
