//! The run file of a serving resolver: `dns.json` in the state directory, with where it
//! listens, its pid, upstreams and record count, so that `devenv dns query` and `status` find
//! it. `serve` writes it when it binds, keeps it current as the records change, and removes
//! it (only its own) on shutdown.
//!
//! Not for: answering queries, or choosing what to serve.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::records::Zone;
use super::store::Store;

/// The run file's name in the state directory.
pub const FILE: &str = "dns.json";
/// The lock a serving resolver holds in the state directory: one resolver per environment.
pub const LOCK: &str = "dns.lock";

/// The claim of a serving resolver on its environment; released when dropped (or when the
/// process ends, however it ends).
#[derive(Debug)]
pub struct Claim {
    _lock: std::fs::File,
}

/// What a running `devenv dns serve` tells `query` and `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFile {
    /// The serving process.
    pub pid: u32,
    /// The bound UDP address.
    pub udp: SocketAddr,
    /// The bound TCP address.
    pub tcp: SocketAddr,
    /// The domain it is authoritative for.
    pub domain: String,
    /// Whether names outside the domain are forwarded (else REFUSED).
    pub forwarding: bool,
    /// Where names outside the domain go.
    pub upstreams: Vec<SocketAddr>,
    /// Records in the zone in force.
    pub records: usize,
    /// The zone's SOA serial.
    pub serial: u32,
    /// The devenv.yaml it follows, if any.
    pub config: Option<PathBuf>,
}

impl RunFile {
    /// The run file in `dir`, if there is one that reads (whether or not its process lives).
    pub fn read(dir: &Path) -> Option<RunFile> {
        let text = std::fs::read(dir.join(FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// The run file in `dir` of a resolver that is still alive.
    pub fn running(dir: &Path) -> Option<RunFile> {
        RunFile::read(dir).filter(|r| pid_alive(r.pid))
    }

    /// Claim the environment whose state directory is `dir` for a new resolver. Fails (exit 3)
    /// naming the running one when another resolver holds it, so that its run file is never
    /// overwritten while it serves. A lock that cannot be taken for another reason (a state
    /// directory this user cannot write) is logged: the resolver serves unclaimed, as it
    /// serves without its run file then.
    pub fn claim(dir: &Path) -> anyhow::Result<Option<Claim>> {
        let path = dir.join(LOCK);
        let file = std::fs::create_dir_all(dir).and_then(|()| {
            std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
        });
        let file = match file {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(
                    "{}: {e}; not guarding against a second resolver",
                    path.display()
                );
                return Ok(None);
            }
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(Claim { _lock: file })),
            Err(std::fs::TryLockError::WouldBlock) => {
                let which = match RunFile::read(dir) {
                    Some(r) => format!("pid {} on {}/udp and {}/tcp", r.pid, r.udp, r.tcp),
                    None => "starting, no run file yet".to_string(),
                };
                Err(crate::error::Failure::environment(
                    format!("a resolver for this environment is already running ({which})"),
                    Some(
                        "use it (`devenv dns status`, `devenv dns query`), or stop it first"
                            .to_string(),
                    ),
                )
                .into())
            }
            Err(std::fs::TryLockError::Error(e)) => {
                tracing::warn!(
                    "locking {}: {e}; not guarding against a second resolver",
                    path.display()
                );
                Ok(None)
            }
        }
    }

    /// Write it to `dir`, replacing the file atomically so readers never see half of it.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_vec_pretty(self).context("encoding the run file")?;
        crate::state::write_atomic(&dir.join(FILE), &text, 0o644)
    }

    /// Write it to `dir` when there is a state directory. A failed write is logged, not fatal:
    /// the resolver serves without its run file.
    pub fn publish(&self, dir: Option<&Path>) {
        if let Some(dir) = dir
            && let Err(e) = self.write(dir)
        {
            tracing::warn!("{e:#}");
        }
    }

    /// Take the record count and serial of `zone`.
    pub fn refresh(&mut self, zone: &Zone) {
        self.records = zone.record_count();
        self.serial = zone.serial();
    }

    /// Remove the run file in `dir` if it is this process's: another `serve` may have started
    /// since and own it.
    pub fn remove_own(dir: &Path) {
        if RunFile::read(dir).is_some_and(|r| r.pid == std::process::id()) {
            let _ = std::fs::remove_file(dir.join(FILE));
        }
    }
}

/// Keep `run` (already published) current with `store` in `dir` until SIGINT or SIGTERM;
/// `on_change` hears of each new zone.
pub async fn publish_until_signal(
    mut run: RunFile,
    dir: Option<&Path>,
    store: &Store,
    mut on_change: impl FnMut(&RunFile),
) -> anyhow::Result<()> {
    let mut changes = store.subscribe();
    let signal = super::server::shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            r = &mut signal => return r,
            Ok(()) = changes.changed() => {
                run.refresh(&store.snapshot());
                run.publish(dir);
                on_change(&run);
            }
        }
    }
}

/// Whether process `pid` exists.
pub fn pid_alive(pid: u32) -> bool {
    #[cfg(unix)]
    {
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return false;
        };
        // Signal 0 checks existence; EPERM means it exists under another user.
        // SAFETY: kill with signal 0 sends nothing.
        let r = unsafe { libc::kill(pid, 0) };
        r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
    }
    #[cfg(not(unix))]
    {
        let _ = pid;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_file_round_trips_and_only_its_owner_removes_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut run = RunFile {
            pid: std::process::id(),
            udp: "127.0.0.1:5353".parse().unwrap(),
            tcp: "127.0.0.1:5353".parse().unwrap(),
            domain: "macula.local".into(),
            forwarding: true,
            upstreams: vec!["192.0.2.1:53".parse().unwrap()],
            records: 3,
            serial: 1,
            config: None,
        };
        run.write(dir.path()).unwrap();
        assert_eq!(RunFile::running(dir.path()), Some(run.clone()));
        // Another process's file stays.
        run.pid = u32::MAX;
        run.write(dir.path()).unwrap();
        RunFile::remove_own(dir.path());
        assert!(RunFile::read(dir.path()).is_some());
        assert_eq!(RunFile::running(dir.path()), None, "no such process");
        run.pid = std::process::id();
        run.write(dir.path()).unwrap();
        RunFile::remove_own(dir.path());
        assert!(!dir.path().join(FILE).exists());
    }
}
