//! The `kind` binary, driven through its CLI: where it is, whether its version is one devenv
//! supports, and the subcommands devenv uses.
//!
//! What each subcommand does, from kind's source (v0.33):
//! - `version` prints `kind v0.33.0 go1.x linux/amd64` (just `0.33.0` with `-q`).
//! - `get clusters` prints one name a line on stdout; with none it prints
//!   `No kind clusters found.` on stderr and nothing on stdout, exit 0. Clusters are the values
//!   of the `io.x-k8s.kind.cluster` label on containers, stopped ones included.
//! - `get nodes --name N` prints the node container names (the external load balancer of a
//!   cluster with several control planes included), none with a note on stderr, exit 0.
//! - `create cluster --name N --config F [--kubeconfig K] [--wait D]` creates
//!   `<N>-control-plane`, `<N>-worker`, `<N>-worker2`, ... on the `kind` network, labelled
//!   `io.x-k8s.kind.cluster=N` and `io.x-k8s.kind.role=<role>`, and merges cluster, user and
//!   context `kind-<N>` into K (else the only file of `KUBECONFIG`, or its first existing
//!   file, else its last; else `~/.kube/config`: see `cluster::kubeconfig`), making it current. A cluster of that name that exists is an error
//!   (`node(s) already exist for a cluster with the name "N"`).
//! - `delete cluster --name N [--kubeconfig K]` removes its containers and the `kind-<N>`
//!   entries; a cluster that does not exist is not an error.
//! - `get kubeconfig --name N [--internal]` prints the kubeconfig; `--internal` keeps the
//!   address nodes use (`https://<N>-control-plane:6443`) instead of the published one.
//! - `load docker-image IMAGE --name N [--nodes a,b]` copies an image from the host's engine.
//! - Any failure prints `ERROR: ...` on stderr and exits 1; unknown flags and subcommands too.
//!
//! Supported versions: v0.32.0 up to any v0.33.x (see [`supported`]). Not for: provisioning
//! kind ([`super::provision`]), or operating on node containers directly (`docker::nodes`).

use std::cmp::Ordering;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context as _;

use super::provision;
use crate::env;
use crate::error::Failure;

/// The oldest kind devenv supports: v0.32.0 is the first to apply a containerd config patch
/// only to nodes of the config version it declares (kind `pkg/internal/patch/toml.go`);
/// devenv sends one per version (`render::kind`), which an older kind would merge into every
/// node, breaking their containerd config.
pub const MIN_VERSION: Version = Version::new(0, 32, 0);

/// The newest minor release devenv supports: v0.33, whose node images devenv pins
/// (`cluster.node_image`). kind's quick start sends users to each release's notes for the
/// images "created for a kind release", so a later minor is refused until devenv has been
/// checked against it and its images pinned.
pub const MAX_MINOR: (u64, u64) = (0, 33);

/// How long `kind version` may take before the binary is considered broken.
const VERSION_TIMEOUT: Duration = Duration::from_secs(30);

/// The install hint of every "kind is not usable" failure.
pub fn install_hint() -> String {
    let dir = provision::default_dir()
        .map(|d| d.display().to_string())
        .unwrap_or_else(|_| "devenv's data directory".into());
    format!(
        "install kind {} (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) and put it \
         on PATH, or set {} to a kind binary from v{MIN_VERSION} to v{}.{}.x; devenv can also \
         download kind {} into {dir} for you",
        provision::PINNED_VERSION,
        env::KIND,
        MAX_MINOR.0,
        MAX_MINOR.1,
        provision::PINNED_VERSION,
    )
}

/// A kind version, `major.minor.patch` with an optional pre-release (`0.33.0-alpha.12`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
    pub patch: u64,
    /// The pre-release part (`alpha.12`), without build metadata.
    pub pre: Option<String>,
}

