//! Running a CI job's command inside the environment: with the environment's coordinates in
//! its environment, SIGINT and SIGTERM passed on to it, and a deadline after which it is asked
//! to stop (SIGTERM) and, if it does not, killed. Its exit status becomes devenv's as a shell
//! would report it.
//!
//! Not for: bringing the environment up or down (the command around it does that).

use std::ffi::OsString;
use std::os::unix::process::ExitStatusExt as _;
use std::time::Duration;

use anyhow::Context as _;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::Instant;

/// How long a command gets to stop after the deadline's SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(10);
/// The exit code shells give a command that cannot be found.
pub const NOT_FOUND: i32 = 127;
/// The exit code shells give a command that is found but cannot be run.
pub const NOT_EXECUTABLE: i32 = 126;

/// SIGINT and SIGTERM, caught from the moment this is made (instead of ending devenv), so
/// that they are passed on and the environment is torn down.
pub struct Signals {
    int: Signal,
    term: Signal,
}

impl Signals {
    /// Catch SIGINT and SIGTERM from now on. Call on the runtime.
    pub fn catch() -> anyhow::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("catching SIGINT")?,
            term: signal(SignalKind::terminate()).context("catching SIGTERM")?,
        })
    }

    /// The next signal caught: its number.
    pub async fn next(&mut self) -> i32 {
        tokio::select! {
            _ = self.int.recv() => libc::SIGINT,
            _ = self.term.recv() => libc::SIGTERM,
        }
    }
}

/// How the command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// It ran and ended with this exit code (128 + N when signal N killed it).
    Exited(i32),
    /// It could not be started: the exit code a shell gives (127 not found, 126 not
    /// executable) and why.
    NotStarted(i32, String),
}

/// What happened while it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub ended: Ended,
    /// The deadline passed and the command was stopped.
    pub timed_out: bool,
    /// A signal devenv received (and passed on) while it ran.
    pub signal: Option<i32>,
}

impl Finished {
    /// The exit code, as a shell would give it.
    pub fn code(&self) -> i32 {
        match &self.ended {
            Ended::Exited(code) | Ended::NotStarted(code, _) => *code,
        }
    }
}

/// Run `argv` with the extra environment `vars`, inheriting devenv's stdin, stdout and
/// stderr; pass on every signal `signals` catches; stop it once `deadline` passes.
pub async fn run(
    argv: &[OsString],
    vars: &[(String, String)],
    deadline: Instant,
    signals: &mut Signals,
) -> anyhow::Result<Finished> {
    let (program, args) = argv.split_first().context("no command to run")?;
    let spawned = tokio::process::Command::new(program)
        .args(args)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .kill_on_drop(true)
        .spawn();
    let shown = program.to_string_lossy();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => NOT_FOUND,
                std::io::ErrorKind::PermissionDenied => NOT_EXECUTABLE,
                _ => return Err(e).with_context(|| format!("starting {shown}")),
            };
            return Ok(Finished {
                ended: Ended::NotStarted(code, format!("{shown}: {e}")),
                timed_out: false,
                signal: None,
            });
        }
    };
    let pid = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .context("the command has no process ID")?;
    let send = |sig: i32| {
        // SAFETY: kill(2) with a child's PID that is not reaped yet (`wait` has not returned).
        unsafe { libc::kill(pid, sig) };
    };
    let mut finished = Finished {
        ended: Ended::Exited(0),
        timed_out: false,
        signal: None,
    };
    let mut kill_at = None;
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.with_context(|| format!("waiting for {shown}"))?;
                let code = status.code().or(status.signal().map(|s| 128 + s)).unwrap_or(1);
                finished.ended = Ended::Exited(code);
                return Ok(finished);
            }
            sig = signals.next() => {
                tracing::info!("passing signal {sig} on to {shown}");
                finished.signal = Some(sig);
                send(sig);
            }
            () = tokio::time::sleep_until(deadline), if !finished.timed_out => {
                finished.timed_out = true;
                send(libc::SIGTERM);
                kill_at = Some(Instant::now() + GRACE);
            }
            () = tokio::time::sleep_until(kill_at.unwrap_or(deadline)), if kill_at.is_some() => {
                kill_at = None;
                send(libc::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    async fn run_for(args: &[&str], limit: Duration) -> Finished {
        let mut signals = Signals::catch().unwrap();
        let vars = vec![("DEVENV_T".to_string(), "seen".to_string())];
        run(&argv(args), &vars, Instant::now() + limit, &mut signals)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn exit_codes_are_reported_as_a_shell_would() {
        let long = Duration::from_secs(60);
        let f = run_for(&["sh", "-c", "test \"$DEVENV_T\" = seen && exit 7"], long).await;
        assert_eq!(f.code(), 7, "{f:?}");
        assert_eq!(
            run_for(&["sh", "-c", "kill -TERM $$"], long).await.code(),
            143
        );
        let missing = run_for(&["devenv-no-such-command", "--flag"], long).await;
        assert_eq!(missing.code(), NOT_FOUND);
        assert!(
            matches!(missing.ended, Ended::NotStarted(_, ref why) if why.contains("devenv-no-such-command"))
        );
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("not-executable");
        std::fs::write(&plain, "echo hi\n").unwrap();
        let f = run_for(&[plain.to_str().unwrap()], long).await;
        assert_eq!(f.code(), NOT_EXECUTABLE);
    }

    #[tokio::test]
    async fn past_the_deadline_the_command_is_stopped_with_sigterm() {
        let f = run_for(&["sleep", "30"], Duration::from_millis(200)).await;
        assert!(f.timed_out);
        assert_eq!(f.code(), 128 + libc::SIGTERM);
    }
}
