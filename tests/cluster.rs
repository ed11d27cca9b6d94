//! `devenv up`/`down`/`status` with the cluster, through the real binary, the real Docker engine
//! and the fake kind (tests/support/fake-kind, a test double that makes real node containers on
//! the real `kind` network). Here the fake's API address answers nothing (tests/real_cluster.rs
//! points it at the real control plane): these tests follow `up` as far as the node containers go — creation, the
//! registry's host files, the record, the certificate, stop and start, purge — and check that the
//! API step then fails the way a user must see it (exit 3, what exists, how to remove it). The
//! in-cluster steps are tested against a mock API server (src/cluster/kube), and end to end by
//! the real-kind suite (tests/real_kind.rs). `cluster.provider: existing` runs end to end here,
//! against the fake API server (tests/support/fake-apiserver), with a kind that records calls.

mod support;

use std::net::TcpListener;
use std::path::PathBuf;

use support::docker::{Env, docker, standin_image};
use support::kind::{Cluster, FakeApiServer, fake_kind};
use support::{free_port, tool};

/// An environment with the cluster on, the fake kind, its own kubeconfig and free ports for the
/// design card's layout (`routing: ports`, so nothing needs 127.0.0.2:80).
fn cluster_env(test: &str) -> Option<(Env, Cluster, PathBuf)> {
    let fake = fake_kind()?;
    let image = standin_image()?;
    let mut env = Env::new(test, &image);
    env.top = "routing:\n  mode: ports\n".into();
    env.cluster = format!(
        "  provider: kind\n  http_port: {}\n  https_port: {}\n  quic_port: {}\n",
        free_port(),
        free_port(),
        free_port()
    );
    let kubeconfig = env.dir.path().join("kubeconfig");
    env.vars.push(("DEVENV_KIND".into(), fake.clone().into()));
    env.vars
        .push(("DEVENV_KUBECONFIG".into(), kubeconfig.clone().into()));
    env.write();
    let guard = Cluster {
        name: env.name.clone(),
        fake,
    };
    Some((env, guard, kubeconfig))
}

fn node(env: &Env) -> String {
    format!("{}-control-plane", env.name)
}

fn state_of(container: &str) -> String {
    docker(&["inspect", "-f", "{{.State.Status}}", container])
        .stdout
        .trim()
        .to_string()
}

fn cat(container: &str, path: &str) -> String {
    let r = docker(&["exec", container, "cat", path]);
    assert_eq!(r.code, 0, "cat {path} in {container}: {r}");
    r.stdout
}

