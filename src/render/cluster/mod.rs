//! The Kubernetes objects devenv puts into the cluster, built as typed k8s-openapi structs
//! from `&Config`: the Traefik ingress ([`traefik`]), the KEP-1755 registry ConfigMap
//! ([`registry`]), the CA ConfigMaps and TLS Secret ([`certificates`]), and the CoreDNS server
//! block and zone for the domain ([`coredns`]).
//!
//! The same objects are applied by the cluster driver (server-side apply, field manager
//! [`FIELD_MANAGER`]) and written by `devenv render` under `kind/manifests/` ([`render`]), so
//! what a user reads is what devenv applies. Everything here is pure. Not for: talking to the
//! API server, creating the TLS material (that is `crate::tls`), or the KinD config (that is
//! `render::kind`).

pub mod certificates;
pub mod coredns;
pub mod gateway;
pub mod registry;
pub mod traefik;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::{Artifact, KIND_DIR, generated_header};
use crate::config::Config;
use crate::tls::Bundle;

/// The namespace of devenv's own workloads (the ingress, its config and certificate).
pub const NAMESPACE: &str = "devenv";
/// The namespace readable by every authenticated user, where cluster-wide facts are published.
pub const PUBLIC_NAMESPACE: &str = "kube-public";
/// The field manager of devenv's server-side applies.
pub const FIELD_MANAGER: &str = "devenv";
/// The field manager the by-hand instructions in the rendered manifests use. Not
/// [`FIELD_MANAGER`]: an apply under devenv's manager of a partial object (the zone alone)
/// would remove every field devenv's own applies set and the file does not hold (the
/// Corefile). Under another manager the fields are shared, and nothing else changes.
pub const BY_HAND_FIELD_MANAGER: &str = "devenv-by-hand";
/// Label naming who manages an object.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Label naming the environment (devenv.yaml's `name`) an object belongs to.
pub const PROJECT_LABEL: &str = "dev.devenv.project";
/// Directory, relative to the output root, of the rendered manifests.
pub const MANIFESTS_DIR: &str = "manifests";

/// One object devenv applies, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Namespace(Namespace),
    ServiceAccount(ServiceAccount),
    ClusterRole(ClusterRole),
    ClusterRoleBinding(ClusterRoleBinding),
    IngressClass(IngressClass),
    ConfigMap(ConfigMap),
    Secret(Secret),
    /// Boxed, as is the Deployment: each is several times the size of the other objects.
    Service(Box<Service>),
    Deployment(Box<Deployment>),
    /// Gateway API objects: applied only once the cluster serves their CRDs.
    GatewayClass(gateway::GatewayClass),
    Gateway(Box<gateway::Gateway>),
}

impl Object {
    fn metadata(&self) -> &ObjectMeta {
        match self {
            Object::Namespace(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
            Object::ClusterRole(o) => &o.metadata,
            Object::ClusterRoleBinding(o) => &o.metadata,
            Object::IngressClass(o) => &o.metadata,
            Object::ConfigMap(o) => &o.metadata,
            Object::Secret(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::GatewayClass(o) => &o.metadata,
            Object::Gateway(o) => &o.metadata,
        }
    }

    /// The object's kind (`Deployment`).
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Namespace(_) => "Namespace",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::ClusterRole(_) => "ClusterRole",
            Object::ClusterRoleBinding(_) => "ClusterRoleBinding",
            Object::IngressClass(_) => "IngressClass",
            Object::ConfigMap(_) => "ConfigMap",
            Object::Secret(_) => "Secret",
            Object::Service(_) => "Service",
            Object::Deployment(_) => "Deployment",
            Object::GatewayClass(_) => "GatewayClass",
            Object::Gateway(_) => "Gateway",
        }
    }

    /// Whether the object is a Gateway API kind, which the API server serves only once the
    /// Gateway API CRDs are installed.
    pub fn needs_gateway_api(&self) -> bool {
        matches!(self, Object::GatewayClass(_) | Object::Gateway(_))
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.metadata().name.as_deref().unwrap_or_default()
    }

    /// The object's namespace; `None` for cluster-scoped objects.
    pub fn namespace(&self) -> Option<&str> {
        self.metadata().namespace.as_deref()
    }

