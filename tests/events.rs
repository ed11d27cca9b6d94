//! CI mode and the `--output jsonl` event stream, through the real binary as a CI job runs it:
//! `CI=true`, no terminal (stdin closed, stdout and stderr pipes), the real Docker engine with
//! the busybox stand-in images (tests/support/docker.rs), and the fake kind for the cluster's
//! steps (tests/support/kind.rs).
//!
//! What every stream must be: each stdout line one JSON object with `ts` (RFC 3339 UTC),
//! `event`, `kind`, `name` and `id`; every start finished exactly once, by id, with the same
//! kind and name, an outcome and a duration — also when `up` fails; one `result` event, last.
//! Plus GitHub Actions: the `::error` annotation and the step summary file.
//!
//! Without an engine these skip visibly; with `DEVENV_REQUIRE_DOCKER=1` they fail.

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;
use support::docker::{self, Env, SERVICES};
use support::kind::{Cluster, fake_kind};
use support::{Run, free_port, run};

/// An environment for `test`, or `None` (after a skip notice) without an engine.
fn env(test: &str) -> Option<Env> {
    if !docker::engine() {
        return None;
    }
    let image = docker::standin_image()?;
    Some(Env::new(test, &image))
}

/// `devenv <args>` in `env` as a CI job runs it: `CI=true`, plus `vars`.
fn ci(env: &Env, args: &[&str], vars: &[(&str, &str)]) -> Run {
    let mut cmd: Command = env.command(args);
    cmd.env("CI", "true");
    for (k, v) in vars {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// One finished unit of a stream.
#[derive(Debug)]
struct Unit {
    kind: String,
    name: String,
    outcome: String,
    finish: Value,
}

/// A parsed and checked event stream.
struct Stream {
    units: Vec<Unit>,
    result: Value,
}

impl Stream {
    /// Parse `r`'s stdout and check every rule of the stream (see the module docs).
    fn of(r: &Run) -> Stream {
        let events: Vec<Value> = r
            .stdout
            .lines()
            .map(|line| {
                assert!(
                    line.starts_with("{\"ts\":\""),
                    "ts leads every event: {line}"
                );
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("a line that is not JSON ({e}): {line:?}\n{r}"))
            })
            .collect();
        assert!(!events.is_empty(), "no events:\n{r}");
        let mut starts: BTreeMap<u64, &Value> = BTreeMap::new();
        let mut units = Vec::new();
        let mut ids = std::collections::BTreeSet::new();
        for (i, e) in events.iter().enumerate() {
            assert!(e.is_object(), "{e}");
            let ts = e["ts"].as_str().unwrap_or_else(|| panic!("no ts: {e}"));
            assert!(rfc3339_utc(ts), "ts is not RFC 3339 UTC: {e}");
            for key in ["event", "kind", "name"] {
                assert!(e[key].is_string(), "no {key}: {e}");
            }
            let id = e["id"].as_u64().unwrap_or_else(|| panic!("no id: {e}"));
            let last = i + 1 == events.len();
            match e["event"].as_str().unwrap() {
                "start" => {
                    assert!(ids.insert(id), "id {id} started twice:\n{r}");
                    starts.insert(id, e);
                }
                "finish" => {
                    let start = starts
                        .remove(&id)
                        .unwrap_or_else(|| panic!("a finish without its start: {e}\n{r}"));
                    assert_eq!(start["kind"], e["kind"], "{e}");
                    assert_eq!(start["name"], e["name"], "{e}");
                    assert!(e["duration_ms"].is_u64(), "no duration_ms: {e}");
                    let outcome = e["outcome"].as_str().unwrap_or_default().to_string();
                    assert!(
                        ["ok", "failed", "skipped"].contains(&outcome.as_str()),
                        "{e}"
                    );
                    units.push(Unit {
                        kind: e["kind"].as_str().unwrap().into(),
                        name: e["name"].as_str().unwrap().into(),
                        outcome,
                        finish: e.clone(),
                    });
                }
                "result" => {
                    assert!(last, "the result is not the last event:\n{r}");
                    assert_eq!(e["kind"], "result", "{e}");
                    assert!(ids.insert(id), "the result reuses id {id}");
                }
                other => panic!("unknown event {other}: {e}"),
            }
            if last {
                assert_eq!(
                    e["event"], "result",
                    "the last line is not the result:\n{r}"
                );
            }
        }
        assert!(starts.is_empty(), "starts never finished: {starts:?}\n{r}");
        let result = events.last().unwrap().clone();
        assert_eq!(result["exit_code"], r.code, "{result}\n{r}");
        Stream { units, result }
    }

    /// The finished unit `kind`/`name` (exactly one).
    fn unit(&self, kind: &str, name: &str) -> &Unit {
        let found: Vec<&Unit> = self
            .units
            .iter()
            .filter(|u| u.kind == kind && u.name == name)
            .collect();
        assert_eq!(found.len(), 1, "{kind} {name}: {:?}", self.units);
        found[0]
    }

    fn names(&self, kind: &str) -> Vec<&str> {
        self.units
            .iter()
            .filter(|u| u.kind == kind)
            .map(|u| u.name.as_str())
            .collect()
    }
}

/// `2026-05-09T21:40:01.123Z`.
fn rfc3339_utc(ts: &str) -> bool {
    let b = ts.as_bytes();
    ts.len() == 24
        && ts.ends_with('Z')
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && b[10] == b'T'
        && [13, 16].iter().all(|&i| b[i] == b':')
        && b[19] == b'.'
        && ts
            .char_indices()
            .filter(|(i, _)| ![4, 7, 10, 13, 16, 19, 23].contains(i))
            .all(|(_, c)| c.is_ascii_digit())
}

/// No terminal escape codes and no spinner frames (indicatif's braille dots) in `text`.
fn assert_plain(text: &str) {
    assert!(!text.contains('\x1b'), "escape codes in CI output:\n{text}");
    assert!(
        !text.chars().any(|c| ('\u{2800}'..='\u{28ff}').contains(&c)),
        "spinner frames in CI output:\n{text}"
    );
}

#[test]
fn up_streams_every_step_and_service_ending_with_the_result_and_summarises_for_github() {
    let Some(mut env) = env("evup") else { return };
    env.publish("gateway", "http", free_port());
    let summary = env.dir.path().join("step-summary.md");
    let summary_var = summary.to_str().unwrap();
    let github = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_STEP_SUMMARY", summary_var),
    ];
    let up = ci(&env, &["up", "--pull", "never", "-o", "jsonl"], &github);
    assert_eq!(up.code, 0, "{up}");
    let stream = Stream::of(&up);
    for step in ["render", "connect", "check", "fetch", "apply"] {
        assert_eq!(stream.unit("step", step).outcome, "ok", "{up}");
    }
    for (service, _) in SERVICES {
        let unit = stream.unit("service", service);
        assert_eq!(unit.outcome, "ok", "{up}");
        assert_eq!(unit.finish["detail"], "create", "{up}");
    }
    assert_eq!(stream.names("service").len(), SERVICES.len(), "{up}");
    assert!(stream.names("pull").is_empty(), "--pull never: {up}");
    assert_eq!(stream.result["name"], "up");
    assert_eq!(stream.result["outcome"], "ok");
    // The result carries the `-o json` document.
    let rows = stream.result["data"]["services"].as_array().expect("rows");
    assert_eq!(rows.len(), SERVICES.len(), "{}", stream.result);
    // CI mode on stderr: plain status lines, no bars; on stdout nothing but events.
    assert_plain(&up.stderr);
    assert_plain(&up.stdout);
    assert!(up.stderr.contains("healthy"), "{up}");
    assert!(!up.stdout.contains("::error"), "{up}");

    // The step summary: the result and a row per service with its URL and time.
    let text = std::fs::read_to_string(&summary).expect("the step summary was written");
    assert!(text.contains("### devenv up: ok in "), "{text}");
    for (service, _) in SERVICES {
        assert!(
            text.lines()
                .any(|l| l.starts_with(&format!("| {service} |"))
                    && l.contains("| running | healthy |")
                    && l.trim_end().ends_with("s |")),
            "{service} missing from the summary:\n{text}"
        );
    }
    assert!(text.contains("http://grafana.macula.local"), "{text}");

    // A rerun with --ci instead of CI: every service kept, appended to the same summary.
    let mut cmd = env.command(&["--ci", "up", "--pull", "never", "--output", "jsonl"]);
    cmd.env("GITHUB_STEP_SUMMARY", summary_var);
    let again = run(&mut cmd);
    assert_eq!(again.code, 0, "{again}");
    let stream = Stream::of(&again);
    for (service, _) in SERVICES {
        assert_eq!(
            stream.unit("service", service).finish["detail"],
            "keep",
            "{again}"
        );
    }
    assert_plain(&again.stderr);
    let text = std::fs::read_to_string(&summary).unwrap();
    assert_eq!(text.matches("### devenv up: ok").count(), 2, "{text}");

    // down streams its steps too, and its document rides on the result.
    let down = ci(&env, &["down", "-o", "jsonl"], &[]);
    assert_eq!(down.code, 0, "{down}");
    let stream = Stream::of(&down);
    assert_eq!(stream.unit("step", "teardown").outcome, "ok");
    assert_eq!(stream.unit("step", "cluster").outcome, "ok");
    let removed = stream.result["data"]["containers_removed"]
        .as_array()
        .expect("the down document");
    assert_eq!(removed.len(), SERVICES.len(), "{}", stream.result);
}

