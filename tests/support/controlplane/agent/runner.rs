//! Run-to-completion pods that the node agent runs FOR REAL: devenv's in-cluster lookup pod.
//!
//! The pod's own command and arguments run in a container of a local image that carries the
//! same tools as the pod's image (busybox: `sh`, `nslookup`, as the pinned Traefik image does),
//! on the `kind` network, with the `/etc/resolv.conf` a kubelet writes for `dnsPolicy:
//! ClusterFirst` (the cluster DNS as nameserver, the pod's search path, `ndots:5`). What it
//! prints becomes the container's log ([`super::kubelet`]) and its exit code the pod's phase.
//!
//! The cluster DNS is a real DNS server, BIND's `named` (Debian's bind9, the `named` image of
//! `tests/support/realimages`), in place of CoreDNS, which cannot run here. It serves what the
//! cluster's CoreDNS would serve, read from the real API server at the pod's start:
//! - each zone of a `file` plugin in a Corefile server block, from the ConfigMap key that
//!   CoreDNS's Deployment projects at that path (a key it does not project is not served, as
//!   CoreDNS could not read it);
//! - `cluster.local` (the `kubernetes` plugin): an A record per Service ClusterIP,
//!   `<service>.<namespace>.svc.cluster.local`, derived from the Services;
//! - everything else forwarded to the node's resolver (the `forward . /etc/resolv.conf` of
//!   kubeadm's Corefile): Docker's embedded DNS on the `kind` network, which answers container
//!   names such as the gateway's.
//!
//! Left unchecked: CoreDNS's own reading of the Corefile (its plugins other than `file`, the
//! `reload` of a changed zone) and its `kubernetes` plugin beyond Service ClusterIPs.

use std::fmt::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodSpec, Service};
use kube::Api;
use kube::api::{ListParams, Patch, PatchParams};
use serde_json::json;

/// What the agent runs for real.
pub struct Runner {
    /// The pod images whose pods run (devenv's lookup pod's image).
    pub pod_images: Vec<String>,
    /// The local image they run in (busybox, with its applets).
    pub busybox: String,
    /// The local image of BIND's `named`.
    pub named: String,
    /// The Docker network the pods' containers and the DNS server join.
    pub network: String,
}

static RUNNER: OnceLock<Runner> = OnceLock::new();

/// Run the pods of `runner.pod_images` for real from now on (once per process).
pub fn enable(runner: Runner) {
    let _ = RUNNER.set(runner);
}

/// Whether the pod of `spec` runs for real.
pub fn runs(spec: &PodSpec) -> bool {
    RUNNER.get().is_some_and(|r| {
        spec.containers.iter().all(|c| {
            c.image
                .as_deref()
                .is_some_and(|i| r.pod_images.iter().any(|p| p == i))
        })
    })
}

/// Run `pod`'s containers one after another, record their output, and post the outcome.
pub async fn run(client: &kube::Client, pod: &Pod, ip: &str) -> anyhow::Result<()> {
    let runner = RUNNER.get().expect("runs() said yes");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let spec = pod.spec.as_ref().expect("a pod has a spec");
    let dir = tempfile::tempdir()?;
    write_dns(client, dir.path()).await?;
    let dns_name = format!("devenv-agent-dns-{}", std::process::id());
    let _gone = Remove(dns_name.clone());
    let dns_ip = start_named(runner, &dns_name, dir.path()).await?;
    std::fs::write(
        dir.path().join("resolv.conf"),
        format!(
            "search {namespace}.svc.cluster.local svc.cluster.local cluster.local\n\
             nameserver {dns_ip}\noptions ndots:5\n"
        ),
    )?;
    let mut statuses = Vec::new();
    let mut failed = false;
    for c in &spec.containers {
        let started = super::now();
        let mut cmd = tokio::process::Command::new("docker");
        cmd.args(["run", "--rm", "--network", &runner.network])
            .arg("-v")
            .arg(format!(
                "{}:/etc/resolv.conf:ro",
                dir.path().join("resolv.conf").display()
            ));
        if let Some(entrypoint) = c.command.as_ref().and_then(|c| c.first()) {
            cmd.args(["--entrypoint", entrypoint]);
        }
        cmd.arg(&runner.busybox);
        cmd.args(c.command.iter().flatten().skip(1));
        cmd.args(c.args.iter().flatten());
        let out = tokio::time::timeout(Duration::from_secs(60), cmd.output()).await??;
        let id = super::container_id(name, &c.name, 0);
        super::kubelet::record(&id, &String::from_utf8_lossy(&out.stdout));
        super::kubelet::record(&id, &String::from_utf8_lossy(&out.stderr));
        let code = out.status.code().unwrap_or(128);
        failed |= code != 0;
        let t = super::now();
        statuses.push(json!({
            "name": c.name, "image": c.image, "ready": false, "started": false,
            "restartCount": 0, "containerID": id,
            "imageID": super::image_id(c.image.as_deref()),
            "state": {"terminated": {"exitCode": code,
                      "reason": if code == 0 { "Completed" } else { "Error" },
                      "startedAt": started, "finishedAt": t, "containerID": id}},
        }));
    }
    let t = super::now();
    let body = json!({"status": {
        "phase": if failed { "Failed" } else { "Succeeded" },
        "podIP": ip,
        "conditions": super::conditions(&t, Some("PodCompleted")),
        "containerStatuses": statuses,
    }});
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    Ok(())
}

/// Removes the DNS server's container when dropped.
struct Remove(String);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &self.0])
            .output();
    }
}

