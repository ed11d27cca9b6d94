//! Files on disk: replacing one atomically, writing a set of rendered artifacts under a
//! directory (untouched where already right), and comparing a directory with what the
//! renderers produce (changed, missing, and stale files devenv no longer renders).
//!
//! Not for: deciding what the files contain (that is `render`) or where devenv keeps its own
//! state (that is `state`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::render::Artifact;

/// Write `contents` to `path` through a temporary file in the same directory and a rename, so
/// that a reader never sees half a file and a crash leaves the old file whole. `mode` applies
/// on Unix (e.g. `0o600` for secrets).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".devenv-")
        .tempfile_in(parent)
        .with_context(|| format!("creating a temporary file in {}", parent.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| {
                format!(
                    "setting the mode of a temporary file in {}",
                    parent.display()
                )
            })?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// What writing artifacts into a directory changed.
#[derive(Debug, Default)]
pub struct Written {
    pub created: Vec<PathBuf>,
    pub updated: Vec<PathBuf>,
    pub unchanged: Vec<PathBuf>,
}

/// Write every artifact under `root`, all or nothing: files whose contents are already right
/// are not touched; the others are first written in full into a staging directory inside
/// `root`, and only when every one of them was written, and every directory they go into
/// exists, are they renamed into place, one by one (each rename atomic). A failure before
/// that (a file name too long, a full disk, a file where a directory must be) leaves every
/// file under `root` as it was (a directory may have been added).
pub fn write_all(root: &Path, artifacts: &[Artifact]) -> anyhow::Result<Written> {
    let mut written = Written::default();
    let mut changes = Vec::new();
    for a in artifacts {
        match std::fs::read(root.join(&a.path)) {
            Ok(old) if old == a.contents.as_bytes() => written.unchanged.push(a.path.clone()),
            Ok(_) => {
                written.updated.push(a.path.clone());
                changes.push(a);
            }
            Err(_) => {
                written.created.push(a.path.clone());
                changes.push(a);
            }
        }
    }
    if changes.is_empty() {
        return Ok(written);
    }
    let made_root = !root.is_dir();
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let staged = stage(root, &changes);
    let stage = match staged {
        Ok(stage) => stage,
        Err(e) => {
            if made_root {
                let _ = std::fs::remove_dir(root);
            }
            return Err(e);
        }
    };
    // Every place a file goes is made ready before the first one moves: a file standing
    // where a directory must be, or a directory where a file must be, stops here.
    for a in &changes {
        let to = root.join(&a.path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        if to.is_dir() {
            anyhow::bail!(
                "{} is a directory; devenv writes a file there",
                to.display()
            );
        }
    }
    for a in changes {
        let to = root.join(&a.path);
        std::fs::rename(stage.path().join(&a.path), &to)
            .with_context(|| format!("renaming into {}", to.display()))?;
    }
    Ok(written)
}

/// Write `artifacts` into a new staging directory inside `root` (removed when dropped).
fn stage(root: &Path, artifacts: &[&Artifact]) -> anyhow::Result<tempfile::TempDir> {
    let stage = tempfile::Builder::new()
        .prefix(".devenv-staging-")
        .tempdir_in(root)
        .with_context(|| format!("creating a staging directory in {}", root.display()))?;
    for a in artifacts {
        let path = stage.path().join(&a.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", root.join(&a.path).display()))?;
        }
        let mut file = std::fs::File::create(&path)
            .with_context(|| format!("writing {}", root.join(&a.path).display()))?;
        file.write_all(a.contents.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("writing {}", root.join(&a.path).display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o644))
                .with_context(|| format!("setting the mode of {}", path.display()))?;
        }
    }
    Ok(stage)
}

/// How one file under the output directory differs from the rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// The renderers produce it; it is not on disk.
    Missing,
    /// On disk with other contents: a line diff (`-` on disk, `+` rendered).
    Changed(String),
    /// On disk under a rendered directory (`kind/`, `compose/`), but no renderer produces it
    /// any more (a service was switched off, a file renamed).
    Stale,
}

