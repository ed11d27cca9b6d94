//! Checks of the cluster: its API answers, every node is Ready, the ingress answers on the
//! applications' address (127.0.0.2:80, split-ip) and on 127.0.0.1:<http_port>, and a pod
//! resolves the infrastructure names and an application name.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{Check, Facts, Finding, Group};
use crate::cluster::kube::Kube;
use crate::config::{ClusterProvider, Config, RoutingMode};
use crate::render::cluster::{self as objects, traefik};
use crate::routes::list;

/// The names other checks need.
pub const API: &str = "cluster-api";
pub const NODES: &str = "cluster-nodes";

/// The application name the ingress and pod checks use (no Ingress has it: the ingress
/// answers 404, which proves it answers).
const APPLICATION: &str = "devenv-doctor";
/// How long the lookup pod may take (an image pull on a cold node included).
const POD_TIMEOUT: Duration = Duration::from_secs(90);

pub fn checks(facts: &Facts) -> Vec<Check<'_>> {
    let config = &facts.config;
    let mut out = vec![
        Check::new(API, Group::Cluster, api(facts)),
        Check::new(NODES, Group::Cluster, nodes(facts)).needs(API),
    ];
    for addr in ingress_addrs(config) {
        out.push(
            Check::new(
                format!("ingress:{addr}"),
                Group::Cluster,
                ingress(addr, config.fqdn(APPLICATION)),
            )
            .needs(NODES),
        );
    }
    out.push(
        Check::new("pod-dns", Group::Cluster, pod_dns(facts))
            .needs(NODES)
            .timeout(POD_TIMEOUT + Duration::from_secs(10)),
    );
    out
}

/// Where the ingress is published on the host: the applications' address on :80 in split-ip
/// mode, and the cluster's HTTP port. Only for kind (devenv maps no host ports of an existing
/// cluster).
fn ingress_addrs(config: &Config) -> Vec<SocketAddr> {
    if config.cluster.provider != ClusterProvider::Kind {
        return Vec::new();
    }
    let mut out = Vec::new();
    if config.routing.mode == RoutingMode::SplitIp {
        out.push(SocketAddr::new(IpAddr::V4(config.dns.applications), 80));
    }
    out.push(SocketAddr::new(
        IpAddr::V4(config.cluster.listen_address),
        config.cluster.http_port,
    ));
    out
}

async fn api(facts: &Facts) -> Finding {
    if let Some(why) = facts.no_cluster() {
        return Finding::skip(why);
    }
    match facts.kube().await {
        Some(Ok(kube)) => Finding::ok(format!(
            "{} answers (context {})",
            kube.server(),
            kube.context().unwrap_or("-")
        )),
        Some(Err(u)) => Finding::fail(
            u.message.clone(),
            u.hint
                .clone()
                .unwrap_or_else(|| "`devenv up` creates or starts the cluster".into()),
        ),
        None => Finding::skip("no cluster context"),
    }
}

async fn nodes(facts: &Facts) -> Finding {
    let Some(Ok(kube)) = facts.kube().await else {
        return Finding::skip("no cluster API");
    };
    match kube.nodes().await {
        Ok(nodes) if nodes.is_empty() => {
            Finding::fail("the cluster has no nodes", "`devenv up --recreate`")
        }
        Ok(nodes) => {
            let not: Vec<String> = nodes
                .iter()
                .filter(|n| !n.ready)
                .map(|n| {
                    format!(
                        "{} ({})",
                        n.name,
                        n.reason.as_deref().unwrap_or("not Ready")
                    )
                })
                .collect();
            if not.is_empty() {
                Finding::fail(
                    format!("not Ready: {}", not.join(", ")),
                    format!(
                        "`kubectl describe node {}` shows why",
                        nodes
                            .iter()
                            .find(|n| !n.ready)
                            .map_or("", |n| n.name.as_str())
                    ),
                )
            } else {
                Finding::ok(format!("{}/{} nodes Ready", nodes.len(), nodes.len()))
            }
        }
        Err(e) => Finding::fail(format!("{e:#}"), "check the API server"),
    }
}

async fn ingress(addr: SocketAddr, host: String) -> Finding {
    let h = host.clone();
    let probe =
        tokio::task::spawn_blocking(move || list::probe(addr, &h, Duration::from_secs(5))).await;
    let Ok(probe) = probe else {
        return Finding::fail("the probe did not finish", "run it again");
    };
    let fix =
        "`devenv logs ingress` shows the ingress controller's side; `devenv up` re-applies it";
    match probe.status {
        Some(status) if status < 500 => {
            Finding::ok(format!("HTTP {status} from {addr} for Host {host}"))
        }
        Some(status) => Finding::fail(format!("HTTP {status} from {addr} for Host {host}"), fix),
        None => Finding::fail(
            format!(
                "no HTTP answer from {addr}: {}",
                probe.error.unwrap_or_default()
            ),
            fix,
        ),
    }
}

async fn pod_dns(facts: &Facts) -> Finding {
    let Some(Ok(kube)) = facts.kube().await else {
        return Finding::skip("no cluster API");
    };
    pod_lookup(kube, &facts.config, POD_TIMEOUT).await
}

/// The names a pod must resolve: an application name, and every infrastructure name when the
/// gateway serves them.
pub fn pod_names(config: &Config) -> Vec<String> {
    let mut names = vec![config.fqdn(APPLICATION)];
    if config.services().iter().any(|s| s.name == "gateway") {
        names.extend(
            crate::render::nginx::servers(config)
                .into_iter()
                .map(|s| s.hostname),
        );
    }
    names
}

/// Resolve [`pod_names`] from a short-lived pod (see [`Kube::lookup`]).
pub async fn pod_lookup(kube: &Kube, config: &Config, timeout: Duration) -> Finding {
    let names = pod_names(config);
    let fqdns: Vec<String> = names.iter().map(|n| format!("{n}.")).collect();
    let results = match kube
        .lookup(traefik::IMAGE, &fqdns, &objects::labels(config), timeout)
        .await
    {
        Ok(r) => r,
        Err(e) => {
            return Finding::fail(
                format!("{e:#}"),
                "`devenv up` re-applies devenv's namespace and objects; the message says what the pod lacked",
            );
        }
    };
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.resolved())
        .map(|r| format!("{}: {}", r.name, r.output.join(" / ")))
        .collect();
    if !failed.is_empty() {
        return Finding::fail(
            format!("pods cannot resolve {}", failed.join("; ")),
            "`devenv up` re-applies the CoreDNS zone; `kubectl -n kube-system logs deploy/coredns` shows CoreDNS's side",
        );
    }
    let seen: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{} -> {}",
                r.name.trim_end_matches('.'),
                r.addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            )
        })
        .collect();
    Finding::ok(format!("from a pod: {}", seen.join(", ")))
}
