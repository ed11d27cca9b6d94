//! The Docker driver's model of what the engine holds, as far as devenv cares: containers,
//! networks and named volumes with devenv's labels read out. The driver fills it in
//! ([`super::Engine::observe`]); the pure planner (`plan`) and the preflight checks take it as
//! input.
//!
//! Not for: bollard's own types (they stay inside the driver) or deciding anything.

use std::net::IpAddr;

use serde::Serialize;

use crate::config::Protocol;

/// The life-cycle state of a container, as Docker reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    Created,
    Running,
    Restarting,
    Paused,
    Exited,
    Dead,
    Removing,
    Unknown,
}

/// A container the engine holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub id: String,
    /// Without Docker's leading `/`.
    pub name: String,
    /// The `dev.devenv.project` label, when devenv made it.
    pub project: Option<String>,
    /// The `dev.devenv.service` label.
    pub service: Option<String>,
    /// The `dev.devenv.spec-hash` label.
    pub spec_hash: Option<String>,
    pub image_id: Option<String>,
    pub state: RunState,
    /// Names of the networks it is attached to.
    pub networks: Vec<String>,
    /// Host binds it publishes while running.
    pub published: Vec<(IpAddr, u16, Protocol)>,
    /// Docker reports it healthy (for the applier; the plan does not look at health).
    pub healthy: bool,
}

/// A network the engine holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedNetwork {
    pub name: String,
    /// The `dev.devenv.project` label, when devenv made it.
    pub project: Option<String>,
    pub subnets: Vec<String>,
}

/// A named volume the engine holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedVolume {
    pub name: String,
    pub project: Option<String>,
}

/// What the engine holds, as far as devenv cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub containers: Vec<ObservedContainer>,
    pub networks: Vec<ObservedNetwork>,
    pub volumes: Vec<ObservedVolume>,
}
