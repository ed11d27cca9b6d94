//! The resolver in the background, for as long as the environment runs: `devenv up` starts
//! `devenv dns serve` detached when none runs ([`ensure_running`]), with its output in
//! `<state dir>/dns.log`, and `devenv down` stops the one it started ([`stop`]). A resolver
//! the user runs in the foreground is left alone.
//!
//! Which process is ours is recorded in `<state dir>/dns-background.json` (its pid, and what it
//! was started with); the run file (`dns.json`) says where it listens. A running resolver
//! follows devenv.yaml's records by itself, but not a new `dns.address`, `dns.port` or
//! `dns.upstreams`, nor a new devenv binary: `up` restarts the one it started when one of
//! those changed, and warns about one the user runs. [`preflight`] finds a port another process
//! holds before `up` changes anything.
//!
//! Not for: serving (that is `dns serve`), the OS's routing of the domain (`os`), or the
//! service that starts it at login (`login`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::runfile::{RunFile, pid_alive};
use crate::config::{LoadedConfig, Protocol};
use crate::error::Failure;
use crate::preflight::{self, Bind, Occupant, Probe, Problem};

/// The background resolver's output, appended to.
pub const LOG_FILE: &str = "dns.log";
/// The record of the resolver devenv started in the background.
pub const BACKGROUND_FILE: &str = "dns-background.json";
/// How long a starting resolver may take to publish its run file, and a stopping one to go.
const WAIT: Duration = Duration::from_secs(15);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Background {
    pid: u32,
    /// What it was started with (absent in records of older versions: then it is restarted).
    #[serde(default)]
    with: Option<Wants>,
}

/// What a resolver is started with that it cannot follow while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Wants {
    exe: PathBuf,
    config: Option<PathBuf>,
    address: IpAddr,
    port: u16,
    upstreams: Vec<SocketAddr>,
}

impl Wants {
    fn of(exe: &Path, loaded: &LoadedConfig) -> Wants {
        let dns = &loaded.config.dns;
        Wants {
            exe: exe.to_path_buf(),
            config: loaded
                .path
                .as_deref()
                .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())),
            address: dns.address,
            port: dns.port,
            upstreams: dns.upstreams.clone(),
        }
    }

    /// What changed from `before`, in the user's words; `None` when nothing did.
    fn changed_from(&self, before: &Wants) -> Option<String> {
        let mut what = Vec::new();
        if self.address != before.address || self.port != before.port {
            what.push(format!(
                "dns.address/dns.port {}:{} -> {}:{}",
                before.address, before.port, self.address, self.port
            ));
        }
        if self.upstreams != before.upstreams {
            what.push("dns.upstreams".to_string());
        }
        if self.config != before.config {
            what.push("another devenv.yaml".to_string());
        }
        if self.exe != before.exe {
            what.push("another devenv binary".to_string());
        }
        (!what.is_empty()).then(|| what.join(", "))
    }
}

/// The resolver of the environment, and whether this call started it.
#[derive(Debug, Clone)]
pub struct Resolver {
    pub run: RunFile,
    pub started: bool,
    /// Its log (when devenv started it).
    pub log: PathBuf,
    /// Why the background resolver was restarted (what changed), if it was.
    pub restarted: Option<String>,
    /// A resolver devenv did not start listens elsewhere than devenv.yaml says: what to tell.
    pub stale: Option<String>,
}

/// The configured listening address, when it is a fixed one (port 0 picks one at each start).
fn configured(loaded: &LoadedConfig) -> Option<SocketAddr> {
    let dns = &loaded.config.dns;
    (dns.port != 0).then(|| SocketAddr::new(dns.address, dns.port))
}