#[test]
fn up_makes_the_cluster_and_wires_the_registry_then_names_an_api_server_that_does_not_answer() {
    let Some((env, cluster, kubeconfig)) = cluster_env("clup") else {
        return;
    };
    // Waited for until --timeout (a real API server needs 10-40 s after its node starts).
    let up = env.devenv(&["up", "--timeout", "30"]);
    assert_eq!(up.code, 3, "{up}");
    assert!(up.stderr.contains("does not answer"), "{up}");
    assert!(
        up.stderr
            .contains(&format!("docker logs {}-control-plane", env.name)),
        "{up}"
    );
    // Never `--purge` for a cluster that may only be starting: it deletes the workloads.
    assert!(!up.stderr.contains("--purge"), "{up}");

    // The nodes are real containers, running, and the registry's host files are in them.
    let node = node(&env);
    assert_eq!(state_of(&node), "running");
    let hosts = cat(
        &node,
        "/etc/containerd/certs.d/registry.macula.local/hosts.toml",
    );
    assert!(
        hosts.contains(&format!("http://{}-registry:5000", env.name)),
        "{hosts}"
    );
    let own = cat(
        &node,
        &format!(
            "/etc/containerd/certs.d/{}-registry:5000/hosts.toml",
            env.name
        ),
    );
    assert!(own.contains("server ="), "{own}");
    let registry = env.container("registry");
    let networks = docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        &registry,
    ]);
    assert!(networks.stdout.contains("kind"), "{networks}");
    let gateway = env.container("gateway");
    let networks = docker(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        &gateway,
    ]);
    assert!(
        networks.stdout.contains("kind"),
        "the gateway joins kind: {networks}"
    );

    // What devenv made is recorded: the cluster, the context, the CA (keys 0600).
    let state = env.state();
    let record = std::fs::read_to_string(state.join("cluster.json")).expect("the record");
    assert!(record.contains(&env.name), "{record}");
    let kubeconfig_text = std::fs::read_to_string(&kubeconfig).expect("kind wrote a kubeconfig");
    assert!(
        kubeconfig_text.contains(&format!("kind-{}", env.name)),
        "{kubeconfig_text}"
    );
    use std::os::unix::fs::PermissionsExt;
    for key in ["ca.key", "tls.key"] {
        let mode = std::fs::metadata(state.join("tls").join(key))
            .expect("the key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{key}");
    }

    // A rerun keeps the cluster (same container), and fails at the API the same way.
    let id = docker(&["inspect", "-f", "{{.Id}}", &node]).stdout;
    let again = env.devenv(&["up", "--timeout", "60"]);
    assert_eq!(again.code, 3, "{again}");
    assert_eq!(docker(&["inspect", "-f", "{{.Id}}", &node]).stdout, id);

    // down stops the nodes (the cluster stays); up starts them again.
    let down = env.devenv(&["down"]);
    assert_eq!(down.code, 0, "{down}");
    assert!(down.stderr.contains("stopped"), "{down}");
    assert_eq!(state_of(&node), "exited");
    let status = env.devenv(&["status", "-o", "json"]);
    assert_eq!(status.code, 4, "{status}");
    assert!(status.stdout.contains("\"stopped\""), "{status}");
    let up = env.devenv(&["up", "--timeout", "60"]);
    assert_eq!(up.code, 3, "{up}");
    assert_eq!(state_of(&node), "running");
    assert_eq!(docker(&["inspect", "-f", "{{.Id}}", &node]).stdout, id);

    // --purge deletes the cluster, its record, its context and the CA.
    let purge = env.devenv(&["down", "--purge", "--yes"]);
    assert_eq!(purge.code, 0, "{purge}");
    assert!(
        cluster.containers().is_empty(),
        "{:?}",
        cluster.containers()
    );
    assert!(!state.join("cluster.json").exists());
    assert!(!state.join("tls").exists());
    let kubeconfig_text = std::fs::read_to_string(&kubeconfig).unwrap_or_default();
    assert!(
        !kubeconfig_text.contains(&format!("kind-{}", env.name)),
        "{kubeconfig_text}"
    );
}

#[test]
fn a_kind_cluster_devenv_did_not_create_is_never_touched() {
    let Some((env, cluster, kubeconfig)) = cluster_env("clforeign") else {
        return;
    };
    // Someone else's cluster of the same name.
    let made = support::run(
        std::process::Command::new(&cluster.fake)
            .args(["create", "cluster", "--name", &env.name, "--kubeconfig"])
            .arg(&kubeconfig),
    );
    assert_eq!(made.code, 0, "{made}");
    let before = cluster.containers();
    assert!(!before.is_empty());

    let up = env.devenv(&["up", "--timeout", "60"]);
    assert_eq!(up.code, 3, "{up}");
    assert!(up.stderr.contains("devenv did not create"), "{up}");
    assert!(
        env.containers().is_empty(),
        "nothing was created: {:?}",
        env.containers()
    );

    for args in [&["down"][..], &["down", "--purge", "--yes"][..]] {
        let down = env.devenv(args);
        assert_eq!(down.code, 0, "{down}");
        assert!(down.stderr.contains("left alone"), "{down}");
        assert_eq!(cluster.containers(), before, "untouched by {args:?}");
    }
}

#[test]
fn without_a_usable_kind_up_fails_before_creating_anything() {
    let Some((mut env, _cluster, _)) = cluster_env("clnokind") else {
        return;
    };
    env.vars.retain(|(k, _)| k != "DEVENV_KIND");
    env.vars
        .push(("DEVENV_KIND".into(), "/nonexistent/kind".into()));
    let up = env.devenv(&["up", "--timeout", "60"]);
    assert_eq!(up.code, 3, "{up}");
    assert!(up.stderr.contains("DEVENV_KIND"), "{up}");
    assert!(env.containers().is_empty(), "{:?}", env.containers());
    assert!(!env.state().join("cluster.json").exists());
}

