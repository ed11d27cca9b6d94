//! What a CI job's command is told about its environment: environment variables naming where
//! everything answers. The list is documented in the README and in `devenv ci --help`; this
//! is the one place that makes it.
//!
//! Not for: choosing the ports (the [`super::Assignment`]) nor running the command.

use std::net::SocketAddr;
use std::path::Path;

use crate::config::{ClusterProvider, Config, Protocol, Service, ServiceKind};

/// The environment's name.
pub const NAME: &str = "DEVENV_NAME";
/// Its state directory.
pub const STATE_DIR: &str = "DEVENV_STATE_DIR";
/// The kubeconfig holding the cluster's context (only with a cluster).
pub const KUBECONFIG: &str = "KUBECONFIG";
/// The registry as image references name it, `host:port`.
pub const REGISTRY: &str = "DEVENV_REGISTRY";
/// The local DNS domain.
pub const DOMAIN: &str = "DEVENV_DOMAIN";
/// The cluster ingress's HTTP and HTTPS URLs on the host (send the application's `Host`).
pub const INGRESS_URL: &str = "DEVENV_INGRESS_URL";
pub const INGRESS_HTTPS_URL: &str = "DEVENV_INGRESS_HTTPS_URL";
/// Where the resolver for the domain listens for this environment, `host:port`.
pub const DNS: &str = "DEVENV_DNS";

/// The variables for environment `config`, in a stable order. Per published service `SVC`
/// (upper case, `-` as `_`): `DEVENV_SVC_HOST` (the address its ports are published on),
/// `DEVENV_SVC_PORT` (its main port: the one its hostname leads to, else its first),
/// `DEVENV_SVC_<PORTNAME>_PORT` (every published port by name), and `DEVENV_SVC_URL`
/// (`http://host:port` of the main port) for services that speak HTTP there.
pub fn coordinates(config: &Config, state_dir: &Path, kubeconfig: &Path) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vec![
        (NAME.into(), config.name.clone()),
        (STATE_DIR.into(), state_dir.display().to_string()),
        (DOMAIN.into(), config.domain.clone()),
        (
            DNS.into(),
            SocketAddr::new(config.dns.address, config.dns.port).to_string(),
        ),
    ];
    if config.cluster.provider != ClusterProvider::None {
        out.push((KUBECONFIG.into(), kubeconfig.display().to_string()));
    }
    if config.cluster.provider == ClusterProvider::Kind {
        let c = &config.cluster;
        out.push((
            INGRESS_URL.into(),
            format!("http://{}:{}", c.listen_address, c.http_port),
        ));
        out.push((
            INGRESS_HTTPS_URL.into(),
            format!("https://{}:{}", c.listen_address, c.https_port),
        ));
    }
    for service in config.services() {
        let Some(main) = main_port(&service) else {
            continue;
        };
        let address = SocketAddr::new(main.host_ip, main.host_port);
        let var = |suffix: &str| {
            format!(
                "DEVENV_{}_{suffix}",
                service.name.to_uppercase().replace('-', "_")
            )
        };
        if service.name == "registry" {
            out.push((REGISTRY.into(), address.to_string()));
        }
        out.push((var("HOST"), main.host_ip.to_string()));
        out.push((var("PORT"), main.host_port.to_string()));
        if speaks_http(&service, main.container_port) {
            out.push((var("URL"), format!("http://{address}")));
        }
        let mut named: Vec<(&str, u16)> = service
            .ports
            .iter()
            .map(|p| (p.name.as_str(), p.host_port))
            .collect();
        named.dedup();
        for (name, port) in named {
            let name = name.to_uppercase().replace('-', "_");
            out.push((var(&format!("{name}_PORT")), port.to_string()));
        }
    }
    out
}

/// The published TCP port a person would use: the one the service's first hostname leads to,
/// else its first.
fn main_port(service: &Service) -> Option<&crate::config::PortBinding> {
    let tcp = |p: &&crate::config::PortBinding| p.protocol == Protocol::Tcp;
    let routed = service.routes.first().and_then(|r| {
        service
            .ports
            .iter()
            .filter(tcp)
            .find(|p| p.container_port == r.container_port)
    });
    routed.or_else(|| service.ports.iter().find(tcp))
}

/// Whether `service` answers HTTP on `container_port`: a route of an HTTP kind leads there,
/// or it is the gateway.
fn speaks_http(service: &Service, container_port: u16) -> bool {
    service.name == "gateway"
        || service
            .routes
            .iter()
            .any(|r| r.container_port == container_port && r.kind != ServiceKind::Tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_published_service_gets_host_port_and_url_where_it_speaks_http() {
        let config = Config {
            name: "job".into(),
            ..Config::default()
        };
        let vars = coordinates(
            &config,
            Path::new("/state/job"),
            Path::new("/state/job/kubeconfig"),
        );
        let get = |k: &str| {
            vars.iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("{k} missing in {vars:?}"))
        };
        assert_eq!(get("DEVENV_NAME"), "job");
        assert_eq!(get("KUBECONFIG"), "/state/job/kubeconfig");
        assert_eq!(get("DEVENV_REGISTRY"), "127.0.0.1:5001");
        assert_eq!(get("DEVENV_GRAFANA_URL"), "http://127.0.0.1:3000");
        assert_eq!(get("DEVENV_GATEWAY_PORT"), "80");
        assert_eq!(get("DEVENV_GATEWAY_HTTPS_PORT"), "443");
        assert_eq!(get("DEVENV_TEMPO_OTLP_GRPC_PORT"), "4317");
        assert_eq!(get("DEVENV_TIMESCALEDB_PORT"), "5432");
        assert_eq!(get("DEVENV_INGRESS_URL"), "http://127.0.0.1:8080");
        assert!(
            !vars.iter().any(|(k, _)| k == "DEVENV_TIMESCALEDB_URL"),
            "Postgres is no HTTP URL"
        );
        // pdns's DNS port is published over TCP and UDP: named once.
        assert_eq!(
            vars.iter()
                .filter(|(k, _)| k == "DEVENV_PDNS_DNS_PORT")
                .count(),
            1
        );
    }
}
