//! The real binary, run with a scrubbed environment: exit codes, stdout and stderr together.
//! Most of this file is the malformed-input suite: every bad devenv.yaml exits 2 naming the
//! file, line and column and a hint, and changes nothing.

mod support;

use std::path::Path;

use support::{Run, devenv, run};

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// (case, devenv.yaml text, what stderr must say, the `file:line:col` it must name).
const MALFORMED: &[(&str, &str, &str, &str)] = &[
    (
        "unknown top-level key",
        "name: x\nnmae: y\n",
        "unknown key `nmae`",
        ":2:1",
    ),
    (
        "unknown nested key",
        "cluster:\n  workerz: 1\n",
        "unknown key `workerz`",
        ":2:3",
    ),
    (
        "wrong type",
        "cluster:\n  workers: many\n",
        "`many` is not a whole number",
        ":2:12",
    ),
    (
        "port out of range",
        "services:\n  grafana:\n    ports:\n      http: 70000\n",
        "70000",
        ":4:13",
    ),
    (
        "negative port",
        "services:\n  grafana:\n    ports:\n      http: -1\n",
        "-1",
        ":4:13",
    ),
    (
        "bad domain",
        "domain: bad_domain\n",
        "not a valid DNS domain",
        ":1:1",
    ),
    (
        "empty domain",
        "domain: \"\"\n",
        "not a valid DNS domain",
        ":1:1",
    ),
    (
        "empty name",
        "name: \"\"\n",
        "not a valid environment name",
        ":1:1",
    ),
    (
        "uppercase name",
        "name: Macula\n",
        "not a valid environment name",
        ":1:1",
    ),
    (
        "duplicate hostname",
        "services:\n  grafana:\n    hostnames: [prometheus]\n",
        "also used by",
        ":3:17",
    ),
    (
        "address and port clash",
        "services:\n  grafana:\n    ports:\n      http: 9090\n",
        "127.0.0.1:9090/tcp is also used by",
        ":4:7",
    ),
    (
        "bad IP",
        "services:\n  grafana:\n    address: 127.0.0.300\n",
        "invalid",
        ":3:14",
    ),
    (
        "address outside loopback",
        "services:\n  grafana:\n    address: 192.168.1.10\n",
        "outside loopback",
        ":3:5",
    ),
    (
        "unknown service",
        "services:\n  grafna: {}\n",
        "did you mean `grafana`",
        ":2:3",
    ),
    (
        "unknown port name",
        "services:\n  grafana:\n    ports:\n      web: 3001\n",
        "has no port `web`",
        ":4:7",
    ),
    (
        "unpinned image",
        "services:\n  grafana:\n    image: grafana/grafana\n",
        "not pinned",
        ":3:5",
    ),
    (
        "latest image",
        "services:\n  grafana:\n    image: grafana/grafana:latest\n",
        "`:latest` is not a pinned version",
        ":3:5",
    ),
    (
        "unknown routing mode",
        "routing:\n  mode: magic\n",
        "`magic` is not one of: split-ip, ports",
        ":2:9",
    ),
    (
        "TTL too long",
        "dns:\n  ttl: 999999\n",
        "longer than a day",
        ":2:3",
    ),
    (
        "bad A record",
        "dns:\n  records:\n    - name: api\n      type: A\n      value: not-an-ip\n",
        "not valid data for a A record",
        ":5:7",
    ),
    (
        "upstream is devenv itself",
        "dns:\n  upstreams: [\"127.0.0.1:20053\"]\n",
        "queries would loop",
        ":2:15",
    ),
    ("broken YAML", "services:\n  grafana: [\n", "", ":"),
    (
        "one address for apps and infrastructure",
        "dns:\n  applications: 127.0.0.1\n",
        "share one address",
        ":2:3",
    ),
    (
        "invalid subnet",
        "network:\n  subnet: 300.1.1.0/24\n",
        "invalid",
        ":2:11",
    ),
    (
        "node image latest",
        "cluster:\n  node_image: kindest/node:latest\n",
        "not pinned",
        ":2:3",
    ),
    (
        "hostname outside the domain",
        "services:\n  grafana:\n    hostnames: [grafana.example.com]\n",
        "not under the domain",
        ":3:17",
    ),
    (
        "resolver port clashes with gateway",
        "dns:\n  port: 80\n",
        "is also used by services.gateway.ports.http",
        ":2:3",
    ),
    (
        "unknown record type",
        "dns:\n  records:\n    - {name: a, type: MX, value: x}\n",
        "`MX` is not one of: A, AAAA, CNAME, TXT",
        ":3:",
    ),
    (
        "workers beyond a laptop",
        "cluster:\n  workers: 50\n",
        "more than a laptop holds",
        ":2:3",
    ),
    (
        "tier typo",
        "tiers:\n  observabilty: false\n",
        "unknown key `observabilty`",
        ":2:3",
    ),
];