#[test]
fn a_failing_up_finishes_every_start_and_ends_with_the_failure_and_an_annotation() {
    let Some(mut env) = env("evfail") else { return };
    // An image that is not there, and may not be pulled: the preflight fails, exit 3. (A port
    // held by someone else would not do: CI mode publishes on free ports of its own.)
    let image = "devenv-test/never-built:v1".to_string();
    env.image_overrides.insert("registry".into(), image.clone());
    env.write();
    let summary = env.dir.path().join("step-summary.md");
    let github = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
    ];
    let up = ci(
        &env,
        &["up", "--only", "registry", "--pull", "never", "-o", "jsonl"],
        &github,
    );
    assert_eq!(up.code, 3, "{up}");
    let stream = Stream::of(&up);
    assert_eq!(stream.unit("step", "render").outcome, "ok");
    let check = stream.unit("step", "check");
    assert_eq!(check.outcome, "failed", "{up}");
    assert!(
        check.finish["error"]
            .as_str()
            .is_some_and(|e| e.contains(&image)),
        "{up}"
    );
    assert!(stream.names("service").is_empty(), "nothing started: {up}");
    assert_eq!(stream.result["outcome"], "failed");
    assert_eq!(stream.result["exit_code"], 3);
    let error = stream.result["error"].as_str().expect("the error");
    assert!(error.contains(&image), "{error}");
    assert!(stream.result["hint"].is_string(), "{}", stream.result);
    assert!(env.containers().is_empty(), "nothing was made");
    assert_plain(&up.stderr);

    // The annotation: on stderr beside JSON on stdout, one line, newlines escaped.
    let annotation = up
        .stderr
        .lines()
        .find(|l| l.starts_with("::error title=devenv up::"))
        .unwrap_or_else(|| panic!("no annotation:\n{up}"));
    assert!(annotation.contains("%0A"), "{annotation}");
    assert!(annotation.contains(&image), "{annotation}");
    let text = std::fs::read_to_string(&summary).expect("the step summary was written");
    assert!(
        text.starts_with("### devenv up: failed: preflight failed"),
        "{text}"
    );

    // Human output: the annotation is on stdout, where GitHub documents it.
    let human = ci(
        &env,
        &["up", "--only", "registry", "--pull", "never"],
        &github,
    );
    assert_eq!(human.code, 3, "{human}");
    assert!(
        human
            .stdout
            .lines()
            .any(|l| l.starts_with("::error title=devenv up::preflight failed")),
        "{human}"
    );
    // Not on GitHub: no annotation.
    let plain = ci(&env, &["up", "--only", "registry", "--pull", "never"], &[]);
    assert_eq!(plain.code, 3, "{plain}");
    assert!(!plain.stdout.contains("::error") && !plain.stderr.contains("::error"));
}

