//! Helpers for tests against the real Docker engine: the stand-in image (built locally from
//! Debian's busybox-static, since no registry is reachable), one isolated environment per
//! test (own `name:`, subnet, ports, state directory), and cleanup on drop.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use super::{Run, run, skip, tool};

/// Every built-in service and its port names (validation rejects a name that is not there,
/// so this list cannot silently drift from the catalog).
pub const SERVICES: &[(&str, &[&str])] = &[
    ("registry", &["api"]),
    ("registry-ui", &["http"]),
    ("pdns-db", &["postgres"]),
    ("pdns", &["dns", "api"]),
    ("pdns-admin", &["http"]),
    ("prometheus", &["http"]),
    ("loki", &["http"]),
    ("tempo", &["http", "otlp-grpc", "otlp-http"]),
    ("grafana", &["http"]),
    ("minio", &["api", "console"]),
    ("timescaledb", &["postgres"]),
    ("excalidraw", &["http"]),
    ("gateway", &["http"]),
];

/// The project label devenv puts on what it creates.
pub const PROJECT_LABEL: &str = "dev.devenv.project";

/// `docker ...` (the CLI), to look at the engine independently of devenv.
pub fn docker(args: &[&str]) -> Run {
    run(Command::new("docker").args(args))
}

/// Whether an engine answers; otherwise a skip notice (or a panic under
/// `DEVENV_REQUIRE_DOCKER=1`).
pub fn engine() -> bool {
    if tool("docker").is_none() {
        return false;
    }
    let r = docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    if r.code != 0 {
        skip(&format!("no Docker engine answers ({})", r.stderr.trim()));
        return false;
    }
    true
}

/// The stand-in image's tag, built once per test run by tests/support/standin/build.sh.
pub fn standin_image() -> Option<String> {
    static IMAGE: OnceLock<Option<String>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            if !Path::new("/bin/busybox").is_file() {
                skip("/bin/busybox is missing (apt-get install busybox-static)");
                return None;
            }
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/standin");
            let tag = "devenv-test/standin:v1";
            let r = run(Command::new("sh").arg(dir.join("build.sh")).arg(tag));
            assert_eq!(r.code, 0, "building the stand-in image failed:\n{r}");
            Some(tag.to_string())
        })
        .clone()
}

/// A free TCP (and, almost surely, UDP) port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Make sure the shared `kind` network exists, made by the tests rather than by one test's
/// devenv: tests run in parallel, and one test's `down` must not remove the network while
/// another test's `up` is about to attach its registry to it.
pub fn shared_kind_network() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        if docker(&["network", "inspect", "kind"]).code != 0 {
            let r = docker(&["network", "create", "kind"]);
            assert!(
                r.code == 0 || r.stderr.contains("already exists"),
                "creating the kind network: {r}"
            );
        }
    });
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// One isolated devenv environment: its own name, subnet, state directory and devenv.yaml.
/// Dropping it runs `devenv down --purge --yes` and removes anything still labelled with it.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub name: String,
    pub image: String,
    subnet: String,
    /// Published ports by service and port name; everything else is unpublished.
    pub ports: BTreeMap<(String, String), u16>,
    /// Extra lines under each service (`enabled: false`, ...).
    pub extra: BTreeMap<String, String>,
    /// Another image than the stand-in, per service.
    pub image_overrides: BTreeMap<String, String>,
}

impl Env {
    /// A new environment named after `test` (short, unique per process and call).
    pub fn new(test: &str, image: &str) -> Env {
        let n = SEQUENCE.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let name = format!("t{}-{}{}", test, pid % 10_000, n);
        // 10.213.0.0/16 is outside Docker's default address pools, so these never overlap
        // the networks the engine assigns by itself.
        let subnet = format!("10.213.{}.0/24", (pid as u32 * 7 + n * 31) % 250 + 1);
        let env = Env {
            dir: tempfile::tempdir().expect("a temporary directory"),
            name,
            image: image.to_string(),
            subnet,
            ports: BTreeMap::new(),
            extra: BTreeMap::new(),
            image_overrides: BTreeMap::new(),
        };
        shared_kind_network();
        env.write();
        env
    }