#[test]
fn malformed_devenv_yaml_exits_2_naming_file_line_and_fix_and_changes_nothing() {
    assert!(MALFORMED.len() >= 20);
    let mut failures = Vec::new();
    for (case, text, says, at) in MALFORMED {
        let home = tempfile::tempdir().unwrap();
        write(home.path(), "devenv.yaml", text);
        let out = home.path().join("out");
        let r = run(devenv(home.path()).args(["render", "--out"]).arg(&out));
        let ok = r.code == 2
            && r.stderr.contains(&format!("devenv.yaml{at}"))
            && r.stderr.contains(says)
            && r.stderr.contains("hint:")
            && r.stdout.is_empty()
            && !out.exists()
            && !home.path().join("state").exists();
        if !ok {
            failures.push(format!("case `{case}`: wanted exit 2, `devenv.yaml{at}`, `{says}` and a hint, nothing written\n{r}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// (case, devenv.yaml text, the first line of stderr in full: position and devenv's words).
const SYNTAX: &[(&str, &str, &str)] = &[
    (
        "tab indentation",
        "cluster:\n  workers: 1\n\tprovider: none\n",
        "error: devenv.yaml:3:1: a tab indents this line: YAML indents with spaces only",
    ),
    (
        "unclosed double quote",
        "name: \"abc\ndomain: macula.local\n",
        "error: devenv.yaml:1:7: a quoted value is not closed: the quote that starts it has no partner",
    ),
    (
        "unclosed single quote",
        "domain: macula.local\nname: 'abc\n",
        "error: devenv.yaml:2:7: a quoted value is not closed: the quote that starts it has no partner",
    ),
    (
        "duplicate key",
        "name: a\nname: b\n",
        "error: devenv.yaml:2:1: key `name` appears twice in one mapping",
    ),
    (
        "wrong type",
        "cluster:\n  workers: many\n",
        "error: devenv.yaml:2:12: cluster.workers: `many` is not a whole number",
    ),
    (
        "unclosed bracket",
        "services:\n  grafana: [\n",
        "error: devenv.yaml:2:12: a list `[` or mapping `{` is not closed",
    ),
    (
        "colon in a plain value",
        "name: a: b\n",
        "error: devenv.yaml:1:8: a second `: ` on this line: a value that holds `: ` must be quoted",
    ),
    (
        "indentation",
        "cluster:\n  workers: 1\n provider: none\n",
        "error: devenv.yaml:3:2: this line's indentation does not line up with the keys above it",
    ),
];

#[test]
fn yaml_that_does_not_parse_is_explained_in_devenvs_words_first() {
    let mut failures = Vec::new();
    for (case, text, first) in SYNTAX {
        let home = tempfile::tempdir().unwrap();
        write(home.path(), "devenv.yaml", text);
        let out = home.path().join("out");
        let r = run(devenv(home.path()).args(["render", "--out"]).arg(&out));
        let ok = r.code == 2
            && r.stderr.lines().next() == Some(*first)
            && r.stderr.contains("hint:")
            && r.stdout.is_empty()
            && !out.exists()
            && !home.path().join("state").exists();
        if !ok {
            failures.push(format!(
                "case `{case}`: wanted exit 2 and first line `{first}`\n{r}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        "devenv.yaml",
        "name: Bad\ndomain: bad_domain\nservices:\n  grafna: {}\n",
    );
    let r = run(devenv(home.path()).args(["config", "validate"]));
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("3 problems"), "{r}");
    for at in ["devenv.yaml:1:1", "devenv.yaml:2:1", "devenv.yaml:4:3"] {
        assert!(r.stderr.contains(at), "{at} missing\n{r}");
    }
}

/// Run `cmd` to completion, failing the test (not hanging it) when it is still running after
/// a generous deadline.
fn run_or_hang(cmd: &mut std::process::Command) -> Run {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} was still running after 30 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Run::of(child.wait_with_output().unwrap())
}

#[test]
fn a_config_path_that_is_not_a_text_file_is_refused_at_once() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("conf.d");
    std::fs::create_dir(&dir).unwrap();
    let fifo = home.path().join("fifo.yaml");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let big = write(
        home.path(),
        "big.yaml",
        &format!("# {}\n", "x".repeat(2 << 20)),
    );
    let mut cases: Vec<(std::path::PathBuf, &str)> = vec![
        (dir, "is a directory"),
        (fifo, "is a FIFO, socket or device"),
        (big, "is larger than 1024 KiB"),
    ];
    if Path::new("/dev/zero").exists() {
        cases.push(("/dev/zero".into(), "is a FIFO, socket or device"));
    }
    for (path, says) in cases {
        let r = run_or_hang(
            devenv(home.path())
                .arg("--config")
                .arg(&path)
                .args(["config", "validate"]),
        );
        assert_eq!(r.code, 2, "{}: {r}", path.display());
        assert!(
            r.stderr.contains(says) && r.stderr.contains("hint:"),
            "{}: {r}",
            path.display()
        );
    }
    // Not UTF-8: the position of the first bad byte.
    let latin1 = home.path().join("latin1.yaml");
    std::fs::write(&latin1, b"name: x\ndomain: caf\xe9.local\n").unwrap();
    let r = run(devenv(home.path())
        .arg("--config")
        .arg(&latin1)
        .args(["config", "validate"]));
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr
            .contains("latin1.yaml:2:12: byte 0xe9 is not UTF-8 text"),
        "{r}"
    );
}

#[test]
fn long_values_are_shortened_in_messages() {
    let home = tempfile::tempdir().unwrap();
    let long = "X".repeat(100_000);
    write(
        home.path(),
        "devenv.yaml",
        &format!(
            "name: {long}\nservices:\n  grafana:\n    image: {long}\nrouting: {{mode: {long}}}\n"
        ),
    );
    let r = run(devenv(home.path()).args(["config", "validate"]));
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("3 problems"), "{r}");
    assert!(r.stderr.contains("(100000 characters)"), "{r}");
    assert!(
        r.stderr.len() < 3_000,
        "{} bytes of messages",
        r.stderr.len()
    );
}

#[test]
fn unknown_keys_bad_choices_and_ranges_come_with_the_other_problems_in_one_run() {
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        "devenv.yaml",
        "nmae: x\nrouting: {mode: splitip}\nservices:\n  grafana:\n    ports: {http: 99999}\nname: Bad\n",
    );
    let r = run(devenv(home.path()).args(["config", "validate"]));
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("4 problems"), "{r}");
    for at in [
        "devenv.yaml:1:1: nmae: unknown key `nmae`",
        "devenv.yaml:2:17: routing.mode: `splitip` is not one of: split-ip, ports",
        "devenv.yaml:5:19: services.grafana.ports.http: `99999` is out of range",
        "devenv.yaml:6:1: name: `Bad` is not a valid environment name",
    ] {
        assert!(r.stderr.contains(at), "{at} missing\n{r}");
    }
    assert!(r.stderr.contains("did you mean `name`?"), "{r}");
}

#[test]
fn a_bad_domain_is_one_problem_not_one_per_name_under_it() {
    let home = tempfile::tempdir().unwrap();
    write(
        home.path(),
        "devenv.yaml",
        "domain: bad_domain\nservices:\n  grafana:\n    hostnames: [metrics]\ndns:\n  records:\n    - {name: api, type: A, value: 10.0.0.1}\n",
    );
    let r = run(devenv(home.path()).args(["config", "validate"]));
    assert_eq!(r.code, 2, "{r}");
    assert!(!r.stderr.contains("problems"), "one problem only: {r}");
    assert!(r.stderr.contains("devenv.yaml:1:1: domain:"), "{r}");
    assert!(
        !r.stderr.contains("dns.records") && !r.stderr.contains("hostnames"),
        "{r}"
    );
}

#[test]
fn a_missing_config_file_is_bad_input() {
    let home = tempfile::tempdir().unwrap();
    let r = run(devenv(home.path()).args(["--config", "nope.yaml", "config", "validate"]));
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr.contains("nope.yaml: no such file") && r.stderr.contains("devenv init"),
        "{r}"
    );
}

