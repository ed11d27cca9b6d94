//! Every name devenv knows, with its URLs — the infrastructure's host names (the gateway),
//! the cluster's Ingresses (read through the Kubernetes API by `cluster::kube`) and the user's
//! routes — and a probe of each through the gateway or the cluster's ingress (status and
//! latency). A cluster that cannot be read leaves the rest listed, and says why.
//!
//! Not for: reading the Ingresses themselves (`cluster::kube::ingresses`) or printing.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Routes;
use crate::cluster::kube::{Backend, GatewayRoute, IngressRoute, Kube};
use crate::config::{ClusterProvider, Config, RoutingMode};

/// How long reading the cluster's Ingresses may take in all (connecting included).
const CLUSTER_WAIT: Duration = Duration::from_secs(10);

/// One name and where it leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// `infrastructure`, `ingress`, `httproute` or `route`.
    pub kind: &'static str,
    /// The service's or the route's name; `namespace/name` of an Ingress.
    pub name: String,
    /// The host name; `*` for an Ingress rule without one (any host).
    pub host: String,
    /// The path it answers under.
    pub path: String,
    /// `service:port` on the Docker network, the route's `host:port`, or the Ingress's
    /// backend (`web:http=80 -> 8080`: the Service, its port, the pods' port).
    pub target: String,
    pub http: String,
    pub https: String,
    /// The Ingress rule in full (namespace, class, path type, backend, TLS).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressRoute>,
    /// The HTTPRoute match in full (namespace, path type, backends, whether it was accepted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub httproute: Option<GatewayRoute>,
}

/// Whether the cluster's Ingresses are in the listing, and why not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterNames {
    /// The kubeconfig context they were read from; `None` with `cluster.provider: none`.
    pub context: Option<String>,
    /// Whether they were read.
    pub listed: bool,
    /// Why they were not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// What a probe found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Probe {
    /// The HTTP status, `None` when there was no answer.
    pub status: Option<u16>,
    pub latency_ms: u64,
    /// Why there was no answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Probe {
    /// An answer that is not a gateway error (502/503/504: the target is down).
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| s < 500)
    }
}

/// The infrastructure's names, then the routes (the cluster's come from [`cluster`]).
pub fn listing(config: &Config, routes: &Routes) -> Vec<Listed> {
    let mut out = Vec::new();
    for s in crate::render::nginx::servers(config) {
        let (http, https) = crate::gateway::urls(config, &s.hostname);
        out.push(Listed {
            kind: "infrastructure",
            name: s.service,
            host: s.hostname,
            path: "/".to_string(),
            target: s.upstream,
            http,
            https,
            ingress: None,
            httproute: None,
        });
    }
    for r in &routes.routes {
        let (http, https) = crate::gateway::urls(config, &r.host);
        out.push(Listed {
            kind: "route",
            name: r.name.clone(),
            host: r.host.clone(),
            path: "/".to_string(),
            target: r.target.to_string(),
            http,
            https,
            ingress: None,
            httproute: None,
        });
    }
    out
}

/// The cluster's Ingresses as rows, read through the API of the environment's cluster
/// (`kubeconfig`, and the context `cluster.provider` gives). Never an error: when there is no
/// cluster or it cannot be read, no rows and the reason.
pub async fn cluster(
    config: &Config,
    kubeconfig: anyhow::Result<std::path::PathBuf>,
) -> (Vec<Listed>, ClusterNames) {
    let Some(context) = crate::converge::cluster::context(config) else {
        let why = match config.cluster.provider {
            ClusterProvider::None => "`cluster.provider` is `none`",
            _ => "devenv.yaml names no `cluster.context`",
        };
        return (
            Vec::new(),
            ClusterNames {
                context: None,
                listed: false,
                warning: Some(format!("no cluster Ingresses: {why}")),
            },
        );
    };
    let read = async {
        let kubeconfig = kubeconfig?;
        read_routes(config, &kubeconfig, &context).await
    };
    let failed = |why: String| ClusterNames {
        context: Some(context.clone()),
        listed: false,
        warning: Some(format!("cluster Ingresses not listed: {why}")),
    };
    match tokio::time::timeout(CLUSTER_WAIT, read).await {
        Ok(Ok((rows, warning))) => (
            rows,
            ClusterNames {
                context: Some(context.clone()),
                listed: true,
                warning,
            },
        ),
        Ok(Err(e)) => (Vec::new(), failed(format!("{e:#}"))),
        Err(_) => (
            Vec::new(),
            failed(format!(
                "the cluster's API (context {context}) did not answer within {} s",
                CLUSTER_WAIT.as_secs()
            )),
        ),
    }
}