/// Start `named` on the network with the config in `dir`; its address once it serves.
async fn start_named(runner: &Runner, name: &str, dir: &std::path::Path) -> anyhow::Result<String> {
    let _ = tokio::process::Command::new("docker")
        .args(["rm", "-f", name])
        .output()
        .await;
    let out = tokio::process::Command::new("docker")
        .args(["run", "-d", "--name", name, "--network", &runner.network])
        .arg("-v")
        .arg(format!("{}:/zones:ro", dir.display()))
        .args([&runner.named, "-c", "/zones/named.conf"])
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "starting named: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for _ in 0..100 {
        let logs = tokio::process::Command::new("docker")
            .args(["logs", name])
            .output()
            .await?;
        let text = String::from_utf8_lossy(&logs.stderr).into_owned();
        if text.contains("running") {
            let ip = tokio::process::Command::new("docker")
                .args([
                    "inspect",
                    "-f",
                    &format!(
                        "{{{{(index .NetworkSettings.Networks \"{}\").IPAddress}}}}",
                        runner.network
                    ),
                    name,
                ])
                .output()
                .await?;
            return Ok(String::from_utf8_lossy(&ip.stdout).trim().to_string());
        }
        if text.contains("exiting (due to fatal error)") {
            anyhow::bail!("named did not start:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("named did not start within 10 s")
}

/// Write `named.conf` and the zones CoreDNS would serve (see the module's header) into `dir`.
async fn write_dns(client: &kube::Client, dir: &std::path::Path) -> anyhow::Result<()> {
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kube-system");
    let data = maps
        .get_opt("coredns")
        .await?
        .and_then(|m| m.data)
        .unwrap_or_default();
    let deployment = deployments.get_opt("coredns").await?;
    let mut conf = String::from(
        "options {\n  directory \"/var/cache/bind\";\n  listen-on { any; };\n  listen-on-v6 { none; };\n  \
         recursion yes;\n  allow-query { any; };\n  allow-recursion { any; };\n  dnssec-validation no;\n  \
         forwarders { 127.0.0.11; };\n  forward only;\n  pid-file none;\n};\n",
    );
    let corefile = data.get("Corefile").cloned().unwrap_or_default();
    for (zone, path) in file_zones(&corefile) {
        let Some(key) = projected_key(deployment.as_ref(), &path) else {
            continue;
        };
        let Some(text) = data.get(&key) else { continue };
        let file = format!("zone-{}.db", zone.trim_end_matches('.'));
        std::fs::write(dir.join(&file), text)?;
        writeln!(
            conf,
            "zone \"{zone}\" {{ type primary; file \"/zones/{file}\"; }};"
        )?;
    }
    let services: Api<Service> = Api::all(client.clone());
    let mut zone = String::from(
        "$TTL 5\n@ IN SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 3600 600 86400 5\n\
         @ IN NS ns.dns.cluster.local.\nns.dns IN A 10.96.0.10\n",
    );
    for s in services.list(&ListParams::default()).await? {
        let ip = s.spec.as_ref().and_then(|s| s.cluster_ip.clone());
        let (Some(ip), Some(name), Some(ns)) = (ip, s.metadata.name, s.metadata.namespace) else {
            continue;
        };
        if ip != "None" && !ip.is_empty() {
            writeln!(zone, "{name}.{ns}.svc IN A {ip}")?;
        }
    }
    std::fs::write(dir.join("zone-cluster.local.db"), zone)?;
    conf.push_str(
        "zone \"cluster.local\" { type primary; file \"/zones/zone-cluster.local.db\"; };\n",
    );
    std::fs::write(dir.join("named.conf"), conf)?;
    Ok(())
}

/// The zones of the Corefile's `file` plugins and their files' paths: a server block
/// `ZONE[:PORT] {` holding `file PATH [ZONES...]`.
fn file_zones(corefile: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut block: Option<String> = None;
    let mut depth = 0usize;
    for line in corefile.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if depth == 0 && line.ends_with('{') {
            let head = line.trim_end_matches('{').trim();
            let zone = head.split_whitespace().next().unwrap_or("");
            let zone = zone.rsplit_once(':').map_or(zone, |(z, _)| z);
            block = Some(zone.to_string());
        } else if depth == 1
            && let Some(rest) = line.strip_prefix("file ")
            && let Some(zone) = &block
        {
            let mut words = rest.trim_end_matches('{').split_whitespace();
            if let Some(path) = words.next() {
                let zones: Vec<&str> = words.collect();
                for z in if zones.is_empty() {
                    vec![zone.as_str()]
                } else {
                    zones
                } {
                    out.push((z.trim_end_matches('.').to_string() + ".", path.to_string()));
                }
            }
        }
        depth += line.matches('{').count();
        depth = depth.saturating_sub(line.matches('}').count());
    }
    out
}

/// The ConfigMap key CoreDNS's container reads at `path`: through the volume of ConfigMap
/// `coredns` mounted above it, one of the volume's items, or with no items every key under its
/// own name.
fn projected_key(deployment: Option<&Deployment>, path: &str) -> Option<String> {
    let spec = deployment?.spec.as_ref()?.template.spec.as_ref()?;
    for volume in spec.volumes.iter().flatten() {
        let Some(map) = volume.config_map.as_ref().filter(|m| m.name == "coredns") else {
            continue;
        };
        for mount in spec
            .containers
            .iter()
            .flat_map(|c| c.volume_mounts.iter().flatten())
            .filter(|m| m.name == volume.name)
        {
            let Some(rest) = path
                .strip_prefix(mount.mount_path.trim_end_matches('/'))
                .and_then(|r| r.strip_prefix('/'))
            else {
                continue;
            };
            return match &map.items {
                Some(items) => items.iter().find(|i| i.path == rest).map(|i| i.key.clone()),
                None => Some(rest.to_string()),
            };
        }
    }
    None
}