/// A `--gateway-crds` file that is not the release's stops `up` before anything is made: no
/// infrastructure container, no kind node, no record.
#[test]
fn a_wrong_gateway_api_bundle_stops_up_before_anything_is_made() {
    let Some((env, cluster, _)) = cluster_env("clgwbad") else {
        return;
    };
    let bundle = env.dir.path().join("standard-install.yaml");
    std::fs::write(&bundle, "# not the release's\n").unwrap();
    let up = env.devenv(&[
        "up",
        "--gateway-crds",
        bundle.to_str().unwrap(),
        "--timeout",
        "60",
    ]);
    assert_eq!(up.code, 3, "{up}");
    assert!(up.stderr.contains("nothing was applied"), "{up}");
    assert!(up.stderr.contains("standard-install.yaml"), "{up}");
    assert!(env.containers().is_empty(), "{:?}", env.containers());
    assert!(cluster.containers().is_empty());
    assert!(!env.state().join("cluster.json").exists());
    let missing = env.devenv(&["up", "--gateway-crds", "/nonexistent/bundle.yaml"]);
    assert_eq!(missing.code, 2, "{missing}");
    assert!(env.containers().is_empty(), "{:?}", env.containers());
}

#[test]
fn a_taken_ingress_port_fails_preflight_naming_its_key() {
    let Some((mut env, cluster, _)) = cluster_env("clport") else {
        return;
    };
    let taken = TcpListener::bind("127.0.0.1:0").expect("a port");
    let port = taken.local_addr().unwrap().port();
    env.cluster = format!(
        "  provider: kind\n  http_port: {port}\n  https_port: {}\n  quic_port: {}\n",
        free_port(),
        free_port()
    );
    env.write();
    let up = env.devenv(&["up", "--timeout", "60"]);
    assert_eq!(up.code, 3, "{up}");
    assert!(up.stderr.contains("cluster.http_port"), "{up}");
    assert!(env.containers().is_empty(), "{:?}", env.containers());
    assert!(cluster.containers().is_empty());
}

#[test]
fn only_cluster_without_a_cluster_is_bad_input() {
    if tool("docker").is_none() {
        return;
    }
    let Some(image) = standin_image() else {
        return;
    };
    let env = Env::new("clnone", &image);
    let up = env.devenv(&["up", "--only", "cluster"]);
    assert_eq!(up.code, 2, "{up}");
    assert!(up.stderr.contains("cluster.provider"), "{up}");
}

/// A kubeconfig whose current context (`elsewhere`) leads nowhere and whose `devenv-test`
/// context leads to `api` with its token: devenv must use the context devenv.yaml names.
fn existing_kubeconfig(path: &std::path::Path, api: &FakeApiServer) {
    let closed = free_port();
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: elsewhere\n\
             clusters:\n\
             - name: elsewhere\n  cluster:\n    server: http://127.0.0.1:{closed}\n\
             - name: shared\n  cluster:\n    server: http://127.0.0.1:{}\n\
             users:\n\
             - name: nobody\n  user:\n    token: wrong\n\
             - name: developer\n  user:\n    token: {}\n\
             contexts:\n\
             - name: elsewhere\n  context:\n    cluster: elsewhere\n    user: nobody\n\
             - name: devenv-test\n  context:\n    cluster: shared\n    user: developer\n",
            api.port, api.token
        ),
    )
    .unwrap();
}