/// The Ingress rows, then the HTTPRoute rows; HTTPRoutes that cannot be read (a role that
/// may list Ingresses only) leave the Ingress rows and say why.
async fn read_routes(
    config: &Config,
    kubeconfig: &Path,
    context: &str,
) -> anyhow::Result<(Vec<Listed>, Option<String>)> {
    let kube = Kube::connect(kubeconfig, context).await?;
    let mut rows = ingress_rows(config, kube.ingress_routes().await?);
    let warning = match kube.gateway_routes().await {
        Ok(routes) => {
            rows.extend(httproute_rows(config, routes));
            None
        }
        Err(e) => Some(format!("cluster HTTPRoutes not listed: {e:#}")),
    };
    Ok((rows, warning))
}

/// Rows for `routes` (an HTTPRoute match each), with their URLs through the cluster's ingress,
/// which serves devenv's Gateway.
pub fn httproute_rows(config: &Config, routes: Vec<GatewayRoute>) -> Vec<Listed> {
    routes
        .into_iter()
        .map(|r| {
            let (http, https) = ingress_urls(config, r.host.as_deref(), &r.path);
            Listed {
                kind: "httproute",
                name: format!("{}/{}", r.namespace, r.route),
                host: r.host.clone().unwrap_or_else(|| "*".to_string()),
                path: r.path.clone(),
                target: r.describe(),
                http,
                https,
                ingress: None,
                httproute: Some(r),
            }
        })
        .collect()
}

/// Rows for `routes` (an Ingress rule each), with their URLs through the cluster's ingress.
pub fn ingress_rows(config: &Config, routes: Vec<IngressRoute>) -> Vec<Listed> {
    routes
        .into_iter()
        .map(|r| {
            let path = if r.path.starts_with('/') {
                r.path.clone()
            } else {
                format!("/{}", r.path)
            };
            let (http, https) = ingress_urls(config, r.host.as_deref(), &path);
            let mut target = match &r.backend {
                Backend::Service(_) => r.backend.describe(),
                Backend::Resource { .. } => format!("resource {}", r.backend.describe()),
            };
            if r.tls {
                target.push_str(" [tls]");
            }
            Listed {
                kind: "ingress",
                name: format!("{}/{}", r.namespace, r.ingress),
                host: r.host.clone().unwrap_or_else(|| "*".to_string()),
                path,
                target,
                http,
                https,
                ingress: Some(r),
                httproute: None,
            }
        })
        .collect()
}

/// The URLs of `host` and `path` through the cluster's ingress: the applications' address on
/// 80/443 in `split-ip` mode, the cluster's ports otherwise. A rule without a host answers
/// any: its URL names the address.
fn ingress_urls(config: &Config, host: Option<&str>, path: &str) -> (String, String) {
    let c = &config.cluster;
    let (address, http, https) = match config.routing.mode {
        RoutingMode::SplitIp => (config.dns.applications, 80, 443),
        RoutingMode::Ports => (c.listen_address, c.http_port, c.https_port),
    };
    let host = host.map_or_else(|| address.to_string(), str::to_string);
    let url = |scheme: &str, port: u16, default: u16| {
        if port == default {
            format!("{scheme}://{host}{path}")
        } else {
            format!("{scheme}://{host}:{port}{path}")
        }
    };
    (url("http", http, 80), url("https", https, 443))
}

/// The cluster's ingress on the host, over HTTP: where its rows are probed.
pub fn ingress_http(config: &Config) -> SocketAddr {
    match config.routing.mode {
        RoutingMode::SplitIp => SocketAddr::new(IpAddr::V4(config.dns.applications), 80),
        RoutingMode::Ports => SocketAddr::new(
            IpAddr::V4(config.cluster.listen_address),
            config.cluster.http_port,
        ),
    }
}

/// The `Host` a probe of `listed` sends: its host, or the domain for an Ingress rule that
/// answers any host.
pub fn probe_host<'a>(config: &'a Config, listed: &'a Listed) -> &'a str {
    if listed.host == "*" {
        &config.domain
    } else {
        &listed.host
    }
}

/// The gateway's HTTP address on the host.
pub fn gateway_http(config: &Config) -> Option<SocketAddr> {
    let gateway = config
        .services()
        .into_iter()
        .find(|s| s.name == "gateway")?;
    let p = gateway.ports.into_iter().find(|p| p.name == "http")?;
    let ip = if p.host_ip.is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        p.host_ip
    };
    Some(SocketAddr::new(ip, p.host_port))
}

/// The header that marks devenv's own probes: the gateway answers them from the upstream even
/// when it redirects plain HTTP to HTTPS (`gateway.redirect_http`), so that a probe sees the
/// route's process and not the redirect.
pub const PROBE_HEADER: &str = "X-Devenv-Probe";