#[test]
fn a_devenv_yaml_for_devenv_sh_is_named_as_such_with_the_way_to_keep_both() {
    let home = tempfile::tempdir().unwrap();
    // devenv.sh's own file, as its `devenv init` writes it.
    let theirs = "# yaml-language-server: $schema=https://devenv.sh/devenv.schema.json\n\
                  inputs:\n  nixpkgs:\n    url: github:cachix/devenv-nixpkgs/rolling\n\
                  allowUnfree: true\nimports:\n  - ./backend\n";
    write(home.path(), "devenv.yaml", theirs);
    for args in [
        &["config", "validate"][..],
        &["up"][..],
        &["render", "--out", "out"][..],
    ] {
        let r = run(devenv(home.path()).args(args));
        assert_eq!(r.code, 2, "{args:?}: {r}");
        assert!(
            r.stderr
                .contains("devenv.yaml:2:1: this is a devenv.yaml for devenv.sh"),
            "{r}"
        );
        assert!(
            r.stderr.contains("`inputs`, `allowUnfree`, `imports`"),
            "{r}"
        );
        assert!(r.stderr.contains("--config or DEVENV_CONFIG"), "{r}");
        assert!(!r.stderr.contains("unknown key"), "{r}");
    }
    assert!(!home.path().join("out").exists());
    // Both installed: this devenv's own file beside theirs.
    write(home.path(), "devenv-platform.yaml", "name: shop\n");
    let r =
        run(devenv(home.path()).args(["--config", "devenv-platform.yaml", "config", "validate"]));
    assert_eq!(r.code, 0, "{r}");
    // `clean` alone (devenv.sh's environment cleaning) is enough to tell.
    write(home.path(), "devenv.yaml", "clean:\n  enabled: true\n");
    let r = run(devenv(home.path()).args(["config", "validate"]));
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("`clean` is its key"), "{r}");
}