/// An environment with `provider: existing` on the fake API server (started with `extra`
/// arguments), its kubeconfig, and a kind that only records its calls (in the returned log).
fn existing_env(test: &str, extra: &[&str]) -> Option<(Env, FakeApiServer, PathBuf, PathBuf)> {
    tool("docker")?;
    let image = standin_image()?;
    let mut env = Env::new(test, &image);
    let api = FakeApiServer::start_with(env.dir.path(), extra)?;
    env.top = "routing:\n  mode: ports\n".into();
    let kubeconfig = env.dir.path().join("kubeconfig");
    existing_kubeconfig(&kubeconfig, &api);
    // Every kind invocation would land in this log: there must be none.
    let kind_log = env.dir.path().join("kind-calls.log");
    let shim = env.dir.path().join("kind");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{}'\nexit 1\n",
            kind_log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
    env.vars.push(("DEVENV_KIND".into(), shim.into()));
    env.vars
        .push(("DEVENV_KUBECONFIG".into(), kubeconfig.clone().into()));
    env.vars.extend(support::gateway_api::vars(env.dir.path()));
    env.cluster = "  provider: existing\n  context: devenv-test\n".into();
    env.write();
    Some((env, api, kubeconfig, kind_log))
}

#[test]
fn an_existing_cluster_gets_devenvs_objects_through_its_context_and_is_never_created_or_deleted() {
    let Some((mut env, api, kubeconfig, kind_log)) = existing_env("clexist", &[]) else {
        return;
    };

    // No context in devenv.yaml: bad input, pointing at the file and the key.
    env.cluster = "  provider: existing\n".into();
    env.write();
    let up = env.devenv(&["up", "--timeout", "60"]);
    assert_eq!(up.code, 2, "{up}");
    assert!(up.stderr.contains("devenv.yaml:"), "{up}");
    assert!(up.stderr.contains("context"), "{up}");

    // A context the kubeconfig lacks: named with those it has, before anything changes.
    env.cluster = "  provider: existing\n  context: nope\n".into();
    env.write();
    let up = env.devenv(&["up", "--timeout", "60"]);
    assert_eq!(up.code, 3, "{up}");
    assert!(up.stderr.contains("nothing was changed"), "{up}");
    assert!(up.stderr.contains("no context `nope`"), "{up}");
    assert!(up.stderr.contains("elsewhere, devenv-test"), "{up}");
    assert!(
        up.stderr.contains(&kubeconfig.display().to_string()),
        "{up}"
    );
    assert!(env.containers().is_empty(), "{:?}", env.containers());
    assert!(api.requests().is_empty(), "{:?}", api.requests());

    // The right context: devenv's objects go into that cluster, server-side applied.
    env.cluster = "  provider: existing\n  context: devenv-test\n".into();
    env.write();
    let up = env.devenv(&["up", "--timeout", "60", "-o", "json"]);
    assert_eq!(up.code, 0, "{up}");
    let summary: serde_json::Value = serde_json::from_str(&up.stdout).expect("JSON summary");
    assert_eq!(summary["cluster"]["context"], "devenv-test", "{up}");
    assert_eq!(summary["cluster"]["provider"], "existing", "{up}");
    assert_eq!(summary["cluster"]["nodes"][0], "existing-node", "{up}");
    let requests = api.requests();
    let applied: Vec<&str> = requests
        .iter()
        .filter(|r| r.starts_with("PATCH "))
        .map(String::as_str)
        .collect();
    for path in [
        "/api/v1/namespaces/devenv",
        "/apis/networking.k8s.io/v1/ingressclasses/traefik",
        "/api/v1/namespaces/kube-public/configmaps/local-registry-hosting",
        "/apis/apps/v1/namespaces/devenv/deployments/traefik",
        "/api/v1/namespaces/kube-system/configmaps/coredns",
        "/apis/apps/v1/namespaces/kube-system/deployments/coredns",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/httproutes.gateway.networking.k8s.io",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/referencegrants.gateway.networking.k8s.io",
        "/apis/gateway.networking.k8s.io/v1/gatewayclasses/devenv",
        "/apis/gateway.networking.k8s.io/v1/namespaces/devenv/gateways/devenv",
    ] {
        assert!(
            applied
                .contains(&format!("PATCH {path}?fieldManager=devenv&force=true devenv").as_str()),
            "no server-side apply of {path}: {applied:#?}"
        );
    }
    assert!(
        applied.iter().all(|r| r.ends_with(" devenv")),
        "{applied:#?}"
    );
    // Someone else's cluster: the ingress is not pinned to a kind label and holds no host port.
    let traefik = api
        .applied("/apis/apps/v1/namespaces/devenv/deployments/traefik")
        .expect("the Deployment's apply body");
    let pod = &traefik["spec"]["template"]["spec"];
    assert!(pod.get("nodeSelector").is_none(), "{pod}");
    assert!(
        pod["containers"][0]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p.get("hostPort").is_none()),
        "{pod}"
    );
    let notes = summary["cluster"]["notes"].to_string();
    assert!(notes.contains("port-forward svc/traefik"), "{notes}");
    // The cluster's own IngressClass `nginx` (ingress-nginx's, installed by Helm) is read and
    // left alone, and the summary says so.
    assert!(
        !applied.iter().any(|r| r.contains("ingressclasses/nginx")),
        "{applied:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r == "GET /apis/networking.k8s.io/v1/ingressclasses/nginx -"),
        "{requests:#?}"
    );
    assert!(
        notes.contains("IngressClass nginx was not made by devenv (managed by Helm)"),
        "{notes}"
    );
    assert!(
        requests.iter().all(|r| !r.starts_with("DELETE")),
        "{requests:#?}"
    );

    // A rerun changes nothing in CoreDNS; status reads every link healthy.
    let before = requests.len();
    let again = env.devenv(&["up", "--timeout", "60"]);
    assert_eq!(again.code, 0, "{again}");
    let rerun: Vec<String> = api.requests().split_off(before);
    assert!(
        !rerun
            .iter()
            .any(|r| r.starts_with("PATCH") && r.contains("kube-system")),
        "{rerun:#?}"
    );
    // The CRDs, devenv's own now, are not applied again.
    assert!(
        !rerun
            .iter()
            .any(|r| r.contains("customresourcedefinitions") && r.starts_with("PATCH")),
        "{rerun:#?}"
    );
    let status = env.devenv(&["status", "-o", "json"]);
    assert_eq!(status.code, 0, "{status}");
    for row in ["\"ingress\"", "\"cluster-dns\"", "\"gateway-api\""] {
        assert!(status.stdout.contains(row), "{status}");
    }

    // down and down --purge leave the cluster and everything in it alone; --purge removes
    // devenv's own CA and says how to remove its objects from the cluster.
    assert!(env.state().join("tls").join("ca.key").exists());
    for args in [&["down"][..], &["down", "--purge", "--yes"][..]] {
        let down = env.devenv(args);
        assert_eq!(down.code, 0, "{down}");
        assert!(down.stderr.contains("left alone"), "{down}");
    }
    assert!(!env.state().join("tls").exists());
    let purge_again = env.devenv(&["down", "--purge", "--yes"]);
    assert!(
        purge_again
            .stderr
            .contains("kubectl --context devenv-test delete -f"),
        "{purge_again}"
    );
    let requests = api.requests();
    assert!(
        requests.iter().all(|r| !r.starts_with("DELETE")),
        "{requests:#?}"
    );
    assert!(
        !kind_log.exists(),
        "kind was called: {}",
        std::fs::read_to_string(&kind_log).unwrap_or_default()
    );
}