    /// Publish `service`'s port `port` on `host` (on 127.0.0.1).
    pub fn publish(&mut self, service: &str, port: &str, host: u16) {
        self.ports.insert((service.into(), port.into()), host);
        self.write();
    }

    /// (Re)write devenv.yaml from the settings.
    pub fn write(&self) {
        let mut text = format!(
            "name: {}\nnetwork:\n  subnet: {}\nservices:\n",
            self.name, self.subnet
        );
        for (service, ports) in SERVICES {
            let image = self.image_overrides.get(*service).unwrap_or(&self.image);
            text.push_str(&format!(
                "  {service}:\n    image: \"{image}\"\n    ports:\n"
            ));
            for port in *ports {
                let host = self
                    .ports
                    .get(&(service.to_string(), port.to_string()))
                    .copied()
                    .unwrap_or(0);
                text.push_str(&format!("      {port}: {host}\n"));
            }
            if let Some(extra) = self.extra.get(*service) {
                text.push_str(extra);
            }
        }
        std::fs::write(self.dir.path().join("devenv.yaml"), text).expect("writing devenv.yaml");
    }

    /// The state directory devenv uses for this environment.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// `devenv <args>` in this environment (not yet run).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = super::devenv(self.dir.path());
        cmd.args(args);
        cmd
    }

    /// Run `devenv <args>` to completion.
    pub fn devenv(&self, args: &[&str]) -> Run {
        run(&mut self.command(args))
    }

    /// Container name -> ID of this environment's containers.
    pub fn containers(&self) -> BTreeMap<String, String> {
        let r = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label={PROJECT_LABEL}={}", self.name),
            "--format",
            "{{.Names}} {{.ID}} {{.State}}",
        ]);
        assert_eq!(r.code, 0, "{r}");
        r.stdout
            .lines()
            .filter_map(|l| {
                let mut parts = l.split_whitespace();
                Some((parts.next()?.to_string(), parts.next()?.to_string()))
            })
            .collect()
    }

    /// Container name -> state (`running`, `exited`, ...).
    pub fn states(&self) -> BTreeMap<String, String> {
        let r = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label={PROJECT_LABEL}={}", self.name),
            "--format",
            "{{.Names}} {{.State}}",
        ]);
        r.stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    /// Names of this environment's labelled volumes (or networks: `kind` = "network").
    pub fn labelled(&self, kind: &str) -> Vec<String> {
        let r = docker(&[
            kind,
            "ls",
            "--filter",
            &format!("label={PROJECT_LABEL}={}", self.name),
            "--format",
            "{{.Name}}",
        ]);
        assert_eq!(r.code, 0, "{r}");
        let mut names: Vec<String> = r.stdout.lines().map(str::to_string).collect();
        names.sort();
        names
    }

    /// The container name of `service`.
    pub fn container(&self, service: &str) -> String {
        format!("{}-{service}", self.name)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        let r = self.devenv(&["down", "--purge", "--yes"]);
        if r.code != 0 {
            eprintln!("cleanup of {} failed:\n{r}", self.name);
        }
        // Whatever a failed test left behind.
        let label = format!("label={PROJECT_LABEL}={}", self.name);
        let ids = docker(&["ps", "-aq", "--filter", &label]).stdout;
        for id in ids.split_whitespace() {
            docker(&["rm", "-f", id]);
        }
        for kind in ["volume", "network"] {
            let names = docker(&[kind, "ls", "--filter", &label, "--format", "{{.Name}}"]).stdout;
            for n in names.split_whitespace() {
                // The engine refuses a network still in use (`kind`, shared between tests).
                docker(&[kind, "rm", n]);
            }
        }
    }
}
