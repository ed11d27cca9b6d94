//! The fake kind (`tests/support/fake-kind`, a test double documented in its header) and the
//! image its node containers run, built locally from Debian's busybox-static (no registry is
//! reachable). Tests hand the fake to devenv as `DEVENV_KIND`; each test names its clusters
//! uniquely, and [`Cluster`] removes them on drop. The shared `kind` network is never removed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use super::docker::{docker, engine};
use super::{run, skip, tool};

/// The image every fake node runs.
pub const NODE_IMAGE: &str = "devenv-test/fake-kind-node:v1";

/// The label kind puts on node containers: the cluster's name.
pub const CLUSTER_LABEL: &str = "io.x-k8s.kind.cluster";
/// The label kind puts on node containers: the role.
pub const ROLE_LABEL: &str = "io.x-k8s.kind.role";

/// The fake kind, ready to run (engine up, python3 with PyYAML, node image built), or `None`
/// after a skip notice (a panic under `DEVENV_REQUIRE_DOCKER=1`).
pub fn fake_kind() -> Option<PathBuf> {
    static READY: OnceLock<Option<PathBuf>> = OnceLock::new();
    READY
        .get_or_init(|| {
            if !engine() {
                return None;
            }
            tool("python3")?;
            let yaml = run(Command::new("python3").args(["-c", "import yaml"]));
            if yaml.code != 0 {
                skip("python3 has no yaml module (apt-get install python3-yaml)");
                return None;
            }
            if !Path::new("/bin/busybox").is_file() {
                skip("/bin/busybox is missing (apt-get install busybox-static)");
                return None;
            }
            build_node_image();
            super::docker::shared_kind_network();
            Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake-kind"))
        })
        .clone()
}

/// Build [`NODE_IMAGE`]: busybox and its applets, idling until SIGTERM (so `docker stop` is
/// quick, as with kind's systemd nodes).
fn build_node_image() {
    let ctx = tempfile::tempdir().expect("a temporary directory");
    let bin = ctx.path().join("rootfs/bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::create_dir_all(ctx.path().join("rootfs/tmp")).unwrap();
    std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
    let applets = run(Command::new("/bin/busybox").arg("--list"));
    for applet in applets.stdout.split_whitespace() {
        let link = bin.join(applet);
        if !link.exists() {
            std::os::unix::fs::symlink("busybox", link).unwrap();
        }
    }
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY rootfs/ /\n\
         LABEL dev.devenv.test=fake-kind-node\n\
         CMD [\"/bin/sh\", \"-c\", \"trap 'exit 0' TERM; while :; do sleep 1; done\"]\n",
    )
    .unwrap();
    let r = run(Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", NODE_IMAGE])
        .arg(ctx.path()));
    assert_eq!(r.code, 0, "building {NODE_IMAGE} failed:\n{r}");
}

/// Point `cmd` (a devenv run) at the fake kind.
pub fn use_fake_kind(cmd: &mut Command, fake: &Path) {
    cmd.env("DEVENV_KIND", fake);
}

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

/// A kind cluster name unique to this process and call, starting with `prefix`.
pub fn unique_name(prefix: &str) -> String {
    let n = SEQUENCE.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}-{}{n}", std::process::id() % 100_000)
}

/// A cluster the fake kind made for a test, deleted (with anything left labelled with its
/// name) on drop.
pub struct Cluster {
    pub name: String,
    pub fake: PathBuf,
}

impl Cluster {
    /// A name for a cluster not created yet; the guard cleans up whatever gets created.
    pub fn named(prefix: &str, fake: &Path) -> Cluster {
        Cluster {
            name: unique_name(prefix),
            fake: fake.to_path_buf(),
        }
    }

    /// `name -> (role, state)` of its node containers, as `docker ps` sees them.
    pub fn containers(&self) -> std::collections::BTreeMap<String, (String, String)> {
        let r = docker(&[
            "ps",
            "-a",
            "--filter",
            &format!("label={CLUSTER_LABEL}={}", self.name),
            "--format",
            &format!("{{{{.Names}}}} {{{{.Label \"{ROLE_LABEL}\"}}}} {{{{.State}}}}"),
        ]);
        assert_eq!(r.code, 0, "{r}");
        r.stdout
            .lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                Some((
                    w.next()?.to_string(),
                    (w.next()?.to_string(), w.next()?.to_string()),
                ))
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let ids = docker(&[
            "ps",
            "-aq",
            "--filter",
            &format!("label={CLUSTER_LABEL}={}", self.name),
        ])
        .stdout;
        for id in ids.split_whitespace() {
            docker(&["rm", "-f", "-v", id]);
        }
    }
}

/// A plain container a test made (a registry stand-in, a bystander), removed on drop.
pub struct Container(pub String);

impl Container {
    /// Run [`NODE_IMAGE`] idling as `name`, with `args` before the image (`--network`, ...).
    pub fn run(name: &str, args: &[&str]) -> Container {
        let mut all = vec![
            "run",
            "-d",
            "--name",
            name,
            "--label",
            "dev.devenv.test=kindseam",
        ];
        all.extend_from_slice(args);
        all.push(NODE_IMAGE);
        let r = docker(&all);
        assert_eq!(r.code, 0, "starting container {name}: {r}");
        Container(name.to_string())
    }

    /// The networks it is attached to.
    pub fn networks(&self) -> Vec<String> {
        let r = docker(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
            &self.0,
        ]);
        assert_eq!(r.code, 0, "{r}");
        let mut n: Vec<String> = r.stdout.split_whitespace().map(str::to_string).collect();
        n.sort();
        n
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        docker(&["rm", "-f", "-v", &self.0]);
    }
}

/// The fake Kubernetes API server (`tests/support/fake-apiserver`, a test double documented in
/// its header), running on a free loopback port while this lives; it logs every request it gets.
pub struct FakeApiServer {
    pub port: u16,
    /// The bearer token it accepts.
    pub token: String,
    /// One line per request: `METHOD path?query fieldManager`.
    pub log: PathBuf,
    child: std::process::Child,
}

impl FakeApiServer {
    /// Start it (python3 needed), or `None` after a skip notice.
    pub fn start(dir: &Path) -> Option<FakeApiServer> {
        FakeApiServer::start_with(dir, &[])
    }

    /// [`FakeApiServer::start`] with extra arguments (`foreign-namespace`).
    pub fn start_with(dir: &Path, extra: &[&str]) -> Option<FakeApiServer> {
        use std::io::BufRead as _;
        super::tool("python3")?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fake-apiserver");
        let log = dir.join("apiserver.log");
        let token = format!("devenv-test-{}", std::process::id());
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(&log)
            .arg(&token)
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 starts the fake API server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("its stdout"))
            .read_line(&mut line)
            .expect("the fake API server prints its port");
        let port = line.trim().parse().expect("a port number");
        Some(FakeApiServer {
            port,
            token,
            log,
            child,
        })
    }

    /// The body of the last PATCH of `path` (a server-side apply), if any.
    pub fn applied(&self, path: &str) -> Option<serde_json::Value> {
        let bodies = std::fs::read_to_string(self.log.with_extension("log.bodies")).ok()?;
        bodies
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .rfind(|v| v["path"] == path)
            .map(|v| v["body"].clone())
    }

    /// The requests it got so far.
    pub fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