impl Version {
    /// A release version.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Version {
        Version {
            major,
            minor,
            patch,
            pre: None,
        }
    }

    /// Parse `0.33.0`, `v0.33.0` or `v0.33.0-alpha.12+0123abcd`.
    pub fn parse(text: &str) -> Option<Version> {
        let text = text.strip_prefix('v').unwrap_or(text);
        let text = text.split_once('+').map_or(text, |(v, _build)| v);
        let (core, pre) = match text.split_once('-') {
            Some((core, pre)) if !pre.is_empty() => (core, Some(pre.to_string())),
            Some(_) => return None,
            None => (text, None),
        };
        let mut parts = core.split('.').map(|p| {
            (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse::<u64>().ok())
                .flatten()
        });
        let (Some(Some(major)), Some(Some(minor)), Some(Some(patch)), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        Some(Version {
            major,
            minor,
            patch,
            pre,
        })
    }

    /// The version in the output of `kind version` (`kind v0.33.0 go1.26.7 linux/amd64`, or
    /// `0.33.0` with `-q`).
    pub fn from_output(output: &str) -> Option<Version> {
        output.split_whitespace().find_map(|word| {
            (word.starts_with('v') || word.starts_with(|c: char| c.is_ascii_digit()))
                .then(|| Version::parse(word))
                .flatten()
        })
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            // A pre-release comes before its release.
            .then_with(|| match (&self.pre, &other.pre) {
                (None, None) => Ordering::Equal,
                (None, Some(_)) => Ordering::Greater,
                (Some(_), None) => Ordering::Less,
                (Some(a), Some(b)) => a.cmp(b),
            })
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(pre) = &self.pre {
            write!(f, "-{pre}")?;
        }
        Ok(())
    }
}

/// Whether devenv supports kind `version`: from [`MIN_VERSION`] through the last release of
/// [`MAX_MINOR`].
pub fn supported(version: &Version) -> bool {
    *version >= MIN_VERSION && (version.major, version.minor) <= MAX_MINOR
}

/// Where a kind binary was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Named by `DEVENV_KIND`.
    Env,
    /// `kind` on `PATH`.
    Path,
    /// devenv's provisioned copy.
    Provisioned,
}

/// Where to look for kind, in order: `explicit` (which alone is looked at when set), `kind`
/// on `path`, `kind` in `provisioned`.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// `DEVENV_KIND`: a path, or a name looked up on `path`.
    pub explicit: Option<OsString>,
    /// The `PATH` to search.
    pub path: Option<OsString>,
    /// devenv's provisioned-binaries directory.
    pub provisioned: Option<PathBuf>,
}

impl Search {
    /// From the environment: `DEVENV_KIND`, `PATH` and [`provision::default_dir`].
    pub fn from_env() -> Search {
        Search {
            explicit: std::env::var_os(env::KIND).filter(|v| !v.is_empty()),
            path: std::env::var_os(env::PATH),
            provisioned: provision::default_dir().ok(),
        }
    }
}

/// Why no usable kind was found.
#[derive(Debug)]
pub enum Unusable {
    /// No `kind` on PATH nor in devenv's directory.
    Missing { looked: Vec<String> },
    /// `DEVENV_KIND` names nothing executable.
    NotFound { named: String },
    /// A kind whose version devenv does not support.
    Unsupported {
        path: PathBuf,
        origin: Origin,
        version: Version,
    },
    /// A binary that does not answer `kind version` with a version.
    Broken {
        path: PathBuf,
        origin: Origin,
        why: String,
    },
}

impl Unusable {
    /// Whether provisioning the pinned kind would give a usable one: not when `DEVENV_KIND`
    /// chose the binary (devenv does not overrule it).
    pub fn provisioning_helps(&self) -> bool {
        match self {
            Unusable::Missing { .. } => true,
            Unusable::NotFound { .. } => false,
            Unusable::Unsupported { origin, .. } | Unusable::Broken { origin, .. } => {
                *origin != Origin::Env
            }
        }
    }

