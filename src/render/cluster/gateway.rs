//! Gateway API beside Ingress: the GatewayClass [`CLASS`] (served by Traefik's
//! `kubernetesGateway` provider) and the Gateway [`GATEWAY`] in namespace `devenv`, with an
//! HTTP and an HTTPS listener (devenv's wildcard certificate) that take routes from every
//! namespace. An HTTPRoute whose `parentRefs` names `devenv/devenv` is then served exactly
//! like an Ingress: on `http(s)://<app>.<domain>` and on the design card's 8080/8443.
//!
//! The types here are devenv's own, typed for what devenv writes (a subset of the
//! standard-channel v1 schemas of the pinned release, [`crate::cluster::crds`]); they
//! implement k8s-openapi's `Resource` so the cluster driver applies them like every other
//! object. Not for: the CRDs (fetched, verified and installed by `cluster::crds`), reading
//! routes (`cluster::kube::httproutes`), or Traefik's side (`super::traefik`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use serde::{Deserialize, Serialize};

use super::traefik::{self, WEB, WEBSECURE};
use super::{NAMESPACE, meta};
use crate::config::Config;

/// The API group of every Gateway API kind.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The API version devenv writes its objects in (standard channel, GA).
pub const VERSION: &str = "v1";
/// The GatewayClass devenv makes: not `traefik`, the name Traefik's Helm chart gives its own,
/// so that on an existing cluster that runs another Traefik the two classes never meet
/// (devenv's Traefik also selects GatewayClasses by devenv's labels only:
/// `providers.kubernetesGateway.labelSelector`).
pub const CLASS: &str = "devenv";
/// The Gateway devenv makes, in [`NAMESPACE`]: what an HTTPRoute's `parentRefs` names.
pub const GATEWAY: &str = "devenv";
/// The `controllerName` Traefik's Gateway provider claims GatewayClasses by (Traefik's
/// `pkg/provider/kubernetes/gateway`: `controllerName = "traefik.io/gateway-controller"`).
pub const CONTROLLER: &str = "traefik.io/gateway-controller";
/// The plain-HTTP listener's name (an HTTPRoute's `sectionName` picks it).
pub const HTTP_LISTENER: &str = "http";
/// The HTTPS listener's name.
pub const HTTPS_LISTENER: &str = "https";

/// A `gateway.networking.k8s.io/v1` GatewayClass.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClass {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: GatewayClassSpec,
    /// Written by the controller; never by devenv (absent from its applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

/// `GatewayClass.spec`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayClassSpec {
    pub controller_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A `gateway.networking.k8s.io/v1` Gateway.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gateway {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: GatewaySpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
}

/// `Gateway.spec`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    pub gateway_class_name: String,
    pub listeners: Vec<Listener>,
}

/// `Gateway.spec.listeners[]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub name: String,
    /// `HTTP` or `HTTPS`.
    pub protocol: String,
    /// The port of the Traefik entry point that serves it (see [`objects`]).
    pub port: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<ListenerTls>,
    pub allowed_routes: AllowedRoutes,
}

/// `listeners[].tls`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenerTls {
    /// `Terminate`: the Gateway holds the certificate.
    pub mode: String,
    pub certificate_refs: Vec<SecretRef>,
}

/// A reference to a Secret in the Gateway's namespace (group `""`, kind `Secret`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    pub group: String,
    pub kind: String,
    pub name: String,
}

/// `listeners[].allowedRoutes`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowedRoutes {
    pub namespaces: RouteNamespaces,
}

/// `allowedRoutes.namespaces`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteNamespaces {
    /// `All`, `Same` or `Selector`.
    pub from: String,
}

/// The `status` the controller writes: conditions only (the rest is not read).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// One status condition (`metav1.Condition`, the fields devenv reads).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub type_: String,
    pub status: String,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub observed_generation: Option<i64>,
}

impl Status {
    /// The condition of type `name`, if the controller wrote one.
    pub fn condition(&self, name: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == name)
    }
}

/// A `gateway.networking.k8s.io/v1` HTTPRoute, the fields `devenv routes` reads (devenv
/// makes none: applications bring their own).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: HttpRouteSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RouteStatus>,
}

/// `HTTPRoute.spec`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    #[serde(default)]
    pub parent_refs: Vec<ParentRef>,
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub rules: Vec<HttpRouteRule>,
}

/// `spec.parentRefs[]` (and `status.parents[].parentRef`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    pub name: String,
    /// The route's own namespace when absent.
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub section_name: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

/// `spec.rules[]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// None: every request (a `PathPrefix` of `/`, as the API defaults it).
    #[serde(default)]
    pub matches: Vec<HttpRouteMatch>,
    #[serde(default)]
    pub backend_refs: Vec<BackendRef>,
}

/// `rules[].matches[]`, its path only.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    #[serde(default)]
    pub path: Option<PathMatch>,
}

