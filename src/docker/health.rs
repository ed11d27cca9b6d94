//! Waiting until a container is healthy by its own healthcheck.
//!
//! Docker runs the probe every `interval` only, and engines before API 1.44 have no faster
//! start interval, so the first healthy report can lag a ready service by a whole interval.
//! While waiting, devenv therefore also runs the very same probe command itself (an exec)
//! a few times a second, and takes whichever reports healthy first ([`probe`], which `status`
//! also asks while Docker still says "starting"). A service of one's own whose image has no
//! tool to check with is probed by devenv alone, from this host ([`probe_from_host`]). Not for: deciding when to wait or what a
//! failure means for the rest of the run (that is `converge`).

use std::time::Duration;

use anyhow::bail;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerStateStatusEnum, HealthStatusEnum};
use bollard::query_parameters::InspectContainerOptions;
use futures_util::StreamExt;
use tokio::time::Instant;

use super::Engine;
use crate::config::{Healthcheck, Probe, ProbeCheck};
use crate::error::Failure;

/// Pause between two looks at a starting container.
const POLL: Duration = Duration::from_millis(250);
/// Restarts after which a service counts as crash-looping.
const CRASH_LOOP: i64 = 3;
/// Log lines shown when a service fails to become healthy.
pub const LOG_LINES: usize = 20;

/// How long a service without a healthcheck must run without exiting to count as ready.
const SETTLED: Duration = Duration::from_secs(2);

/// Wait until container `id` (service `service`) is healthy, or fail at `deadline` naming the
/// service, the probe's last output and the container's last log lines. Without `check`, it
/// is ready once `probe` passes, or without one once it has run [`SETTLED`] without exiting.
pub async fn wait_healthy(
    engine: &Engine,
    id: &str,
    service: &str,
    check: Option<&Healthcheck>,
    own_probe: Option<&Probe>,
    deadline: Instant,
    timeout: Duration,
) -> anyhow::Result<()> {
    let mut last_probe = String::new();
    // Without a healthcheck: ready once it has run for a moment without exiting.
    let mut running_since: Option<Instant> = None;
    // Docker resets the exit code when the restart policy starts the container again; keep
    // the last one seen while it was down, for the message.
    let mut last_exit = None;
    loop {
        let inspect = engine
            .docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await;
        let (state, restarts) = match inspect {
            Ok(i) => (i.state.unwrap_or_default(), i.restart_count.unwrap_or(0)),
            Err(e) => {
                return Err(Failure::environment(
                    format!(
                        "service {service}: its container went away while devenv waited for it: {e}"
                    ),
                    "something else removed it (another tool, `docker rm`); run `devenv up` again"
                        .to_string(),
                )
                .into());
            }
        };
        // The restart policy brings a crashing service back again and again; after a few
        // rounds waiting longer only hides the error.
        // At the deadline any restart means the same: on a loaded machine Docker's back-off may
        // not have reached CRASH_LOOP rounds yet. The deadline is judged here, before the
        // probe, so that a probe running past it still ends in this verdict (next round).
        let out_of_time = Instant::now() >= deadline;
        // Docker counts a container waiting out its restart back-off as running (and
        // restarting), with the exit code of the run that ended.
        let down = state.running != Some(true) || state.restarting == Some(true);
        if down {
            last_exit = state.exit_code.or(last_exit);
        }
        if restarts >= CRASH_LOOP && down
            || restarts >= 2 * CRASH_LOOP
            || out_of_time && restarts > 0
        {
            let logs = engine.last_logs(id, LOG_LINES).await;
            let code = last_exit.map(|c| format!("code {c}, ")).unwrap_or_default();
            bail!(
                "service {service} keeps exiting ({code}restarted {restarts} times){}",
                show_logs(&logs)
            );
        }
        match state.status {
            Some(ContainerStateStatusEnum::RUNNING) => {
                match (check, own_probe) {
                    (Some(_), _) => {}
                    // devenv's own probe: the verdict at the deadline comes below.
                    (None, Some(p)) => {
                        if !down {
                            match probe_from_host(engine, id, p).await {
                                Verdict::Passed => return Ok(()),
                                Verdict::Failed(output) | Verdict::CannotRun(output) => {
                                    last_probe = output;
                                }
                            }
                        }
                    }
                    (None, None) => {
                        if down {
                            running_since = None;
                        } else if running_since.get_or_insert_with(Instant::now).elapsed()
                            >= SETTLED
                        {
                            return Ok(());
                        }
                        tokio::time::sleep(POLL.min(SETTLED)).await;
                        continue;
                    }
                }
                if let Some(check) = check {
                    let docker_says = state.health.as_ref().and_then(|h| h.status);
                    if docker_says == Some(HealthStatusEnum::HEALTHY) {
                        return Ok(());
                    }
                    match probe(engine, id, check).await {
                        Verdict::Passed => return Ok(()),
                        Verdict::Failed(output) => last_probe = output,
                        // Waiting cannot help: the command will not be there in a minute either.
                        Verdict::CannotRun(output) => {
                            return Err(cannot_run(service, check, &output).into());
                        }
                    }
                }
            }
            Some(ContainerStateStatusEnum::EXITED) | Some(ContainerStateStatusEnum::DEAD) => {
                let logs = engine.last_logs(id, LOG_LINES).await;
                bail!(
                    "service {service} exited (code {}) instead of becoming healthy{}",
                    state.exit_code.unwrap_or(-1),
                    show_logs(&logs)
                );
            }
            _ => {}
        }
        if out_of_time {
            let logs = engine.last_logs(id, LOG_LINES).await;
            let probe = if last_probe.trim().is_empty() {
                String::new()
            } else {
                format!("; its healthcheck said: {}", last_probe.trim())
            };
            bail!(
                "service {service} did not become healthy within {}s{probe}{}",
                timeout.as_secs(),
                show_logs(&logs)
            );
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
    }
}

fn show_logs(logs: &str) -> String {
    if logs.trim().is_empty() {
        "\n  (the container logged nothing)".to_string()
    } else {
        let lines: Vec<String> = logs.lines().map(|l| format!("  | {l}")).collect();
        format!("\n  last log lines:\n{}", lines.join("\n"))
    }
}

/// What running a healthcheck once showed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Passed,
    /// It ran and failed (or did not answer in time), with what it printed.
    Failed(String),
    /// It cannot run in this container: the runtime could not execute the command (exit 126,
    /// not executable; 127, not found) while the container runs, with what the runtime said.
    CannotRun(String),
}

