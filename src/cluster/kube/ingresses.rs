//! The cluster's Ingresses as routes, for `devenv routes`: one [`IngressRoute`] per host and
//! path of every Ingress in every namespace, its backend Service's port resolved through the
//! Service (a named port to its number, and the Service's `targetPort`), and whether the host
//! is in one of the Ingress's `tls` sections.
//!
//! Not for: applying Ingresses (devenv makes none for applications) or judging whether they
//! answer (`routes::list` probes them through the ingress).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use super::{Kube, ObjectName};

/// One host and path of an Ingress and where it leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IngressRoute {
    pub namespace: String,
    /// The Ingress's name.
    pub ingress: String,
    /// `spec.ingressClassName`, when set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The rule's host; `None` for a rule without one (or the default backend): any host.
    pub host: Option<String>,
    /// The path (`/` when the rule gives none).
    pub path: String,
    /// `Prefix`, `Exact` or `ImplementationSpecific`; `default` for the default backend.
    pub path_type: String,
    pub backend: Backend,
    /// Whether the host is in one of the Ingress's `tls` sections.
    pub tls: bool,
}

/// Where an Ingress path leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Backend {
    /// A Service in the Ingress's namespace.
    Service(ServiceBackend),
    /// Another kind of object (`spec.rules[].http.paths[].backend.resource`).
    Resource { resource: String },
}

/// A Service backend, its port resolved through the Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceBackend {
    /// The Service's name.
    pub service: String,
    /// The Service port's number (given, or found by its name in the Service).
    pub port: Option<i32>,
    /// The Service port's name, when the Ingress names it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port_name: Option<String>,
    /// The Service port's `targetPort` (the pods' port: a number or a container port's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<String>,
    /// Why the port could not be resolved (no such Service, no such port).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

impl ServiceBackend {
    /// `web:80`, `web:http=80`, with `-> 8080` when the pods' port differs and the problem
    /// in brackets.
    pub fn describe(&self) -> String {
        let port = match (&self.port_name, self.port) {
            (Some(name), Some(n)) => format!("{name}={n}"),
            (Some(name), None) => name.clone(),
            (None, Some(n)) => n.to_string(),
            (None, None) => "?".to_string(),
        };
        let mut out = format!("{}:{port}", self.service);
        if let Some(target) = &self.target_port
            && Some(target.as_str()) != self.port.map(|p| p.to_string()).as_deref()
        {
            out.push_str(&format!(" -> {target}"));
        }
        if let Some(problem) = &self.problem {
            out.push_str(&format!(" ({problem})"));
        }
        out
    }
}

impl Backend {
    /// The backend in one line: the Service and its port, or the resource.
    pub fn describe(&self) -> String {
        match self {
            Backend::Service(s) => s.describe(),
            Backend::Resource { resource } => resource.clone(),
        }
    }
}

/// A backend as the Ingress gives it, before the Service is read.
fn backend_of(backend: &IngressBackend) -> Backend {
    if let Some(s) = &backend.service {
        let port = s.port.as_ref();
        return Backend::Service(ServiceBackend {
            service: s.name.clone(),
            port: port.and_then(|p| p.number),
            port_name: port.and_then(|p| p.name.clone()),
            target_port: None,
            problem: None,
        });
    }
    match &backend.resource {
        Some(r) => Backend::Resource {
            resource: match &r.api_group {
                Some(group) if !group.is_empty() => format!("{}.{group}/{}", r.kind, r.name),
                _ => format!("{}/{}", r.kind, r.name),
            },
        },
        None => Backend::Resource {
            resource: "(no backend)".to_string(),
        },
    }
}

/// Whether `host` is named by a `tls.hosts` entry (`*.domain` covers one label).
fn covered(tls_hosts: &[String], host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    tls_hosts.iter().any(|t| {
        t.eq_ignore_ascii_case(host)
            || t.strip_prefix("*.").is_some_and(|domain| {
                host.split_once('.')
                    .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(domain))
            })
    })
}

/// The routes of one Ingress, in the order it gives them, backends not yet resolved.
fn routes_of(ingress: &Ingress) -> Vec<IngressRoute> {
    let namespace = ingress.metadata.namespace.clone().unwrap_or_default();
    let name = ingress.metadata.name.clone().unwrap_or_default();
    let Some(spec) = &ingress.spec else {
        return Vec::new();
    };
    let tls_hosts: Vec<String> = spec
        .tls
        .iter()
        .flatten()
        .flat_map(|t| t.hosts.iter().flatten().cloned())
        .collect();
    let route =
        |host: Option<String>, path: String, path_type: String, backend: &IngressBackend| {
            IngressRoute {
                namespace: namespace.clone(),
                ingress: name.clone(),
                class: spec.ingress_class_name.clone(),
                tls: covered(&tls_hosts, host.as_deref()),
                host,
                path,
                path_type,
                backend: backend_of(backend),
            }
        };
    let mut out = Vec::new();
    for rule in spec.rules.iter().flatten() {
        for p in rule.http.iter().flat_map(|h| &h.paths) {
            out.push(route(
                rule.host.clone(),
                p.path.clone().unwrap_or_else(|| "/".to_string()),
                p.path_type.clone(),
                &p.backend,
            ));
        }
    }
    if let Some(backend) = &spec.default_backend {
        out.push(route(None, "/".to_string(), "default".to_string(), backend));
    }
    out
}

