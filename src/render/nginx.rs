//! The host gateway's NGINX config, `compose/gateway/nginx.conf`: one server per
//! infrastructure hostname (the [`Route`]s of kind HTTP and registry of every enabled
//! service), proxying to the service by its name on the Docker network, plus a default server
//! that answers `/health` and a 404 listing the known hosts.
//!
//! Text comes from `templates/gateway-nginx.conf.j2`; every value goes through the `nginx`
//! filter ([`quote`]), which quotes it or refuses it. Every server listens on :80 and on
//! :443 (TLS, HTTP/2) with the certificate in the gateway's live directory ([`Layout`]), and
//! the user's routes are included from there. Not for: the cluster's ingress (that is
//! Traefik, `render::cluster::traefik`), the routes' own servers or reloading (`gateway`).

use serde::Serialize;

use super::{Artifact, COMPOSE_DIR, template_env};
use crate::config::{Config, ConfigFile, GATEWAY_LIVE_DIR, Protocol, Route, ServiceKind};
use crate::tls;

/// The routes file in the gateway's live directory (written by `crate::gateway`).
pub const ROUTES_FILE: &str = "routes.conf";
/// The stream servers' file in the gateway's live directory (written by `crate::gateway`):
/// there rather than in nginx.conf, so that a changed port is a reload, not a new container.
pub const STREAMS_FILE: &str = "streams.conf";

/// Where the gateway listens and where it finds its live directory: the container's view by
/// default; tests run the same config on a real nginx on the host with their own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Layout {
    /// `listen` of plain HTTP (`80`, `127.0.0.1:8080`).
    pub http: String,
    /// `listen` of HTTPS.
    pub https: String,
    /// The certificate and its key.
    pub certificate: String,
    pub key: String,
    /// The `include` of the routes: a pattern, so that a missing file is no error.
    pub routes: String,
    /// Whether the other published ports are proxied too ([`streams`], from [`STREAMS_FILE`]
    /// in the live directory): in the container; not where tests run the config on the host,
    /// where those ports are the services' own.
    #[serde(skip)]
    pub streams: bool,
    /// The `include` of the stream servers: a pattern, so that a missing file is no error.
    #[serde(skip)]
    pub streams_file: String,
}

impl Layout {
    /// The gateway container: ports 80 and 443, the live directory at [`GATEWAY_LIVE_DIR`].
    pub fn container() -> Layout {
        Layout {
            streams: true,
            ..Layout::at("80", "443", GATEWAY_LIVE_DIR, ROUTES_FILE)
        }
    }

    /// Listening on `http` and `https`, the live directory at `dir`, the routes in
    /// `dir/routes_file`.
    pub fn at(http: &str, https: &str, dir: &str, routes_file: &str) -> Layout {
        let dir = dir.trim_end_matches('/');
        // `routes.conf` -> `[r]outes.conf`: the same file, as a pattern nginx may find empty.
        let mut chars = routes_file.chars();
        let pattern = match chars.next() {
            Some(first) => format!("[{first}]{}", chars.as_str()),
            None => String::new(),
        };
        Layout {
            http: http.to_string(),
            https: https.to_string(),
            certificate: format!("{dir}/{}", tls::CERT),
            key: format!("{dir}/{}", tls::KEY),
            routes: format!("{dir}/{pattern}"),
            streams: false,
            streams_file: format!("{dir}/[s]{}", &STREAMS_FILE[1..]),
        }
    }
}

const TEMPLATE: &str = include_str!("../../templates/gateway-nginx.conf.j2");
const STREAMS_TEMPLATE: &str = include_str!("../../templates/gateway-streams.conf.j2");

/// One proxied hostname.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayServer {
    pub hostname: String,
    /// The service's name on the infrastructure network.
    pub service: String,
    pub port: u16,
    /// `service:port`, resolved per request.
    pub upstream: String,
    /// Whether this is the Docker registry (gets `/v2/`).
    pub registry: bool,
}