    /// `Kind namespace/name` (or `Kind name`), for messages.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.kind(), self.name()),
            None => format!("{} {}", self.kind(), self.name()),
        }
    }

    /// The object as one YAML document (with `apiVersion` and `kind`).
    pub fn to_yaml(&self) -> anyhow::Result<String> {
        let text = match self {
            Object::Namespace(o) => serde_saphyr::to_string(o),
            Object::ServiceAccount(o) => serde_saphyr::to_string(o),
            Object::ClusterRole(o) => serde_saphyr::to_string(o),
            Object::ClusterRoleBinding(o) => serde_saphyr::to_string(o),
            Object::IngressClass(o) => serde_saphyr::to_string(o),
            Object::ConfigMap(o) => serde_saphyr::to_string(o),
            Object::Secret(o) => serde_saphyr::to_string(o),
            Object::Service(o) => serde_saphyr::to_string(o),
            Object::Deployment(o) => serde_saphyr::to_string(o),
            Object::GatewayClass(o) => serde_saphyr::to_string(o),
            Object::Gateway(o) => serde_saphyr::to_string(o),
        };
        Ok(text?)
    }
}

/// The labels every object devenv makes carries.
pub fn labels(config: &Config) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), "devenv".to_string()),
        (PROJECT_LABEL.to_string(), config.name.clone()),
    ])
}

/// Metadata with devenv's labels: `name` in `namespace` (`None`: cluster-scoped).
pub(crate) fn meta(config: &Config, name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(labels(config)),
        ..ObjectMeta::default()
    }
}

/// Every object built from the config alone, in apply order: the namespace first, then the
/// ingress's RBAC, classes, config, Service and Deployment, then the KEP-1755 ConfigMap (when
/// there is a registry), then the GatewayClass and Gateway (with `cluster.gateway_api`). The
/// TLS objects ([`tls_objects`]) go right after the namespace; use
/// [`all`] for the complete list in order.
pub fn objects(config: &Config) -> Vec<Object> {
    let mut out = traefik::objects(config);
    if let Some(hosting) = registry::local_registry_hosting(config) {
        out.push(Object::ConfigMap(hosting));
    }
    out.extend(gateway_objects(config));
    out
}

/// The GatewayClass and the Gateway (none with `cluster.gateway_api: false`).
pub fn gateway_objects(config: &Config) -> Vec<Object> {
    let (class, gateway) = gateway::objects(config);
    let mut out = Vec::new();
    out.extend(class.map(Object::GatewayClass));
    out.extend(gateway.map(|g| Object::Gateway(Box::new(g))));
    out
}

/// The objects made from devenv's TLS material: the CA ConfigMaps (`kube-public` and
/// [`NAMESPACE`]) and the ingress's default certificate Secret.
pub fn tls_objects(config: &Config, bundle: &Bundle) -> Vec<Object> {
    certificates::objects(config, bundle)
}

/// Everything devenv applies, in order: the namespace, the TLS objects (so the ingress's pod
/// finds its Secret), then the rest of [`objects`]. The ingress's pod template also carries
/// the certificate's digest ([`traefik::CERT_DIGEST_ANNOTATION`]): Traefik reads the
/// certificate files only when it loads its configuration, so a renewed certificate must
/// replace the pod.
pub fn all(config: &Config, bundle: &Bundle) -> Vec<Object> {
    let mut rest = objects(config);
    for o in &mut rest {
        if let Object::Deployment(d) = o {
            traefik::annotate_certificate(d, bundle);
        }
    }
    let namespace = rest.remove(0);
    let mut out = vec![namespace];
    out.extend(tls_objects(config, bundle));
    out.extend(rest);
    out
}

/// The objects as one multi-document YAML text, each document separated by `---`.
pub fn to_documents(objects: &[Object]) -> anyhow::Result<String> {
    let mut out = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&o.to_yaml()?);
    }
    Ok(out)
}