    /// The exit-3 failure with an install hint.
    pub fn into_failure(self) -> Failure {
        Failure::environment(self.to_string(), Some(install_hint()))
    }
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Missing { looked } => {
                write!(f, "kind is not installed (looked in {})", looked.join(", "))
            }
            Unusable::NotFound { named } => write!(
                f,
                "{} names `{named}`, which is not an executable file",
                env::KIND
            ),
            Unusable::Unsupported { path, version, .. } => write!(
                f,
                "kind {version} ({}) is not supported: devenv needs v{MIN_VERSION} to v{}.{}.x",
                path.display(),
                MAX_MINOR.0,
                MAX_MINOR.1
            ),
            Unusable::Broken { path, why, .. } => {
                write!(f, "{} does not work as kind: {why}", path.display())
            }
        }
    }
}

impl std::error::Error for Unusable {}

/// A usable kind binary.
#[derive(Debug, Clone)]
pub struct Kind {
    pub path: PathBuf,
    pub version: Version,
    pub origin: Origin,
    /// The engine kind is to use (`unix:///var/run/docker.sock`, `ssh://...`): the one devenv
    /// connected to. kind calls the `docker` CLI, which on its own follows `DOCKER_CONTEXT` and
    /// the CLI's current context, and may find another engine than devenv (Docker Engine and
    /// Docker Desktop on one laptop): the nodes would be made on one and looked for on the
    /// other. `None` leaves kind's environment as it is (only `kind version` runs so).
    pub engine: Option<String>,
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn on_path(name: &OsStr, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

/// The candidates of `search`, in order.
fn candidates(search: &Search) -> Result<Vec<(PathBuf, Origin)>, Unusable> {
    if let Some(named) = &search.explicit {
        let path = Path::new(named);
        let found = if path.components().count() > 1 {
            is_executable(path).then(|| path.to_path_buf())
        } else {
            on_path(named, search.path.as_deref())
        };
        return match found {
            Some(p) => Ok(vec![(p, Origin::Env)]),
            None => Err(Unusable::NotFound {
                named: named.to_string_lossy().into_owned(),
            }),
        };
    }
    let mut out = Vec::new();
    if let Some(p) = on_path(OsStr::new("kind"), search.path.as_deref()) {
        out.push((p, Origin::Path));
    }
    if let Some(dir) = &search.provisioned {
        let p = dir.join(provision::BINARY);
        if is_executable(&p) {
            out.push((p, Origin::Provisioned));
        }
    }
    if out.is_empty() {
        let mut looked = vec!["PATH".to_string()];
        if let Some(dir) = &search.provisioned {
            looked.push(dir.display().to_string());
        }
        return Err(Unusable::Missing { looked });
    }
    Ok(out)
}

/// Run `kind version` and check the answer.
async fn probe(path: &Path, origin: Origin) -> Result<Kind, Unusable> {
    let broken = |why: String| Unusable::Broken {
        path: path.to_path_buf(),
        origin,
        why,
    };
    let run = async {
        // A binary just written (provisioned) may still be open in a child another thread
        // forked at that moment: exec then fails with ETXTBSY for a short while.
        let mut busy = 0;
        loop {
            let attempt = tokio::process::Command::new(path)
                .arg("version")
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output()
                .await;
            match attempt {
                Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy && busy < 20 => {
                    busy += 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                other => break other,
            }
        }
    };
    let output = match tokio::time::timeout(VERSION_TIMEOUT, run).await {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Err(broken(format!("it does not start: {e}"))),
        Err(_) => {
            return Err(broken(format!(
                "`kind version` did not answer within {}s",
                VERSION_TIMEOUT.as_secs()
            )));
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(broken(format!(
            "`kind version` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    let Some(version) = Version::from_output(&stdout) else {
        return Err(broken(format!(
            "`kind version` printed no version: {:?}",
            stdout.trim()
        )));
    };
    if !supported(&version) {
        return Err(Unusable::Unsupported {
            path: path.to_path_buf(),
            origin,
            version,
        });
    }
    Ok(Kind {
        engine: None,
        path: path.to_path_buf(),
        version,
        origin,
    })
}

/// The failure for a kind subcommand that exited non-zero, with what it said.
fn failed(args: &[&OsStr], output: &std::process::Output) -> anyhow::Error {
    let command: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stderr = stderr.trim();
    anyhow::anyhow!(
        "`kind {}` failed ({}){}",
        command.join(" "),
        output.status,
        if stderr.is_empty() {
            String::new()
        } else {
            let lines: Vec<String> = stderr.lines().map(|l| format!("  | {l}")).collect();
            format!(":\n{}", lines.join("\n"))
        }
    )
}

fn lines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

impl Kind {
    /// The first usable kind of `search`: `DEVENV_KIND` alone when set; else `kind` on PATH,
    /// then devenv's provisioned copy, the first whose version is supported. When none is, the
    /// reason concerns the first one found.
    pub async fn find(search: &Search) -> Result<Kind, Unusable> {
        let mut first_problem = None;
        for (path, origin) in candidates(search)? {
            match probe(&path, origin).await {
                Ok(kind) => return Ok(kind),
                Err(why) => {
                    tracing::debug!("not using {}: {why}", path.display());
                    first_problem.get_or_insert(why);
                }
            }
        }
        Err(first_problem.expect("candidates() returns at least one or an error"))
    }

    /// [`Kind::find`] in the environment's places, failing with exit 3 and an install hint.
    pub async fn find_or_fail() -> anyhow::Result<Kind> {
        Kind::find(&Search::from_env())
            .await
            .map_err(|e| e.into_failure().into())
    }

    /// The kind at `path`, if its version is supported (exit 3 otherwise).
    pub async fn at(path: &Path) -> anyhow::Result<Kind> {
        probe(path, Origin::Env)
            .await
            .map_err(|e| e.into_failure().into())
    }

    /// This kind, run against the engine at `endpoint` (see [`Kind::engine`]).
    pub fn on_engine(mut self, endpoint: &str) -> Kind {
        self.engine = Some(endpoint.to_string());
        self
    }

    /// `kind <args>`, with the engine devenv uses: `DOCKER_HOST` set to it (the docker CLI's
    /// `resolveContextName` takes the default context, which is `DOCKER_HOST`, before
    /// `DOCKER_CONTEXT` and the configured current context), `DOCKER_CONTEXT` removed all the
    /// same, and kind's provider fixed to docker (left to itself kind picks podman or nerdctl
    /// when `docker` does not answer it).
    fn command(&self, args: &[&OsStr]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(&self.path);
        cmd.args(args).stdin(Stdio::null()).kill_on_drop(true);
        if let Some(endpoint) = &self.engine {
            cmd.env(env::DOCKER_HOST, endpoint)
                .env_remove(env::DOCKER_CONTEXT)
                .env(env::KIND_EXPERIMENTAL_PROVIDER, "docker");
        }
        cmd
    }

    /// Run `kind <args>`, capturing its output; a non-zero exit is an error showing stderr.
    async fn run(&self, args: &[&OsStr]) -> anyhow::Result<std::process::Output> {
        tracing::debug!(
            "running {} {}",
            self.path.display(),
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let output = self
            .command(args)
            .output()
            .await
            .with_context(|| format!("running {}", self.path.display()))?;
        if !output.status.success() {
            return Err(failed(args, &output));
        }
        Ok(output)
    }

    /// [`Kind::run`], handing each line kind prints on stderr (its progress) to `progress` as
    /// it comes.
    async fn run_reporting(
        &self,
        args: &[&OsStr],
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> anyhow::Result<std::process::Output> {
        use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};
        let mut child = self
            .command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", self.path.display()))?;
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let read_stdout = async {
            let mut all = Vec::new();
            stdout.read_to_end(&mut all).await.map(|_| all)
        };
        let read_stderr = async {
            let mut all = Vec::new();
            let mut lines = tokio::io::BufReader::new(stderr).lines();
            while let Some(line) = lines.next_line().await? {
                if !line.trim().is_empty() {
                    progress(line.trim_end());
                }
                all.extend_from_slice(line.as_bytes());
                all.push(b'\n');
            }
            Ok::<_, std::io::Error>(all)
        };
        let (stdout, stderr) = tokio::try_join!(read_stdout, read_stderr)
            .with_context(|| format!("reading the output of {}", self.path.display()))?;
        let status = child
            .wait()
            .await
            .with_context(|| format!("waiting for {}", self.path.display()))?;
        let output = std::process::Output {
            status,
            stdout,
            stderr,
        };
        if !output.status.success() {
            return Err(failed(args, &output));
        }
        Ok(output)
    }

    /// The names of the existing kind clusters (stopped ones included).
    pub async fn clusters(&self) -> anyhow::Result<Vec<String>> {
        let out = self
            .run(&[OsStr::new("get"), OsStr::new("clusters")])
            .await
            .context("listing kind clusters")?;
        Ok(lines(&out.stdout))
    }

    /// The node container names of cluster `name` (none when it does not exist).
    pub async fn nodes(&self, name: &str) -> anyhow::Result<Vec<String>> {
        let out = self
            .run(&[
                OsStr::new("get"),
                OsStr::new("nodes"),
                OsStr::new("--name"),
                OsStr::new(name),
            ])
            .await
            .with_context(|| format!("listing the nodes of kind cluster {name}"))?;
        Ok(lines(&out.stdout))
    }

    /// Create cluster `name` from the KinD config at `config`. Its context `kind-<name>` is
    /// merged into `kubeconfig` when given, else where kind merges it by default
    /// ([`super::kubeconfig`] follows the same rule). `wait` makes kind wait that long for the control plane to be
    /// Ready. A failure is exit 3, showing kind's output.
    pub async fn create(
        &self,
        name: &str,
        config: &Path,
        kubeconfig: Option<&Path>,
        wait: Option<Duration>,
    ) -> anyhow::Result<()> {
        self.create_reporting(name, config, kubeconfig, wait, &mut |_| {})
            .await
    }

    /// [`Kind::create`], handing each progress line kind prints (` ✓ Starting control-plane
    /// 🕹️`, ...) to `progress` as it comes, for the caller's output.
    pub async fn create_reporting(
        &self,
        name: &str,
        config: &Path,
        kubeconfig: Option<&Path>,
        wait: Option<Duration>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> anyhow::Result<()> {
        let wait = wait.map(|w| format!("{}s", w.as_secs().max(1)));
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("create"),
            OsStr::new("cluster"),
            OsStr::new("--name"),
            OsStr::new(name),
            OsStr::new("--config"),
            config.as_os_str(),
        ];
        if let Some(k) = kubeconfig {
            args.extend([OsStr::new("--kubeconfig"), k.as_os_str()]);
        }
        if let Some(w) = &wait {
            args.extend([OsStr::new("--wait"), OsStr::new(w.as_str())]);
        }
        self.run_reporting(&args, progress).await.map_err(|e| {
            let failure = Failure::environment(
                format!("creating kind cluster {name} failed: {e:#}"),
                Some(format!(
                    "whatever kind left behind is removed with `{} delete cluster --name {name}`",
                    self.path.display()
                )),
            );
            anyhow::Error::from(failure)
        })?;
        Ok(())
    }

    /// Delete cluster `name` and its `kind-<name>` kubeconfig entries (from `kubeconfig` when
    /// given). Deleting a cluster that does not exist succeeds.
    pub async fn delete(&self, name: &str, kubeconfig: Option<&Path>) -> anyhow::Result<()> {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("delete"),
            OsStr::new("cluster"),
            OsStr::new("--name"),
            OsStr::new(name),
        ];
        if let Some(k) = kubeconfig {
            args.extend([OsStr::new("--kubeconfig"), k.as_os_str()]);
        }
        self.run(&args)
            .await
            .with_context(|| format!("deleting kind cluster {name}"))?;
        Ok(())
    }

    /// The kubeconfig of cluster `name`: with the published API server address, or with
    /// `internal`, the one reachable from containers on the `kind` network.
    pub async fn kubeconfig(&self, name: &str, internal: bool) -> anyhow::Result<String> {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("get"),
            OsStr::new("kubeconfig"),
            OsStr::new("--name"),
            OsStr::new(name),
        ];
        if internal {
            args.push(OsStr::new("--internal"));
        }
        let out = self
            .run(&args)
            .await
            .with_context(|| format!("reading the kubeconfig of kind cluster {name}"))?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Copy `image` from the host's Docker engine into the nodes of cluster `name` (`nodes`,
    /// or all when empty).
    pub async fn load_image(
        &self,
        name: &str,
        image: &str,
        nodes: &[String],
    ) -> anyhow::Result<()> {
        let list = nodes.join(",");
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("load"),
            OsStr::new("docker-image"),
            OsStr::new(image),
            OsStr::new("--name"),
            OsStr::new(name),
        ];
        if !nodes.is_empty() {
            args.extend([OsStr::new("--nodes"), OsStr::new(list.as_str())]);
        }
        self.run(&args)
            .await
            .with_context(|| format!("loading image {image} into kind cluster {name}"))?;
        Ok(())
    }
}

/// The kubeconfig context kind gives cluster `name`.
pub fn context(name: &str) -> String {
    format!("kind-{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_version_kind_prints() {
        let v = Version::from_output("kind v0.33.0 go1.26.7 linux/amd64\n").unwrap();
        assert_eq!(v, Version::new(0, 33, 0));
        assert_eq!(
            Version::from_output("0.32.1\n"),
            Some(Version::new(0, 32, 1))
        );
        let dev = Version::from_output("kind v0.34.0-alpha.12+0123456789abcd go1.26 linux/arm64")
            .unwrap();
        assert_eq!(dev.pre.as_deref(), Some("alpha.12"));
        assert_eq!(dev.to_string(), "0.34.0-alpha.12");
        assert_eq!(Version::from_output("kind version unknown"), None);
        assert_eq!(Version::parse("v1.2"), None);
        assert_eq!(Version::parse("1.2.3.4"), None);
        assert_eq!(Version::parse("1.x.3"), None);
    }

    #[test]
    fn supports_v0_32_0_through_v0_33_x() {
        let v = |s: &str| Version::parse(s).unwrap();
        for ok in ["0.32.0", "0.32.5", "0.33.0", "0.33.9", "0.33.1-rc.1"] {
            assert!(supported(&v(ok)), "{ok}");
        }
        for no in [
            "0.31.0",
            "0.32.0-alpha.3",
            "0.34.0",
            "0.34.0-alpha.1",
            "1.0.0",
            "0.9.0",
        ] {
            assert!(!supported(&v(no)), "{no}");
        }
    }

    #[test]
    fn a_kind_devenv_env_names_is_never_overruled() {
        let named = Unusable::Unsupported {
            path: "/x/kind".into(),
            origin: Origin::Env,
            version: Version::new(0, 20, 0),
        };
        assert!(!named.provisioning_helps());
        let on_path = Unusable::Unsupported {
            path: "/usr/bin/kind".into(),
            origin: Origin::Path,
            version: Version::new(0, 20, 0),
        };
        assert!(on_path.provisioning_helps());
        let failure = on_path.into_failure();
        assert_eq!(failure.exit_code(), crate::error::exit::ENVIRONMENT);
        assert!(
            failure
                .message
                .contains("kind 0.20.0 (/usr/bin/kind) is not supported")
        );
        assert!(failure.hint.unwrap().contains("DEVENV_KIND"));
    }
}
