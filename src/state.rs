//! devenv's state directory: where generated secrets and rendered configs live, how files
//! are written there (atomically, with the right mode), and the lock that keeps two runs on
//! one environment apart.
//!
//! Not for: anything in the user's project directory except through [`write_atomic`].

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::Rng;

use crate::config::SecretName;
use crate::env;
use crate::error::Failure;

/// Directory under the state directory that holds the rendered artifacts.
pub const RENDERED_DIR: &str = "rendered";
/// The lock file that keeps two `up`/`down` runs on one environment apart.
const LOCK_FILE: &str = "lock";
/// How often a waiting run looks at the lock again.
const LOCK_POLL: Duration = Duration::from_millis(200);

/// The state directory of environment `name`.
pub fn dir(name: &str) -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(env::STATE_DIR).filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let base = match std::env::var_os(env::XDG_STATE_HOME).filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => match std::env::var_os(env::HOME).filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".local").join("state"),
            None => bail!(
                "neither {} nor {} nor {} is set: cannot place the state directory",
                env::STATE_DIR,
                env::XDG_STATE_HOME,
                env::HOME
            ),
        },
    };
    Ok(base.join("devenv").join(name))
}

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

/// The generated secrets of one environment. Debug and Display never show the values.
pub struct Secrets {
    values: BTreeMap<SecretName, String>,
    path: PathBuf,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("path", &self.path)
            .field("count", &self.values.len())
            .finish_non_exhaustive()
    }
}

/// File name of the secrets env file inside the state directory.
pub const SECRETS_FILE: &str = "secrets.env";

impl Secrets {
    /// Read the secrets of the state directory `dir`, generating (and storing, mode 0600) any
    /// that are missing. Existing values are never changed.
    pub fn load_or_generate(dir: &Path) -> anyhow::Result<Secrets> {
        let path = dir.join(SECRETS_FILE);
        let mut values = BTreeMap::new();
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                for line in text.lines() {
                    let Some((k, v)) = line.split_once('=') else {
                        continue;
                    };
                    if let Some(name) = SecretName::ALL.iter().find(|s| s.var() == k.trim()) {
                        values.insert(*name, v.trim().to_string());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
        let missing: Vec<_> = SecretName::ALL
            .iter()
            .filter(|s| !values.contains_key(s))
            .copied()
            .collect();
        if !missing.is_empty() {
            for name in missing {
                values.insert(name, generate());
            }
            let secrets = Secrets { values, path };
            write_atomic(&secrets.path, secrets.env_file().as_bytes(), 0o600)?;
            return Ok(secrets);
        }
        Ok(Secrets { values, path })
    }

    /// The value of one secret.
    pub fn get(&self, name: SecretName) -> &str {
        self.values
            .get(&name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// Where the secrets are stored.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The env-file text (`VAR=value` lines), for the file itself only.
    fn env_file(&self) -> String {
        let mut out = String::from("# Generated by devenv. Secret: do not commit or share.\n");
        for (name, value) in &self.values {
            out.push_str(&format!("{}={value}\n", name.var()));
        }
        out
    }
}

/// The lock of one environment's state directory, held until dropped. The OS releases it when
/// the holder exits, however it exits (SIGKILL included).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Take the lock of environment `name`'s state directory `state_dir` (created if missing).
/// While another run holds it, `waiting` is called once with a sentence naming the holder, and
/// the lock is tried again until `timeout`; then this fails (exit 3) naming the holder.
///
/// Blocking: call it before entering the async runtime.
pub fn lock(
    name: &str,
    state_dir: &Path,
    timeout: Duration,
    waiting: impl FnOnce(String),
) -> anyhow::Result<Lock> {
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating the state directory {}", state_dir.display()))?;
    let path = state_dir.join(LOCK_FILE);
    let mut file = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening the lock file {}", path.display()))?;
    let deadline = Instant::now() + timeout;
    let mut waiting = Some(waiting);
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) => {}
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("locking {}", path.display()));
            }
        }
        let holder = holder(&mut file);
        if Instant::now() >= deadline {
            return Err(Failure::environment(
                format!(
                    "another devenv run on `{name}` ({holder}) still holds {} after {}s",
                    path.display(),
                    timeout.as_secs()
                ),
                "wait for it to finish or stop it (the lock goes with the process), or pass a longer --timeout".to_string(),
            )
            .into());
        }
        if let Some(tell) = waiting.take() {
            tell(format!(
                "waiting for another devenv run on `{name}` ({holder}) to finish…"
            ));
        }
        std::thread::sleep(LOCK_POLL.min(deadline.saturating_duration_since(Instant::now())));
    }
    // Who holds it, for the next one's message.
    let _ = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()));
    Ok(Lock { _file: file })
}

/// The pid the holder wrote into the lock file, for messages.
fn holder(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    match text.trim() {
        "" => "another process".to_string(),
        pid => format!("pid {pid}"),
    }
}

/// 32 random characters from an alphabet that needs no quoting in env files, shells or URLs.
fn generate() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_generated_once_with_mode_0600_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let first = Secrets::load_or_generate(dir.path()).unwrap();
        let a = first.get(SecretName::GrafanaAdminPassword).to_string();
        assert_eq!(a.len(), 32);
        assert_ne!(a, first.get(SecretName::PdnsApiKey));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(first.path())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Secrets::load_or_generate(dir.path()).unwrap();
        assert_eq!(again.get(SecretName::GrafanaAdminPassword), a);
        assert!(!format!("{again:?}").contains(&a));
    }

    #[test]
    fn a_held_lock_makes_the_second_taker_wait_then_fail_naming_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let first = lock("env", dir.path(), Duration::ZERO, |_| {}).unwrap();
        let mut told = Vec::new();
        let second = lock("env", dir.path(), Duration::from_millis(300), |m| {
            told.push(m)
        });
        let e = second.unwrap_err();
        let failure = e.downcast_ref::<Failure>().expect("a Failure");
        assert_eq!(failure.exit_code(), crate::error::exit::ENVIRONMENT);
        let me = format!("pid {}", std::process::id());
        assert!(failure.message.contains(&me), "{failure:?}");
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].contains(&me), "{told:?}");
        drop(first);
        assert!(lock("env", dir.path(), Duration::ZERO, |_| {}).is_ok());
    }

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
}
