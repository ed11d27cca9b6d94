//! What devenv remembers of the kind cluster it created: `<state>/cluster.json`. Its presence is
//! how devenv knows a cluster of the environment's name is its own (kind's node containers carry
//! kind's labels, not devenv's), and the KinD config it holds is how `up` tells whether the
//! cluster still matches devenv.yaml.
//!
//! Not for: anything inside the cluster (that is read through the API), nor whether the cluster
//! runs (the node containers say).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The file, in the environment's state directory.
pub const FILE: &str = "cluster.json";

/// A cluster devenv created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// kind's cluster name.
    pub name: String,
    /// The kubeconfig kind merged the `kind-<name>` context into.
    pub kubeconfig: PathBuf,
    /// The KinD config (`kind/cluster.yaml`) it was created from, verbatim.
    pub kind_config: String,
}

/// The record in `state_dir`, if there is one.
pub fn load(state_dir: &Path) -> anyhow::Result<Option<Record>> {
    let path = state_dir.join(FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).with_context(|| {
            format!(
                "reading {} (delete it only if the cluster it names is gone)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Write `record` into `state_dir`, atomically.
pub fn save(state_dir: &Path, record: &Record) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(record)?;
    crate::files::write_atomic(&state_dir.join(FILE), text.as_bytes(), 0o600)
}

/// Forget the cluster (after deleting it).
pub fn remove(state_dir: &Path) -> anyhow::Result<()> {
    let path = state_dir.join(FILE);
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_record_loads_back_and_removing_it_twice_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        let r = Record {
            name: "macula".into(),
            kubeconfig: "/home/u/.kube/config".into(),
            kind_config: "kind: Cluster\n".into(),
        };
        save(dir.path(), &r).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(r));
        remove(dir.path()).unwrap();
        remove(dir.path()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
    }

    #[test]
    fn a_corrupt_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "{not json").unwrap();
        let e = format!("{:#}", load(dir.path()).unwrap_err());
        assert!(e.contains("cluster.json"), "{e}");
    }
}
