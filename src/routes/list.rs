//! Every name the host gateway answers, with its URLs — the infrastructure's host names and
//! the user's routes — and a probe of each through the gateway (status and latency). Not for:
//! the cluster's Ingresses (the cluster driver lists those through the API).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Routes;
use crate::config::Config;

/// One name and where it leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Listed {
    /// `infrastructure` or `route`.
    pub kind: &'static str,
    /// The service or the route's name.
    pub name: String,
    pub host: String,
    /// `service:port` on the Docker network, or the route's `host:port`.
    pub target: String,
    pub http: String,
    pub https: String,
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

/// The infrastructure's names, then the routes.
pub fn listing(config: &Config, routes: &Routes) -> Vec<Listed> {
    let mut out = Vec::new();
    for s in crate::render::nginx::servers(config) {
        let (http, https) = crate::gateway::urls(config, &s.hostname);
        out.push(Listed {
            kind: "infrastructure",
            name: s.service,
            host: s.hostname,
            target: s.upstream,
            http,
            https,
        });
    }
    for r in &routes.routes {
        let (http, https) = crate::gateway::urls(config, &r.host);
        out.push(Listed {
            kind: "route",
            name: r.name.clone(),
            host: r.host.clone(),
            target: r.target.to_string(),
            http,
            https,
        });
    }
    out
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

/// `GET /` for `host` at the gateway `addr`, over HTTP/1.1.
pub fn probe(addr: SocketAddr, host: &str, timeout: Duration) -> Probe {
    let started = Instant::now();
    let result = (|| -> std::io::Result<u16> {
        let mut s = TcpStream::connect_timeout(&addr, timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        write!(
            s,
            "GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: devenv-routes-check\r\nConnection: close\r\n\r\n"
        )?;
        let mut head = [0u8; 64];
        let n = s.read(&mut head)?;
        let line = String::from_utf8_lossy(&head[..n]);
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
            [("https".to_string(), 8443)].into();
        assert_eq!(
            crate::gateway::urls(&moved, "a.macula.local").1,
            "https://a.macula.local:8443/"
        );
    }

    #[test]
    fn a_probe_of_nothing_says_why() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let p = probe(addr, "x", Duration::from_secs(5));
        assert!(!p.ok() && p.status.is_none() && p.error.is_some(), "{p:?}");
    }
}