#[test]
fn a_pull_that_fails_is_a_finished_pull_event() {
    let Some(mut env) = env("evpull") else { return };
    // A registry that does not answer: the engine's pull fails at once.
    let closed = free_port();
    let image = format!("127.0.0.1:{closed}/devenv-test/absent:v1");
    env.image_overrides.insert("registry".into(), image.clone());
    env.write();
    let up = ci(
        &env,
        &[
            "up", "--only", "registry", "--pull", "missing", "-o", "jsonl",
        ],
        &[],
    );
    assert_eq!(up.code, 3, "{up}");
    let stream = Stream::of(&up);
    let pull = stream.unit("pull", &image);
    assert_eq!(pull.outcome, "failed", "{up}");
    assert_eq!(pull.finish["bytes"], 0, "{up}");
    assert!(pull.finish["error"].is_string(), "{up}");
    assert_eq!(stream.unit("step", "fetch").outcome, "failed", "{up}");
    assert!(stream.names("service").is_empty(), "{up}");
    assert_eq!(stream.result["exit_code"], 3);
}

#[test]
fn the_cluster_steps_stream_beside_the_services_and_a_failing_step_ends_them() {
    let Some(fake) = fake_kind() else { return };
    let Some(mut env) = env("evkind") else { return };
    env.top = "routing:\n  mode: ports\n".into();
    env.cluster = format!(
        "  provider: kind\n  http_port: {}\n  https_port: {}\n  quic_port: {}\n",
        free_port(),
        free_port(),
        free_port()
    );
    env.vars.push(("DEVENV_KIND".into(), fake.clone().into()));
    let kubeconfig = env.dir.path().join("kubeconfig");
    env.vars
        .push(("DEVENV_KUBECONFIG".into(), kubeconfig.into()));
    env.write();
    let _cluster = Cluster {
        name: env.name.clone(),
        fake,
    };
    // The fake's API server answers nothing: up fails at the `api` step, exit 3.
    let up = ci(&env, &["up", "--timeout", "60", "-o", "jsonl"], &[]);
    assert_eq!(up.code, 3, "{up}");
    let stream = Stream::of(&up);
    let nodes = stream.unit("cluster", "nodes");
    assert_eq!(nodes.outcome, "ok", "{up}");
    assert_eq!(nodes.finish["detail"], "created", "{up}");
    assert_eq!(stream.unit("cluster", "api").outcome, "failed", "{up}");
    assert_eq!(stream.unit("cluster", "cluster").outcome, "failed", "{up}");
    // The infrastructure came up beside it, every service recorded.
    for (service, _) in SERVICES {
        assert_eq!(stream.unit("service", service).outcome, "ok", "{up}");
    }
    assert_eq!(stream.unit("step", "apply").outcome, "failed", "{up}");
    assert_eq!(stream.result["outcome"], "failed");
    assert!(
        stream.result["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not answer")),
        "{}",
        stream.result
    );
    assert_plain(&up.stderr);
}

