//! `devenv render` through the real binary: the committed default rendering matches, drift is
//! reported with the changed line and exit 4, output is byte-identical from run to run, and a
//! non-default devenv.yaml leaves disabled services out of every file.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use support::{Run, devenv, run};

/// Every file under `root`, by path relative to it.
fn files(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).expect("readable directory") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path.strip_prefix(root).expect("under root").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("readable file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn render_into(home: &Path, out: &Path, extra: &[&str]) -> Run {
    let r = run(devenv(home).args(extra).arg("render").arg("--out").arg(out));
    assert_eq!(r.code, 0, "render failed\n{r}");
    r
}

#[test]
fn committed_default_rendering_is_up_to_date() {
    let home = tempfile::tempdir().unwrap();
    let root = env!("CARGO_MANIFEST_DIR");
    let r = run(devenv(home.path())
        .args(["render", "--check", "--out"])
        .arg(root));
    assert_eq!(
        r.code, 0,
        "kind/ and compose/ differ from `devenv render`; run `cargo run -- render --out .` and commit\n{r}"
    );
}

#[test]
fn check_reports_the_changed_line_and_exits_4() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out");
    render_into(home.path(), &out, &[]);
    let ok = run(devenv(home.path())
        .args(["render", "--check", "--out"])
        .arg(&out));
    assert_eq!(ok.code, 0, "{ok}");

    let nginx = out.join("compose/gateway/nginx.conf");
    let text = std::fs::read_to_string(&nginx).unwrap();
    let edited = text.replacen("client_max_body_size 0;", "client_max_body_size 1m;", 1);
    assert_ne!(text, edited, "the edit must change the file");
    std::fs::write(&nginx, edited).unwrap();

    let r = run(devenv(home.path())
        .args(["render", "--check", "--out"])
        .arg(&out));
    assert_eq!(r.code, 4, "{r}");
    assert!(r.stdout.contains("compose/gateway/nginx.conf"), "{r}");
    assert!(r.stdout.contains("-    client_max_body_size 1m;"), "{r}");
    assert!(r.stdout.contains("+    client_max_body_size 0;"), "{r}");
    // Only the edited file is reported.
    assert!(!r.stdout.contains("infra.yaml"), "{r}");

    std::fs::remove_file(out.join("compose/infra.env")).unwrap();
    let r = run(devenv(home.path())
        .args(["render", "--check", "--out"])
        .arg(&out));
    assert_eq!(r.code, 4, "{r}");
    assert!(r.stdout.contains("missing: compose/infra.env"), "{r}");
}

#[test]
fn rendering_twice_is_byte_identical() {
    let home = tempfile::tempdir().unwrap();
    let a = home.path().join("a");
    let b = home.path().join("b");
    render_into(home.path(), &a, &[]);
    render_into(home.path(), &b, &[]);
    let (fa, fb) = (files(&a), files(&b));
    assert!(
        fa.len() >= 10,
        "expected the full default set, got {:?}",
        fa.keys()
    );
    assert_eq!(fa, fb);
    // A second run into the same directory changes nothing.
    let again = render_into(home.path(), &a, &[]);
    assert!(
        again.stderr.contains(&format!("{} unchanged", fa.len())),
        "{again}"
    );
    assert_eq!(files(&a), fa);
}

const CUSTOM: &str = "\
name: acme
domain: acme.test
routing:
  mode: ports
tiers:
  tools: false
  data: false
services:
  loki:
    enabled: false
  grafana:
    image: mirror.example/grafana/grafana:11.4.0
";

#[test]
fn disabled_services_are_nowhere_in_a_custom_rendering() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("devenv.yaml");
    std::fs::write(&config, CUSTOM).unwrap();
    let out = home.path().join("out");
    render_into(home.path(), &out, &["--config", config.to_str().unwrap()]);
    let all = files(&out);
    let text = |p: &str| {
        String::from_utf8(
            all.get(Path::new(p))
                .unwrap_or_else(|| panic!("{p} not rendered: {:?}", all.keys()))
                .clone(),
        )
        .unwrap()
    };
    assert!(
        !all.contains_key(Path::new("compose/loki/loki.yaml")),
        "loki is disabled: {:?}",
        all.keys()
    );
    let checked = [
        "compose/infra.yaml",
        "compose/gateway/nginx.conf",
        "compose/prometheus/prometheus.yml",
        "compose/grafana/datasources.yaml",
    ];
    for path in checked {
        let body = text(path);
        for gone in [
            "loki",
            "excalidraw",
            "minio",
            "timescale",
            "draw.acme",
            "s3.acme",
        ] {
            assert!(
                !body.contains(gone),
                "{path} still mentions {gone}:\n{body}"
            );
        }
        assert!(
            !body.contains("macula"),
            "{path} still names the default project:\n{body}"
        );
    }
    let compose = text("compose/infra.yaml");
    assert!(
        compose.contains("image: mirror.example/grafana/grafana:11.4.0"),
        "{compose}"
    );
    assert!(compose.contains("name: acme-infra"), "{compose}");
    assert!(
        compose.contains("container_name: acme-grafana"),
        "{compose}"
    );
    let nginx = text("compose/gateway/nginx.conf");
    assert!(nginx.contains("server_name grafana.acme.test;"), "{nginx}");
    assert!(nginx.contains("server_name registry.acme.test;"), "{nginx}");
    // Grafana still depends on what is left of its datasources.
    let grafana = text("compose/grafana/datasources.yaml");
    assert!(grafana.contains("http://prometheus:9090"), "{grafana}");
    assert!(grafana.contains("http://tempo:3200"), "{grafana}");
    // The cluster config follows the routing mode: no 127.0.0.2 mappings.
    let cluster = text("kind/cluster.yaml");
    assert!(!cluster.contains("127.0.0.2"), "{cluster}");
}

