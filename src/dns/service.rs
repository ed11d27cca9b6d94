//! The resolver in the background, for as long as the environment runs: `devenv up` starts
//! `devenv dns serve` detached when none runs ([`ensure_running`]), with its output in
//! `<state dir>/dns.log`, and `devenv down` stops the one it started ([`stop`]). A resolver
//! the user runs in the foreground is left alone.
//!
//! Which process is ours is recorded in `<state dir>/dns-background.json` (its pid); the run
//! file (`dns.json`) says where it listens. Not for: serving (that is `dns serve`) or the
//! OS's routing of the domain (`os`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::runfile::{RunFile, pid_alive};
use crate::config::LoadedConfig;
use crate::error::Failure;

/// The background resolver's output, appended to.
pub const LOG_FILE: &str = "dns.log";
/// The record of the resolver devenv started in the background.
pub const BACKGROUND_FILE: &str = "dns-background.json";
/// How long a starting resolver may take to publish its run file, and a stopping one to go.
const WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Background {
    pid: u32,
}

/// The resolver of the environment, and whether this call started it.
#[derive(Debug, Clone)]
pub struct Resolver {
    pub run: RunFile,
    pub started: bool,
    /// Its log (when devenv started it).
    pub log: PathBuf,
}

/// What [`stop`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// The background resolver (this pid) was stopped.
    Stopped(u32),
    /// A resolver runs that devenv did not start in the background (`dns serve` in a
    /// terminal): left running.
    NotOurs(u32),
    NotRunning,
}

/// Start the resolver in the background unless one runs for this environment; the devenv
/// binary running now is the one started.
pub fn ensure_running(loaded: &LoadedConfig, state_dir: &Path) -> anyhow::Result<Resolver> {
    let exe = std::env::current_exe().context("finding the devenv binary")?;
    ensure_running_with(&exe, loaded, state_dir)
}

/// [`ensure_running`] with the devenv binary `exe` (tests pass the one under test).
pub fn ensure_running_with(
    exe: &Path,
    loaded: &LoadedConfig,
    state_dir: &Path,
) -> anyhow::Result<Resolver> {
    let log = state_dir.join(LOG_FILE);
    if let Some(run) = RunFile::running(state_dir) {
        return Ok(Resolver {
            run,
            started: false,
            log,
        });
    }
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("creating {}", state_dir.display()))?;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("opening {}", log.display()))?;
    let mut cmd = Command::new(exe);
    if let Some(path) = &loaded.path {
        cmd.arg("--config").arg(path);
    }
    cmd.args(["--color", "never", "dns", "serve"])
        .env(crate::env::STATE_DIR, state_dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    #[cfg(unix)]
    {
        // Its own process group: a Ctrl-C in the terminal of `up` does not reach it.
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {} dns serve", exe.display()))?;
    let pid = child.id();
    crate::files::write_atomic(
        &state_dir.join(BACKGROUND_FILE),
        &serde_json::to_vec(&Background { pid })?,
        0o644,
    )?;
    let started = Instant::now();
    loop {
        if let Some(run) = RunFile::running(state_dir).filter(|r| r.pid == pid) {
            return Ok(Resolver {
                run,
                started: true,
                log,
            });
        }
        if let Ok(Some(status)) = child.try_wait() {
            let _ = std::fs::remove_file(state_dir.join(BACKGROUND_FILE));
            return Err(Failure::environment(
                format!(
                    "the resolver did not start ({status}): {}",
                    last_lines(&log, 5)
                ),
                Some(format!(
                    "see {}; port 53 needs privilege: set dns.port (e.g. 5454) or allow the binary with setcap cap_net_bind_service",
                    log.display()
                )),
            )
            .into());
        }
        if started.elapsed() > WAIT {
            return Err(Failure::environment(
                format!(
                    "the resolver (pid {pid}) did not publish its run file within {}s",
                    WAIT.as_secs()
                ),
                Some(format!("see {}", log.display())),
            )
            .into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stop the resolver [`ensure_running`] started, if it still runs.
pub fn stop(state_dir: &Path) -> anyhow::Result<Stopped> {
    let marker = state_dir.join(BACKGROUND_FILE);
    let ours = std::fs::read(&marker)
        .ok()
        .and_then(|b| serde_json::from_slice::<Background>(&b).ok());
    let Some(run) = RunFile::running(state_dir) else {
        let _ = std::fs::remove_file(&marker);
        return Ok(Stopped::NotRunning);
    };
    if ours.as_ref().map(|b| b.pid) != Some(run.pid) {
        return Ok(Stopped::NotOurs(run.pid));
    }
    terminate(run.pid)?;
    let started = Instant::now();
    // It removes its run file when it has shut down.
    while RunFile::read(state_dir).is_some_and(|r| r.pid == run.pid) && pid_alive(run.pid) {
        if started.elapsed() > WAIT {
            anyhow::bail!(
                "the resolver (pid {}) did not stop within {}s of SIGTERM",
                run.pid,
                WAIT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_file(&marker);
    Ok(Stopped::Stopped(run.pid))
}

#[cfg(unix)]
fn terminate(pid: u32) -> anyhow::Result<()> {
    let id = libc::pid_t::try_from(pid).context("a pid out of range")?;
    // SAFETY: sends SIGTERM to one process, whose pid the run file and our record agree on.
    if unsafe { libc::kill(id, libc::SIGTERM) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("stopping the resolver (pid {pid})"));
    }
    Ok(())
}

#[cfg(not(unix))]
fn terminate(pid: u32) -> anyhow::Result<()> {
    let status = Command::new("taskkill")
        .args(["/PID", &pid.to_string()])
        .status()
        .context("running taskkill")?;
    anyhow::ensure!(status.success(), "taskkill /PID {pid} failed");
    Ok(())
}

fn last_lines(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}