/// `matches[].path`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PathMatch {
    /// `PathPrefix` (the default), `Exact` or `RegularExpression`.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub value: Option<String>,
}

/// `rules[].backendRefs[]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendRef {
    pub name: String,
    /// `""` (core, the default) for a Service.
    #[serde(default)]
    pub group: Option<String>,
    /// `Service` when absent.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub port: Option<i32>,
    #[serde(default)]
    pub weight: Option<i32>,
}

/// `HTTPRoute.status`: one entry per parent a controller handles.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteStatus {
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

/// `status.parents[]`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    pub parent_ref: ParentRef,
    #[serde(default)]
    pub controller_name: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

impl HttpRoute {
    /// Whether the route names devenv's Gateway among its parents.
    pub fn names_devenvs_gateway(&self) -> bool {
        let own = self.metadata.namespace.as_deref().unwrap_or_default();
        self.spec.parent_refs.iter().any(|p| is_devenvs(p, own))
    }

    /// What devenv's Gateway said of the route: `Some(condition)` of type `Accepted` when its
    /// controller wrote one for a parent that is devenv's Gateway.
    pub fn accepted(&self) -> Option<&Condition> {
        let own = self.metadata.namespace.as_deref().unwrap_or_default();
        self.status
            .iter()
            .flat_map(|s| &s.parents)
            .filter(|p| is_devenvs(&p.parent_ref, own) && p.controller_name == CONTROLLER)
            .find_map(|p| p.conditions.iter().find(|c| c.type_ == "Accepted"))
    }
}