fn background(state_dir: &Path) -> Option<Background> {
    let bytes = std::fs::read(state_dir.join(BACKGROUND_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
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
    let wants = Wants::of(exe, loaded);
    let mut restarted = None;
    if let Some(run) = RunFile::running(state_dir) {
        let ours = background(state_dir).filter(|b| b.pid == run.pid);
        match ours {
            Some(b) => {
                let change = match &b.with {
                    Some(before) => wants.changed_from(before),
                    None => Some("started by an older devenv".to_string()),
                };
                match change {
                    None => {
                        return Ok(Resolver {
                            run,
                            started: false,
                            log,
                            restarted: None,
                            stale: None,
                        });
                    }
                    Some(why) => {
                        stop(state_dir)?;
                        restarted = Some(why);
                    }
                }
            }
            None => {
                let stale = configured(loaded).filter(|a| *a != run.udp).map(|a| {
                    format!(
                        "the resolver running (pid {}, not started by `devenv up`) listens on {}, but devenv.yaml says {a}: restart it to move it",
                        run.pid, run.udp
                    )
                });
                return Ok(Resolver {
                    run,
                    started: false,
                    log,
                    restarted: None,
                    stale,
                });
            }
        }
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
    if let Some(path) = &wants.config {
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
        &serde_json::to_vec(&Background {
            pid,
            with: Some(wants),
        })?,
        0o644,
    )?;
    let started = Instant::now();
    loop {
        if let Some(run) = RunFile::running(state_dir).filter(|r| r.pid == pid) {
            return Ok(Resolver {
                run,
                started: true,
                log,
                restarted,
                stale: None,
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
                    "see {}; ports below 1024 need privilege: set dns.port in devenv.yaml (the default, {}, needs none)",
                    log.display(),
                    crate::config::DEFAULT_DNS_PORT
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
    let ours = background(state_dir);
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

/// What would stop a resolver from listening where devenv.yaml says, found before `up`
/// changes anything: the port held by another process (named where the OS shows it), or a
/// port this user may not bind. Nothing when a resolver of this environment listens there
/// already, or the port is 0 (any free one).
pub fn preflight(loaded: &LoadedConfig, state_dir: &Path) -> Vec<Problem> {
    let Some(at) = configured(loaded) else {
        return Vec::new();
    };
    if RunFile::running(state_dir).is_some_and(|r| r.udp == at) {
        return Vec::new();
    }
    let hint = "stop that process, set `dns.port` in devenv.yaml to a free port, or `dns.enabled: false` when it is a resolver you run for this domain yourself";
    let mut problems = Vec::new();
    for protocol in [Protocol::Udp, Protocol::Tcp] {
        let bind = Bind {
            key: "dns.port".into(),
            addr: at.ip(),
            port: at.port(),
            protocol,
        };
        let proto = protocol.as_str();
        match Probe::of(&bind) {
            Probe::Free => {}
            Probe::InUse => {
                let by = match preflight::occupant(at.ip(), at.port(), protocol) {
                    Occupant::Held { by: Some(by) } => by,
                    _ => "a process devenv cannot see (try as root)".to_string(),
                };
                problems.push(Problem {
                    message: format!("{at}/{proto} for the resolver (dns.port) is taken by {by}"),
                    hint: hint.to_string(),
                });
            }
            Probe::Denied => problems.push(Problem {
                message: format!(
                    "{at}/{proto} for the resolver (dns.port): ports below 1024 need privilege"
                ),
                hint: format!(
                    "set `dns.port` in devenv.yaml to {} (the default), or allow the binary once: sudo setcap cap_net_bind_service=+ep \"$(command -v devenv)\"",
                    crate::config::DEFAULT_DNS_PORT
                ),
            }),
            Probe::Failed(e) => problems.push(Problem {
                message: format!("{at}/{proto} for the resolver (dns.port): {e}"),
                hint: "set `dns.address`/`dns.port` in devenv.yaml to a usable address".into(),
            }),
        }
    }
    problems
}

/// Whether the resolver running for the environment in `state_dir` is the one `up` started.
pub fn started_by_up(state_dir: &Path, run: &RunFile) -> bool {
    background(state_dir).is_some_and(|b| b.pid == run.pid)
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