/// The rendered manifests: `kind/manifests/ingress.yaml` (Traefik),
/// `kind/manifests/local-registry-hosting.yaml` (when there is a registry),
/// `kind/manifests/gateway.yaml` (the GatewayClass and Gateway), and the CoreDNS
/// zone (`coredns-zone.yaml`, the zone file as a partial ConfigMap) with its server block
/// (`coredns-server-block.conf`).
pub fn render(config: &Config) -> anyhow::Result<Vec<Artifact>> {
    let dir = format!("{KIND_DIR}/{MANIFESTS_DIR}");
    let mut out = Vec::new();
    let header = format!(
        "{}{}",
        generated_header("#"),
        certificates::by_hand_instructions(config)
    );
    out.push(Artifact::new(
        format!("{dir}/ingress.yaml"),
        format!("{header}{}", to_documents(&traefik::objects(config))?),
    ));
    if let Some(hosting) = registry::local_registry_hosting(config) {
        out.push(Artifact::new(
            format!("{dir}/local-registry-hosting.yaml"),
            format!(
                "{}{}",
                generated_header("#"),
                to_documents(&[Object::ConfigMap(hosting)])?
            ),
        ));
    }
    let gateway = gateway_objects(config);
    if !gateway.is_empty() {
        out.push(Artifact::new(
            format!("{dir}/gateway.yaml"),
            format!(
                "{}{}{}",
                generated_header("#"),
                gateway::by_hand_instructions(),
                to_documents(&gateway)?
            ),
        ));
    }
    out.push(Artifact::new(
        format!("{dir}/coredns-zone.yaml"),
        format!(
            "{}{}{}",
            generated_header("#"),
            coredns::by_hand_instructions(config),
            to_documents(&[Object::ConfigMap(coredns::zone_config_map(config))])?
        ),
    ));
    out.push(Artifact::new(
        format!("{dir}/coredns-server-block.conf"),
        format!("{}{}", generated_header("#"), coredns::server_block(config)),
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_object_carries_devenvs_labels_and_the_namespace_comes_first() {
        let config = Config::default();
        let objects = objects(&config);
        assert_eq!(objects[0].describe(), "Namespace devenv");
        for o in &objects {
            let labels = o.metadata().labels.as_ref().expect("labels");
            assert_eq!(labels[MANAGED_BY_LABEL], "devenv", "{}", o.describe());
            assert_eq!(labels[PROJECT_LABEL], "macula", "{}", o.describe());
        }
    }

    #[test]
    fn all_puts_the_tls_objects_after_the_namespace_and_ties_the_pod_to_the_certificate() {
        let config = Config::default();
        let state = tempfile::tempdir().unwrap();
        let bundle = crate::tls::ensure(state.path(), &config).unwrap();
        let order: Vec<String> = all(&config, &bundle).iter().map(Object::describe).collect();
        assert_eq!(
            order[..5],
            [
                "Namespace devenv",
                "ConfigMap kube-public/devenv-ca",
                "ConfigMap devenv/devenv-ca",
                "Secret devenv/devenv-tls",
                "ServiceAccount devenv/traefik",
            ]
        );
        assert_eq!(order.len(), objects(&config).len() + 3);
        let digest = |objects: Vec<Object>| {
            objects.into_iter().find_map(|o| match o {
                Object::Deployment(d) => d
                    .spec?
                    .template
                    .metadata?
                    .annotations?
                    .get(traefik::CERT_DIGEST_ANNOTATION)
                    .cloned(),
                _ => None,
            })
        };
        assert!(digest(objects(&config)).is_none());
        let first = digest(all(&config, &bundle)).expect("the certificate's digest");
        let later = time::OffsetDateTime::now_utc() + time::Duration::days(400);
        let renewed = crate::tls::ensure_at(state.path(), &config, later).unwrap();
        assert!(renewed.issued);
        assert_ne!(digest(all(&config, &renewed)).unwrap(), first);

        let secret = all(&config, &bundle)
            .into_iter()
            .find_map(|o| match o {
                Object::Secret(s) => Some(s),
                _ => None,
            })
            .unwrap();
        assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
        let data = secret.data.unwrap();
        assert_eq!(data["tls.crt"].0, bundle.cert_pem.as_bytes());
        assert_eq!(data["tls.key"].0, bundle.key_pem().as_bytes());
    }

    #[test]
    fn documents_carry_api_version_and_kind() {
        let text = to_documents(&objects(&Config::default())).unwrap();
        assert!(
            text.starts_with("apiVersion: v1\nkind: Namespace\n"),
            "{text}"
        );
        assert!(
            text.contains("---\napiVersion: apps/v1\nkind: Deployment\n"),
            "{text}"
        );
    }
}
