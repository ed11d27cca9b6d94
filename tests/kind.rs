//! devenv's cluster driver against real containers: `cluster::kind` runs the fake kind
//! (tests/support/fake-kind, a test double that makes real node containers on the real `kind`
//! network), and the Docker-side operations (`docker::nodes`, `cluster::registry`) act on
//! those containers. Also: how a missing or unsupported kind fails (exit 3).

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use devenv::cluster::kind::{Kind, Origin, Search, Unusable};
use devenv::cluster::registry;
use devenv::config::{Config, RoutingMode};
use devenv::docker::Engine;
use devenv::docker::nodes::NodeRole;
use devenv::docker::observed::RunState;
use devenv::error::{exit, exit_code};
use support::docker::docker;
use support::free_port;
use support::kind::{Cluster, Container, NODE_IMAGE, fake_kind};

/// A devenv config for cluster `name`: its ports free ones on 127.0.0.1, so that the fake's
/// published ports never collide, and `workers` workers.
fn config(name: &str, workers: u8) -> Config {
    let mut config = Config {
        name: name.to_string(),
        ..Default::default()
    };
    config.routing.mode = RoutingMode::Ports;
    config.cluster.workers = workers;
    config.cluster.http_port = free_port();
    config.cluster.https_port = free_port();
    config.cluster.quic_port = free_port();
    config
}

/// Write the KinD config devenv renders for `config` into `dir`.
fn write_cluster_yaml(config: &Config, dir: &Path) -> PathBuf {
    let artifacts = devenv::render::kind::render(config).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("cluster.yaml");
    std::fs::write(&path, &artifacts[0].contents).unwrap();
    path
}

/// The fake, found the way `DEVENV_KIND=<path>` makes devenv find it.
async fn fake(path: &Path) -> Kind {
    let search = Search {
        explicit: Some(path.into()),
        path: None,
        provisioned: None,
    };
    Kind::find(&search)
        .await
        .expect("the fake kind is a supported kind")
}

fn cat(node: &str, path: &str) -> Option<String> {
    let r = docker(&["exec", node, "cat", path]);
    (r.code == 0).then_some(r.stdout)
}