#[test]
fn a_domain_that_takes_names_from_the_real_dns_is_valid_with_a_warning() {
    let home = tempfile::tempdir().unwrap();
    for (domain, warned) in [
        ("google.com", Some("under the public suffix `com`")),
        ("dev", Some("it is a public suffix (`dev`")),
        ("local", Some("the whole `local` of mDNS")),
        ("macula.local", None),
        ("shop.test", None),
        ("corp.internal", None),
        ("app.localhost", None),
        ("lab.home.arpa", None),
        ("docs.example", None),
    ] {
        write(home.path(), "devenv.yaml", &format!("domain: {domain}\n"));
        let r = run(devenv(home.path()).args(["config", "validate"]));
        assert_eq!(r.code, 0, "{domain}: {r}");
        match warned {
            Some(why) => {
                assert!(
                    r.stderr.contains(&format!("warning: domain `{domain}`: ")),
                    "{r}"
                );
                assert!(r.stderr.contains(why), "{r}");
            }
            None => assert!(!r.stderr.contains("warning"), "{domain}: {r}"),
        }
        let r = run(devenv(home.path()).args(["-o", "json", "config", "validate"]));
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
        assert_eq!(
            v["warnings"].as_array().unwrap().len(),
            usize::from(warned.is_some()),
            "{r}"
        );
    }
}

