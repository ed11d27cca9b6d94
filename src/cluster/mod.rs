//! The cluster driver: everything devenv does to a KinD cluster, as operations over the outside
//! world that the converge pipeline and the commands call.
//!
//! - [`kind`]: the `kind` binary behind a narrow seam — finding it, checking its version, and
//!   the subcommands devenv uses (create, delete, list, kubeconfig, image loads). kind is driven
//!   through its CLI, never as a library, so any supported release works and tests can put a
//!   fake in its place (`DEVENV_KIND`).
//! - [`provision`]: downloading the pinned kind release into devenv's data directory, verified
//!   against the checksums carried here, for a machine that has only Docker.
//! - [`context_info`]: devenv's entry in the kubeconfig context of a cluster it created (its
//!   registry and mirrors), written under the kubeconfig's lock.
//! - [`crds`]: the pinned Gateway API CRD bundle: fetched, verified, cached; and what to do
//!   about the Gateway API CRDs a cluster already has.
//! - [`registry`]: wiring the registry into the nodes (containerd host files, the `kind`
//!   network), through the Docker engine.
//! - [`kube`]: the kube-rs operations inside the cluster: server-side apply, waits that explain
//!   themselves, the CoreDNS zone, the in-cluster lookup, status and log reads.
//!
//! Not for: the Kubernetes objects themselves (built, pure, in `render::cluster`), nor the
//! Docker-side operations on node containers (`docker::nodes`).

pub mod context_info;
pub mod crds;
pub mod kind;
pub mod kube;
pub mod provision;
pub mod record;
pub mod registry;

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::env;

/// The kubeconfig file devenv works with: `explicit` (`--kubeconfig`, `DEVENV_KUBECONFIG`) when
/// given, else the file kind merges a new cluster's context into when it is given no
/// `--kubeconfig` — kind's `pathForMerge` (`pkg/cluster/internal/kubeconfig/internal/kubeconfig/
/// paths.go`), which follows kubectl's rule. devenv always passes this file to kind, so the two
/// agree by construction; following kind's rule makes it also the file a user's own `kind` and
/// `kubectl` read and write. See [`merge_target`] and [`home_dir`] for the rule itself.
pub fn kubeconfig(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    let list = std::env::var_os(env::KUBECONFIG).unwrap_or_default();
    let entries: Vec<PathBuf> = std::env::split_paths(&list).collect();
    let home = home_dir(cfg!(windows), |key| std::env::var_os(key), stat);
    merge_target(&entries, home.as_deref(), |p| {
        stat(p).is_some_and(|s| !s.dir)
    })
    .ok_or_else(|| {
        let homes = if cfg!(windows) {
            format!(
                ", {}, {}+{} nor {}",
                env::HOME,
                env::HOMEDRIVE,
                env::HOMEPATH,
                env::USERPROFILE
            )
        } else {
            format!(" nor {}", env::HOME)
        };
        crate::error::Failure::environment(
            format!(
                "neither --kubeconfig, {}, {}{homes} is set: devenv cannot tell where the cluster's kubeconfig goes",
                env::KUBECONFIG_FILE,
                env::KUBECONFIG,
            ),
            Some(format!(
                "pass `--kubeconfig PATH` (or set {}), or set {}",
                env::KUBECONFIG_FILE,
                env::HOME
            )),
        )
        .into()
    })
}

/// kind's (and kubectl's) choice of the file a new context is merged into, given the entries of
/// `KUBECONFIG` as the OS splits it, the user's home directory, and whether a path is an
/// existing file (anything but a directory, as Go's `os.Stat` sees it):
///
/// - the entries are taken with empty and repeated ones dropped (kind's
///   `discardEmptyAndDuplicates`, an exact string comparison);
/// - a single entry is the file, whether it exists or not;
/// - of several, the first that exists as a file, else the last one;
/// - no entry (`KUBECONFIG` unset, empty, or only separators): `<home>/.kube/config`.
///
/// `None` only when there is no entry and no home. Where devenv departs from kind: kind joins an
/// empty home into the relative path `.kube/config`, which would put the cluster's credentials
/// in whatever directory devenv runs from; devenv refuses instead ([`kubeconfig`] says so).
pub fn merge_target(
    entries: &[PathBuf],
    home: Option<&Path>,
    is_file: impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let mut kept: Vec<&PathBuf> = Vec::new();
    for entry in entries {
        if !entry.as_os_str().is_empty() && !kept.iter().any(|k| k.as_os_str() == entry.as_os_str())
        {
            kept.push(entry);
        }
    }
    match kept.as_slice() {
        [] => home.map(|h| h.join(".kube").join("config")),
        [only] => Some((*only).clone()),
        several => Some(
            several
                .iter()
                .find(|p| is_file(p))
                .or(several.last())
                .map(|p| (*p).clone())?,
        ),
    }
}

