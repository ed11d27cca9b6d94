//! `devenv ci -- CMD` and CI mode's throwaway environments, against the real Docker engine
//! with the busybox stand-in images (as tests/up.rs), in a CI-like setting: `CI=true`, no
//! terminal. Each test checks what is left on the engine by label and name afterwards, and
//! removes whatever a failed run left.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::docker::{self, Env, PROJECT_LABEL, docker as docker_cli};

/// An environment for `test` with the core tier only (quicker), or `None` without an engine.
fn env(test: &str) -> Option<Env> {
    if !docker::engine() {
        return None;
    }
    let image = docker::standin_image()?;
    let mut env = Env::new(test, &image);
    env.top = "tiers: {observability: false, data: false, tools: false}\n".into();
    env.vars.push(("CI".into(), "true".into()));
    env.write();
    Some(env)
}

/// Publish `ports` (devenv.yaml's values; CI mode replaces them with free ones) and leave
/// `network.subnet` to CI mode, as a devenv.yaml that does not fix it.
fn publish_and_free_the_subnet(env: &mut Env, ports: &[(&str, &str)]) {
    for (service, port) in ports {
        env.publish(service, port, support::free_port());
    }
    let file = env.dir.path().join("devenv.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let text = text.replace(&format!("network:\n  subnet: {}\n", env.subnet()), "");
    assert!(!text.contains("subnet"), "{text}");
    std::fs::write(&file, text).unwrap();
}

/// Everything on the engine labelled with a project whose name starts with `prefix`:
/// containers, volumes and networks, as `kind name`.
fn labelled_with_prefix(prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    for kind in ["container", "volume", "network"] {
        let mut args = vec![kind, "ls"];
        if kind == "container" {
            args.push("-a");
        }
        let format = format!("{{{{.Names}}}} {{{{.Label \"{PROJECT_LABEL}\"}}}}");
        let format = if kind == "container" {
            format
        } else {
            format.replace(".Names", ".Name")
        };
        let filter = format!("label={PROJECT_LABEL}");
        args.extend(["--filter", &filter]);
        args.extend(["--format", &format]);
        let r = docker_cli(&args);
        assert_eq!(r.code, 0, "{r}");
        for line in r.stdout.lines() {
            if let Some((name, project)) = line.split_once(' ')
                && project.starts_with(prefix)
            {
                out.push(format!("{kind} {name}"));
            }
        }
    }
    out
}

/// Removes, when the test ends, whatever is labelled with a project starting with `prefix`
/// (the names CI mode derives from the test's environment name).
struct Leftovers(String);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for item in labelled_with_prefix(&self.0) {
            let (kind, name) = item.split_once(' ').unwrap();
            let _ = docker_cli(&[kind, "rm", "-f", name]);
        }
        // Networks after their containers.
        for item in labelled_with_prefix(&self.0) {
            let (kind, name) = item.split_once(' ').unwrap();
            let _ = docker_cli(&[kind, "rm", name]);
        }
    }
}

