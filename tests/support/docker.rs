//! Helpers for tests against the real Docker engine: the stand-in image (built locally from
//! Debian's busybox-static, since no registry is reachable), one isolated environment per
//! test (own `name:`, subnet, ports, state directory), and cleanup on drop.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

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
    ("gateway", &["http", "https"]),
];

/// The mirrors, built in too but on only with a KinD cluster (Docker Hub's by default): every
/// environment gives them the stand-in image as well, so that a test with the cluster on never
/// pulls the real one.
pub const MIRRORS: &[(&str, &[&str])] = &[
    ("mirror", &["api"]),
    ("mirror-ghcr", &["api"]),
    ("mirror-quay", &["api"]),
    ("mirror-k8s", &["api"]),
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

/// A /24 in 10.213.0.0/16 that no network of the engine uses and no other environment of this
/// process has taken, trying from `seed` on. That range is outside Docker's default address
/// pools, so the engine does not hand it out by itself; but another test process, or a network
/// a crashed run left behind, may hold one.
fn free_subnet(seed: u32) -> String {
    static TAKEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let ids = docker(&["network", "ls", "-q"]).stdout;
    let mut args = vec![
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
    ];
    args.extend(ids.split_whitespace());
    let used = docker(&args).stdout;
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    (0..250)
        .map(|k| format!("10.213.{}.0/24", (seed + k) % 250 + 1))
        .find(|s| !taken.contains(s) && !used.split_whitespace().any(|u| u == s))
        .inspect(|s| {
            taken.insert(s.clone());
        })
        .expect("a free /24 in 10.213.0.0/16")
}

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
    /// The lines under `cluster:`; the infrastructure alone by default (the cluster driver
    /// has its own tests, tests/cluster.rs).
    pub cluster: String,
    /// The lines under `dns:`; the background resolver is off by default (`up` would start
    /// one per test), tests/dns_service.rs turns it on.
    pub dns: String,
    /// More top-level lines (`routing:`, ...).
    pub top: String,
    /// Environment variables every devenv run of this environment gets (`DEVENV_KIND`, ...).
    pub vars: Vec<(String, std::ffi::OsString)>,
    /// Services of the user's own, as lines under `services:` after the built-ins.
    pub own: String,
}

impl Env {
    /// A new environment named after `test` (short, unique per process and call).
    pub fn new(test: &str, image: &str) -> Env {
        let n = SEQUENCE.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let name = format!("t{}-{}{}", test, pid % 10_000, n);
        let subnet = free_subnet(pid * 7 + n * 31);
        let env = Env {
            dir: tempfile::tempdir().expect("a temporary directory"),
            name,
            image: image.to_string(),
            subnet,
            ports: BTreeMap::new(),
            extra: BTreeMap::new(),
            image_overrides: BTreeMap::new(),
            cluster: "  provider: none\n".into(),
            dns: "  enabled: false\n".into(),
            top: String::new(),
            vars: Vec::new(),
            own: String::new(),
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
            "name: {}\n{}cluster:\n{}dns:\n{}network:\n  subnet: {}\nservices:\n",
            self.name, self.top, self.cluster, self.dns, self.subnet
        );
        for (service, ports) in SERVICES.iter().chain(MIRRORS) {
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
        text.push_str(&self.own);
        std::fs::write(self.dir.path().join("devenv.yaml"), text).expect("writing devenv.yaml");
    }

    /// The environment's `network.subnet`.
    pub fn subnet(&self) -> &str {
        &self.subnet
    }

    /// The state directory devenv uses for this environment.
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The value of `var` in the environment's generated secrets file.
    pub fn secret(&self, var: &str) -> String {
        let path = self.state().join("secrets.env");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{var}=")))
            .unwrap_or_else(|| panic!("{var} missing from {}", path.display()))
            .to_string()
    }

    /// `devenv <args>` in this environment (not yet run).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = super::devenv(self.dir.path());
        cmd.args(args);
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        cmd
    }

    /// Run `devenv <args>` to completion.
    pub fn devenv(&self, args: &[&str]) -> Run {
        run(&mut self.command(args))
    }