/// Every hostname the gateway proxies, in service order.
pub fn servers(config: &Config) -> Vec<GatewayServer> {
    config
        .services()
        .iter()
        .flat_map(|s| {
            s.routes
                .iter()
                .filter(|r| matches!(r.kind, ServiceKind::Http | ServiceKind::Registry))
                .map(|r: &Route| GatewayServer {
                    hostname: r.hostname.clone(),
                    service: s.name.clone(),
                    port: r.container_port,
                    upstream: format!("{}:{}", s.name, r.container_port),
                    registry: r.kind == ServiceKind::Registry,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// One published port of an infrastructure service, proxied at the same number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayStream {
    pub service: String,
    /// The port's name (`postgres`, `otlp-grpc`).
    pub name: String,
    /// Where the gateway listens: the port's number on the host.
    pub port: u16,
    pub udp: bool,
    /// `service:container_port`, resolved per connection.
    pub upstream: String,
}

/// Every TCP and UDP port the enabled services publish on the host but the gateway's own, in
/// service order: the gateway listens on each at the host's number and passes the bytes to
/// the service, so that a name that leads to the gateway (a pod's lookup of an infrastructure
/// name) reaches every port the host reaches under it. One number is one service in the
/// gateway: where two services publish the same number (on two host addresses) the first has
/// it, and 80 and 443 stay the gateway's HTTP servers.
pub fn streams(config: &Config) -> Vec<GatewayStream> {
    let mut taken = std::collections::BTreeSet::from([(80, false), (443, false)]);
    let mut out = Vec::new();
    for s in config.services().iter().filter(|s| s.name != GATEWAY) {
        for p in &s.ports {
            let udp = p.protocol == Protocol::Udp;
            if !taken.insert((p.host_port, udp)) {
                continue;
            }
            out.push(GatewayStream {
                service: s.name.clone(),
                name: p.name.clone(),
                port: p.host_port,
                udp,
                upstream: format!("{}:{}", s.name, p.container_port),
            });
        }
    }
    out
}

/// The gateway's service name.
const GATEWAY: &str = "gateway";

/// A value as one nginx config token: bare when it is plainly safe, else double-quoted with
/// `\` and `"` escaped. `$` (nginx would expand it) and control characters other than a
/// newline are refused: no devenv value needs them.
pub fn quote(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Ok("\"\"".to_string());
    }
    if let Some(c) = value
        .chars()
        .find(|&c| c == '$' || (c.is_control() && c != '\n'))
    {
        return Err(format!(
            "{value:?} cannot go into nginx.conf: it contains {c:?}"
        ));
    }
    let safe = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '/'));
    if safe {
        return Ok(value.to_string());
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    Ok(out)
}

fn not_found(config: &Config, servers: &[GatewayServer]) -> String {
    let mut text = format!(
        "404: no infrastructure service answers to this host name under {}.\nKnown hosts:\n",
        config.domain
    );
    for s in servers {
        text.push_str(&format!("  http://{}/ -> {}\n", s.hostname, s.service));
    }
    text
}

/// `compose/gateway/nginx.conf`.
pub fn render(config: &Config) -> anyhow::Result<Vec<Artifact>> {
    Ok(vec![Artifact::new(
        format!("{COMPOSE_DIR}/{}", ConfigFile::GatewayNginx.path()),
        conf(config, &Layout::container())?,
    )])
}

/// Where plain HTTP is redirected when `gateway.redirect_http` is on: the port suffix of the
/// gateway's published HTTPS port (`""` for 443, `":8443"` otherwise), so that the redirect
/// lands where HTTPS answers on this host. `None` when there is no redirect: it is off, or
/// HTTPS is not published (a redirect would lead nowhere).
pub fn https_redirect(config: &Config) -> Option<String> {
    if !config.gateway.redirect_http {
        return None;
    }
    let gateway = config
        .services()
        .into_iter()
        .find(|s| s.name == "gateway")?;
    let https = gateway.ports.iter().find(|p| p.name == "https")?;
    Some(match https.host_port {
        443 => String::new(),
        port => format!(":{port}"),
    })
}

/// The gateway's nginx.conf for `layout`.
pub fn conf(config: &Config, layout: &Layout) -> anyhow::Result<String> {
    let servers = servers(config);
    let mut env = template_env();
    env.add_filter("nginx", |v: String| {
        quote(&v).map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e))
    });
    env.add_template("gateway-nginx.conf", TEMPLATE)?;
    let header = super::generated_header("#");
    let text = env
        .get_template("gateway-nginx.conf")?
        .render(minijinja::context! {
            header => header.trim_end(),
            network => config.network_name(),
            not_found => not_found(config, &servers),
            response_headers => super::SECURITY_HEADERS,
            servers => minijinja::Value::from(minijinja::value::Serde(&servers)),
            layout => minijinja::Value::from(minijinja::value::Serde(layout)),
            redirect_port => https_redirect(config),
            streams_file => layout.streams.then_some(layout.streams_file.as_str()),
        })?;
    Ok(text)
}

