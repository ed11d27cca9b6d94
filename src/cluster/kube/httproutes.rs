//! The cluster's HTTPRoutes as routes, for `devenv routes`: one [`GatewayRoute`] per host and
//! path match of every HTTPRoute in every namespace, each Service backend's port resolved
//! through the Service (as an Ingress's), and whether devenv's Gateway accepted the route.
//! A cluster without the Gateway API CRDs has none.
//!
//! Not for: the Gateway devenv makes (`render::cluster::gateway`) or probing the routes
//! (`routes::list`).

use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use super::ingresses::resolve;
use super::{Backend, Kube, ServiceBackend};
use crate::render::cluster::gateway::{BackendRef, HttpRoute};

/// One host and path match of an HTTPRoute and where it leads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GatewayRoute {
    pub namespace: String,
    /// The HTTPRoute's name.
    pub route: String,
    /// One of its `hostnames`; `None` when it names none: any host.
    pub host: Option<String>,
    pub path: String,
    /// `PathPrefix`, `Exact` or `RegularExpression`.
    pub path_type: String,
    /// Its backends (a weighted split has several).
    pub backends: Vec<Backend>,
    /// Whether it names devenv's Gateway (`devenv/devenv`) as a parent.
    pub attached: bool,
    /// What devenv's Gateway said: `Some(true)` Accepted, `Some(false)` refused, `None` not yet
    /// (or not attached).
    pub accepted: Option<bool>,
    /// The controller's reason and message when it refused, or why there is no answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl GatewayRoute {
    /// The backends in one line, and what the Gateway said.
    pub fn describe(&self) -> String {
        let backends: Vec<String> = self.backends.iter().map(Backend::describe).collect();
        let mut out = if backends.is_empty() {
            "(no backend)".to_string()
        } else {
            backends.join(", ")
        };
        out.push_str(match (self.attached, self.accepted) {
            (false, _) => " [not on devenv's Gateway]",
            (true, Some(true)) => " [accepted]",
            (true, Some(false)) => " [not accepted]",
            (true, None) => " [not yet accepted]",
        });
        if let Some(reason) = self
            .reason
            .as_ref()
            .filter(|_| self.accepted == Some(false))
        {
            out.push_str(&format!(" ({reason})"));
        }
        out
    }
}

/// A backend as the route gives it, before the Service is read.
fn backend_of(b: &BackendRef) -> Backend {
    let group = b.group.as_deref().unwrap_or_default();
    let kind = b.kind.as_deref().unwrap_or("Service");
    if group.is_empty() && kind == "Service" {
        return Backend::Service(ServiceBackend {
            service: b.name.clone(),
            port: b.port,
            port_name: None,
            target_port: None,
            problem: b
                .port
                .is_none()
                .then(|| "the route names no port".to_string()),
        });
    }
    Backend::Resource {
        resource: if group.is_empty() {
            format!("{kind}/{}", b.name)
        } else {
            format!("{kind}.{group}/{}", b.name)
        },
    }
}

/// The rows of one HTTPRoute, and for each backend the namespace its Service is in.
fn routes_of(route: &HttpRoute) -> Vec<(GatewayRoute, Vec<String>)> {
    let namespace = route.metadata.namespace.clone().unwrap_or_default();
    let name = route.metadata.name.clone().unwrap_or_default();
    let attached = route.names_devenvs_gateway();
    let (accepted, reason) = match route.accepted() {
        Some(c) => (
            Some(c.status == "True"),
            Some(format!("{}: {}", c.reason, c.message)),
        ),
        None => (None, None),
    };
    let hosts: Vec<Option<String>> = if route.spec.hostnames.is_empty() {
        vec![None]
    } else {
        route.spec.hostnames.iter().cloned().map(Some).collect()
    };
    let mut out = Vec::new();
    for rule in &route.spec.rules {
        let backends: Vec<Backend> = rule.backend_refs.iter().map(backend_of).collect();
        let namespaces: Vec<String> = rule
            .backend_refs
            .iter()
            .map(|b| b.namespace.clone().unwrap_or_else(|| namespace.clone()))
            .collect();
        let paths: Vec<(String, String)> = if rule.matches.is_empty() {
            vec![("/".into(), "PathPrefix".into())]
        } else {
            rule.matches
                .iter()
                .map(|m| {
                    let p = m.path.clone().unwrap_or_default();
                    (
                        p.value.unwrap_or_else(|| "/".into()),
                        p.type_.unwrap_or_else(|| "PathPrefix".into()),
                    )
                })
                .collect()
        };
        for host in &hosts {
            for (path, path_type) in &paths {
                out.push((
                    GatewayRoute {
                        namespace: namespace.clone(),
                        route: name.clone(),
                        host: host.clone(),
                        path: path.clone(),
                        path_type: path_type.clone(),
                        backends: backends.clone(),
                        attached,
                        accepted,
                        reason: reason.clone(),
                    },
                    namespaces.clone(),
                ));
            }
        }
    }
    out
}