#[test]
fn valid_files_validate_and_empty_files_mean_defaults() {
    let home = tempfile::tempdir().unwrap();
    write(home.path(), "devenv.yaml", "# nothing but a comment\n");
    let r = run(devenv(home.path()).args(["config", "validate"]));
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("devenv.yaml: valid"), "{r}");
    let r = run(devenv(home.path()).args(["-o", "json", "config", "show"]));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["name"], "macula");
    assert_eq!(v["domain"], "macula.local");
}

#[test]
fn version_and_help_with_examples() {
    let home = tempfile::tempdir().unwrap();
    let r = run(devenv(home.path()).arg("--version"));
    assert_eq!(r.code, 0);
    assert_eq!(
        r.stdout.trim(),
        format!(
            "devenv {} (the local platform: KinD, infrastructure, DNS; not devenv.sh)",
            env!("CARGO_PKG_VERSION")
        )
    );
    let r = run(devenv(home.path()).arg("--help"));
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains("Examples:") && r.stdout.contains("devenv render"),
        "{r}"
    );
}

#[test]
fn unknown_flag_is_bad_input() {
    let home = tempfile::tempdir().unwrap();
    let r = run(devenv(home.path()).args(["render", "--nope"]));
    assert_eq!(r.code, 2, "{r}");
}

#[test]
fn init_writes_a_valid_file_and_never_overwrites_without_force() {
    let home = tempfile::tempdir().unwrap();
    let r = run(devenv(home.path()).args([
        "init",
        "--yes",
        "--domain",
        "dev.test",
        "--routing",
        "ports",
        "--no-tier",
        "tools",
    ]));
    assert_eq!(r.code, 0, "{r}");
    let path = home.path().join("devenv.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("domain: dev.test")
            && text.contains("mode: ports")
            && text.contains("tools: false"),
        "{text}"
    );
    let r = run(devenv(home.path()).args(["config", "show", "-o", "json"]));
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["tiers"]["tools"], false);

    let r = run(devenv(home.path()).args(["init", "--yes", "--domain", "other.test"]));
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr.contains("already exists") && r.stderr.contains("--force"),
        "{r}"
    );
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);

    let r = run(devenv(home.path()).args(["init", "--yes", "--force", "--domain", "other.test"]));
    assert_eq!(r.code, 0, "{r}");
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("domain: other.test")
    );
}

#[test]
fn init_with_a_bad_flag_value_changes_nothing() {
    let home = tempfile::tempdir().unwrap();
    let r = run(devenv(home.path()).args(["init", "--yes", "--domain", "bad_domain"]));
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("not a valid DNS domain"), "{r}");
    assert!(!home.path().join("devenv.yaml").exists());
}

