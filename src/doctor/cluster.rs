//! Checks of the cluster: its API answers, every node is Ready, the ingress answers on the
//! applications' address (127.0.0.2:80, split-ip) and on 127.0.0.1:<http_port>, and a pod
//! resolves the infrastructure names and an application name.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use super::{Check, Facts, Finding, Group};
use crate::cluster::kube::{GatewayState, Kube, NodeStatus};
use crate::config::{ClusterProvider, Config, RoutingMode};
use crate::render::cluster::{self as objects, gateway, traefik};
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
    if config.cluster.gateway_api {
        out.push(Check::new("gateway-api", Group::Cluster, gateway_api(facts)).needs(API));
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

/// devenv's Gateway: Accepted and Programmed by Traefik.
async fn gateway_api(facts: &Facts) -> Finding {
    let Some(Ok(kube)) = facts.kube().await else {
        return Finding::skip("no cluster API");
    };
    let name = format!("Gateway {}/{}", objects::NAMESPACE, gateway::GATEWAY);
    match kube.gateway_state().await {
        Ok(GatewayState::Ready) => Finding::ok(format!("{name} is Accepted and Programmed")),
        Ok(GatewayState::NoCrds) => Finding::fail(
            "the cluster serves no Gateway API: its CRDs are not installed",
            "`devenv up` installs them on Kubernetes 1.25+ (offline: `devenv up --gateway-crds FILE`), or set cluster.gateway_api: false",
        ),
        Ok(GatewayState::Missing) => {
            Finding::fail(format!("{name} does not exist"), "`devenv up` makes it")
        }
        Ok(GatewayState::NotReady(why)) => Finding::fail(
            format!("{name}: {why}"),
            format!(
                "`kubectl -n {} describe gateway {}` and `devenv logs ingress` say why",
                objects::NAMESPACE,
                gateway::GATEWAY
            ),
        ),
        Err(e) => Finding::fail(format!("{e:#}"), "check the API server"),
    }
}

async fn nodes(facts: &Facts) -> Finding {
    let Some(Ok(kube)) = facts.kube().await else {
        return Finding::skip("no cluster API");
    };
    match kube.nodes().await {
        Ok(nodes) => nodes_finding(&nodes),
        Err(e) => Finding::fail(format!("{e:#}"), "check the API server"),
    }
}

/// What the nodes' Ready conditions say: ok when every node is Ready, else each one that is
/// not, with its reason, and `kubectl describe node` of the first.
fn nodes_finding(nodes: &[NodeStatus]) -> Finding {
    let not: Vec<&NodeStatus> = nodes.iter().filter(|n| !n.ready).collect();
    match not.first() {
        _ if nodes.is_empty() => {
            Finding::fail("the cluster has no nodes", "`devenv up --recreate`")
        }
        None => Finding::ok(format!("{}/{} nodes Ready", nodes.len(), nodes.len())),
        Some(first) => Finding::fail(
            format!(
                "not Ready: {}",
                not.iter()
                    .map(|n| format!(
                        "{} ({})",
                        n.name,
                        n.reason.as_deref().unwrap_or("not Ready")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!("`kubectl describe node {}` shows why", first.name),
        ),
    }
}

async fn ingress(addr: SocketAddr, host: String) -> Finding {
    let h = host.clone();
    let probe =
        tokio::task::spawn_blocking(move || list::probe(addr, &h, "/", Duration::from_secs(5)))
            .await;
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

/// The pod's script: per name, the lookup section [`Kube::lookup`] parses, then one
/// `devenv-reach` line with the first line of the HTTP answer to `GET http://<name>/` (or
/// wget's complaint). Names come as arguments, never spliced into the script.
pub const SCRIPT: &str = r#"for name in "$@"; do
  echo "=== devenv-lookup $name"
  nslookup "$name" 2>&1
  echo "devenv-reach $(wget -S -q -T 5 -O /dev/null "http://${name%.}/" 2>&1 | grep -m1 -e HTTP/ -e wget: || echo 'no answer')"
done
"#;

/// The prefix of the reach line in the pod's log.
const REACH: &str = "devenv-reach ";

/// Whether a reach line shows an HTTP answer that is not a gateway error.
fn reached(line: &str) -> bool {
    let mut words = line.split_whitespace();
    words.find(|w| w.starts_with("HTTP/")).is_some()
        && words
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            .is_some_and(|c| c < 500)
}

/// Resolve [`pod_names`] from a short-lived pod and `GET /` each by name (see
/// [`Kube::lookup_with`]): every name must resolve and answer over HTTP.
pub async fn pod_lookup(kube: &Kube, config: &Config, timeout: Duration) -> Finding {
    let names = pod_names(config);
    let fqdns: Vec<String> = names.iter().map(|n| format!("{n}.")).collect();
    let results = match kube
        .lookup_with(
            SCRIPT,
            traefik::IMAGE,
            &fqdns,
            &objects::labels(config),
            timeout,
        )
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
    let unresolved: Vec<String> = results
        .iter()
        .filter(|r| !r.resolved())
        .map(|r| {
            let lines: Vec<&str> = r
                .output
                .iter()
                .map(String::as_str)
                .filter(|l| !l.starts_with(REACH))
                .collect();
            format!("{}: {}", r.name, lines.join(" / "))
        })
        .collect();
    if !unresolved.is_empty() {
        return Finding::fail(
            format!("pods cannot resolve {}", unresolved.join("; ")),
            "`devenv up` re-applies the CoreDNS zone; `kubectl -n kube-system logs deploy/coredns` shows CoreDNS's side",
        );
    }
    let reach = |r: &crate::cluster::kube::LookupResult| -> String {
        r.output
            .iter()
            .find_map(|l| l.strip_prefix(REACH))
            .unwrap_or("no reach line")
            .trim()
            .to_string()
    };
    let unreached: Vec<String> = results
        .iter()
        .filter(|r| !reached(&reach(r)))
        .map(|r| format!("{} ({})", r.name.trim_end_matches('.'), reach(r)))
        .collect();
    if !unreached.is_empty() {
        return Finding::fail(
            format!("pods resolve but cannot reach {}", unreached.join(", ")),
            "the gateway must be on the `kind` network (`devenv up` attaches it); `devenv logs gateway` and `devenv logs ingress` show their side",
        );
    }
    let seen: Vec<String> = results
        .iter()
        .map(|r| {
            format!(
                "{} -> {} ({})",
                r.name.trim_end_matches('.'),
                r.addresses
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
                reach(r)
            )
        })
        .collect();
    Finding::ok(format!("from a pod: {}", seen.join(", ")))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::cluster::kube::mock::{ApiServer, Expect};
    use crate::doctor::Status;

    const POD: &str = "/api/v1/namespaces/devenv/pods/devenv-lookup-q2w9z";

    fn pod(phase: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "devenv-lookup-q2w9z", "namespace": "devenv"},
            "spec": {"containers": [{"name": "lookup", "image": traefik::IMAGE}]},
            "status": {"phase": phase}
        })
    }

    fn node(name: &str, ready: bool, reason: Option<&str>) -> NodeStatus {
        NodeStatus {
            name: name.into(),
            ready,
            reason: reason.map(Into::into),
        }
    }

    #[test]
    fn nodes_that_are_all_ready_pass_and_the_others_are_named_with_their_reason() {
        let ready = nodes_finding(&[node("devenv-control-plane", true, None)]);
        assert_eq!(ready.status, Status::Ok);
        assert_eq!(ready.detail, "1/1 nodes Ready");

        let one = nodes_finding(&[
            node("devenv-control-plane", true, None),
            node(
                "devenv-worker",
                false,
                Some("KubeletNotReady: PLEG is not healthy"),
            ),
            node("devenv-worker2", false, None),
        ]);
        assert_eq!(one.status, Status::Fail);
        assert_eq!(
            one.detail,
            "not Ready: devenv-worker (KubeletNotReady: PLEG is not healthy), \
             devenv-worker2 (not Ready)"
        );
        assert_eq!(
            one.fix.as_deref(),
            Some("`kubectl describe node devenv-worker` shows why")
        );

        let none = nodes_finding(&[]);
        assert_eq!(none.status, Status::Fail);
        assert_eq!(none.detail, "the cluster has no nodes");
    }

    /// A config with the gateway and one routed service only: two names to check.
    fn config() -> Config {
        let mut config = Config::default();
        config.cluster.provider = ClusterProvider::Kind;
        for service in Config::known_services() {
            let on = matches!(*service, "gateway" | "registry");
            config
                .services
                .entry(service.to_string())
                .or_default()
                .enabled = Some(on);
        }
        config
    }

    /// The pod is created with exactly the script and the names, polled until it finished,
    /// its log (`log`) read, and deleted.
    async fn run_pod(log: String) -> Finding {
        let (kube, mut server) = ApiServer::start();
        let config = config();
        assert_eq!(
            pod_names(&config),
            ["devenv-doctor.macula.local", "registry.macula.local"]
        );
        let (finding, ()) = tokio::join!(
            pod_lookup(&kube, &config, Duration::from_secs(60)),
            async move {
                server
                    .expect(
                        Expect::post("/api/v1/namespaces/devenv/pods")
                            .query("fieldManager", "devenv")
                            .body(json!({
                                "apiVersion": "v1", "kind": "Pod",
                                "metadata": {
                                    "generateName": "devenv-lookup-",
                                    "namespace": "devenv",
                                    "labels": {"app.kubernetes.io/managed-by": "devenv", "dev.devenv.project": "macula"}
                                },
                                "spec": {
                                    "automountServiceAccountToken": false,
                                    "restartPolicy": "Never",
                                    "terminationGracePeriodSeconds": 0,
                                    "containers": [{
                                        "name": "lookup",
                                        "image": traefik::IMAGE,
                                        "imagePullPolicy": "IfNotPresent",
                                        "command": ["sh", "-c", SCRIPT, "devenv-lookup",
                                                    "devenv-doctor.macula.local.", "registry.macula.local."]
                                    }]
                                }
                            })),
                    )
                    .await
                    .reply(201, pod("Pending"));
                server
                    .expect(Expect::get(POD))
                    .await
                    .reply(200, pod("Succeeded"));
                server
                    .expect(Expect::get(&format!("{POD}/log")))
                    .await
                    .reply_text(200, &log);
                server
                    .expect(Expect::delete(POD).body(json!({"gracePeriodSeconds": 0})))
                    .await
                    .reply(200, pod("Succeeded"));
            }
        );
        finding
    }

    /// busybox nslookup's sections as the lookup tests show them, with the reach lines.
    const REACHED: &str = "=== devenv-lookup devenv-doctor.macula.local.
Server:\t\t10.96.0.10
Address:\t10.96.0.10:53

Name:\ttraefik.devenv.svc.cluster.local
Address: 10.96.141.7

devenv-reach   HTTP/1.1 404 Not Found
=== devenv-lookup registry.macula.local.
Server:\t\t10.96.0.10
Address:\t10.96.0.10:53

Name:\tmacula-gateway
Address: 172.18.0.3

devenv-reach   HTTP/1.1 200 OK
";

    #[tokio::test(start_paused = true)]
    async fn a_pod_resolves_and_reaches_every_name() {
        let f = run_pod(REACHED.to_string()).await;
        assert_eq!(f.status, Status::Ok, "{f:?}");
        assert_eq!(
            f.detail,
            "from a pod: devenv-doctor.macula.local -> 10.96.141.7 (HTTP/1.1 404 Not Found), registry.macula.local -> 172.18.0.3 (HTTP/1.1 200 OK)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_that_resolves_but_does_not_answer_fails_naming_it() {
        let log = REACHED.replace(
            "devenv-reach   HTTP/1.1 200 OK",
            "devenv-reach wget: can't connect to remote host (172.18.0.3): Connection refused",
        );
        let f = run_pod(log).await;
        assert_eq!(f.status, Status::Fail, "{f:?}");
        assert_eq!(
            f.detail,
            "pods resolve but cannot reach registry.macula.local (wget: can't connect to remote host (172.18.0.3): Connection refused)"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_name_that_does_not_resolve_fails_with_nslookups_words() {
        let log = REACHED.replace(
            "Name:\tmacula-gateway\nAddress: 172.18.0.3\n",
            "** server can't find registry.macula.local.: NXDOMAIN\n",
        );
        let f = run_pod(log).await;
        assert_eq!(f.status, Status::Fail, "{f:?}");
        assert!(
            f.detail
                .starts_with("pods cannot resolve registry.macula.local.: ")
                && f.detail.contains("NXDOMAIN")
                && !f.detail.contains("devenv-reach"),
            "{f:?}"
        );
    }

    #[test]
    fn a_reach_line_counts_an_http_answer_below_500() {
        assert!(reached("  HTTP/1.1 404 Not Found"));
        assert!(!reached("  HTTP/1.1 502 Bad Gateway"));
        assert!(!reached("wget: bad address 'x'"));
        assert!(!reached("no answer"));
    }
}