fn states(cluster: &Cluster) -> BTreeMap<String, String> {
    cluster
        .containers()
        .into_iter()
        .map(|(name, (_, state))| (name, state))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_makes_labelled_nodes_on_the_kind_network_and_merges_the_context() {
    let Some(path) = fake_kind() else { return };
    let cluster = Cluster::named("dks-create", &path);
    let config = config(&cluster.name, 1);
    let dir = tempfile::tempdir().unwrap();
    let yaml = write_cluster_yaml(&config, dir.path());
    let kubeconfig = dir.path().join("kube").join("config");
    let kind = fake(&path).await;
    assert_eq!(kind.version.to_string(), "0.33.0");
    assert_eq!(kind.origin, Origin::Env);

    let mut progress = Vec::new();
    kind.create_reporting(
        &cluster.name,
        &yaml,
        Some(&kubeconfig),
        Some(Duration::from_secs(60)),
        &mut |line| progress.push(line.to_string()),
    )
    .await
    .unwrap();
    assert_eq!(
        progress.first().map(String::as_str),
        Some(format!("Creating cluster \"{}\" ...", cluster.name).as_str())
    );
    assert_eq!(
        progress.last().map(String::as_str),
        Some(format!("Set kubectl context to \"kind-{}\"", cluster.name).as_str())
    );

    let cp = format!("{}-control-plane", cluster.name);
    let worker = format!("{}-worker", cluster.name);
    let containers = cluster.containers();
    assert_eq!(
        containers,
        BTreeMap::from([
            (cp.clone(), ("control-plane".into(), "running".into())),
            (worker.clone(), ("worker".into(), "running".into())),
        ])
    );
    // What kind itself reports, and what devenv's engine driver sees.
    assert!(kind.clusters().await.unwrap().contains(&cluster.name));
    assert_eq!(
        kind.nodes(&cluster.name).await.unwrap(),
        [cp.clone(), worker.clone()]
    );
    let engine = Engine::connect().await.unwrap();
    let nodes = engine.kind_nodes(&cluster.name).await.unwrap();
    let seen: Vec<_> = nodes
        .iter()
        .map(|n| (n.name.as_str(), n.role.clone(), n.state))
        .collect();
    assert_eq!(
        seen,
        [
            (cp.as_str(), NodeRole::ControlPlane, RunState::Running),
            (worker.as_str(), NodeRole::Worker, RunState::Running),
        ]
    );
    // On the shared kind network, hostname = name, the config's ports published as kind does.
    let r = docker(&[
        "inspect",
        "-f",
        "{{.Config.Hostname}} {{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}",
        &cp,
    ]);
    assert_eq!(r.stdout.trim(), format!("{cp} kind"), "{r}");
    let ports = docker(&["port", &cp]).stdout;
    for line in [
        format!("80/tcp -> 127.0.0.1:{}", config.cluster.http_port),
        format!("443/tcp -> 127.0.0.1:{}", config.cluster.https_port),
        format!("4433/udp -> 127.0.0.1:{}", config.cluster.quic_port),
    ] {
        assert!(ports.contains(&line), "{line} not in\n{ports}");
    }
    assert!(ports.contains("6443/tcp -> 127.0.0.1:"), "{ports}");

    // The context kind-<name> was merged into the kubeconfig given, and made current.
    let merged = std::fs::read_to_string(&kubeconfig).unwrap();
    let context = devenv::cluster::kind::context(&cluster.name);
    assert!(
        merged.contains(&format!("current-context: {context}")),
        "{merged}"
    );
    // Internal: the node's name on the kind network; external: the published port.
    let internal = kind.kubeconfig(&cluster.name, true).await.unwrap();
    assert!(
        internal.contains(&format!("server: https://{cp}:6443")),
        "{internal}"
    );
    let external = kind.kubeconfig(&cluster.name, false).await.unwrap();
    assert!(
        external.contains("server: https://127.0.0.1:"),
        "{external}"
    );

    // Loading an image reaches every node.
    kind.load_image(&cluster.name, NODE_IMAGE, &[])
        .await
        .unwrap();
    for node in [&cp, &worker] {
        let loaded = cat(node, "/fake-kind/images").unwrap_or_default();
        assert!(loaded.starts_with(NODE_IMAGE), "{node}: {loaded:?}");
    }

    // A second create of the same name fails with kind's message, as exit 3.
    let err = kind
        .create(&cluster.name, &yaml, Some(&kubeconfig), None)
        .await
        .unwrap_err();
    assert_eq!(exit_code(&err), exit::ENVIRONMENT);
    let message = format!("{err:#}");
    assert!(
        message.contains(&format!(
            "node(s) already exist for a cluster with the name \"{}\"",
            cluster.name
        )),
        "{message}"
    );
    let failure = devenv::error::failure(&err).unwrap();
    assert!(
        failure
            .hint
            .as_deref()
            .unwrap()
            .contains(&format!("delete cluster --name {}", cluster.name)),
        "{failure:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_wiring_reaches_every_node_but_the_load_balancer() {
    let Some(path) = fake_kind() else { return };
    let cluster = Cluster::named("dks-wire", &path);
    let config = config(&cluster.name, 1);
    let dir = tempfile::tempdir().unwrap();
    // Two control planes, so kind adds its external load balancer.
    let yaml = dir.path().join("ha.yaml");
    std::fs::write(
        &yaml,
        "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n\
         - role: control-plane\n- role: control-plane\n- role: worker\n",
    )
    .unwrap();
    let kind = fake(&path).await;
    kind.create(
        &cluster.name,
        &yaml,
        Some(&dir.path().join("kubeconfig")),
        None,
    )
    .await
    .unwrap();
    let engine = Engine::connect().await.unwrap();
    // No registry container yet: nothing to wire, and it says so.
    let err = registry::wire(&engine, &config, &cluster.name)
        .await
        .unwrap_err();
    assert_eq!(exit_code(&err), exit::ENVIRONMENT);
    assert!(
        format!("{err:#}").contains(&format!(
            "the registry container {}-registry does not exist",
            cluster.name
        )),
        "{err:#}"
    );
    // The registry, not yet on the kind network; the mirror not there at all.
    let registry = Container::run(&format!("{}-registry", cluster.name), &[]);
    assert!(!registry.networks().contains(&"kind".to_string()));
    let err = registry::wire(&engine, &config, &cluster.name)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains(&format!(
            "the mirror container {}-mirror does not exist",
            cluster.name
        )),
        "{err:#}"
    );
    let mirror = Container::run(&format!("{}-mirror", cluster.name), &[]);

    let wiring = registry::wire(&engine, &config, &cluster.name)
        .await
        .unwrap();

    let lb = format!("{}-external-load-balancer", cluster.name);
    let nodes = [
        format!("{}-control-plane", cluster.name),
        format!("{}-control-plane2", cluster.name),
        format!("{}-worker", cluster.name),
    ];
    assert_eq!(wiring.skipped, std::slice::from_ref(&lb));
    assert!(wiring.attached);
    assert!(registry.networks().contains(&"kind".to_string()));
    assert!(mirror.networks().contains(&"kind".to_string()));
    let files = registry::host_files(&config);
    let registries: Vec<String> = files.iter().map(|f| f.registry.clone()).collect();
    assert_eq!(
        registries,
        [
            "localhost:5001".to_string(),
            format!("registry.{}", config.domain),
            format!("{}-registry:5000", cluster.name),
            "docker.io".to_string(),
        ]
    );
    // Docker Hub's images: the mirror first, Docker Hub itself when it does not answer.
    let hub = &files[3];
    assert_eq!(hub.path, "/etc/containerd/certs.d/docker.io/hosts.toml");
    assert!(
        hub.contents.contains(&format!(
            "server = \"https://registry-1.docker.io\"\n\n[host.\"http://{}-mirror:5000\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
            cluster.name
        )),
        "{}",
        hub.contents
    );
    assert_eq!(
        wiring
            .nodes
            .iter()
            .map(|n| n.node.clone())
            .collect::<Vec<_>>(),
        nodes
    );
    for node in &nodes {
        for file in &files {
            let path = format!("/etc/containerd/certs.d/{}/hosts.toml", file.registry);
            assert_eq!(
                cat(node, &path).as_deref(),
                Some(file.contents.as_str()),
                "{node}:{path}"
            );
            if file.registry == "docker.io" {
                continue;
            }
            assert!(
                file.contents.contains(&format!(
                    "server = \"http://{}-registry:5000\"",
                    cluster.name
                )),
                "{}",
                file.contents
            );
        }
    }
    assert_eq!(
        cat(&lb, "/etc/containerd/certs.d/localhost:5001/hosts.toml"),
        None
    );
    assert!(
        registry::missing(&engine, &config, &cluster.name)
            .await
            .unwrap()
            .is_empty()
    );

    // Again: nothing to write, nothing to attach.
    let again = registry::wire(&engine, &config, &cluster.name)
        .await
        .unwrap();
    assert!(!again.attached);
    assert!(
        again.nodes.iter().all(|n| n.written.is_empty()),
        "{again:?}"
    );
    assert!(
        again.nodes.iter().all(|n| n.unchanged.len() == 4),
        "{again:?}"
    );

    // A file changed on one node is noticed and put right, and only that one.
    let worker = &nodes[2];
    let r = docker(&[
        "exec",
        worker,
        "sh",
        "-c",
        "echo stale > /etc/containerd/certs.d/localhost:5001/hosts.toml",
    ]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        registry::missing(&engine, &config, &cluster.name)
            .await
            .unwrap(),
        [(worker.clone(), vec!["localhost:5001".to_string()])]
    );
    let repaired = registry::wire(&engine, &config, &cluster.name)
        .await
        .unwrap();
    let written: Vec<(String, Vec<String>)> = repaired
        .nodes
        .iter()
        .filter(|n| !n.written.is_empty())
        .map(|n| (n.node.clone(), n.written.clone()))
        .collect();
    assert_eq!(
        written,
        [(worker.clone(), vec!["localhost:5001".to_string()])]
    );
    assert_eq!(
        cat(worker, "/etc/containerd/certs.d/localhost:5001/hosts.toml").as_deref(),
        Some(files[0].contents.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_nodes_start_again_and_are_wired_after() {
    let Some(path) = fake_kind() else { return };
    let cluster = Cluster::named("dks-stop", &path);
    let config = config(&cluster.name, 1);
    let dir = tempfile::tempdir().unwrap();
    let yaml = write_cluster_yaml(&config, dir.path());
    let kind = fake(&path).await;
    kind.create(
        &cluster.name,
        &yaml,
        Some(&dir.path().join("kubeconfig")),
        None,
    )
    .await
    .unwrap();
    let _registry = Container::run(
        &format!("{}-registry", cluster.name),
        &["--network", "kind"],
    );
    let _mirror = Container::run(&format!("{}-mirror", cluster.name), &["--network", "kind"]);
    let engine = Engine::connect().await.unwrap();

    let nodes = engine.kind_nodes(&cluster.name).await.unwrap();
    assert_eq!(engine.stop_nodes(&nodes).await.unwrap(), 2);
    assert!(
        states(&cluster).values().all(|s| s == "exited"),
        "{:?}",
        states(&cluster)
    );
    let stopped = engine.kind_nodes(&cluster.name).await.unwrap();
    assert!(stopped.iter().all(|n| n.state == RunState::Exited));
    // Stopped nodes cannot be wired, and say so.
    let err = registry::wire(&engine, &config, &cluster.name)
        .await
        .unwrap_err();
    assert_eq!(exit_code(&err), exit::ENVIRONMENT);
    assert!(format!("{err:#}").contains("is not running"), "{err:#}");
    // Stopping what is stopped does nothing.
    assert_eq!(engine.stop_nodes(&stopped).await.unwrap(), 0);

    assert_eq!(engine.start_nodes(&stopped).await.unwrap(), 2);
    assert!(
        states(&cluster).values().all(|s| s == "running"),
        "{:?}",
        states(&cluster)
    );
    let wiring = registry::wire(&engine, &config, &cluster.name)
        .await
        .unwrap();
    assert!(
        !wiring.attached,
        "the registry and the mirror were on kind already"
    );
    assert!(wiring.nodes.iter().all(|n| n.written.len() == 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_that_cluster_only() {
    let Some(path) = fake_kind() else { return };
    let doomed = Cluster::named("dks-del", &path);
    let kept = Cluster::named("dks-keep", &path);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let kind = fake(&path).await;
    for cluster in [&doomed, &kept] {
        let yaml = write_cluster_yaml(&config(&cluster.name, 1), &dir.path().join(&cluster.name));
        kind.create(&cluster.name, &yaml, Some(&kubeconfig), None)
            .await
            .unwrap();
    }
    let bystander = Container::run(
        &format!("{}-bystander", doomed.name),
        &["--network", "kind"],
    );

    kind.delete(&doomed.name, Some(&kubeconfig)).await.unwrap();

    assert!(doomed.containers().is_empty(), "{:?}", doomed.containers());
    assert_eq!(kept.containers().len(), 2, "{:?}", kept.containers());
    let r = docker(&["inspect", "-f", "{{.State.Status}}", &bystander.0]);
    assert_eq!(r.stdout.trim(), "running", "{r}");
    let clusters = kind.clusters().await.unwrap();
    assert!(!clusters.contains(&doomed.name) && clusters.contains(&kept.name));
    let merged = std::fs::read_to_string(&kubeconfig).unwrap();
    assert!(
        !merged.contains(&format!("kind-{}", doomed.name)),
        "{merged}"
    );
    assert!(merged.contains(&format!("kind-{}", kept.name)), "{merged}");
    // Deleting what is gone succeeds, as kind's does.
    kind.delete(&doomed.name, Some(&kubeconfig)).await.unwrap();
    assert!(kind.nodes(&doomed.name).await.unwrap().is_empty());
}

/// A script that answers `kind version` like kind `version` does.
fn versioned_kind(dir: &Path, version: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("kind");
    std::fs::write(
        &path,
        format!("#!/bin/sh\necho 'kind v{version} go1.24.2 linux/amd64'\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[tokio::test]
async fn a_missing_kind_fails_with_exit_3_and_an_install_hint() {
    let dir = tempfile::tempdir().unwrap();
    let search = Search {
        explicit: None,
        path: Some(dir.path().join("empty-path").into()),
        provisioned: Some(dir.path().join("data/devenv/bin")),
    };
    let missing = Kind::find(&search).await.unwrap_err();
    assert!(matches!(missing, Unusable::Missing { .. }), "{missing:?}");
    assert!(missing.provisioning_helps());
    let failure = missing.into_failure();
    assert_eq!(failure.exit_code(), exit::ENVIRONMENT);
    assert!(
        failure.message.contains("kind is not installed"),
        "{}",
        failure.message
    );
    assert!(
        failure
            .message
            .contains(&format!("{}", dir.path().join("data/devenv/bin").display())),
        "{}",
        failure.message
    );
    let hint = failure.hint.unwrap();
    assert!(hint.contains("https://kind.sigs.k8s.io"), "{hint}");
    assert!(hint.contains("v0.33.0"), "{hint}");

    // DEVENV_KIND naming nothing is its own failure, which provisioning does not overrule.
    let named = Search {
        explicit: Some(dir.path().join("no-such-kind").into()),
        ..search
    };
    let err = Kind::find(&named).await.unwrap_err();
    assert!(matches!(err, Unusable::NotFound { .. }), "{err:?}");
    assert!(!err.provisioning_helps());
    assert!(err.to_string().contains("DEVENV_KIND names"), "{err}");
}

#[tokio::test]
async fn a_kind_too_old_fails_with_exit_3_unless_devenvs_own_copy_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let old = versioned_kind(&dir.path().join("path"), "0.29.0");
    let err = Kind::at(&old).await.unwrap_err();
    assert_eq!(exit_code(&err), exit::ENVIRONMENT);
    assert!(
        format!("{err:#}").contains("kind 0.29.0") && format!("{err:#}").contains("not supported"),
        "{err:#}"
    );

    let provisioned = dir.path().join("data/devenv/bin");
    let search = Search {
        explicit: None,
        path: Some(dir.path().join("path").into()),
        provisioned: Some(provisioned.clone()),
    };
    let unsupported = Kind::find(&search).await.unwrap_err();
    assert!(
        matches!(&unsupported, Unusable::Unsupported { version, origin: Origin::Path, .. } if version.to_string() == "0.29.0"),
        "{unsupported:?}"
    );
    assert!(unsupported.provisioning_helps());

    // With devenv's provisioned v0.33.0 present, that one is used.
    let own = versioned_kind(&provisioned, "0.33.0");
    let found = Kind::find(&search).await.unwrap();
    assert_eq!((found.path, found.origin), (own, Origin::Provisioned));

    // Too new is refused too.
    let new = versioned_kind(&dir.path().join("new"), "0.34.0");
    let err = Kind::at(&new).await.unwrap_err();
    assert_eq!(exit_code(&err), exit::ENVIRONMENT);
}

#[test]
fn the_fake_refuses_what_kind_refuses() {
    let Some(path) = fake_kind() else { return };
    let none = support::kind::unique_name("dks-none");
    let cases: [(&[&str], String); 5] = [
        (
            &["create", "cluster", "--nme", "x"],
            "ERROR: unknown flag: --nme".into(),
        ),
        (
            &["get", "pods"],
            "ERROR: unknown command \"pods\" for \"kind get\"".into(),
        ),
        (
            &["frobnicate"],
            "ERROR: unknown command \"frobnicate\" for \"kind\"".into(),
        ),
        (
            &["get", "kubeconfig", "--name", &none],
            format!("ERROR: could not locate any control plane nodes for cluster named '{none}'"),
        ),
        (
            &[
                "load",
                "docker-image",
                "devenv-test/no-such-image:v0",
                "--name",
                &none,
            ],
            "ERROR: image: \"devenv-test/no-such-image:v0\" not present locally".into(),
        ),
    ];
    for (args, expected) in cases {
        let r = support::run(std::process::Command::new(&path).args(args));
        assert_eq!(r.code, 1, "{args:?}: {r}");
        assert!(r.stderr.starts_with(&expected), "{args:?}: {r}");
        assert!(r.stdout.is_empty(), "{args:?}: {r}");
    }
    // Listing what does not exist is not an error: a note on stderr, nothing on stdout.
    let r = support::run(std::process::Command::new(&path).args(["get", "nodes", "-n", &none]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(r.stdout, "");
    assert_eq!(
        r.stderr,
        format!("No kind nodes found for cluster \"{none}\".\n")
    );
}

/// In split-ip mode the node publishes the clean URL's ports on the applications' address,
/// HTTP/3 included: 443/udp and the advertised QUIC port, both to the node's QUIC port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_ip_publishes_http3_on_the_applications_address() {
    let Some(path) = fake_kind() else { return };
    let cluster = Cluster::named("dks-h3", &path);
    let mut config = config(&cluster.name, 0);
    config.routing.mode = RoutingMode::SplitIp;
    // An address of its own on the loopback network, so that no other test's :80/:443 is in
    // the way.
    let last = 100 + (std::process::id() % 100) as u8;
    config.dns.applications = std::net::Ipv4Addr::new(127, 0, 0, last);
    let dir = tempfile::tempdir().unwrap();
    let yaml = write_cluster_yaml(&config, dir.path());
    let kind = fake(&path).await;
    kind.create(
        &cluster.name,
        &yaml,
        Some(&dir.path().join("kubeconfig")),
        None,
    )
    .await
    .unwrap();
    let cp = format!("{}-control-plane", cluster.name);
    let ports = docker(&["port", &cp]).stdout;
    let apps = config.dns.applications;
    for line in [
        format!("80/tcp -> {apps}:80"),
        format!("443/tcp -> {apps}:443"),
        format!("4433/udp -> {apps}:443"),
        format!("4433/udp -> {apps}:{}", config.cluster.quic_port),
        format!("4433/udp -> 127.0.0.1:{}", config.cluster.quic_port),
    ] {
        assert!(ports.contains(&line), "{line} not in\n{ports}");
    }
}

/// A docker CLI configuration whose current context is another engine, one that is not running
/// (as Docker Desktop's `desktop-linux` is beside Docker Engine on one laptop): kind, which
/// calls the `docker` CLI, would make the nodes there while devenv looks on its own engine.
fn config_elsewhere(dir: &Path) -> PathBuf {
    use sha2::Digest as _;
    let config = dir.join("docker-config");
    let name = "desktop-elsewhere";
    let digest: String = sha2::Sha256::digest(name.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let meta = config.join("contexts/meta").join(digest);
    std::fs::create_dir_all(&meta).unwrap();
    let socket = dir.join("no-engine-here.sock");
    std::fs::write(
        meta.join("meta.json"),
        format!(
            "{{\"Name\":\"{name}\",\"Metadata\":{{}},\"Endpoints\":{{\"docker\":{{\"Host\":\"unix://{}\",\"SkipTLSVerify\":false}}}}}}",
            socket.display()
        ),
    )
    .unwrap();
    std::fs::write(
        config.join("config.json"),
        format!("{{\"currentContext\":\"{name}\"}}"),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kind_runs_on_the_engine_devenv_connected_to_whatever_the_clis_context() {
    let Some(path) = fake_kind() else { return };
    let cluster = Cluster::named("dks-engine", &path);
    let config = config(&cluster.name, 0);
    let dir = tempfile::tempdir().unwrap();
    let yaml = write_cluster_yaml(&config, dir.path());
    let kubeconfig = dir.path().join("kubeconfig");
    let docker_config = config_elsewhere(dir.path());
    // kind as the user's shell starts it: with that CLI configuration.
    let wrapper = dir.path().join("kind");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\nDOCKER_CONFIG='{}' exec python3 '{}' \"$@\"\n",
            docker_config.display(),
            path.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let kind = Kind::at(&wrapper).await.unwrap();
    let engine = Engine::connect().await.unwrap();

    if std::env::var_os("DOCKER_HOST").is_none() {
        // The setup holds: that CLI configuration leads the docker CLI elsewhere...
        let r = support::run(
            std::process::Command::new("docker")
                .env("DOCKER_CONFIG", &docker_config)
                .arg("ps"),
        );
        assert_ne!(r.code, 0, "the CLI's context does not lead elsewhere:\n{r}");
        // ...and so does kind, left to it.
        let err = kind
            .create(&cluster.name, &yaml, Some(&kubeconfig), None)
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("no-engine-here.sock"),
            "{err:#}"
        );
        assert!(cluster.containers().is_empty());
    }

    // Told devenv's engine, kind makes the nodes where devenv looks for them.
    let kind = kind.on_engine(&engine.endpoint);
    kind.create(&cluster.name, &yaml, Some(&kubeconfig), None)
        .await
        .unwrap();
    let nodes = engine.kind_nodes(&cluster.name).await.unwrap();
    assert_eq!(nodes.len(), 1, "{nodes:?}");
    assert_eq!(kind.nodes(&cluster.name).await.unwrap().len(), 1);
    kind.delete(&cluster.name, Some(&kubeconfig)).await.unwrap();
    assert!(engine.kind_nodes(&cluster.name).await.unwrap().is_empty());
}

/// The shared `kind` network when devenv makes it first: what `kind create cluster` would have
/// made (kind uses a network of that name as it finds it). A network of another name stands in,
/// so that the tests' own `kind` network is left alone; its IPv6 subnet is derived from that
/// name as kind derives `kind`'s.
#[tokio::test]
async fn the_kind_network_devenv_creates_is_the_one_kind_would_create() {
    if !support::docker::engine() {
        return;
    }
    let name = format!("devenv-kindlike-{}", std::process::id());
    let engine = Engine::connect().await.unwrap();
    engine
        .create_network("kindlike", &name, devenv::docker::NetworkKind::Shared, &[])
        .await
        .unwrap();
    let inspect = docker(&[
        "network",
        "inspect",
        &name,
        "-f",
        "{{.Driver}} {{.EnableIPv6}} {{json .IPAM.Config}} {{json .Options}} {{json .Labels}}",
    ]);
    // A second creation (another devenv at the same time) uses the network there.
    engine
        .create_network("kindlike", &name, devenv::docker::NetworkKind::Shared, &[])
        .await
        .unwrap();
    let count = docker(&["network", "ls", "-q", "--filter", &format!("name=^{name}$")]);
    docker(&["network", "rm", &name]);
    assert_eq!(inspect.code, 0, "{inspect}");
    let bridge_mtu = docker(&[
        "network",
        "inspect",
        "bridge",
        "-f",
        "{{index .Options \"com.docker.network.driver.mtu\"}}",
    ])
    .stdout
    .trim()
    .to_string();
    let out = inspect.stdout.trim();
    assert!(out.starts_with("bridge true "), "{out}");
    let subnet = devenv::docker::kind_network::ula_subnet(&name, 0);
    assert!(out.contains(&format!("\"Subnet\":\"{subnet}\"")), "{out}");
    assert!(
        out.contains("\"com.docker.network.bridge.enable_ip_masquerade\":\"true\""),
        "{out}"
    );
    match devenv::docker::kind_network::bridge_mtu(Some(&bridge_mtu)) {
        Some(mtu) => assert!(
            out.contains(&format!("\"com.docker.network.driver.mtu\":\"{mtu}\"")),
            "the bridge's MTU is {mtu}: {out}"
        ),
        None => assert!(!out.contains("com.docker.network.driver.mtu"), "{out}"),
    }
    assert!(out.contains("\"dev.devenv.shared\":\"true\""), "{out}");
    assert_eq!(count.stdout.lines().count(), 1, "{count}");
}