/// Fill in a Service backend's port from the Service (`None`: it does not exist).
pub(super) fn resolve(backend: &mut ServiceBackend, service: Option<&Service>) {
    let Some(service) = service else {
        backend.problem = Some("no such Service".to_string());
        return;
    };
    let ports = service
        .spec
        .as_ref()
        .and_then(|s| s.ports.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let found = match (&backend.port_name, backend.port) {
        (Some(name), _) => ports.iter().find(|p| p.name.as_deref() == Some(name)),
        (None, Some(number)) => ports.iter().find(|p| p.port == number),
        (None, None) => None,
    };
    match found {
        Some(p) => {
            backend.port = Some(p.port);
            // An unset targetPort is the port itself, as the API defaults it.
            backend.target_port = Some(match &p.target_port {
                Some(IntOrString::Int(n)) => n.to_string(),
                Some(IntOrString::String(s)) => s.clone(),
                None => p.port.to_string(),
            });
        }
        None => {
            backend.problem = Some(match (&backend.port_name, backend.port) {
                (Some(name), _) => format!("the Service has no port named {name}"),
                (None, Some(n)) => format!("the Service has no port {n}"),
                (None, None) => "the Ingress names no port".to_string(),
            });
        }
    }
}

/// Services by namespace and name; `None` for one that does not exist.
pub(super) type Services = BTreeMap<(String, String), Option<Service>>;

impl Kube {
    /// The Services `keys` name (namespace, name), each read once.
    pub(super) async fn services(
        &self,
        keys: impl Iterator<Item = (String, String)>,
    ) -> anyhow::Result<Services> {
        let mut services: Services = keys.map(|k| (k, None)).collect();
        for ((namespace, name), found) in &mut services {
            let api: Api<Service> = Api::namespaced(self.client.clone(), namespace);
            let what = ObjectName::new("Service", Some(namespace), name);
            *found = api
                .get_opt(name)
                .await
                .map_err(|err| self.failed(&format!("reading {what}"), &err))?;
        }
        Ok(services)
    }

    /// Every Ingress of the cluster as routes, each Service backend's port resolved through
    /// its Service (read once per Service). Sorted by host, path, namespace and name.
    pub async fn ingress_routes(&self) -> anyhow::Result<Vec<IngressRoute>> {
        let api: Api<Ingress> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|err| self.failed("listing the cluster's Ingresses", &err))?;
        let mut routes: Vec<IngressRoute> = list.items.iter().flat_map(routes_of).collect();
        let services = self
            .services(routes.iter().filter_map(|r| match &r.backend {
                Backend::Service(s) => Some((r.namespace.clone(), s.service.clone())),
                Backend::Resource { .. } => None,
            }))
            .await?;
        for r in &mut routes {
            if let Backend::Service(s) = &mut r.backend {
                let key = (r.namespace.clone(), s.service.clone());
                resolve(s, services.get(&key).and_then(Option::as_ref));
            }
        }
        routes.sort_by(|a, b| {
            (&a.host, &a.path, &a.namespace, &a.ingress).cmp(&(
                &b.host,
                &b.path,
                &b.namespace,
                &b.ingress,
            ))
        });
        Ok(routes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::mock::{ApiServer, Expect, list, status};
    use super::*;

    fn ingress(namespace: &str, name: &str, spec: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec
        })
    }

    fn service(namespace: &str, name: &str, ports: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"selector": {"app": name}, "ports": ports}
        })
    }

    fn ingress_list(items: Vec<serde_json::Value>) -> serde_json::Value {
        let mut l = list("IngressList", items);
        l["apiVersion"] = json!("networking.k8s.io/v1");
        l
    }

    #[tokio::test]
    async fn ingresses_are_listed_with_named_ports_resolved_through_their_services_and_tls() {
        let (kube, mut server) = ApiServer::start();
        let (routes, ()) = tokio::join!(kube.ingress_routes(), async move {
            server
                .expect(Expect::get("/apis/networking.k8s.io/v1/ingresses"))
                .await
                .reply(
                    200,
                    ingress_list(vec![
                        ingress(
                            "shop",
                            "app",
                            json!({
                                "ingressClassName": "traefik",
                                "tls": [{"hosts": ["app.macula.local"], "secretName": "app-tls"}],
                                "rules": [
                                    {"host": "app.macula.local", "http": {"paths": [
                                        {"path": "/", "pathType": "Prefix",
                                         "backend": {"service": {"name": "web", "port": {"name": "http"}}}},
                                        {"path": "/api", "pathType": "Prefix",
                                         "backend": {"service": {"name": "api", "port": {"number": 8080}}}}
                                    ]}},
                                    {"host": "admin.macula.local", "http": {"paths": [
                                        {"path": "/", "pathType": "Exact",
                                         "backend": {"service": {"name": "web", "port": {"name": "admin"}}}}
                                    ]}}
                                ]
                            }),
                        ),
                        ingress(
                            "docs",
                            "site",
                            json!({
                                "ingressClassName": "nginx",
                                "tls": [{"hosts": ["*.macula.local"]}],
                                "rules": [{"host": "docs.macula.local", "http": {"paths": [
                                    {"pathType": "ImplementationSpecific",
                                     "backend": {"service": {"name": "gone", "port": {"number": 80}}}}
                                ]}}],
                                "defaultBackend": {"resource": {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "static"}}
                            }),
                        ),
                    ]),
                );
            // One read per Service, in (namespace, name) order, named ports or not.
            server
                .expect(Expect::get("/api/v1/namespaces/docs/services/gone"))
                .await
                .reply(404, status(404, "NotFound", "services \"gone\" not found"));
            server
                .expect(Expect::get("/api/v1/namespaces/shop/services/api"))
                .await
                .reply(
                    200,
                    service(
                        "shop",
                        "api",
                        json!([{"port": 8080, "targetPort": 3000, "protocol": "TCP"}]),
                    ),
                );
            server
                .expect(Expect::get("/api/v1/namespaces/shop/services/web"))
                .await
                .reply(
                    200,
                    service(
                        "shop",
                        "web",
                        json!([
                            {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
                            {"name": "metrics", "port": 9090, "protocol": "TCP"}
                        ]),
                    ),
                );
        });
        let routes = routes.unwrap();
        let line = |r: &IngressRoute| {
            format!(
                "{} {} {} {}/{} {} tls={}",
                r.host.as_deref().unwrap_or("*"),
                r.path,
                r.path_type,
                r.namespace,
                r.ingress,
                r.backend.describe(),
                r.tls
            )
        };
        assert_eq!(
            routes.iter().map(line).collect::<Vec<_>>(),
            [
                "* / default docs/site Bucket.k8s.example.com/static tls=false",
                "admin.macula.local / Exact shop/app web:admin (the Service has no port named admin) tls=false",
                "app.macula.local / Prefix shop/app web:http=80 -> web tls=true",
                "app.macula.local /api Prefix shop/app api:8080 -> 3000 tls=true",
                "docs.macula.local / ImplementationSpecific docs/site gone:80 (no such Service) tls=true",
            ]
        );
        let app = &routes[2];
        assert_eq!(app.class.as_deref(), Some("traefik"));
        assert_eq!(
            app.backend,
            Backend::Service(ServiceBackend {
                service: "web".into(),
                port: Some(80),
                port_name: Some("http".into()),
                target_port: Some("web".into()),
                problem: None,
            })
        );
    }

    #[tokio::test]
    async fn no_ingresses_read_no_services_and_a_refusal_is_an_error() {
        let (kube, mut server) = ApiServer::start();
        let ((empty, refused), ()) = tokio::join!(
            async { (kube.ingress_routes().await, kube.ingress_routes().await) },
            async move {
                server
                    .expect(Expect::get("/apis/networking.k8s.io/v1/ingresses"))
                    .await
                    .reply(200, ingress_list(vec![]));
                server
                    .expect(Expect::get("/apis/networking.k8s.io/v1/ingresses"))
                    .await
                    .reply(
                        403,
                        status(
                            403,
                            "Forbidden",
                            "ingresses.networking.k8s.io is forbidden: User \"dev\" cannot list resource \"ingresses\"",
                        ),
                    );
            }
        );
        assert_eq!(empty.unwrap(), []);
        let e = format!("{:#}", refused.unwrap_err());
        assert!(
            e.starts_with(
                "listing the cluster's Ingresses: ingresses.networking.k8s.io is forbidden"
            ),
            "{e}"
        );
        assert!(e.contains("(Forbidden, HTTP 403)"), "{e}");
    }

    #[test]
    fn a_wildcard_tls_host_covers_one_label() {
        let hosts = ["*.macula.local".to_string()];
        assert!(covered(&hosts, Some("app.macula.local")));
        assert!(!covered(&hosts, Some("a.b.macula.local")));
        assert!(!covered(&hosts, Some("macula.local")));
        assert!(!covered(&hosts, None));
    }
}