/// How the files under `root` differ from `artifacts`: one entry per rendered path that is
/// missing or different, then one per stale file under the directories the artifacts live in
/// (their first path component), sorted by path.
pub fn check(root: &Path, artifacts: &[Artifact]) -> anyhow::Result<Vec<(PathBuf, Drift)>> {
    let mut out = Vec::new();
    for a in artifacts {
        match std::fs::read_to_string(root.join(&a.path)) {
            Ok(old) if old == a.contents => {}
            Ok(old) => out.push((a.path.clone(), Drift::Changed(line_diff(&old, &a.contents)))),
            Err(_) => out.push((a.path.clone(), Drift::Missing)),
        }
    }
    let rendered: BTreeSet<&Path> = artifacts.iter().map(|a| a.path.as_path()).collect();
    let dirs: BTreeSet<PathBuf> = artifacts
        .iter()
        .filter_map(|a| a.path.components().next())
        .map(|c| PathBuf::from(c.as_os_str()))
        .filter(|d| rendered.iter().all(|r| *r != d.as_path()))
        .collect();
    let mut stale = Vec::new();
    for dir in dirs {
        files_under(root, &dir, &mut stale)?;
    }
    stale.retain(|p| !rendered.contains(p.as_path()));
    stale.sort();
    out.extend(stale.into_iter().map(|p| (p, Drift::Stale)));
    Ok(out)
}

/// Every file under `root/dir`, as paths relative to `root`; nothing when `dir` is absent.
fn files_under(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let full = root.join(dir);
    let entries = match std::fs::read_dir(&full) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("listing {}", full.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("listing {}", full.display()))?;
        let relative = dir.join(entry.file_name());
        let kind = entry
            .file_type()
            .with_context(|| format!("looking at {}", entry.path().display()))?;
        if kind.is_dir() {
            files_under(root, &relative, out)?;
        } else {
            out.push(relative);
        }
    }
    Ok(())
}

/// A small line diff: `-` lines only in `old`, `+` lines only in `new`, in order, by longest
/// common subsequence (the files are short).
pub fn line_diff(old: &str, new: &str) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = String::new();
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push_str(&format!("-{}\n", a[i]));
            i += 1;
        } else {
            out.push_str(&format!("+{}\n", b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_whole_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/file.txt");
        write_atomic(&path, b"one", 0o644).unwrap();
        write_atomic(&path, b"two", 0o644).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "two");
        let leftovers = std::fs::read_dir(dir.path().join("sub")).unwrap().count();
        assert_eq!(leftovers, 1);
    }

    #[test]
    fn line_diff_shows_changed_lines() {
        assert_eq!(line_diff("a\nb\nc\n", "a\nx\nc\n"), "-b\n+x\n");
        assert_eq!(line_diff("a\n", "a\n"), "");
    }

    #[test]
    fn check_finds_changed_missing_and_stale_files_only_under_rendered_directories() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = [
            Artifact::new("compose/a.yaml", "a\n"),
            Artifact::new("compose/sub/b.yaml", "b\n"),
            Artifact::new("kind/c.yaml", "c\n"),
        ];
        write_all(dir.path(), &artifacts).unwrap();
        assert_eq!(check(dir.path(), &artifacts).unwrap(), []);

        std::fs::write(dir.path().join("compose/a.yaml"), "x\n").unwrap();
        std::fs::remove_file(dir.path().join("kind/c.yaml")).unwrap();
        std::fs::write(dir.path().join("compose/sub/old.yaml"), "old\n").unwrap();
        std::fs::create_dir_all(dir.path().join("kind/manifests")).unwrap();
        std::fs::write(dir.path().join("kind/manifests/gone.yaml"), "").unwrap();
        // Outside the rendered directories: not devenv's business.
        std::fs::write(dir.path().join("README.md"), "mine\n").unwrap();
        std::fs::create_dir_all(dir.path().join("other")).unwrap();
        std::fs::write(dir.path().join("other/x"), "mine\n").unwrap();

        assert_eq!(
            check(dir.path(), &artifacts).unwrap(),
            [
                (
                    PathBuf::from("compose/a.yaml"),
                    Drift::Changed("-x\n+a\n".into())
                ),
                (PathBuf::from("kind/c.yaml"), Drift::Missing),
                (PathBuf::from("compose/sub/old.yaml"), Drift::Stale),
                (PathBuf::from("kind/manifests/gone.yaml"), Drift::Stale),
            ]
        );
    }
}