impl Kube {
    /// Every HTTPRoute of the cluster as routes, each Service backend's port resolved through
    /// its Service (read once per Service). Sorted by host, path, namespace and name. None when
    /// the cluster does not serve HTTPRoutes.
    pub async fn gateway_routes(&self) -> anyhow::Result<Vec<GatewayRoute>> {
        let api: Api<HttpRoute> = Api::all(self.client.clone());
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(kube::Error::Api(status)) if status.code == 404 => return Ok(Vec::new()),
            Err(err) => return Err(self.failed("listing the cluster's HTTPRoutes", &err)),
        };
        let rows: Vec<(GatewayRoute, Vec<String>)> =
            list.items.iter().flat_map(routes_of).collect();
        let services = self
            .services(rows.iter().flat_map(|(row, namespaces)| {
                row.backends
                    .iter()
                    .zip(namespaces)
                    .filter_map(|(b, ns)| match b {
                        Backend::Service(s) => Some((ns.clone(), s.service.clone())),
                        Backend::Resource { .. } => None,
                    })
            }))
            .await?;
        let mut out: Vec<GatewayRoute> = rows
            .into_iter()
            .map(|(mut row, namespaces)| {
                for (b, ns) in row.backends.iter_mut().zip(&namespaces) {
                    if let Backend::Service(s) = b
                        && s.problem.is_none()
                    {
                        let key = (ns.clone(), s.service.clone());
                        resolve(s, services.get(&key).and_then(Option::as_ref));
                    }
                }
                row
            })
            .collect();
        out.sort_by(|a, b| {
            (&a.host, &a.path, &a.namespace, &a.route).cmp(&(
                &b.host,
                &b.path,
                &b.namespace,
                &b.route,
            ))
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(yaml: &str) -> HttpRoute {
        serde_saphyr::from_str(yaml).unwrap()
    }

    #[test]
    fn a_route_is_a_row_per_host_and_match_with_what_the_gateway_said() {
        let r = route(
            "metadata: {name: web, namespace: shop}\n\
             spec:\n  parentRefs: [{name: devenv, namespace: devenv}]\n  hostnames: [app.macula.local, www.macula.local]\n  rules:\n  - matches: [{path: {type: Exact, value: /health}}, {path: {value: /api}}]\n    backendRefs: [{name: api, port: 80, weight: 9}, {name: canary, namespace: beta, port: 80, weight: 1}]\n  - backendRefs: [{name: web, port: 8080}]\n\
             status:\n  parents:\n  - parentRef: {name: devenv, namespace: devenv}\n    controllerName: traefik.io/gateway-controller\n    conditions: [{type: Accepted, status: 'True', reason: Accepted, message: ''}]\n",
        );
        let rows = routes_of(&r);
        assert_eq!(rows.len(), 6);
        let (first, namespaces) = &rows[0];
        assert_eq!(first.host.as_deref(), Some("app.macula.local"));
        assert_eq!(
            (first.path.as_str(), first.path_type.as_str()),
            ("/health", "Exact")
        );
        assert_eq!(namespaces, &["shop", "beta"]);
        assert_eq!(rows[1].0.path_type, "PathPrefix");
        assert_eq!(
            (rows[4].0.path.as_str(), rows[4].0.path_type.as_str()),
            ("/", "PathPrefix")
        );
        assert!(first.attached);
        assert_eq!(first.accepted, Some(true));
        assert!(
            first.describe().ends_with("[accepted]"),
            "{}",
            first.describe()
        );
    }

    #[test]
    fn another_gateway_or_a_refusal_is_said() {
        let elsewhere = route(
            "metadata: {name: x, namespace: devenv}\nspec:\n  parentRefs: [{name: other}]\n  rules: [{backendRefs: [{name: s}]}]\n",
        );
        let (row, _) = &routes_of(&elsewhere)[0];
        assert!(!row.attached);
        assert_eq!(row.host, None);
        assert!(
            row.describe()
                .contains("s:? (the route names no port) [not on devenv's Gateway]"),
            "{}",
            row.describe()
        );
        // The route's own namespace is the parent's when it names none.
        let own = route(
            "metadata: {name: x, namespace: devenv}\nspec:\n  parentRefs: [{name: devenv}]\n  rules: [{backendRefs: [{name: s, port: 80}]}]\n\
             status:\n  parents:\n  - parentRef: {name: devenv}\n    controllerName: traefik.io/gateway-controller\n    conditions: [{type: Accepted, status: 'False', reason: NotAllowedByListeners, message: no listener}]\n",
        );
        let (row, _) = &routes_of(&own)[0];
        assert!(row.attached);
        assert_eq!(row.accepted, Some(false));
        assert!(
            row.describe()
                .ends_with("[not accepted] (NotAllowedByListeners: no listener)"),
            "{}",
            row.describe()
        );
    }
}