#[test]
fn without_a_kubeconfig_flag_the_context_goes_where_kind_merges_it() {
    let Some((mut env, cluster, _)) = cluster_env("clkcfg") else {
        return;
    };
    // No --kubeconfig nor DEVENV_KUBECONFIG; KUBECONFIG lists two files, with empty entries,
    // and neither exists: kind (and so devenv) merges into the last one, not the first.
    env.vars.retain(|(k, _)| k != "DEVENV_KUBECONFIG");
    let first = env.dir.path().join("first");
    let last = env.dir.path().join("last");
    env.vars.push((
        "KUBECONFIG".into(),
        format!("{}::{}:", first.display(), last.display()).into(),
    ));
    let up = env.devenv(&["up", "--timeout", "60"]);
    assert_eq!(up.code, 3, "{up}");
    assert!(!cluster.containers().is_empty(), "the nodes were made");
    assert!(!first.exists(), "nothing goes into the first entry");
    let text = std::fs::read_to_string(&last).expect("the context went into the last entry");
    assert!(text.contains(&format!("kind-{}", env.name)), "{text}");
    let record = std::fs::read_to_string(env.state().join("cluster.json")).unwrap();
    assert!(
        record.contains(&last.display().to_string()),
        "devenv recorded the same file: {record}"
    );

    // --purge takes the context out of that file again.
    let purge = env.devenv(&["down", "--purge", "--yes"]);
    assert_eq!(purge.code, 0, "{purge}");
    let text = std::fs::read_to_string(&last).unwrap_or_default();
    assert!(!text.contains(&format!("kind-{}", env.name)), "{text}");
    assert!(!first.exists());
}