/// The exit codes with which a container runtime reports that it could not execute a command
/// at all (as shells do): 126 not executable, 127 not found.
fn runtime_could_not_execute(code: Option<i64>) -> bool {
    matches!(code, Some(126) | Some(127))
}

/// Whether container `id` runs (and is not between restarts).
async fn still_running(engine: &Engine, id: &str) -> bool {
    match engine
        .docker
        .inspect_container(id, None::<InspectContainerOptions>)
        .await
    {
        Ok(i) => i
            .state
            .is_some_and(|s| s.running == Some(true) && s.restarting != Some(true)),
        Err(_) => false,
    }
}

/// The failure for a healthcheck that cannot run in `service`'s container (exit 3).
fn cannot_run(service: &str, check: &Healthcheck, output: &str) -> Failure {
    let command = check.test.join(" ");
    let said = output.trim();
    Failure::environment(
        format!(
            "service {service}: its healthcheck `{command}` cannot run in its container{}",
            if said.is_empty() {
                String::new()
            } else {
                format!(": {said}")
            }
        ),
        format!(
            "the image lacks `{}`: use an image that has it (`services.{service}.image` in devenv.yaml)",
            check.test.first().map(String::as_str).unwrap_or_default()
        ),
    )
}

/// Probe `probe` of container `id` from this host: at the container's address (a Linux host
/// reaches it), else through the port's binding on the host. Docker's proxy accepts a
/// connection on a published port even when nothing listens behind it, and closes it at
/// once: a TCP check counts a connection closed at once as failed.
pub async fn probe_from_host(engine: &Engine, id: &str, probe: &Probe) -> Verdict {
    let limit = Duration::from_secs(u64::from(probe.timeout_s.max(1)));
    let targets = engine.reach(id, probe.port, &probe.network).await;
    if targets.is_empty() {
        return Verdict::Failed(format!(
            "port {} is not published and the container has no address this host reaches",
            probe.port
        ));
    }
    let mut said = Vec::new();
    for (i, target) in targets.iter().enumerate() {
        // An address this host cannot reach (Docker Desktop's VM) should not cost the whole
        // timeout when another way is left.
        let last = i + 1 == targets.len();
        let connect = if last { limit } else { limit.min(UNREACHABLE) };
        let stream =
            match tokio::time::timeout(connect, tokio::net::TcpStream::connect(target)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    said.push(format!("{target}: {e}"));
                    continue;
                }
                Err(_) => {
                    said.push(format!(
                        "{target}: no answer within {}s",
                        connect.as_secs_f32()
                    ));
                    continue;
                }
            };
        let verdict = match tokio::time::timeout(limit, ask(stream, *target, &probe.check)).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => Verdict::Failed(format!("{target}: {e}")),
            Err(_) => Verdict::Failed(format!("{target}: no answer within {}s", limit.as_secs())),
        };
        return verdict;
    }
    Verdict::Failed(said.join("; "))
}