#[test]
fn render_into_a_path_that_cannot_be_made_is_bad_input_and_makes_nothing() {
    let home = tempfile::tempdir().unwrap();
    write(home.path(), "a-file", "not a directory\n");
    for (out, why) in [
        ("a-file/rendered", "a-file is not a directory"),
        ("a-file", "a-file is not a directory"),
        // Not a place anyone may make a directory in, root included.
        ("/proc/devenv-render-test/x", "cannot be created"),
    ] {
        let r = run(devenv(home.path()).args(["render", "--out", out]));
        assert_eq!(r.code, 2, "{out}: {r}");
        assert!(r.stderr.contains(&format!("--out {out}: ")), "{r}");
        assert!(r.stderr.contains(why), "{r}");
    }
    assert_eq!(
        std::fs::read_to_string(home.path().join("a-file")).unwrap(),
        "not a directory\n"
    );
    // Missing directories above it are made.
    let r = run(devenv(home.path()).args(["render", "--out", "new/deeper"]));
    assert_eq!(r.code, 0, "{r}");
    assert!(home.path().join("new/deeper/kind/cluster.yaml").is_file());
}

#[test]
fn render_without_a_config_writes_the_default_set_and_is_idempotent() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out");
    let r = run(devenv(home.path()).args(["render", "--out"]).arg(&out));
    assert_eq!(r.code, 0, "{r}");
    assert!(out.join("kind/cluster.yaml").is_file());
    let r = run(devenv(home.path())
        .args(["-o", "json", "render", "--out"])
        .arg(&out));
    assert_eq!(r.code, 0, "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["created"].as_array().unwrap().len(), 0, "{r}");
    assert_eq!(v["updated"].as_array().unwrap().len(), 0, "{r}");
    let r = run(devenv(home.path())
        .args(["render", "--check", "--out"])
        .arg(&out));
    assert_eq!(r.code, 0, "{r}");
}

#[test]
fn render_check_reports_drift_with_exit_4() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out");
    assert_eq!(
        run(devenv(home.path()).args(["render", "--out"]).arg(&out)).code,
        0
    );
    let file = out.join("kind/cluster.yaml");
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replace("hostPort: 8080", "hostPort: 9999");
    std::fs::write(&file, text).unwrap();
    let r = run(devenv(home.path())
        .args(["render", "--check", "--out"])
        .arg(&out));
    assert_eq!(r.code, 4, "{r}");
    assert!(
        r.stdout.contains("-    hostPort: 9999") && r.stdout.contains("+    hostPort: 8080"),
        "{r}"
    );
    assert!(r.stderr.contains("differ from devenv.yaml"), "{r}");
    // --check wrote nothing.
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("hostPort: 9999")
    );
}

