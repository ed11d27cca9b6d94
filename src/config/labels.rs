//! The labels devenv puts on everything it creates in Docker (containers, networks, volumes),
//! read back by the driver and written into the compose file. Nothing without
//! [`PROJECT`] is ever changed or removed.
//!
//! Not for: Kubernetes labels (the cluster's objects carry their own).

/// The environment (`config.name`) a container, network or volume belongs to.
pub const PROJECT: &str = "dev.devenv.project";
/// The service a container runs.
pub const SERVICE: &str = "dev.devenv.service";
/// The hash of the container's desired spec (`docker::spec`).
pub const SPEC_HASH: &str = "dev.devenv.spec-hash";
/// On a network shared with other tools (`kind`): devenv created it.
pub const SHARED: &str = "dev.devenv.shared";
/// Who made it: the devenv.yaml (absolute path, or `built-in defaults`) of the environment.
pub const OWNER_CONFIG: &str = "dev.devenv.owner.config";
/// Who made it: the state directory (absolute path) of the environment.
pub const OWNER_STATE: &str = "dev.devenv.owner.state";