/// `GET path` for `host` at `addr` (the gateway, the ingress), over HTTP/1.1, as a probe
/// ([`PROBE_HEADER`]).
pub fn probe(addr: SocketAddr, host: &str, path: &str, timeout: Duration) -> Probe {
    let started = Instant::now();
    let result = (|| -> std::io::Result<u16> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: devenv-routes-check\r\n{PROBE_HEADER}: 1\r\nConnection: close\r\n\r\n"
        )?;
        // The status line may come in pieces: read until it ends (or the peer stops).
        let mut head = Vec::with_capacity(64);
        let mut buf = [0u8; 64];
        while !head.contains(&b'\n') && head.len() < 512 {
            let n = s.read(&mut buf)?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        let line = line.lines().next().unwrap_or_default();
        line.split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not HTTP: {line:?}")))
    })();
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match result {
        Ok(status) => Probe {
            status: Some(status),
            latency_ms,
            error: None,
        },
        Err(e) => Probe {
            status: None,
            latency_ms,
            error: Some(format!("{addr}: {e}")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_infrastructure_then_routes_with_both_urls() {
        let config = Config::default();
        let mut routes = Routes::default();
        routes.add(&config, "api", "127.0.0.1:3000", None).unwrap();
        let list = listing(&config, &routes);
        let grafana = list.iter().find(|l| l.name == "grafana").unwrap();
        assert_eq!(grafana.https, "https://grafana.macula.local/");
        let api = list.last().unwrap();
        assert_eq!(
            (api.kind, api.http.as_str(), api.target.as_str()),
            ("route", "http://api.macula.local/", "127.0.0.1:3000")
        );
        let mut moved = Config::default();
        moved.services.entry("gateway".into()).or_default().ports =
            [("https".to_string(), 8443.into())].into();
        assert_eq!(
            crate::gateway::urls(&moved, "a.macula.local").1,
            "https://a.macula.local:8443/"
        );
    }

    fn route(host: Option<&str>, path: &str, tls: bool) -> IngressRoute {
        IngressRoute {
            namespace: "shop".into(),
            ingress: "app".into(),
            class: None,
            host: host.map(str::to_string),
            path: path.into(),
            path_type: "Prefix".into(),
            backend: Backend::Service(crate::cluster::kube::ServiceBackend {
                service: "web".into(),
                port: Some(80),
                port_name: Some("http".into()),
                target_port: Some("8080".into()),
                problem: None,
            }),
            tls,
        }
    }

    #[test]
    fn ingress_rows_lead_through_the_ingress_address_of_the_routing_mode() {
        let mut config = Config::default();
        let rows = ingress_rows(
            &config,
            vec![
                route(Some("app.macula.local"), "/api", true),
                route(None, "/", false),
            ],
        );
        let row = |l: &Listed| {
            format!(
                "{} {} {} {} {} {}",
                l.kind, l.name, l.host, l.target, l.http, l.https
            )
        };
        assert_eq!(
            rows.iter().map(row).collect::<Vec<_>>(),
            [
                "ingress shop/app app.macula.local web:http=80 -> 8080 [tls] http://app.macula.local/api https://app.macula.local/api",
                "ingress shop/app * web:http=80 -> 8080 http://127.0.0.2/ https://127.0.0.2/",
            ]
        );
        assert_eq!(probe_host(&config, &rows[1]), "macula.local");
        assert_eq!(ingress_http(&config).to_string(), "127.0.0.2:80");

        config.routing.mode = RoutingMode::Ports;
        let rows = ingress_rows(&config, vec![route(Some("app.macula.local"), "/", false)]);
        assert_eq!(
            (rows[0].http.as_str(), rows[0].https.as_str()),
            (
                "http://app.macula.local:8080/",
                "https://app.macula.local:8443/"
            )
        );
        assert_eq!(ingress_http(&config).to_string(), "127.0.0.1:8080");
    }

    #[tokio::test]
    async fn no_cluster_lists_no_ingresses_and_says_why() {
        let mut config = Config::default();
        config.cluster.provider = ClusterProvider::None;
        let (rows, names) = cluster(&config, Ok("/nonexistent".into())).await;
        assert!(rows.is_empty());
        assert_eq!(
            names,
            ClusterNames {
                context: None,
                listed: false,
                warning: Some("no cluster Ingresses: `cluster.provider` is `none`".into())
            }
        );
        // A kind cluster whose kubeconfig is missing: the reason names the file.
        config.cluster.provider = ClusterProvider::Kind;
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("kubeconfig");
        let (rows, names) = cluster(&config, Ok(missing.clone())).await;
        assert!(rows.is_empty() && !names.listed);
        assert_eq!(names.context.as_deref(), Some("kind-macula"));
        let warning = names.warning.unwrap();
        assert!(
            warning.starts_with("cluster Ingresses not listed: cannot read the kubeconfig"),
            "{warning}"
        );
        assert!(
            warning.contains(&missing.display().to_string()),
            "{warning}"
        );
    }

    #[test]
    fn a_probe_of_nothing_says_why() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let p = probe(addr, "x", "/", Duration::from_secs(5));
        assert!(!p.ok() && p.status.is_none() && p.error.is_some(), "{p:?}");
    }
}
