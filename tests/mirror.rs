//! The pull-through cache on real programs, through the real binary: Debian's Distribution
//! registry (the real-program image standing in for `registry:3.1.2`) runs as devenv's
//! `mirror` in proxy mode, in front of a second one standing in for Docker Hub
//! (`mirror.remote`), and the fake kind's node containers are the nodes. An image pushed to
//! the stand-in upstream is pulled once through a node the way containerd pulls with the host
//! file devenv wrote there (the manifest by tag, then every blob by digest, from the file's
//! first host) and arrives in the mirror; after the cluster is re-created (`up --recreate`),
//! a new node gets it again from the mirror with the upstream stopped, and `status` shows the
//! mirror's hits and misses.
//!
//! The fake's API server answers nothing, so `up` ends with exit 3 after the nodes are wired
//! (tests/cluster.rs says why); everything here happens before that. Skips visibly without
//! Docker, the fake kind or the real-program images; fails instead under
//! DEVENV_REQUIRE_DOCKER=1.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::docker::{Env, SERVICES, docker, standin_image};
use support::kind::{Cluster, fake_kind};
use support::{free_port, realimages};

/// A container or image tag the test made, removed on drop.
struct Made(&'static str, String);

impl Drop for Made {
    fn drop(&mut self) {
        match self.0 {
            "container" => docker(&["rm", "-f", "-v", &self.1]),
            _ => docker(&["rmi", "-f", &self.1]),
        };
    }
}

/// `GET http://127.0.0.1:<port><path>`'s status line, or `None` while nothing answers.
fn status_line(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.lines().next().map(str::to_string)
}

/// The environment: the cluster on with the fake kind, only the mirror among the services
/// (the real registry image), mirroring docker.io from `upstream` on the `kind` network.
fn mirror_env(test: &str, registry: &str, upstream: &str, workers: u8) -> (Env, Cluster) {
    let fake = fake_kind().expect("checked by the caller");
    let standin = standin_image().expect("checked by the caller");
    let mut env = Env::new(test, &standin);
    env.top = format!(
        "routing:\n  mode: ports\nmirror:\n  registries: [docker.io]\n  remote:\n    docker.io: \"http://{upstream}:5000\"\n"
    );
    set_cluster(&mut env, workers);
    for (service, _) in SERVICES {
        env.extra
            .insert(service.to_string(), "    enabled: false\n".into());
    }
    env.image_overrides
        .insert("mirror".to_string(), registry.to_string());
    env.vars.push(("DEVENV_KIND".into(), fake.clone().into()));
    env.vars.push((
        "DEVENV_KUBECONFIG".into(),
        env.dir.path().join("kubeconfig").into(),
    ));
    env.write();
    let cluster = Cluster {
        name: env.name.clone(),
        fake,
    };
    (env, cluster)
}

fn set_cluster(env: &mut Env, workers: u8) {
    env.cluster = format!(
        "  provider: kind\n  workers: {workers}\n  http_port: {}\n  https_port: {}\n  quic_port: {}\n",
        free_port(),
        free_port(),
        free_port()
    );
    env.write();
}

/// The mirrors devenv's entry in the kubeconfig's `kind-<name>` context names.
fn context_mirrors(env: &Env) -> serde_json::Value {
    let text = std::fs::read_to_string(env.dir.path().join("kubeconfig")).expect("the kubeconfig");
    let doc: serde_json::Value = serde_saphyr::from_str(&text).expect("a kubeconfig");
    let context = format!("kind-{}", env.name);
    let entry = doc["contexts"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["name"] == context.as_str())
        .unwrap_or_else(|| panic!("no context {context}: {text}"));
    entry["context"]["extensions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["name"] == "devenv")
        .unwrap_or_else(|| panic!("no devenv entry: {text}"))["extension"]["mirrors"]
        .clone()
}

fn cat(container: &str, path: &str) -> String {
    let r = docker(&["exec", container, "cat", path]);
    assert_eq!(r.code, 0, "cat {path} in {container}: {r}");
    r.stdout
}

/// The first `[host."..."]` of a containerd host file: where containerd sends a pull first.
fn first_host(hosts_toml: &str) -> String {
    hosts_toml
        .lines()
        .find_map(|l| l.strip_prefix("[host.\"")?.strip_suffix("\"]"))
        .unwrap_or_else(|| panic!("no [host] in:\n{hosts_toml}"))
        .to_string()
}

/// Pull `repo:tag` from inside `node` as containerd would with its docker.io host file: the
/// manifest by tag, then the config and every layer by digest, all from the file's first host.
/// The digests pulled.
fn pull_through(node: &str, repo: &str, tag: &str) -> Result<Vec<String>, String> {
    let hosts = cat(node, "/etc/containerd/certs.d/docker.io/hosts.toml");
    let host = first_host(&hosts);
    let accept = "Accept: application/vnd.docker.distribution.manifest.v2+json, \
                  application/vnd.oci.image.manifest.v1+json";
    let url = format!("{host}/v2/{repo}/manifests/{tag}");
    let r = docker(&[
        "exec", node, "wget", "-q", "-O", "-", "--header", accept, &url,
    ]);
    if r.code != 0 {
        return Err(format!("manifest {url}: {r}"));
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&r.stdout).map_err(|e| format!("{e}: {}", r.stdout))?;
    let mut digests = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for layer in manifest["layers"].as_array().expect("layers") {
        digests.push(layer["digest"].as_str().unwrap().to_string());
    }
    for digest in &digests {
        let url = format!("{host}/v2/{repo}/blobs/{digest}");
        let r = docker(&["exec", node, "wget", "-q", "-O", "/dev/null", &url]);
        if r.code != 0 {
            return Err(format!("blob {url}: {r}"));
        }
    }
    Ok(digests)
}

/// Every one of `digests` has its blob in `listing`, a `find` of a registry's blob store.
fn assert_blobs(listing: &support::Run, digests: &[String]) {
    for digest in digests {
        let hex = digest.trim_start_matches("sha256:");
        assert!(
            listing.stdout.contains(hex),
            "{digest} not in the mirror's volume: {listing}"
        );
    }
}

/// The mirror's entry under `mirrors` in `devenv status -o json`.
fn mirror_cache(env: &Env) -> serde_json::Value {
    let status = env.devenv(&["status", "-o", "json"]);
    let doc: serde_json::Value =
        serde_json::from_str(&status.stdout).unwrap_or_else(|e| panic!("{e}: {status}"));
    let row = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "mirror")
        .unwrap_or_else(|| panic!("no mirror row: {status}"));
    assert_eq!(
        row["url"],
        serde_json::Value::Null,
        "a mirror has no URL: {status}"
    );
    doc["mirrors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "mirror")
        .cloned()
        .unwrap_or_else(|| panic!("no mirror cache: {status}"))
}

/// Its hits and misses.
fn counts(cache: &serde_json::Value) -> (u64, u64) {
    let n = |k: &str| {
        cache[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k} in {cache}"))
    };
    (n("hits"), n("misses"))
}

#[test]
fn an_image_pulled_once_through_a_node_comes_from_the_mirror_after_the_cluster_is_recreated() {
    if fake_kind().is_none() || standin_image().is_none() {
        return;
    }
    let Some(registry) = realimages::program("registry") else {
        return;
    };
    let standin = standin_image().unwrap();

    // The stand-in for Docker Hub, on the `kind` network, with one image pushed to it.
    let upstream_name = support::kind::unique_name("mirror-upstream");
    let port = free_port();
    let r = docker(&[
        "run",
        "-d",
        "--name",
        &upstream_name,
        "--network",
        "kind",
        "--label",
        "dev.devenv.test=mirror",
        "-p",
        &format!("127.0.0.1:{port}:5000"),
        &registry,
    ]);
    assert_eq!(r.code, 0, "{r}");
    let upstream = Made("container", upstream_name.clone());
    let start = Instant::now();
    while status_line(port, "/v2/").is_none_or(|l| !l.contains(" 200")) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "upstream never answered"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let tag = format!("127.0.0.1:{port}/library/devenv-probe:1");
    assert_eq!(docker(&["tag", &standin, &tag]).code, 0);
    let _tag = Made("image", tag.clone());
    let r = docker(&["push", &tag]);
    assert_eq!(r.code, 0, "{r}");

    let (mut env, _cluster) = mirror_env("mirror", &registry, &upstream_name, 0);
    let up = env.devenv(&["up", "--timeout", "10"]);
    assert_eq!(up.code, 3, "the fake's API server answers nothing: {up}");
    assert_eq!(
        context_mirrors(&env),
        serde_json::json!([{"registry": "docker.io", "mirror": format!("http://{}-mirror:5000", env.name), "remote": format!("http://{upstream_name}:5000")}]),
        "the kubeconfig's context names the mirror"
    );
    let node = format!("{}-control-plane", env.name);
    let hosts = cat(&node, "/etc/containerd/certs.d/docker.io/hosts.toml");
    assert!(
        hosts.contains(&format!("server = \"http://{upstream_name}:5000\"")),
        "{hosts}"
    );
    assert_eq!(
        first_host(&hosts),
        format!("http://{}-mirror:5000", env.name)
    );

    // Pulled once through the node: fetched from the upstream into the mirror's volume.
    let digests = pull_through(&node, "library/devenv-probe", "1").expect("pulled");
    let mirror = format!("{}-mirror", env.name);
    let cached = docker(&[
        "exec",
        &mirror,
        "find",
        "/var/lib/registry/docker/registry/v2/blobs",
        "-name",
        "data",
    ]);
    assert_blobs(&cached, &digests);
    let first = mirror_cache(&env);
    assert_eq!(first["registry"], "docker.io", "{first}");
    assert_eq!(
        first["remote"],
        format!("http://{upstream_name}:5000"),
        "{first}"
    );
    let (hits, misses) = counts(&first);
    let table = env.devenv(&["status"]);
    assert!(
        table.stdout.contains(&format!(
            "mirrors docker.io (http://{upstream_name}:5000): {hits} hits, {misses} misses"
        )),
        "{table}"
    );
    let mirror_id = docker(&["inspect", "-f", "{{.Id}}", &mirror]).stdout;

    // The upstream stops; the cluster is re-created from another config (a worker more).
    assert_eq!(docker(&["stop", "-t", "1", &upstream.1]).code, 0);
    set_cluster(&mut env, 1);
    let again = env.devenv(&["up", "--recreate", "--timeout", "10"]);
    assert_eq!(again.code, 3, "{again}");
    // kind wrote the context anew; up wrote devenv's entry into it again.
    assert_eq!(
        context_mirrors(&env)[0]["mirror"],
        format!("http://{}-mirror:5000", env.name)
    );
    let worker = format!("{}-worker", env.name);
    assert_eq!(
        docker(&["inspect", "-f", "{{.State.Status}}", &worker])
            .stdout
            .trim(),
        "running",
        "{again}"
    );
    // The mirror and its volume were never touched by the cluster's re-creation.
    assert_eq!(
        docker(&["inspect", "-f", "{{.Id}}", &mirror]).stdout,
        mirror_id
    );
    let again_digests = pull_through(&worker, "library/devenv-probe", "1")
        .expect("the new node gets the image from the mirror with the upstream stopped");
    assert_eq!(again_digests, digests);
    // Served from the cache: more hits, not one miss more.
    let later = mirror_cache(&env);
    let (hits_later, misses_later) = counts(&later);
    assert!(misses >= 1 && hits_later > hits, "{first} then {later}");
    assert_eq!(misses_later, misses, "{first} then {later}");

    // The cache is left out of snapshots unless named (here it is the only volume, so there
    // is nothing else to save); named, it survives a purge.
    let all = env.devenv(&["snapshot", "save", "all"]);
    assert_eq!(all.code, 2, "{all}");
    assert!(all.stderr.contains("nothing to save"), "{all}");
    let save = env.devenv(&["snapshot", "save", "cache", "--only", "mirror"]);
    assert_eq!(save.code, 0, "{save}");
    let purge = env.devenv(&["down", "--purge", "--yes"]);
    assert_eq!(purge.code, 0, "{purge}");
    let volume = format!("{}-mirror-data", env.name);
    assert_ne!(docker(&["volume", "inspect", &volume]).code, 0, "purged");
    let restore = env.devenv(&["snapshot", "restore", "cache", "--only", "mirror"]);
    assert_eq!(restore.code, 0, "{restore}");
    let mount = format!("{volume}:/var/lib/registry");
    let blobs = docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "find",
        "-v",
        &mount,
        &registry,
        "/var/lib/registry/docker/registry/v2/blobs",
        "-name",
        "data",
    ]);
    assert_blobs(&blobs, &digests);
    docker(&["volume", "rm", "-f", &volume]);
}

