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
pub mod registry;
