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
/// On a container made only to read or write a volume for a snapshot (never started): the
/// volume's name.
pub const CARRIER: &str = "dev.devenv.carrier";
/// On a volume that holds the data of another from before a `snapshot restore` began: the
/// other's name. It is put back when the restore fails, removed when it succeeds.
pub const RESTORE_OF: &str = "dev.devenv.restore-of";
/// The suffix of that volume's name (after the name of the volume it keeps the data of); no
/// volume of a service may end in it.
pub const BEFORE_RESTORE_SUFFIX: &str = "-before-restore";
/// Who made it: the devenv.yaml (absolute path, or `built-in defaults`) of the environment.
pub const OWNER_CONFIG: &str = "dev.devenv.owner.config";
/// Who made it: the state directory (absolute path) of the environment.
pub const OWNER_STATE: &str = "dev.devenv.owner.state";