#[test]
fn a_mirror_whose_registry_cannot_be_reached_does_not_stop_up() {
    if standin_image().is_none() || !support::docker::engine() {
        return;
    }
    let Some(registry) = realimages::program("registry") else {
        return;
    };
    let standin = standin_image().unwrap();
    // Offline, as a laptop on a train: Distribution asks its registry for `/v2/` when it
    // starts and exits when nothing answers.
    let mut env = Env::new("mirroff", &standin);
    env.top = "mirror:\n  remote:\n    docker.io: \"http://devenv-nowhere.invalid:5000\"\n".into();
    for (service, _) in SERVICES {
        env.extra
            .insert(service.to_string(), "    enabled: false\n".into());
    }
    env.extra
        .insert("mirror".into(), "    enabled: true\n".into());
    env.image_overrides.insert("mirror".into(), registry);
    env.write();
    let up = env.devenv(&["up", "--timeout", "60"]);
    assert_eq!(up.code, 0, "{up}");
    assert!(
        up.stderr.contains("service mirror") && up.stderr.contains("pull from the registry itself"),
        "{up}"
    );
    // `status` tells the truth about it.
    let status = env.devenv(&["status"]);
    assert_eq!(status.code, 4, "{status}");
    assert!(status.stderr.contains("mirror"), "{status}");
}