/// The gateway's [`STREAMS_FILE`]: a stream server for each of [`streams`].
pub fn streams_conf(config: &Config) -> anyhow::Result<String> {
    let mut env = template_env();
    env.add_filter("nginx", |v: String| {
        quote(&v).map_err(|e| minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e))
    });
    env.add_template("gateway-streams.conf", STREAMS_TEMPLATE)?;
    let header = super::generated_header("#");
    Ok(env
        .get_template("gateway-streams.conf")?
        .render(minijinja::context! {
            header => header.trim_end(),
            streams => minijinja::Value::from(minijinja::value::Serde(streams(config))),
        })?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_published_port_but_the_gateways_is_a_stream_at_the_hosts_number() {
        let mut config = Config::default();
        let mut db = crate::config::ServiceSettings::default();
        db.ports.insert("postgres".into(), 15432.into());
        config.services.insert("timescaledb".into(), db);
        let off = crate::config::ServiceSettings {
            enabled: Some(false),
            ..Default::default()
        };
        config.services.insert("minio".into(), off);
        let streams: Vec<String> = streams(&config)
            .iter()
            .map(|s| {
                let udp = if s.udp { "/udp" } else { "" };
                format!("{} {}{udp} -> {}", s.service, s.port, s.upstream)
            })
            .collect();
        assert!(
            streams.contains(&"timescaledb 15432 -> timescaledb:5432".to_string()),
            "{streams:?}"
        );
        assert!(
            streams.contains(&"registry 5001 -> registry:5000".to_string()),
            "{streams:?}"
        );
        assert!(
            streams.contains(&"pdns 5300/udp -> pdns:5300".to_string()),
            "{streams:?}"
        );
        assert!(
            streams.contains(&"pdns 5300 -> pdns:5300".to_string()),
            "{streams:?}"
        );
        assert!(
            streams.contains(&"tempo 4317 -> tempo:4317".to_string()),
            "{streams:?}"
        );
        assert!(
            !streams
                .iter()
                .any(|s| s.starts_with("gateway ") || s.starts_with("minio ")),
            "{streams:?}"
        );
        // One number, one service: a second on another host address, or on 80/443, is not
        // proxied.
        let mut clash = Config::default();
        let mut loki = crate::config::ServiceSettings {
            address: Some("127.0.0.3".parse().unwrap()),
            ..Default::default()
        };
        loki.ports.insert("http".into(), 9090.into());
        clash.services.insert("loki".into(), loki);
        let mut tempo = crate::config::ServiceSettings {
            address: Some("127.0.0.4".parse().unwrap()),
            ..Default::default()
        };
        tempo.ports.insert("http".into(), 443.into());
        clash.services.insert("tempo".into(), tempo);
        let ports: Vec<(String, u16)> = super::streams(&clash)
            .iter()
            .filter(|s| !s.udp)
            .map(|s| (s.service.clone(), s.port))
            .collect();
        assert_eq!(
            ports.iter().filter(|(_, p)| *p == 9090).count(),
            1,
            "{ports:?}"
        );
        assert!(ports.contains(&("prometheus".into(), 9090)), "{ports:?}");
        assert!(
            !ports.iter().any(|(_, p)| *p == 443 || *p == 80),
            "{ports:?}"
        );
        // On the host (tests' layouts) none: those ports are the services' own there.
        let host = conf(
            &config,
            &Layout::at("8080", "8443", "/tmp/live", ROUTES_FILE),
        )
        .unwrap();
        assert!(!host.contains("streams.conf"), "{host}");
        let container = conf(&config, &Layout::container()).unwrap();
        assert!(
            container.contains("include \"/etc/nginx/devenv/[s]treams.conf\";"),
            "{container}"
        );
        let file = streams_conf(&config).unwrap();
        assert!(
            file.contains("        listen 15432;\n        set $upstream timescaledb:5432;"),
            "{file}"
        );
        assert!(file.contains("        listen 5300 udp;"), "{file}");
    }

    #[test]
    fn quotes_what_is_not_plainly_safe_and_refuses_variables() {
        assert_eq!(
            quote("grafana.macula.local").unwrap(),
            "grafana.macula.local"
        );
        assert_eq!(quote("a b\"c\\\n").unwrap(), "\"a b\\\"c\\\\\\n\"");
        assert!(quote("$host").is_err());
        assert!(quote("a\u{7}").is_err());
    }

    #[test]
    fn one_server_per_http_hostname_and_v2_for_the_registry() {
        let text = &render(&Config::default()).unwrap()[0].contents;
        for host in ["registry", "dns", "grafana", "s3", "s3-console", "draw"] {
            assert!(
                text.contains(&format!("server_name {host}.macula.local;")),
                "{host} missing:\n{text}"
            );
        }
        // Postgres names are not HTTP: no server for them.
        assert!(!text.contains("server_name postgres."));
        assert_eq!(text.matches("location /v2/").count(), 1);
        assert_eq!(
            text.matches("location = /health").count(),
            servers(&Config::default()).len() + 1
        );
        assert!(text.contains("set $upstream registry:5000;"));
    }

    #[test]
    fn every_proxying_location_hides_the_upstreams_security_headers() {
        let text = &render(&Config::default()).unwrap()[0].contents;
        let locations: Vec<&str> = text
            .split("location ")
            .skip(1)
            .filter(|l| l.contains("proxy_pass"))
            .collect();
        assert_eq!(locations.len(), servers(&Config::default()).len() + 1);
        for location in locations {
            for (name, _) in crate::render::SECURITY_HEADERS {
                assert!(
                    location.contains(&format!("proxy_hide_header {name};")),
                    "{name} not hidden in:\n{location}"
                );
            }
        }
    }
}