#[test]
fn no_secret_value_reaches_a_rendered_file() {
    let home = tempfile::tempdir().unwrap();
    // A state directory whose secrets file holds recognisable values, where devenv keeps it
    // (support::devenv sets DEVENV_STATE_DIR=<home>/state).
    let state = home.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let vars = [
        "DEVENV_PDNS_DB_PASSWORD",
        "DEVENV_PDNS_API_KEY",
        "DEVENV_PDNS_ADMIN_SECRET_KEY",
        "DEVENV_GRAFANA_ADMIN_PASSWORD",
        "DEVENV_MINIO_ROOT_PASSWORD",
        "DEVENV_TIMESCALE_PASSWORD",
    ];
    let body: String = vars
        .iter()
        .map(|v| format!("{v}=SentinelValueOf{v}\n"))
        .collect();
    std::fs::write(state.join("secrets.env"), body).unwrap();
    let out = home.path().join("out");
    render_into(home.path(), &out, &[]);
    for (path, bytes) in files(&out) {
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            !text.contains("SentinelValueOf"),
            "{} holds a secret value",
            path.display()
        );
    }
    let compose = std::fs::read_to_string(out.join("compose/infra.yaml")).unwrap();
    for v in vars {
        assert!(
            compose.contains(&format!("${{{v}:?")),
            "{v} is not referenced"
        );
    }
}

#[test]
fn check_fails_on_a_stale_file_under_a_rendered_directory_and_ignores_others() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out");
    render_into(home.path(), &out, &[]);
    std::fs::write(out.join("README.md"), "not devenv's\n").unwrap();
    let ok = run(devenv(home.path())
        .args(["render", "--check", "--out"])
        .arg(&out));
    assert_eq!(
        ok.code, 0,
        "a file outside kind/ and compose/ is not devenv's\n{ok}"
    );

    std::fs::create_dir_all(out.join("kind/manifests")).unwrap();
    std::fs::write(out.join("kind/manifests/old.yaml"), "kind: Old\n").unwrap();
    std::fs::write(out.join("compose/old.env"), "A=1\n").unwrap();
    let r = run(devenv(home.path())
        .args(["render", "--check", "--out"])
        .arg(&out));
    assert_eq!(r.code, 4, "{r}");
    assert!(r.stdout.contains("stale: compose/old.env"), "{r}");
    assert!(r.stdout.contains("stale: kind/manifests/old.yaml"), "{r}");
    assert!(!r.stdout.contains("README.md"), "{r}");
    assert!(
        r.stderr.contains("2 files there are no longer rendered"),
        "{r}"
    );

    let r = run(devenv(home.path())
        .args(["-o", "json", "render", "--check", "--out"])
        .arg(&out));
    assert_eq!(r.code, 4, "{r}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["up_to_date"], false, "{r}");
    let stale: Vec<&str> = v["differences"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["stale"] == true)
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(stale, ["compose/old.env", "kind/manifests/old.yaml"], "{r}");
}

#[test]
fn a_render_that_fails_midway_leaves_the_previous_files_as_they_were() {
    let home = tempfile::tempdir().unwrap();
    let out = home.path().join("out");
    render_into(home.path(), &out, &[]);
    // A file where a directory of the rendering must be: writing under it fails, after the
    // files that come before it in the rendering (compose/, kind/cluster.yaml).
    let hosts = out.join("kind/registry-hosts");
    std::fs::remove_dir_all(&hosts).unwrap();
    std::fs::write(&hosts, "in the way\n").unwrap();
    let before = files(&out);
    // Another domain changes nearly every file.
    std::fs::write(home.path().join("devenv.yaml"), "domain: other.test\n").unwrap();
    let r = run(devenv(home.path()).arg("render").arg("--out").arg(&out));
    assert_ne!(r.code, 0, "{r}");
    assert!(r.stderr.contains("registry-hosts"), "{r}");
    assert_eq!(
        files(&out),
        before,
        "a failed render changed or left files:\n{r}"
    );
}