/// How long a connection to one of several addresses may take before the next is tried.
const UNREACHABLE: Duration = Duration::from_secs(1);
/// How long a TCP check waits to see whether the connection is closed at once.
const CLOSED_AT_ONCE: Duration = Duration::from_millis(300);

/// Ask what `check` asks on the connected `stream`.
async fn ask(
    mut stream: tokio::net::TcpStream,
    target: std::net::SocketAddr,
    check: &ProbeCheck,
) -> std::io::Result<Verdict> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = [0u8; 256];
    let ProbeCheck::Http { path } = check else {
        return Ok(
            match tokio::time::timeout(CLOSED_AT_ONCE, stream.read(&mut buf)).await {
                Ok(Ok(0)) => Verdict::Failed(format!(
                    "{target}: the connection was closed at once (nothing listens behind it)"
                )),
                Ok(Err(e)) => Verdict::Failed(format!("{target}: {e}")),
                // Open (a server that waits for the client), or it spoke first.
                Ok(Ok(_)) | Err(_) => Verdict::Passed,
            },
        );
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: devenv\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut head = Vec::new();
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let line = line.lines().next().unwrap_or_default().to_string();
    Ok(match http_status(&line) {
        Some(code) if (200..400).contains(&code) => Verdict::Passed,
        Some(_) => Verdict::Failed(format!("GET {path} at {target}: {line}")),
        None => Verdict::Failed(format!(
            "GET {path} at {target}: not an HTTP answer: {line:?}"
        )),
    })
}

/// The status code of an HTTP/1 status line (`HTTP/1.1 204 No Content` → 204).
fn http_status(line: &str) -> Option<u16> {
    let mut words = line.split_whitespace();
    if !words.next()?.starts_with("HTTP/") {
        return None;
    }
    words.next()?.parse().ok()
}

/// Run the healthcheck's command in the container, as Docker would.
pub async fn probe(engine: &Engine, id: &str, check: &Healthcheck) -> Verdict {
    let limit = Duration::from_secs(u64::from(check.timeout_s.max(1)));
    tracing::debug!(
        "engine: running the healthcheck `{}` in {id}",
        check.test.join(" ")
    );
    let run = async {
        let exec = engine
            .docker
            .create_exec(
                id,
                CreateExecOptions::<String> {
                    cmd: Some(check.test.clone()),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        let mut output = String::new();
        if let StartExecResults::Attached {
            output: mut out, ..
        } = engine
            .docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| e.to_string())?
        {
            while let Some(Ok(chunk)) = out.next().await {
                output.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
            }
        }
        let code = engine
            .docker
            .inspect_exec(&exec.id)
            .await
            .map_err(|e| e.to_string())?
            .exit_code;
        Ok::<_, String>(match code {
            Some(0) => Verdict::Passed,
            // The runtime says the same ("cannot exec in a stopped state", 126) when the
            // container stopped under the exec: that is for the crash-loop verdict, not this.
            c if runtime_could_not_execute(c) && still_running(engine, id).await => {
                Verdict::CannotRun(output)
            }
            _ => Verdict::Failed(output),
        })
    };
    match tokio::time::timeout(limit, run).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => Verdict::Failed(e),
        Err(_) => Verdict::Failed(format!("no answer within {}s", limit.as_secs())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_line_gives_its_code_and_anything_else_none() {
        assert_eq!(http_status("HTTP/1.1 204 No Content"), Some(204));
        assert_eq!(http_status("HTTP/1.0 503 Service Unavailable"), Some(503));
        assert_eq!(http_status("SSH-2.0-OpenSSH"), None);
        assert_eq!(http_status(""), None);
    }

    #[test]
    fn a_healthcheck_the_runtime_cannot_execute_is_named_with_what_to_do() {
        assert!(runtime_could_not_execute(Some(127)));
        assert!(runtime_could_not_execute(Some(126)));
        assert!(!runtime_could_not_execute(Some(1)));
        assert!(!runtime_could_not_execute(None));
        let check = Healthcheck {
            test: vec!["pg_isready".into(), "-q".into()],
            interval_s: 1,
            timeout_s: 1,
            retries: 1,
            start_period_s: 0,
        };
        let f = cannot_run(
            "pdns-db",
            &check,
            "exec: \"pg_isready\": executable file not found\n",
        );
        assert_eq!(f.exit_code(), crate::error::exit::ENVIRONMENT);
        assert!(f.message.contains("`pg_isready -q` cannot run"), "{f:?}");
        assert!(f.message.contains("executable file not found"), "{f:?}");
        assert!(f.hint.unwrap().contains("services.pdns-db.image"));
    }
}