/// `KEY=value` lines a command wrote into `file`.
fn vars(file: &Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A variant of the stand-in whose entrypoint sleeps `seconds` first (so `up` is still
/// running a while after the first containers appear).
fn slow_start(base: &str, seconds: u32) -> String {
    let tag = format!("devenv-test/ci-slow-start:{seconds}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!(
            "FROM {base}\nENTRYPOINT [\"/bin/sh\", \"-c\", \"sleep {seconds}; exec /bin/serve\"]\n"
        ),
    )
    .unwrap();
    let r = support::run(
        Command::new("docker")
            .args(["build", "-q", "-t", &tag])
            .arg(dir.path())
            .env("DOCKER_BUILDKIT", "0"),
    );
    assert_eq!(r.code, 0, "{r}");
    tag
}

/// The shell script a job runs: writes its DEVENV_/KUBECONFIG variables, the gateway's
/// published port as the engine reports it, the network's subnet and what the services
/// answer into `out`.
fn probe_script(out: &Path) -> String {
    let out = out.display();
    format!(
        "set -e; env | grep -E '^(DEVENV_|KUBECONFIG=)' > {out}/vars; \
         docker port \"$DEVENV_NAME-gateway\" 80/tcp > {out}/gateway-port; \
         docker network inspect -f '{{{{range .IPAM.Config}}}}{{{{.Subnet}}}}{{{{end}}}}' \"$DEVENV_NAME-infra\" > {out}/subnet; \
         busybox wget -q -O {out}/gateway-answer \"$DEVENV_GATEWAY_URL/\"; \
         busybox wget -q -O {out}/registry-answer \"http://$DEVENV_REGISTRY/v2/\"; \
         cp \"$DEVENV_STATE_DIR/rendered/compose/infra.yaml\" {out}/infra.yaml"
    )
}

#[test]
fn the_command_sees_the_coordinates_the_services_answer_and_everything_is_removed() {
    let Some(mut env) = env("cicoord") else {
        return;
    };
    publish_and_free_the_subnet(&mut env, &[("gateway", "http"), ("registry", "api")]);
    for (k, v) in [
        ("GITHUB_RUN_ID", "4242"),
        ("GITHUB_RUN_ATTEMPT", "2"),
        ("GITHUB_JOB", "Unit_Tests"),
    ] {
        env.vars.push((k.into(), v.into()));
    }
    let expected = format!("{}-unit-tests-4242-2", env.name);
    let _leftovers = Leftovers(env.name.clone());
    let out = tempfile::tempdir().unwrap();
    let run = env.devenv(&["ci", "--", "sh", "-c", &probe_script(out.path())]);
    assert_eq!(run.code, 0, "{run}");

    let vars = vars(&out.path().join("vars"));
    assert_eq!(
        vars["DEVENV_NAME"], expected,
        "named after the job: {vars:?}"
    );
    assert_eq!(vars["DEVENV_STATE_DIR"], env.state().display().to_string());
    let gateway: u16 = vars["DEVENV_GATEWAY_PORT"].parse().unwrap();
    assert_eq!(
        vars["DEVENV_GATEWAY_URL"],
        format!("http://127.0.0.1:{gateway}")
    );
    assert_eq!(vars["DEVENV_GATEWAY_HOST"], "127.0.0.1");
    assert!(vars.contains_key("DEVENV_GATEWAY_HTTP_PORT"), "{vars:?}");
    assert!(
        vars["DEVENV_REGISTRY"].starts_with("127.0.0.1:"),
        "{vars:?}"
    );
    assert!(vars.contains_key("DEVENV_DNS"), "{vars:?}");
    assert!(
        !vars.contains_key("KUBECONFIG"),
        "no cluster, no kubeconfig: {vars:?}"
    );
    // The engine publishes the port the command was told, the compose file in the state
    // directory says the same, and the services answer there.
    let published = std::fs::read_to_string(out.path().join("gateway-port")).unwrap();
    assert!(
        published.trim().ends_with(&format!("127.0.0.1:{gateway}")),
        "{published}"
    );
    let compose = std::fs::read_to_string(out.path().join("infra.yaml")).unwrap();
    assert!(
        compose.contains(&format!("127.0.0.1:{gateway}:80")),
        "{compose}"
    );
    assert!(out.path().join("gateway-answer").is_file());
    assert!(out.path().join("registry-answer").is_file());
    let subnet = std::fs::read_to_string(out.path().join("subnet")).unwrap();
    assert!(
        subnet.trim().starts_with("172.30."),
        "a free /24 was picked: {subnet}"
    );
    // The coordinates are reported to the person reading the job's log too.
    assert!(
        run.stderr
            .contains(&format!("DEVENV_GATEWAY_PORT={gateway}")),
        "{run}"
    );

    assert_eq!(
        labelled_with_prefix(&expected),
        Vec::<String>::new(),
        "{run}"
    );
    assert!(!env.state().exists(), "the state directory is removed");
}

#[test]
fn cmds_exit_code_is_passed_on_its_flags_are_its_own_and_a_missing_cmd_exits_127() {
    let Some(env) = env("ciexit") else {
        return;
    };
    let _leftovers = Leftovers(env.name.clone());
    // `--keep` and `--bogus` after `--` are CMD's: it exits 7 only when it got them.
    let run = env.devenv(&[
        "ci",
        "--name",
        &env.name,
        "--",
        "sh",
        "-c",
        "test \"$1 $2\" = '--keep --bogus' && exit 7",
        "sh",
        "--keep",
        "--bogus",
    ]);
    assert_eq!(run.code, 7, "{run}");
    assert_eq!(
        labelled_with_prefix(&env.name),
        Vec::<String>::new(),
        "{run}"
    );

    let run = env.devenv(&["ci", "--name", &env.name, "--", "no-such-command-devenv"]);
    assert_eq!(run.code, 127, "{run}");
    assert!(run.stderr.contains("no-such-command-devenv"), "{run}");
    assert!(run.stderr.contains("removed"), "torn down first: {run}");
    assert_eq!(
        labelled_with_prefix(&env.name),
        Vec::<String>::new(),
        "{run}"
    );
    assert!(!env.state().exists());

    // A signal that kills CMD: 128 + its number, as a shell reports it.
    let run = env.devenv(&["ci", "--name", &env.name, "--", "sh", "-c", "kill -TERM $$"]);
    assert_eq!(run.code, 128 + 15, "{run}");
}

#[test]
fn sigterm_while_up_runs_removes_everything_it_made_and_nothing_else() {
    let Some(mut env) = env("cisigterm") else {
        return;
    };
    env.image_overrides
        .insert("pdns-db".into(), slow_start(&env.image, 6));
    env.write();
    let _leftovers = Leftovers(env.name.clone());
    // Someone else's: another project's container and volume, and an unlabelled volume.
    let foreign = format!("{}-foreign", env.name.replace("cisigterm", "other"));
    let label = format!("{PROJECT_LABEL}={foreign}");
    let c = docker_cli(&[
        "run", "-d", "--name", &foreign, "--label", &label, &env.image,
    ]);
    assert_eq!(c.code, 0, "{c}");
    let v = docker_cli(&["volume", "create", "--label", &label, &foreign]);
    assert_eq!(v.code, 0, "{v}");
    let plain = format!("{foreign}-plain");
    assert_eq!(docker_cli(&["volume", "create", &plain]).code, 0);

    let log = env.dir.path().join("ci.log");
    let mut child = env
        .command(&["ci", "--name", &env.name, "--", "sleep", "300"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("devenv starts");
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    let started = Instant::now();
    while env.containers().is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "nothing created within a minute:\n{}",
            said()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended early:\n{}",
            said()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !env.containers().contains_key(&env.container("pdns")),
        "up got too far before the signal: {:?}",
        env.containers()
    );
    let pid = i32::try_from(child.id()).unwrap();
    // SAFETY: the child's PID; it has not been waited for.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(128 + 15), "{}", said());
    assert!(
        !said().contains("running sleep"),
        "CMD never ran:\n{}",
        said()
    );

    assert_eq!(
        labelled_with_prefix(&env.name),
        Vec::<String>::new(),
        "{}",
        said()
    );
    assert!(!env.state().exists(), "{}", said());
    let alive = docker_cli(&["inspect", "-f", "{{.State.Running}}", &foreign]);
    assert_eq!(
        alive.stdout.trim(),
        "true",
        "the foreign container survives"
    );
    for volume in [&foreign, &plain] {
        assert_eq!(
            docker_cli(&["volume", "inspect", volume]).code,
            0,
            "{volume} survives"
        );
    }
    docker_cli(&["rm", "-f", &foreign]);
    docker_cli(&["volume", "rm", &foreign, &plain]);
}

#[test]
fn two_jobs_in_parallel_on_one_engine_share_nothing() {
    let Some(mut env) = env("cipar") else {
        return;
    };
    publish_and_free_the_subnet(&mut env, &[("gateway", "http"), ("registry", "api")]);
    let _leftovers = Leftovers(env.name.clone());
    // One checkout, one devenv.yaml, two jobs; the state directory is the default one, keyed
    // by the environment's name.
    let spawn = |out: &Path, log: &Path| {
        env.command(&["ci", "--", "sh", "-c", &probe_script(out)])
            .env_remove("DEVENV_STATE_DIR")
            .env("XDG_STATE_HOME", env.dir.path().join("xdg"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .expect("devenv starts")
    };
    let outs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let logs: Vec<PathBuf> = (0..2)
        .map(|i| env.dir.path().join(format!("job{i}.log")))
        .collect();
    let mut jobs: Vec<_> = (0..2).map(|i| spawn(outs[i].path(), &logs[i])).collect();
    for (i, job) in jobs.iter_mut().enumerate() {
        let status = job.wait().unwrap();
        let log = std::fs::read_to_string(&logs[i]).unwrap();
        assert_eq!(status.code(), Some(0), "job {i}:\n{log}");
    }
    let [a, b] = [0, 1].map(|i| vars(&outs[i].path().join("vars")));
    let read = |i: usize, f: &str| std::fs::read_to_string(outs[i].path().join(f)).unwrap();
    assert_ne!(a["DEVENV_NAME"], b["DEVENV_NAME"]);
    assert!(
        a["DEVENV_NAME"].starts_with(&format!("{}-", env.name)),
        "{a:?}"
    );
    assert_ne!(a["DEVENV_STATE_DIR"], b["DEVENV_STATE_DIR"]);
    assert_ne!(read(0, "subnet"), read(1, "subnet"));
    for key in ["DEVENV_GATEWAY_PORT", "DEVENV_REGISTRY", "DEVENV_DNS"] {
        assert_ne!(a[key], b[key], "{key}");
    }
    for v in [&a, &b] {
        assert_eq!(
            labelled_with_prefix(&v["DEVENV_NAME"]),
            Vec::<String>::new()
        );
        assert!(!Path::new(&v["DEVENV_STATE_DIR"]).exists());
    }
}

#[test]
fn a_timeout_during_up_tears_down_and_exits_3_naming_the_step() {
    let Some(mut env) = env("citimeout") else {
        return;
    };
    env.image_overrides
        .insert("pdns-db".into(), slow_start(&env.image, 6));
    env.write();
    let _leftovers = Leftovers(env.name.clone());
    let run = env.devenv(&["ci", "--name", &env.name, "--timeout", "3s", "--", "true"]);
    assert_eq!(run.code, 3, "{run}");
    assert!(
        run.stderr.contains("timed out after 3s while running: "),
        "{run}"
    );
    assert!(!run.stderr.contains("running true"), "CMD never ran: {run}");
    assert_eq!(
        labelled_with_prefix(&env.name),
        Vec::<String>::new(),
        "{run}"
    );
    assert!(!env.state().exists(), "{run}");
}

#[test]
fn keep_leaves_the_environment_and_the_printed_command_removes_it() {
    let Some(env) = env("cikeep") else {
        return;
    };
    let _leftovers = Leftovers(env.name.clone());
    let run = env.devenv(&["ci", "--keep", "--name", &env.name, "--", "true"]);
    assert_eq!(run.code, 0, "{run}");
    assert!(!env.containers().is_empty(), "kept: {run}");
    assert!(env.state().exists());
    // In a fresh shell elsewhere, with devenv on PATH.
    let elsewhere = tempfile::tempdir().unwrap();
    let (command, removed) = support::run_kept_removal(&run, elsewhere.path(), &[]);
    assert_eq!(removed.code, 0, "{command}\n{removed}");
    assert_eq!(
        labelled_with_prefix(&env.name),
        Vec::<String>::new(),
        "{removed}"
    );
    assert!(
        !env.state().exists(),
        "the state directory the job made goes too: {command}"
    );
}

#[test]
fn ci_needs_a_command_after_the_double_dash() {
    let home = tempfile::tempdir().unwrap();
    let r = support::run(support::devenv(home.path()).args(["ci"]));
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("<CMD>"), "{r}");
    let r = support::run(support::devenv(home.path()).args(["ci", "--bogus", "--", "true"]));
    assert_eq!(r.code, 2, "an unknown flag before `--` is devenv's: {r}");
    let r =
        support::run(support::devenv(home.path()).args(["ci", "--timeout", "soon", "--", "true"]));
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("`soon` is not a duration"), "{r}");
}
