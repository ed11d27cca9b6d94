//! devenv's state directory: where generated secrets and rendered configs live, how files
//! are kept there (secrets with mode 0600), and the lock that keeps two runs on
//! one environment apart.
//!
//! Not for: files in the user's project directory, nor how files are written (that is
//! [`crate::files`]).

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

/// Who an environment's containers and volumes belong to: the devenv.yaml and the state
/// directory they were made from. Two checkouts with the same `name:` are two owners; devenv
/// asks before acting on what another made.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct Owner {
    /// The absolute path of devenv.yaml, or `built-in defaults`.
    pub config: String,
    /// The absolute path of the state directory.
    pub state: String,
}

impl Owner {
    /// The owner of a run from `config` (`None`: the built-in defaults) with `state_dir`.
    pub fn new(config: Option<&Path>, state_dir: &Path) -> Owner {
        let absolute = |p: &Path| {
            std::path::absolute(p)
                .unwrap_or_else(|_| p.to_path_buf())
                .display()
                .to_string()
        };
        Owner {
            config: config.map_or_else(|| "built-in defaults".to_string(), absolute),
            state: absolute(state_dir),
        }
    }

    /// Its labels.
    pub fn labels(&self) -> [(String, String); 2] {
        [
            (
                crate::config::labels::OWNER_CONFIG.to_string(),
                self.config.clone(),
            ),
            (
                crate::config::labels::OWNER_STATE.to_string(),
                self.state.clone(),
            ),
        ]
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (state in {})", self.config, self.state)
    }
}

/// Kept at this path for the callers under `dns/`; the helper itself is
/// [`crate::files::write_atomic`].
pub use crate::files::write_atomic;

/// The generated secrets of one environment. Debug and Display never show the values.
///
/// Read with [`Secrets::load_for`], which changes nothing but a too-open mode; secrets the file
/// lacks are generated in memory only, and written by [`Secrets::store`] once every preflight
/// check passed — among them that no data exists that the old ones were made for
/// ([`Secrets::trouble`]).
pub struct Secrets {
    values: BTreeMap<SecretName, String>,
    path: PathBuf,
    /// What was wrong with the file, when something was.
    trouble: Option<Trouble>,
    /// Values were set ([`Secrets::set`]): the file is written on [`Secrets::store`].
    changed: bool,
    /// Said once, by whoever reports (a mode that was fixed).
    warnings: Vec<String>,
}

/// What is wrong with the secrets file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trouble {
    /// There is no file (first run, or it was deleted).
    Missing,
    /// It has no value for these (an empty or cut-off file, or a line deleted).
    Incomplete(Vec<SecretName>),
    /// It cannot be read, or says something devenv does not write: what, where.
    Unusable(String),
}

impl Trouble {
    /// Whether filling in new secrets would be right when no data was made with old ones.
    pub fn fillable(&self) -> bool {
        !matches!(self, Trouble::Unusable(_))
    }
}

impl fmt::Display for Trouble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Trouble::Missing => f.write_str("is missing"),
            Trouble::Incomplete(names) => write!(
                f,
                "lacks {}",
                names.iter().map(|n| n.var()).collect::<Vec<_>>().join(", ")
            ),
            Trouble::Unusable(why) => f.write_str(why),
        }
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field("path", &self.path)
            .field("count", &self.values.len())
            .field("trouble", &self.trouble)
            .finish_non_exhaustive()
    }
}

/// File name of the secrets env file inside the state directory.
pub const SECRETS_FILE: &str = "secrets.env";
/// The first line of the secrets file.
const SECRETS_HEADER: &str = "# Generated by devenv. Secret: do not commit or share.";
/// The mode of the secrets file, and of the state directory.
const SECRETS_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;
/// Length of a generated secret.
const SECRET_LEN: usize = 32;