#[test]
fn with_no_kubeconfig_entry_and_no_home_up_and_status_say_where_to_point_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("devenv.yaml"),
        "name: nohome\ncluster:\n  provider: kind\n",
    )
    .unwrap();
    // KUBECONFIG of separators only has no entry, as in kind; an empty HOME is no home. kind
    // would then write `.kube/config` under the working directory: devenv refuses instead.
    for args in [&["up"][..], &["status"][..]] {
        let r = support::run(
            support::devenv(dir.path())
                .env("HOME", "")
                .env("KUBECONFIG", "::")
                .args(args),
        );
        assert_eq!(r.code, 3, "{r}");
        assert!(
            r.stderr
                .contains("neither --kubeconfig, DEVENV_KUBECONFIG, KUBECONFIG nor HOME is set"),
            "{r}"
        );
        assert!(r.stderr.contains("--kubeconfig PATH"), "{r}");
        assert!(!dir.path().join(".kube").exists());
    }
}

#[test]
fn an_existing_clusters_devenv_namespace_that_devenv_did_not_make_stops_up_before_changes() {
    let Some((env, api, _, kind_log)) = existing_env("clforeignns", &["foreign-namespace"]) else {
        return;
    };
    let up = env.devenv(&["up", "--timeout", "60"]);
    assert_eq!(up.code, 3, "{up}");
    assert!(up.stderr.contains("nothing was changed"), "{up}");
    assert!(
        up.stderr.contains("namespace `devenv` of context `devenv-test` was not made by devenv (managed by team-tool)"),
        "{up}"
    );
    assert!(env.containers().is_empty(), "{:?}", env.containers());
    let requests = api.requests();
    assert!(
        requests.iter().all(|r| r.starts_with("GET ")),
        "only reads: {requests:#?}"
    );
    assert!(!kind_log.exists());
}

/// The published host ports of `container`, as `docker port` lists them (`80/tcp ->
/// 127.0.0.1:34567`): container port -> host address.
fn published(container: &str) -> Vec<(String, String)> {
    let r = docker(&["port", container]);
    assert_eq!(r.code, 0, "{r}");
    r.stdout
        .lines()
        .filter_map(|l| l.split_once(" -> "))
        .map(|(c, h)| (c.trim().to_string(), h.trim().to_string()))
        .collect()
}