#[test]
fn jsonl_is_refused_by_commands_that_print_one_document() {
    let dir = tempfile::tempdir().unwrap();
    for command in [&["status"][..], &["routes", "list"], &["config", "show"]] {
        let r = run(support::devenv(dir.path())
            .args(["--output", "jsonl"])
            .args(command));
        assert_eq!(r.code, 2, "{r}");
        assert!(r.stderr.contains("use --output json"), "{r}");
        assert!(r.stdout.is_empty(), "{r}");
    }
}

#[test]
fn arguments_refused_before_anything_runs_still_end_the_stream_with_the_result() {
    let dir = tempfile::tempdir().unwrap();
    for (args, name, says) in [
        (&["-o", "jsonl", "up", "--bogus"][..], "up", "'--bogus'"),
        (
            &["up", "--output=jsonl", "--timeout", "soon"],
            "up",
            "not a duration",
        ),
        (&["--output", "jsonl", "ci"], "ci", "<CMD>"),
        (&["-ojsonl", "nosuch"], "devenv", "'nosuch'"),
    ] {
        let r = run(support::devenv(dir.path()).args(args));
        assert_eq!(r.code, 2, "{args:?}: {r}");
        let stream = Stream::of(&r);
        assert!(stream.units.is_empty(), "{r}");
        assert_eq!(stream.result["name"], name, "{r}");
        assert_eq!(stream.result["outcome"], "failed", "{r}");
        assert!(
            stream.result["error"].as_str().unwrap().contains(says),
            "{args:?}: {r}"
        );
        assert!(stream.result["hint"].as_str().unwrap().contains("--help"));
        // clap's own message for the person reading the log.
        assert!(r.stderr.starts_with("error: "), "{r}");
    }
    // A command group without its subcommand: clap's help on stderr, the result on stdout.
    let r = run(support::devenv(dir.path()).args(["-o", "jsonl", "dns"]));
    assert_eq!(r.code, 2, "{r}");
    let stream = Stream::of(&r);
    assert_eq!(stream.result["name"], "dns", "{r}");
    assert_eq!(stream.result["error"], "`dns` needs a subcommand", "{r}");
    assert!(r.stderr.contains("Usage: devenv dns"), "{r}");
    // Without the stream: clap's message only, nothing on stdout.
    let r = run(support::devenv(dir.path()).args(["up", "--bogus"]));
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stdout.is_empty(), "{r}");
}