impl Secrets {
    /// Read the secrets of the state directory `dir`. Nothing is written: secrets the file
    /// lacks get new values in memory, and what was wrong is [`Secrets::trouble`]. A file
    /// others may read is made 0600 (a warning says so).
    /// The user's own secrets in `wanted` (those the services of devenv.yaml refer to) are
    /// needed as the built-in ones are.
    pub fn load_for(dir: &Path, wanted: &[SecretName]) -> anyhow::Result<Secrets> {
        let needed: Vec<SecretName> = SecretName::ALL
            .into_iter()
            .chain(wanted.iter().cloned())
            .collect();
        let path = dir.join(SECRETS_FILE);
        let mut warnings = Vec::new();
        let (mut values, trouble) = match std::fs::read(&path) {
            Ok(bytes) => {
                if let Some(w) = tighten(&path, SECRETS_MODE)? {
                    warnings.push(w);
                }
                match parse(&bytes) {
                    Ok(values) => {
                        let missing: Vec<SecretName> = needed
                            .iter()
                            .filter(|s| !values.contains_key(*s))
                            .cloned()
                            .collect();
                        let trouble = (!missing.is_empty()).then_some(Trouble::Incomplete(missing));
                        (values, trouble)
                    }
                    Err(why) => (BTreeMap::new(), Some(Trouble::Unusable(why))),
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                (BTreeMap::new(), Some(Trouble::Missing))
            }
            Err(e) => (
                BTreeMap::new(),
                Some(Trouble::Unusable(format!("cannot be read ({e})"))),
            ),
        };
        for name in needed {
            values.entry(name).or_insert_with(generate);
        }
        Ok(Secrets {
            values,
            path,
            trouble,
            changed: false,
            warnings,
        })
    }

    /// What was wrong with the file (`None`: it holds every secret, well-formed).
    pub fn trouble(&self) -> Option<&Trouble> {
        self.trouble.as_ref()
    }

    /// Whether `name`'s value is the one in the file (not one made up in memory because the
    /// file lacks it or cannot be used).
    pub fn stored(&self, name: &SecretName) -> bool {
        match &self.trouble {
            None => true,
            Some(Trouble::Incomplete(missing)) => !missing.contains(name),
            Some(_) => false,
        }
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the reader should be told (a mode that was fixed).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Write the file (mode 0600) when it lacked secrets: call only once every check passed,
    /// and never while [`Secrets::trouble`] is unusable or data exists that older secrets
    /// were made for (converge's preflight decides).
    pub fn store(&self) -> anyhow::Result<()> {
        if self.trouble.is_none() && !self.changed {
            return Ok(());
        }
        write_atomic(&self.path, self.env_file().as_bytes(), SECRETS_MODE)
    }

    /// Set one secret to `value` (one a snapshot's data was made with), to be written by
    /// [`Secrets::store`].
    pub fn set(&mut self, name: SecretName, value: String) {
        self.values.insert(name, value);
        self.changed = true;
    }

    /// The value of one secret.
    pub fn get(&self, name: &SecretName) -> &str {
        self.values
            .get(name)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// The env-file text (`VAR=value` lines), for the file itself only.
    fn env_file(&self) -> String {
        secrets_text(self.values.iter().map(|(n, v)| (n, v.as_str())))
    }
}

/// The text of a secrets file as devenv writes it (the state directory's, a snapshot's).
pub fn secrets_text<'a>(values: impl IntoIterator<Item = (&'a SecretName, &'a str)>) -> String {
    let mut out = format!("{SECRETS_HEADER}\n");
    for (name, value) in values {
        out.push_str(&format!("{}={value}\n", name.var()));
    }
    out
}

/// The secrets in a file [`secrets_text`] wrote; the first thing wrong, with its line.
pub fn parse_secrets(bytes: &[u8]) -> Result<BTreeMap<SecretName, String>, String> {
    parse(bytes)
}

/// The secrets in an env file as devenv writes it: comments and blank lines, and one
/// `VAR=value` line per known secret, each once, with a value as devenv generates it. The
/// first thing wrong, with its line, as an error.
fn parse(bytes: &[u8]) -> Result<BTreeMap<SecretName, String>, String> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| format!("is not UTF-8 text (at byte {})", e.valid_up_to()))?;
    let mut values = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let at = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {at} is not `NAME=value`"));
        };
        let Some(name) = SecretName::from_var(key) else {
            return Err(format!(
                "line {at} names an unknown secret `{}`",
                crate::config::shorten(key)
            ));
        };
        if values.contains_key(&name) {
            return Err(format!("line {at} sets {key} a second time"));
        }
        if value.len() != SECRET_LEN || !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(format!(
                "line {at}: the value of {key} is not one devenv makes ({SECRET_LEN} letters and digits; it has {} characters)",
                value.chars().count()
            ));
        }
        values.insert(name, value.to_string());
    }
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("ends in the middle of a line (cut off?)".to_string());
    }
    Ok(values)
}

/// Take group and other permissions off `path` when it has any; a sentence saying so, for a
/// warning.
fn tighten(path: &Path, mode: u32) -> anyhow::Result<Option<String>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let had = std::fs::metadata(path)
            .with_context(|| format!("reading the mode of {}", path.display()))?
            .permissions()
            .mode()
            & 0o777;
        if had & 0o077 == 0 {
            return Ok(None);
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {} to {mode:o}", path.display()))?;
        Ok(Some(format!(
            "{} was mode {had:03o}, readable by others; it is now {mode:03o}",
            path.display()
        )))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, mode);
        Ok(None)
    }
}