/// `devenv ci` with the cluster on, in a CI-like setting (CI=true, no terminal): the job's
/// cluster is its own — named for the job, its context in the job's kubeconfig in the job's
/// state directory (no other kubeconfig is touched), its ingress on free ports CI mode chose,
/// never the design card's fixed 8080/8443/4433 nor 127.0.0.2 — and when a step fails (here the
/// API server, which the fake kind's address never answers), CMD never runs and the teardown
/// deletes the cluster with everything else the job made. With `--keep` it all stays, and the
/// printed command removes it.
#[test]
fn devenv_ci_makes_the_jobs_own_cluster_on_free_ports_and_always_deletes_it() {
    let Some(fake) = fake_kind() else {
        return;
    };
    let Some(image) = standin_image() else {
        return;
    };
    let mut env = Env::new("clci", &image);
    env.top = "tiers: {observability: false, data: false, tools: false}\n".into();
    env.cluster = "  provider: kind\n".into();
    env.vars.push(("DEVENV_KIND".into(), fake.clone().into()));
    env.vars.push(("CI".into(), "true".into()));
    // A kubeconfig the job must not touch: CI mode writes the job's own.
    let home = env.dir.path().join("home");
    std::fs::create_dir_all(home.join(".kube")).unwrap();
    let users = home.join(".kube").join("config");
    std::fs::write(&users, "apiVersion: v1\nkind: Config\nclusters: []\n").unwrap();
    env.vars.push(("HOME".into(), home.clone().into()));
    env.vars.push(("KUBECONFIG".into(), users.clone().into()));
    env.write();
    let cluster = Cluster {
        name: env.name.clone(),
        fake,
    };
    let out = tempfile::tempdir().unwrap();
    let ran = out.path().join("ran");
    let touch = format!("touch {}", ran.display());
    let ci = |extra: &[&str]| {
        // Short: the fake cluster's API server never answers, and is waited for until then.
        let mut args = vec!["-o", "jsonl", "ci", "--name", &env.name, "--timeout", "45"];
        args.extend_from_slice(extra);
        args.extend(["--", "sh", "-c", &touch]);
        env.devenv(&args)
    };

    // --keep: the failed job's cluster stays for a look.
    let kept = ci(&["--keep"]);
    assert_eq!(kept.code, 3, "{kept}");
    assert!(kept.stderr.contains("does not answer"), "{kept}");
    assert!(!ran.exists(), "CMD ran although the environment is not up");
    let events: Vec<serde_json::Value> = kept
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let finished = |name: &str| {
        events
            .iter()
            .find(|e| e["event"] == "finish" && e["kind"] == "cluster" && e["name"] == name)
            .and_then(|e| e["outcome"].as_str())
            .map(str::to_string)
    };
    assert_eq!(finished("nodes").as_deref(), Some("ok"), "{kept}");
    assert_eq!(finished("api").as_deref(), Some("failed"), "{kept}");
    let last = events.last().expect("events");
    assert_eq!(last["kind"], "result", "{last}");
    assert_eq!(last["exit_code"], 3, "{last}");

    let node = node(&env);
    assert_eq!(state_of(&node), "running");
    let ports = published(&node);
    assert!(!ports.is_empty(), "the ingress ports are published");
    for (container, host) in &ports {
        if container == "6443/tcp" {
            continue;
        }
        let (address, port) = host.rsplit_once(':').unwrap();
        assert_eq!(address, "127.0.0.1", "{container} -> {host}: {ports:?}");
        assert!(
            !["8080", "8443", "4433"].contains(&port),
            "a fixed port in CI mode: {container} -> {host}"
        );
    }
    // The job's own kubeconfig holds the job's context; the user's is as it was.
    let own = env.state().join("kubeconfig");
    let text = std::fs::read_to_string(&own).expect("the job's kubeconfig");
    assert!(text.contains(&format!("kind-{}", env.name)), "{text}");
    assert_eq!(
        std::fs::read_to_string(&users).unwrap(),
        "apiVersion: v1\nkind: Config\nclusters: []\n"
    );
    let kind: Vec<_> = env
        .vars
        .iter()
        .filter(|(k, _)| k == "DEVENV_KIND")
        .cloned()
        .collect();
    let (command, removed) = support::run_kept_removal(&kept, &home, &kind);
    assert_eq!(removed.code, 0, "{command}\n{removed}");
    assert!(cluster.containers().is_empty(), "{removed}");
    assert!(env.containers().is_empty(), "{removed}");
    assert!(
        !env.state().exists(),
        "the job's state directory goes too: {command}"
    );

    // Without --keep: the same failure, and everything the job made is gone after it.
    let run = ci(&[]);
    assert_eq!(run.code, 3, "{run}");
    assert!(run.stderr.contains("does not answer"), "{run}");
    assert!(!ran.exists(), "CMD ran although the environment is not up");
    assert!(
        cluster.containers().is_empty(),
        "the job's cluster is deleted: {:?}\n{run}",
        cluster.containers()
    );
    assert!(env.containers().is_empty(), "{run}");
    assert!(env.labelled("volume").is_empty(), "{run}");
    env.assert_networks_removed(&run);
    assert!(
        !env.state().exists(),
        "the job's state directory is removed: {run}"
    );
    assert_eq!(
        std::fs::read_to_string(&users).unwrap(),
        "apiVersion: v1\nkind: Config\nclusters: []\n"
    );
}
