//! A real Kubernetes control plane for the cluster tier: etcd, kube-apiserver,
//! kube-controller-manager and kube-scheduler (v1.20.2, built from Debian's `kubernetes` source
//! package by `tests/support/controlplane/build.sh`; etcd from Debian), started once per test
//! binary on free loopback ports, with an admin kubeconfig.
//!
//! Only kubelets are simulated, by [`agent`], the one test double of this tier (documented
//! there). Everything else answers as Kubernetes does: server-side apply and its field
//! ownership, validation, RBAC by the real authorizer, the Deployment and ReplicaSet
//! controllers, namespace deletion, the scheduler.
//!
//! The API server is shared by the tests of one binary: [`ControlPlane::lock`] serializes them,
//! and [`ControlPlane::reset`] puts the cluster back to what kubeadm leaves (CoreDNS's
//! ConfigMap and Deployment in kube-system, no namespace `devenv`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use super::{free_port, run, skip, tool};

pub mod agent;

/// The context of the admin kubeconfig.
pub const CONTEXT: &str = "devenv-real";
/// The name of the one node the agent keeps Ready.
pub const NODE: &str = "real-node";

/// The running control plane of this test binary.
pub struct ControlPlane {
    /// Holds the certificates, tokens, etcd's data and the kubeconfigs.
    pub dir: PathBuf,
    /// `https://127.0.0.1:<port>`.
    pub server: String,
    /// The admin kubeconfig (a token in `system:masters`), context [`CONTEXT`].
    pub kubeconfig: PathBuf,
    /// A kubeconfig whose user (`devenv-nobody`) is authenticated but granted nothing.
    pub unprivileged_kubeconfig: PathBuf,
    /// The admin token.
    pub token: String,
    /// The running API server, and how to start it again (a test stops it mid-run).
    apiserver: Mutex<Option<Child>>,
    apiserver_command: (PathBuf, Vec<std::ffi::OsString>),
    lock: Mutex<()>,
    runtime: tokio::runtime::Runtime,
    client: kube::Client,
}

/// The directory holding the three binaries, when `build.sh` has built them; `None` after a
/// skip notice (a panic in CI).
fn binaries() -> Option<PathBuf> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/controlplane/build.sh");
    let r = run(Command::new("bash").arg(&script).arg("--check"));
    if r.code != 0 {
        skip(&format!(
            "the real control plane is not built (`sudo bash {}` builds it once, about 6 minutes)",
            script.display()
        ));
        return None;
    }
    Some(PathBuf::from(r.stdout.trim()))
}

/// The control plane, started on first use; `None` after a skip notice when its binaries or etcd
/// are missing.
pub fn control_plane() -> Option<&'static ControlPlane> {
    // A failure to start is kept, so that the other tests of the binary fail at once with it.
    static PLANE: OnceLock<Option<Result<ControlPlane, String>>> = OnceLock::new();
    let plane = PLANE.get_or_init(|| {
        let bin = binaries()?;
        let etcd = tool("etcd")?;
        Some(ControlPlane::start(&bin, &etcd))
    });
    match plane {
        None => None,
        Some(Ok(plane)) => Some(plane),
        Some(Err(why)) => panic!("the real control plane did not start: {why}"),
    }
}

/// Start `cmd` so that it dies with this test process: from one thread that lives as long as the
/// process (the parent-death signal follows the thread that forked), with SIGKILL on its death.
fn spawn_for_life(name: &'static str, mut cmd: Command, log: PathBuf) -> Child {
    static SPAWNER: OnceLock<Mutex<std::sync::mpsc::Sender<Job>>> = OnceLock::new();
    type Job = (
        Command,
        PathBuf,
        std::sync::mpsc::Sender<std::io::Result<Child>>,
    );
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        std::thread::spawn(move || {
            for (mut cmd, log, answer) in rx {
                let started = std::fs::File::create(&log).and_then(|out| {
                    let err = out.try_clone()?;
                    use std::os::unix::process::CommandExt as _;
                    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
                    unsafe {
                        cmd.pre_exec(|| {
                            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                            Ok(())
                        });
                    }
                    cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn()
                });
                let _ = answer.send(started);
            }
        });
        Mutex::new(tx)
    });
    let (tx, rx) = std::sync::mpsc::channel();
    cmd.env_remove("KUBECONFIG");
    sender
        .lock()
        .unwrap()
        .send((cmd, log.clone(), tx))
        .expect("the spawner thread runs");
    rx.recv()
        .expect("the spawner answers")
        .unwrap_or_else(|e| panic!("{name} does not start: {e} (log {})", log.display()))
}