/// Create the state directory `dir` (mode 0700), or take group and other permissions off the
/// one devenv made before. A directory devenv did not make is left as it is.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        let ours = [LOCK_FILE, SECRETS_FILE, RENDERED_DIR]
            .iter()
            .any(|f| dir.join(f).exists());
        if ours {
            tighten(dir, DIR_MODE)?;
        }
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(DIR_MODE);
    }
    builder
        .create(dir)
        .with_context(|| format!("creating the state directory {}", dir.display()))
}

/// The lock of one environment's state directory, held until dropped. The OS releases it when
/// the holder exits, however it exits (SIGKILL included).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Take the lock of environment `name`'s state directory `state_dir` (created, mode 0700, if
/// missing). The directory and its `lock` file are all a run writes before its checks pass.
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
    prepare_dir(state_dir)?;
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
        let first = Secrets::load_for(dir.path(), &[]).unwrap();
        assert_eq!(first.trouble(), Some(&Trouble::Missing));
        assert!(
            !dir.path().join(SECRETS_FILE).exists(),
            "loading writes nothing"
        );
        first.store().unwrap();
        let a = first.get(&SecretName::GrafanaAdminPassword).to_string();
        assert_eq!(a.len(), 32);
        assert_ne!(a, first.get(&SecretName::PdnsApiKey));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(SECRETS_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = Secrets::load_for(dir.path(), &[]).unwrap();
        assert_eq!(again.trouble(), None);
        assert_eq!(again.get(&SecretName::GrafanaAdminPassword), a);
        assert!(!format!("{again:?}").contains(&a));
    }

    fn written() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        Secrets::load_for(dir.path(), &[]).unwrap().store().unwrap();
        let text = std::fs::read_to_string(dir.path().join(SECRETS_FILE)).unwrap();
        (dir, text)
    }

    fn trouble_with(text: &str) -> Option<Trouble> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SECRETS_FILE), text).unwrap();
        Secrets::load_for(dir.path(), &[])
            .unwrap()
            .trouble()
            .cloned()
    }

    #[test]
    fn an_emptied_cut_off_or_edited_secrets_file_is_named_as_such() {
        let (_dir, text) = written();
        assert_eq!(
            trouble_with(""),
            Some(Trouble::Incomplete(SecretName::ALL.to_vec()))
        );
        let without_last: String = text.lines().take(6).map(|l| format!("{l}\n")).collect();
        assert!(
            matches!(trouble_with(&without_last), Some(Trouble::Incomplete(n)) if n.len() == 1)
        );
        // Cut in the middle of a value.
        let cut = &text[..text.len() - 10];
        let Some(Trouble::Unusable(why)) = trouble_with(cut) else {
            panic!("a cut-off file is unusable")
        };
        assert!(why.contains("line 7"), "{why}");
        for (bad, says) in [
            (
                format!("{text}DEVENV_NOPE=x\n"),
                "unknown secret `DEVENV_NOPE`",
            ),
            (
                format!("{text}{}", text.lines().nth(1).unwrap()) + "\n",
                "a second time",
            ),
            ("DEVENV_PDNS_API_KEY=\n".to_string(), "0 characters"),
            ("just words\n".to_string(), "line 1 is not `NAME=value`"),
            (
                "DEVENV_PDNS_API_KEY=abc\n".to_string(),
                "not one devenv makes",
            ),
        ] {
            let Some(Trouble::Unusable(why)) = trouble_with(&bad) else {
                panic!("{bad:?} is unusable")
            };
            assert!(why.contains(says), "{why} / {says}");
            assert!(!Trouble::Unusable(why).fillable());
        }
        let mut invalid = text.into_bytes();
        invalid.push(0xff);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SECRETS_FILE), invalid).unwrap();
        assert!(matches!(
            Secrets::load_for(dir.path(), &[]).unwrap().trouble(),
            Some(Trouble::Unusable(w)) if w.contains("UTF-8")
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_secrets_file_others_may_read_is_made_0600_with_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, _) = written();
        let path = dir.path().join(SECRETS_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let loaded = Secrets::load_for(dir.path(), &[]).unwrap();
        assert_eq!(loaded.trouble(), None);
        assert_eq!(loaded.warnings().len(), 1, "{:?}", loaded.warnings());
        assert!(loaded.warnings()[0].contains("644"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn the_state_directory_is_made_0700() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("env");
        let _lock = lock("env", &dir, Duration::ZERO, |_| {}).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
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
}