impl Gateway {
    /// `Ok` when its controller says it is `Accepted` and `Programmed` for its current
    /// generation; else what it says (or that it has said nothing yet).
    pub fn readiness(&self) -> Result<(), String> {
        let generation = self.metadata.generation;
        let conditions = self.status.as_ref().map(|s| s.conditions.as_slice());
        let mut problems = Vec::new();
        for name in ["Accepted", "Programmed"] {
            let c = conditions
                .unwrap_or_default()
                .iter()
                .find(|c| c.type_ == name);
            match c {
                None => problems.push(format!("not yet {name}")),
                Some(c)
                    if generation.is_some()
                        && c.observed_generation.is_some()
                        && c.observed_generation < generation =>
                {
                    problems.push(format!(
                        "{name} is for generation {}, not yet for {}",
                        c.observed_generation.unwrap_or_default(),
                        generation.unwrap_or_default()
                    ))
                }
                Some(c) if c.status != "True" => problems.push(format!(
                    "{name}={} ({}{}{})",
                    c.status,
                    c.reason,
                    if c.message.is_empty() { "" } else { ": " },
                    c.message
                )),
                Some(_) => {}
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}

/// Whether `parent` (in a route of namespace `own`) is devenv's Gateway.
fn is_devenvs(parent: &ParentRef, own: &str) -> bool {
    parent.name == GATEWAY
        && parent.namespace.as_deref().unwrap_or(own) == NAMESPACE
        && parent.kind.as_deref().unwrap_or("Gateway") == "Gateway"
}

macro_rules! resource {
    ($ty:ident, $kind:literal, $plural:literal, $scope:ty) => {
        impl k8s_openapi::Resource for $ty {
            const API_VERSION: &'static str = "gateway.networking.k8s.io/v1";
            const GROUP: &'static str = GROUP;
            const KIND: &'static str = $kind;
            const VERSION: &'static str = VERSION;
            const URL_PATH_SEGMENT: &'static str = $plural;
            type Scope = $scope;
        }

        impl k8s_openapi::Metadata for $ty {
            type Ty = ObjectMeta;
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

resource!(
    GatewayClass,
    "GatewayClass",
    "gatewayclasses",
    ClusterResourceScope
);
resource!(Gateway, "Gateway", "gateways", NamespaceResourceScope);
resource!(HttpRoute, "HTTPRoute", "httproutes", NamespaceResourceScope);

/// The GatewayClass and the Gateway, when `cluster.gateway_api` is on (else none).
///
/// The listeners' ports are the ports of Traefik's entry points inside its pod (`web` 8000,
/// `websecure` 8443), not 80/443: Traefik attaches a listener to the entry point whose address
/// ends in the listener's port (`entryPointName` in its Gateway provider) and refuses one that
/// matches none. From outside nothing differs from an Ingress: the node's ports 80/443 lead to
/// those entry points, and KinD maps them to 127.0.0.2:80/443 and 127.0.0.1:8080/8443.
pub fn objects(config: &Config) -> (Option<GatewayClass>, Option<Gateway>) {
    if !config.cluster.gateway_api {
        return (None, None);
    }
    let all = || AllowedRoutes {
        namespaces: RouteNamespaces { from: "All".into() },
    };
    let class = GatewayClass {
        api_version: format!("{GROUP}/{VERSION}"),
        kind: "GatewayClass".into(),
        metadata: meta(config, CLASS, None),
        spec: GatewayClassSpec {
            controller_name: CONTROLLER.into(),
            description: Some(format!(
                "devenv's Traefik (environment {}): the same ingress that serves Ingresses",
                config.name
            )),
        },
        status: None,
    };
    let gateway = Gateway {
        api_version: format!("{GROUP}/{VERSION}"),
        kind: "Gateway".into(),
        metadata: meta(config, GATEWAY, Some(NAMESPACE)),
        spec: GatewaySpec {
            gateway_class_name: CLASS.into(),
            listeners: vec![
                Listener {
                    name: HTTP_LISTENER.into(),
                    protocol: "HTTP".into(),
                    port: WEB.container_port,
                    tls: None,
                    allowed_routes: all(),
                },
                Listener {
                    name: HTTPS_LISTENER.into(),
                    protocol: "HTTPS".into(),
                    port: WEBSECURE.container_port,
                    tls: Some(ListenerTls {
                        mode: "Terminate".into(),
                        certificate_refs: vec![SecretRef {
                            group: String::new(),
                            kind: "Secret".into(),
                            name: traefik::TLS_SECRET.into(),
                        }],
                    }),
                    allowed_routes: all(),
                },
            ],
        },
        status: None,
    };
    (Some(class), Some(gateway))
}

/// The lines at the head of the rendered `gateway.yaml`: the CRDs come first.
pub fn by_hand_instructions() -> String {
    let pin = crate::cluster::crds::Pin::pinned();
    format!(
        "# These objects need the Gateway API CRDs, standard channel {} (devenv installs them):\n\
         #   kubectl apply --server-side -f {}\n",
        pin.version, pin.url
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listeners_are_traefiks_entry_points_and_take_routes_from_every_namespace() {
        let (class, gateway) = objects(&Config::default());
        let class = class.unwrap();
        assert_eq!(class.spec.controller_name, CONTROLLER);
        assert_eq!(class.metadata.namespace, None);
        let gateway = gateway.unwrap();
        assert_eq!(gateway.metadata.namespace.as_deref(), Some(NAMESPACE));
        assert_eq!(
            gateway.spec.gateway_class_name,
            class.metadata.name.unwrap()
        );
        let entry = traefik::static_config(&Config::default()).entry_points;
        for l in &gateway.spec.listeners {
            assert_eq!(l.allowed_routes.namespaces.from, "All");
            let ep = entry
                .values()
                .find(|e| e.address.ends_with(&format!(":{}", l.port)))
                .unwrap_or_else(|| panic!("no entry point for listener {}", l.name));
            // Traefik skips an entry point with TLS for an HTTP listener.
            assert_eq!(
                ep.http.as_ref().and_then(|h| h.tls.as_ref()).is_some(),
                l.protocol == "HTTPS",
                "{}",
                l.name
            );
        }
        let https = &gateway.spec.listeners[1];
        assert_eq!(
            https.tls.as_ref().unwrap().certificate_refs[0].name,
            traefik::TLS_SECRET
        );
    }

    #[test]
    fn ready_is_accepted_and_programmed_for_the_current_generation() {
        let (_, gateway) = objects(&Config::default());
        let mut g = gateway.unwrap();
        g.metadata.generation = Some(2);
        assert_eq!(
            g.readiness(),
            Err("not yet Accepted; not yet Programmed".into())
        );
        let condition = |t: &str, s: &str, generation: i64| Condition {
            type_: t.into(),
            status: s.into(),
            reason: if s == "True" {
                t.into()
            } else {
                "Invalid".into()
            },
            message: String::new(),
            observed_generation: Some(generation),
        };
        g.status = Some(Status {
            conditions: vec![
                condition("Accepted", "True", 2),
                condition("Programmed", "False", 2),
            ],
        });
        assert_eq!(g.readiness(), Err("Programmed=False (Invalid)".into()));
        g.status = Some(Status {
            conditions: vec![
                condition("Accepted", "True", 2),
                condition("Programmed", "True", 1),
            ],
        });
        assert_eq!(
            g.readiness(),
            Err("Programmed is for generation 1, not yet for 2".into())
        );
        g.status = Some(Status {
            conditions: vec![
                condition("Accepted", "True", 2),
                condition("Programmed", "True", 2),
            ],
        });
        assert_eq!(g.readiness(), Ok(()));
    }

    #[test]
    fn off_makes_none() {
        let mut config = Config::default();
        config.cluster.gateway_api = false;
        assert_eq!(objects(&config), (None, None));
    }

    #[test]
    fn serialized_with_api_version_and_kind_and_no_status() {
        let (_, gateway) = objects(&Config::default());
        let text = serde_saphyr::to_string(&gateway.unwrap()).unwrap();
        assert!(
            text.starts_with("apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n"),
            "{text}"
        );
        assert!(!text.contains("status"), "{text}");
    }
}