/// What [`home_dir`] needs to know of a path that exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// It is a directory.
    pub dir: bool,
    /// Its owner may write it (Go's `Mode().Perm()&0200`; on Windows, not read-only).
    pub writable: bool,
}

/// The path's [`Stat`], following symbolic links; `None` when it cannot be read.
pub fn stat(path: &Path) -> Option<Stat> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let writable = {
        use std::os::unix::fs::PermissionsExt as _;
        meta.permissions().mode() & 0o200 != 0
    };
    #[cfg(not(unix))]
    let writable = !meta.permissions().readonly();
    Some(Stat {
        dir: meta.is_dir(),
        writable,
    })
}

/// The home directory kind puts `.kube/config` under (kind's `homeDir`, forked from client-go's
/// `homedir.HomeDir`), given how to read an environment variable and to [`stat`] a path.
///
/// Off Windows: `HOME`. On Windows, the first of these that holds:
/// 1. of `HOME`, `HOMEDRIVE`+`HOMEPATH` (both set), `USERPROFILE`: the first whose
///    `.kube\config` exists;
/// 2. of `HOME`, `USERPROFILE`, `HOMEDRIVE`+`HOMEPATH`: the first that is a writable directory;
/// 3. of those, the first that exists;
/// 4. of those, the first that is set.
///
/// Unset and empty variables count as unset; `None` when there is no home at all.
pub fn home_dir(
    windows: bool,
    var: impl Fn(&str) -> Option<OsString>,
    stat: impl Fn(&Path) -> Option<Stat>,
) -> Option<PathBuf> {
    let get = |key: &str| var(key).filter(|v| !v.is_empty());
    let home = get(env::HOME);
    if !windows {
        return home.map(PathBuf::from);
    }
    let drive_path = match (get(env::HOMEDRIVE), get(env::HOMEPATH)) {
        (Some(drive), Some(path)) => {
            let mut joined = drive;
            joined.push(&path);
            Some(joined)
        }
        _ => None,
    };
    let profile = get(env::USERPROFILE);
    let has_config = |p: &OsStr| stat(&Path::new(p).join(".kube").join("config")).is_some();
    let first = [&home, &drive_path, &profile]
        .into_iter()
        .flatten()
        .find(|p| has_config(p));
    if let Some(p) = first {
        return Some(PathBuf::from(p));
    }
    let order: Vec<&OsString> = [&home, &profile, &drive_path]
        .into_iter()
        .flatten()
        .collect();
    let stats: Vec<Option<Stat>> = order.iter().map(|p| stat(Path::new(p))).collect();
    let pick = order
        .iter()
        .zip(&stats)
        .find(|(_, s)| s.is_some_and(|s| s.dir && s.writable))
        .or_else(|| order.iter().zip(&stats).find(|(_, s)| s.is_some()))
        .map(|(p, _)| *p)
        .or(order.first().copied());
    pick.map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// [`merge_target`] over `KUBECONFIG=list` (split as on Unix) with `existing` files.
    fn target(list: &str, home: Option<&str>, existing: &[&str]) -> Option<String> {
        let entries: Vec<PathBuf> = list.split(':').map(PathBuf::from).collect();
        merge_target(&entries, home.map(Path::new), |p| {
            existing.iter().any(|e| Path::new(e) == p)
        })
        .map(|p| p.display().to_string())
    }

    #[test]
    fn without_kubeconfig_entries_the_file_is_under_home() {
        assert_eq!(
            target("", Some("/home/u"), &[]).unwrap(),
            "/home/u/.kube/config"
        );
        // Only separators and empty entries: no entry at all.
        assert_eq!(
            target(":::", Some("/home/u"), &[]).unwrap(),
            "/home/u/.kube/config"
        );
        assert_eq!(target("", None, &[]), None);
        assert_eq!(
            merge_target(&[], Some(Path::new("/h")), |_| true).unwrap(),
            Path::new("/h/.kube/config")
        );
    }

    #[test]
    fn a_single_entry_is_the_file_whether_it_exists_or_not() {
        assert_eq!(target("/a", None, &[]).unwrap(), "/a");
        assert_eq!(target("/a", Some("/home/u"), &["/a"]).unwrap(), "/a");
        // Empty entries and repeats around it leave a single entry.
        assert_eq!(target(":/a::/a:", None, &[]).unwrap(), "/a");
    }

    #[test]
    fn of_several_entries_the_first_existing_file_else_the_last() {
        assert_eq!(target("/a:/b:/c", None, &["/b", "/c"]).unwrap(), "/b");
        assert_eq!(target("/a:/b:/c", None, &["/c"]).unwrap(), "/c");
        // None exists: the last, not the first (where devenv used to differ from kind).
        assert_eq!(target("/a:/b:/c", None, &[]).unwrap(), "/c");
        // Empty entries are dropped, so a trailing separator does not make the last one empty.
        assert_eq!(target("/a:/b:", None, &[]).unwrap(), "/b");
        // A repeat keeps its first place: `/b` is the last distinct entry.
        assert_eq!(target("/a:/b:/a", None, &[]).unwrap(), "/b");
    }

    #[test]
    fn an_existing_directory_is_not_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let missing = dir.path().join("missing");
        let is_file = |p: &Path| stat(p).is_some_and(|s| !s.dir);
        assert_eq!(
            merge_target(&[sub.clone(), missing.clone()], None, is_file).unwrap(),
            missing
        );
        assert_eq!(
            merge_target(&[sub, file.clone(), missing], None, is_file).unwrap(),
            file
        );
    }

    /// A fake file system and environment for [`home_dir`].
    struct World {
        vars: HashMap<&'static str, &'static str>,
        stats: HashMap<PathBuf, Stat>,
    }

    const DIR: Stat = Stat {
        dir: true,
        writable: true,
    };
    const READ_ONLY_DIR: Stat = Stat {
        dir: true,
        writable: false,
    };
    const FILE: Stat = Stat {
        dir: false,
        writable: true,
    };

    impl World {
        fn new(vars: &[(&'static str, &'static str)]) -> World {
            World {
                vars: vars.iter().copied().collect(),
                stats: HashMap::new(),
            }
        }
        fn with(mut self, path: &str, stat: Stat) -> World {
            self.stats.insert(PathBuf::from(path), stat);
            self
        }
        fn home(&self, windows: bool) -> Option<String> {
            home_dir(
                windows,
                |k| self.vars.get(k).map(OsString::from),
                |p| self.stats.get(p).copied(),
            )
            .map(|p| p.display().to_string())
        }
    }

    #[test]
    fn off_windows_home_is_home_and_an_empty_one_is_none() {
        let w = World::new(&[("HOME", "/home/u"), ("USERPROFILE", "/p")]);
        assert_eq!(w.home(false).unwrap(), "/home/u");
        assert_eq!(
            World::new(&[("HOME", ""), ("USERPROFILE", "/p")]).home(false),
            None
        );
        assert_eq!(World::new(&[]).home(false), None);
    }

    #[test]
    fn on_windows_the_first_home_holding_a_kube_config_wins() {
        let vars = [
            ("HOME", "/h"),
            ("HOMEDRIVE", "C:"),
            ("HOMEPATH", "/hp"),
            ("USERPROFILE", "/up"),
        ];
        // HOMEDRIVE+HOMEPATH comes before USERPROFILE in this first search.
        let w = World::new(&vars)
            .with("C:/hp/.kube/config", FILE)
            .with("/up/.kube/config", FILE)
            .with("/h", DIR);
        assert_eq!(w.home(true).unwrap(), "C:/hp");
        let w = World::new(&vars)
            .with("/up/.kube/config", FILE)
            .with("/h", DIR);
        assert_eq!(w.home(true).unwrap(), "/up");
        let w = World::new(&vars).with("/h/.kube/config", FILE);
        assert_eq!(w.home(true).unwrap(), "/h");
    }

    #[test]
    fn on_windows_without_a_kube_config_the_first_writable_then_existing_then_set() {
        let vars = [
            ("HOMEDRIVE", "C:"),
            ("HOMEPATH", "/hp"),
            ("USERPROFILE", "/up"),
        ];
        // USERPROFILE comes before HOMEDRIVE+HOMEPATH from here on.
        let w = World::new(&vars).with("C:/hp", DIR).with("/up", DIR);
        assert_eq!(w.home(true).unwrap(), "/up");
        // A read-only directory gives way to a writable one.
        let w = World::new(&vars)
            .with("C:/hp", DIR)
            .with("/up", READ_ONLY_DIR);
        assert_eq!(w.home(true).unwrap(), "C:/hp");
        // None writable: the first that exists.
        let w = World::new(&vars).with("C:/hp", READ_ONLY_DIR);
        assert_eq!(w.home(true).unwrap(), "C:/hp");
        // None exists: the first that is set.
        assert_eq!(World::new(&vars).home(true).unwrap(), "/up");
        // HOMEDRIVE without HOMEPATH is not a home; empty variables are unset.
        let w = World::new(&[("HOMEDRIVE", "C:"), ("USERPROFILE", ""), ("HOME", "")]);
        assert_eq!(w.home(true), None);
        let w = World::new(&[("HOMEDRIVE", "C:"), ("HOMEPATH", "/hp")]);
        assert_eq!(w.home(true).unwrap(), "C:/hp");
    }

    #[test]
    fn an_explicit_file_is_taken_as_given() {
        assert_eq!(
            kubeconfig(Some(Path::new("/job/kubeconfig"))).unwrap(),
            Path::new("/job/kubeconfig")
        );
    }
}