/// `devenv <args>` in `env` on a terminal: under `script`, which gives it a pseudo-terminal
/// for stdin, stdout and stderr (its output is the terminal's: both streams).
fn on_a_terminal(env: &Env, script: &std::path::Path, args: &[&str]) -> Run {
    let devenv = env.command(args);
    let line: Vec<String> = std::iter::once(devenv.get_program())
        .chain(devenv.get_args())
        .map(|a| format!("'{}'", a.to_str().unwrap()))
        .collect();
    let mut cmd = Command::new("timeout");
    cmd.arg("120")
        .arg(script)
        .args(["-qec", &line.join(" "), "/dev/null"])
        .env_clear()
        .current_dir(devenv.get_current_dir().unwrap())
        .stdin(std::process::Stdio::null());
    for (k, v) in devenv.get_envs() {
        // Colour is left to CI mode to turn off.
        if let (Some(v), false) = (v, k == "NO_COLOR") {
            cmd.env(k, v);
        }
    }
    cmd.env("TERM", "xterm");
    run(&mut cmd)
}

#[test]
fn on_a_terminal_ci_mode_asks_nothing_and_draws_plain_lines() {
    let Some(script) = support::tool("script") else {
        return;
    };
    let Some(env) = env("evtty") else { return };
    let up = on_a_terminal(
        &env,
        &script,
        &["--ci", "up", "--only", "registry", "--pull", "never"],
    );
    assert_eq!(up.code, 0, "{up}");
    assert!(up.stdout.contains("healthy"), "{up}");
    assert_plain(&up.stdout);
    // A question without its flag: exit 2 naming the flag, asked nothing.
    let down = on_a_terminal(&env, &script, &["--ci", "down", "--purge"]);
    assert_eq!(down.code, 2, "{down}");
    assert!(down.stdout.contains("pass --yes"), "{down}");
    assert_plain(&down.stdout);
    assert_eq!(env.states().len(), 1, "nothing was removed");
}