    /// Container name -> ID of this environment's containers.
    pub fn containers(&self) -> BTreeMap<String, String> {
        self.ps("{{.ID}}")
    }

    /// Container name -> state (`running`, `exited`, ...).
    pub fn states(&self) -> BTreeMap<String, String> {
        self.ps("{{.State}}")
    }

    /// Container name -> one `docker ps` field of this environment's containers.
    fn ps(&self, field: &str) -> BTreeMap<String, String> {
        let r = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label={PROJECT_LABEL}={}", self.name),
            "--format",
            &format!("{{{{.Names}}}} {field}"),
        ]);
        assert_eq!(r.code, 0, "{r}");
        r.stdout
            .lines()
            .filter_map(|l| l.split_once(' '))
            .map(|(name, value)| (name.to_string(), value.trim().to_string()))
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

    /// Assert that `run` (a `down` or a job that ends with one) removed every network devenv
    /// made for the environment. One exception is not devenv's to fix: Docker's count of a
    /// network's endpoints can go wrong (moby/moby#43286) and the engine then refuses to remove
    /// the network, with no container attached, until it restarts. A network kept that way
    /// passes only if devenv named it as refused by the engine, no existing container is
    /// attached, and the engine refuses this test too; the case is printed where plain
    /// `cargo test` shows it.
    pub fn assert_networks_removed(&self, run: &Run) {
        for network in self.labelled("network") {
            let attached = docker(&[
                "network",
                "inspect",
                "-f",
                "{{range $id, $c := .Containers}}{{$id}} {{end}}",
                &network,
            ]);
            for id in attached.stdout.split_whitespace() {
                assert_ne!(
                    docker(&["container", "inspect", id]).code,
                    0,
                    "devenv kept network {network} with container {id} attached\n{run}"
                );
            }
            let said = format!("kept network {network}: the Docker engine ");
            let in_json = serde_json::from_str::<serde_json::Value>(&run.stdout)
                .ok()
                .is_some_and(|doc| doc["networks_refused"].get(&network).is_some());
            assert!(
                run.stderr.lines().any(|l| l.starts_with(&said)) || in_json,
                "network {network} is still there and devenv did not say the engine refused it\n{run}"
            );
            let rm = docker(&["network", "rm", &network]);
            assert!(
                rm.code != 0 && rm.stderr.contains("active endpoints"),
                "devenv kept network {network} although the engine removes it\n{rm}\n{run}"
            );
            let line = format!(
                "ENGINE FAULT: Docker refuses to remove network {network} with nothing attached (moby/moby#43286); restart the engine to clear it\n"
            );
            let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        }
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

/// The engine's unix socket, offered on a loopback TCP port while this lives, for a devenv run
/// as a user who may not open the socket itself (`DOCKER_HOST=tcp://...`). Bytes are copied
/// both ways as they come, so HTTP upgrades (exec) pass too. Stops on drop.
pub struct EngineProxy {
    pub port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl EngineProxy {
    /// Start it in front of the socket the tests' engine listens on.
    pub fn start() -> EngineProxy {
        let socket = match std::env::var("DOCKER_HOST") {
            Ok(h) if h.starts_with("unix://") => PathBuf::from(&h["unix://".len()..]),
            _ => PathBuf::from("/var/run/docker.sock"),
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let port = listener.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(engine) = UnixStream::connect(&socket) else {
                    continue;
                };
                pipe(client, engine);
            }
        });
        EngineProxy {
            port,
            stop,
            accept: Some(accept),
        }
    }

    /// The `DOCKER_HOST` that reaches it.
    pub fn uri(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }
}

/// Copy both ways until each side has said all it will.
fn pipe(client: TcpStream, engine: UnixStream) {
    let (Ok(mut client_r), Ok(mut engine_r)) = (client.try_clone(), engine.try_clone()) else {
        return;
    };
    let (mut client_w, mut engine_w) = (client, engine);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_r, &mut engine_w);
        let _ = engine_w.shutdown(Shutdown::Write);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut engine_r, &mut client_w);
        let _ = client_w.shutdown(Shutdown::Write);
    });
}

impl Drop for EngineProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}