/// Write a kubeconfig for `server` with `token`, the CA in `ca`, context [`CONTEXT`].
pub fn write_kubeconfig(path: &Path, server: &str, ca: &Path, user: &str, token: &str) {
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: {CONTEXT}\n\
             clusters:\n- name: {CONTEXT}\n  cluster:\n    server: {server}\n    certificate-authority: {}\n\
             users:\n- name: {user}\n  user:\n    token: {token}\n\
             contexts:\n- name: {CONTEXT}\n  context:\n    cluster: {CONTEXT}\n    user: {user}\n",
            ca.display()
        ),
    )
    .expect("writing a kubeconfig");
}

impl ControlPlane {
    #[expect(
        clippy::zombie_processes,
        reason = "the processes live as long as the test process and die with it (PR_SET_PDEATHSIG)"
    )]
    fn start(bin: &Path, etcd: &Path) -> Result<ControlPlane, String> {
        // Kept for the process's life (the processes use it until they die with it).
        let dir = tempfile::Builder::new()
            .prefix("devenv-controlplane-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        let pki = Pki::write(&dir);
        let token = format!("admin-{}", rand_hex());
        let nobody = format!("nobody-{}", rand_hex());
        std::fs::write(
            dir.join("tokens.csv"),
            format!(
                "{token},devenv-admin,1,\"system:masters\"\n{nobody},devenv-nobody,2,\"devenv-testers\"\n"
            ),
        )
        .unwrap();

        let (client_port, peer_port, port) = (free_port(), free_port(), free_port());
        let etcd_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let mut cmd = Command::new(etcd);
        cmd.args(["--name", "devenv-test", "--data-dir"])
            .arg(dir.join("etcd"))
            .args(["--listen-client-urls", &etcd_url])
            .args(["--advertise-client-urls", &etcd_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("devenv-test={peer_url}")])
            // Quicker to write than the default on a small machine; nothing here needs fsync.
            .arg("--unsafe-no-fsync");
        spawn_for_life("etcd", cmd, dir.join("etcd.log"));

        let server = format!("https://127.0.0.1:{port}");
        let mut cmd = Command::new(bin.join("kube-apiserver"));
        cmd.arg(format!("--etcd-servers={etcd_url}"))
            .arg(format!("--secure-port={port}"))
            // Every address of this machine, so that fake kind's node containers reach it
            // through their network's gateway (tests/support/fake-kind); the token file is the
            // only way in.
            .arg("--bind-address=0.0.0.0")
            .arg("--advertise-address=127.0.0.1")
            .arg(format!("--tls-cert-file={}", pki.serving_cert.display()))
            .arg(format!(
                "--tls-private-key-file={}",
                pki.serving_key.display()
            ))
            .arg(format!("--client-ca-file={}", pki.ca.display()))
            .arg("--service-cluster-ip-range=10.96.0.0/12")
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg(format!(
                "--service-account-key-file={}",
                pki.sa_pub.display()
            ))
            .arg(format!(
                "--service-account-signing-key-file={}",
                pki.sa_key.display()
            ))
            .arg(format!(
                "--token-auth-file={}",
                dir.join("tokens.csv").display()
            ))
            .arg("--authorization-mode=RBAC")
            .arg("--allow-privileged=true")
            .arg("--kubelet-preferred-address-types=InternalIP")
            .arg("--insecure-port=0")
            .arg("--profiling=false");
        let apiserver_command = (
            PathBuf::from(cmd.get_program()),
            cmd.get_args().map(|a| a.to_os_string()).collect(),
        );
        let mut apiserver = spawn_for_life("kube-apiserver", cmd, dir.join("kube-apiserver.log"));

        let kubeconfig = dir.join("admin.kubeconfig");
        write_kubeconfig(&kubeconfig, &server, &pki.ca, "devenv-admin", &token);
        let unprivileged_kubeconfig = dir.join("nobody.kubeconfig");
        write_kubeconfig(
            &unprivileged_kubeconfig,
            &server,
            &pki.ca,
            "devenv-nobody",
            &nobody,
        );

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the node agent");
        let client = runtime.block_on(async {
            let file = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
            let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .expect("the admin kubeconfig");
            kube::Client::try_from(config).expect("a client")
        });
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let healthy = runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), client.apiserver_version()).await
            });
            if matches!(healthy, Ok(Ok(_))) {
                break;
            }
            if let Ok(Some(status)) = apiserver.try_wait() {
                return Err(format!(
                    "kube-apiserver exited ({status}):\n{}",
                    tail(&dir.join("kube-apiserver.log"))
                ));
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "kube-apiserver did not answer within 90 s: {healthy:?}\n{}",
                    tail(&dir.join("kube-apiserver.log"))
                ));
            }
            std::thread::sleep(Duration::from_millis(300));
        }

        let mut cmd = Command::new(bin.join("kube-controller-manager"));
        cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--service-account-private-key-file={}",
                pki.sa_key.display()
            ))
            .arg(format!("--root-ca-file={}", pki.ca.display()))
            // No node IPAM: nodes here get no pod CIDR (and need none).
            .arg("--controllers=*,-nodeipam")
            .arg("--leader-elect=false")
            .arg("--port=0")
            .arg("--secure-port=0")
            .arg("--use-service-account-credentials=false");
        spawn_for_life(
            "kube-controller-manager",
            cmd,
            dir.join("kube-controller-manager.log"),
        );
        let mut cmd = Command::new(bin.join("kube-scheduler"));
        cmd.arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg("--leader-elect=false")
            .arg("--port=0")
            .arg("--secure-port=0");
        spawn_for_life("kube-scheduler", cmd, dir.join("kube-scheduler.log"));

        let plane = ControlPlane {
            dir,
            server,
            kubeconfig,
            unprivileged_kubeconfig,
            token,
            apiserver: Mutex::new(Some(apiserver)),
            apiserver_command,
            lock: Mutex::new(()),
            runtime,
            client,
        };
        plane
            .runtime
            .spawn(agent::run(plane.client.clone(), vec![NODE.to_string()]));
        plane.reset();
        Ok(plane)
    }

    /// Stop the API server (SIGKILL): connections to it are refused until
    /// [`ControlPlane::start_apiserver`].
    pub fn stop_apiserver(&self) {
        if let Some(mut child) = self.apiserver.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the API server again, on the same port and etcd, and wait until it answers.
    pub fn start_apiserver(&self) {
        let mut slot = self.apiserver.lock().unwrap();
        if slot.is_some() {
            return;
        }
        let (program, args) = &self.apiserver_command;
        let mut cmd = Command::new(program);
        cmd.args(args);
        let log = self.dir.join("kube-apiserver.restarted.log");
        *slot = Some(spawn_for_life("kube-apiserver", cmd, log.clone()));
        drop(slot);
        let deadline = Instant::now() + Duration::from_secs(90);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "kube-apiserver did not answer within 90 s of its restart:\n{}",
                tail(&log)
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Whether the API server answers `GET /version` now.
    fn answers(&self) -> bool {
        let answer = self.block_on(async {
            tokio::time::timeout(Duration::from_secs(5), self.client.apiserver_version()).await
        });
        matches!(answer, Ok(Ok(_)))
    }

    /// Hold this while a test uses the cluster: the tests of one binary share it.
    pub fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A kube-rs client with the admin credentials.
    pub fn client(&self) -> kube::Client {
        self.client.clone()
    }

    /// Run `f` on the control plane's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    /// The last lines of a component's log (`kube-apiserver`, `etcd`, ...).
    pub fn log(&self, component: &str) -> String {
        tail(&self.dir.join(format!("{component}.log")))
    }

    /// Put the cluster back to what kubeadm leaves: no namespace `devenv` (deleted, and waited
    /// for), devenv's cluster-wide objects gone, and CoreDNS's ConfigMap and Deployment in
    /// kube-system as kubeadm makes them (field manager `kubeadm`).
    pub fn reset(&self) {
        self.block_on(agent::reset(&self.client))
            .unwrap_or_else(|e| panic!("resetting the cluster: {e:#}"));
    }

    /// A shell line (a by-hand instruction as a file prints it) in `dir`, with the admin
    /// kubeconfig as `KUBECONFIG`, when kubectl is installed.
    pub fn shell(&self, line: &str, dir: &Path) -> Option<super::Run> {
        tool("kubectl")?;
        Some(run(Command::new("sh")
            .args(["-c", line])
            .current_dir(dir)
            .env("KUBECONFIG", &self.kubeconfig)))
    }

    /// The environment that points fake kind at this API server (tests/support/fake-kind, its
    /// header): its node containers relay to it, its kubeconfig names it, and it registers their
    /// Nodes, which the agent keeps while the containers run.
    pub fn fake_kind_env(&self) -> Vec<(String, std::ffi::OsString)> {
        let port = self.server.rsplit(':').next().expect("a port").to_string();
        vec![
            ("FAKE_KIND_APISERVER_PORT".into(), port.into()),
            (
                "FAKE_KIND_APISERVER_CA".into(),
                self.dir.join("ca.crt").into(),
            ),
            (
                "FAKE_KIND_APISERVER_TOKEN".into(),
                self.token.clone().into(),
            ),
            ("FAKE_KIND_API_DELAY".into(), "3".into()),
        ]
    }

    /// From now on, run devenv's lookup pods for real ([`agent::runner`]): in fake kind's
    /// busybox node image on the `kind` network, with BIND's `named` (the real-program image)
    /// serving the cluster's zone. `None` after a skip notice when those images cannot be had.
    pub fn run_lookup_pods(&self) -> Option<()> {
        super::kind::fake_kind()?;
        let named = super::realimages::program("named")?;
        agent::runner::enable(agent::runner::Runner {
            pod_images: vec![devenv::render::cluster::traefik::IMAGE.to_string()],
            busybox: super::kind::NODE_IMAGE.to_string(),
            named,
            network: "kind".to_string(),
        });
        Some(())
    }

    /// `kubectl` with the admin kubeconfig, when Debian's kubernetes-client is installed.
    pub fn kubectl(&self, args: &[&str]) -> Option<super::Run> {
        let kubectl = tool("kubectl")?;
        Some(run(Command::new(kubectl)
            .arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .args(args)))
    }
}

/// The last 40 lines of a file.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn rand_hex() -> String {
    let mut bytes = [0u8; 12];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
        .expect("reading /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The control plane's keys: a CA, the API server's serving certificate (127.0.0.1, localhost,
/// and the addresses of this machine's Docker bridges, for fake kind's nodes), and the
/// service-account signing key.
struct Pki {
    ca: PathBuf,
    serving_cert: PathBuf,
    serving_key: PathBuf,
    /// PKCS#8, which the signing side reads; the verifying side (v1.20's keyutil) reads only
    /// public keys and RSA/EC private keys, hence [`Pki::sa_pub`].
    sa_key: PathBuf,
    sa_pub: PathBuf,
}

impl Pki {
    fn write(dir: &Path) -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "devenv-test-kubernetes-ca");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().unwrap();
        let mut names: Vec<String> = ["127.0.0.1", "localhost", "kubernetes", "10.96.0.1"]
            .map(String::from)
            .to_vec();
        names.extend(host_addresses());
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let cert = params.signed_by(&key, &issuer).unwrap();
        let sa = KeyPair::generate().unwrap();
        let out = Pki {
            ca: dir.join("ca.crt"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
        };
        std::fs::write(&out.ca, ca_cert.pem()).unwrap();
        std::fs::write(&out.serving_cert, cert.pem()).unwrap();
        let mut f = std::fs::File::create(&out.serving_key).unwrap();
        f.write_all(key.serialize_pem().as_bytes()).unwrap();
        std::fs::write(&out.sa_key, sa.serialize_pem()).unwrap();
        std::fs::write(&out.sa_pub, sa.public_key_pem()).unwrap();
        out
    }
}

/// The IPv4 addresses of this machine's interfaces (`ip -4 -o addr`), for the serving
/// certificate.
fn host_addresses() -> Vec<String> {
    let r = run(Command::new("ip").args(["-4", "-o", "addr", "show"]));
    let mut out: Vec<String> = r
        .stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|x| *x == "inet")?;
            Some(w.next()?.split('/').next()?.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out.retain(|a| a != "127.0.0.1");
    out
}

/// The labels of a Node the agent registers.
pub fn node_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("kubernetes.io/hostname".to_string(), name.to_string()),
        ("kubernetes.io/os".to_string(), "linux".to_string()),
        ("kubernetes.io/arch".to_string(), "amd64".to_string()),
    ])
}