#[test]
fn schema_is_json_schema_of_every_top_level_key() {
    let home = tempfile::tempdir().unwrap();
    let r = run(devenv(home.path()).args(["config", "schema"]));
    assert_eq!(r.code, 0, "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let props = v["properties"].as_object().unwrap();
    for key in [
        "name", "domain", "routing", "cluster", "network", "tiers", "services", "dns", "bind",
    ] {
        assert!(props.contains_key(key), "{key} missing from the schema");
    }
    assert_eq!(v["additionalProperties"], false);
}

#[test]
fn completions_print_a_script() {
    let home = tempfile::tempdir().unwrap();
    let r = run(devenv(home.path()).args(["completions", "bash"]));
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.contains("_devenv()"),
        "{}",
        &r.stdout[..200.min(r.stdout.len())]
    );
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let home = tempfile::tempdir().unwrap();
    let mut child = devenv(home.path())
        .args(["completions", "zsh"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let r = Run::of(out);
    assert_eq!(r.code, 0, "{r}");
    assert!(!r.stderr.contains("error"), "{r}");
}

#[test]
fn readme_lists_every_default_hostname_and_pinned_image() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for svc in devenv::config::Config::default().services() {
        for route in &svc.routes {
            assert!(
                readme.contains(&format!("`{}`", route.hostname)),
                "README's layout table lacks {}",
                route.hostname
            );
        }
        assert!(
            readme.contains(&format!("`{}`", svc.image)),
            "README's image table lacks {}",
            svc.image
        );
    }
}

#[test]
fn up_help_snapshot() {
    let home = tempfile::tempdir().unwrap();
    let r = run(devenv(home.path()).args(["up", "--help"]));
    insta::assert_snapshot!(r.to_string());
}

#[test]
fn up_only_an_unknown_service_is_bad_input_naming_the_enabled_ones_snapshot() {
    let home = tempfile::tempdir().unwrap();
    let r = run(devenv(home.path()).args(["up", "--only", "grafana,nope"]));
    insta::assert_snapshot!(r.to_string());
}

/// Words from devenv's design notes that mean nothing to a user.
const INSIDE_WORDS: &[&str] = &["seed 0", "design card", "options c and a", "option c"];

#[test]
fn help_schema_and_readme_speak_the_users_language() {
    let dir = tempfile::tempdir().unwrap();
    let mut texts = vec![(
        "README.md".to_string(),
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap(),
    )];
    let schema = run(devenv(dir.path()).args(["config", "schema"]));
    assert_eq!(schema.code, 0, "{schema}");
    texts.push(("config schema".into(), schema.stdout));
    for command in [
        &["--help"][..],
        &["up", "--help"],
        &["down", "--help"],
        &["status", "--help"],
        &["logs", "--help"],
        &["dns", "--help"],
        &["init", "--help"],
        &["render", "--help"],
        &["config", "--help"],
    ] {
        let r = run(devenv(dir.path()).args(command));
        assert_eq!(r.code, 0, "{command:?}: {r}");
        texts.push((command.join(" "), r.stdout));
    }
    for (what, text) in &texts {
        let lower = text.to_lowercase();
        for word in INSIDE_WORDS {
            assert!(!lower.contains(word), "{what} says `{word}`");
        }
    }
}

#[test]
fn config_show_resolves_every_service_with_secrets_as_references() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "devenv.yaml",
        "services:\n  grafana:\n    ports: {http: 3300}\n    hostnames: [grafana, metrics]\n",
    );
    let r = run(devenv(dir.path()).args(["config", "show", "-o", "json"]));
    assert_eq!(r.code, 0, "{r}");
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).expect("JSON");
    let grafana = &doc["services"]["grafana"];
    assert!(
        grafana["image"]
            .as_str()
            .unwrap()
            .starts_with("grafana/grafana:"),
        "{r}"
    );
    assert_eq!(
        grafana["ports"]["http"][0], "127.0.0.1:3300 -> 3000/tcp",
        "{r}"
    );
    assert_eq!(
        grafana["hostnames"],
        serde_json::json!(["grafana.macula.local", "metrics.macula.local"])
    );
    assert_eq!(
        grafana["env"]["GF_SECURITY_ADMIN_PASSWORD"],
        "${DEVENV_GRAFANA_ADMIN_PASSWORD}"
    );
    assert_eq!(
        doc["services"]["pdns"]["ports"]["api"][0],
        "not published -> 8081"
    );
    // Every enabled service is there: the 13 of the platform and Docker Hub's mirror.
    assert_eq!(doc["services"].as_object().unwrap().len(), 14, "{r}");
    assert_eq!(
        doc["services"]["mirror"]["env"]["REGISTRY_PROXY_REMOTEURL"],
        "https://registry-1.docker.io"
    );
}

#[test]
fn a_subcommands_name_argument_is_not_the_environments_name() {
    // `routes add NAME` and the global `--name` both say "name": the route's name must not
    // become the environment's (whose state directory the route goes into).
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let r = run(devenv(h)
        .env_remove("DEVENV_STATE_DIR")
        .env("XDG_STATE_HOME", h.join("xdg"))
        .args(["routes", "add", "api", "--to", "127.0.0.1:3000"]));
    assert!(
        h.join("xdg/devenv/macula/routes.json").is_file(),
        "the default environment's routes file\n{r}"
    );
    assert!(!h.join("xdg/devenv/api").exists(), "{r}");
}
