//! Server-side apply of one typed object (field manager `devenv`, forced), for any namespaced or
//! cluster-scoped k8s-openapi resource.
//!
//! Not for: building the objects (`render::cluster`), or deciding what to apply.

use k8s_openapi::{ClusterResourceScope, NamespaceResourceScope};
use kube::Resource;
use kube::api::{GetParams, Patch, PatchParams};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{FIELD_MANAGER, Kube, ObjectName};

/// Whether a resource's URL names a namespace: implemented for k8s-openapi's two scopes so that
/// [`Kube::apply`] takes both kinds of object and checks at compile time that it can address them.
pub trait ApplyScope {
    /// True for namespaced resources.
    const NAMESPACED: bool;
}

impl ApplyScope for NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl ApplyScope for ClusterResourceScope {
    const NAMESPACED: bool = false;
}

impl Kube {
    /// Server-side apply `obj` (field manager `devenv`, `force=true`: devenv's fields win over
    /// another manager's) and return the object as the API server stored it.
    ///
    /// A namespaced object must name its namespace. An error names the object
    /// (kind namespace/name) and carries the API's message.
    pub async fn apply<K>(&self, obj: &K) -> anyhow::Result<K>
    where
        K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
        K::Scope: ApplyScope,
    {
        let (name, namespace, what) = located(obj);
        if name.is_empty() {
            anyhow::bail!("cannot apply a {} without a name", K::kind(&()));
        }
        if <K::Scope as ApplyScope>::NAMESPACED && namespace.is_none() {
            anyhow::bail!("cannot apply {what}: it names no namespace");
        }
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let request = kube::core::Request::new(K::url_path(&(), namespace))
            .patch(name, &params, &Patch::Apply(obj))
            .map_err(|err| anyhow::anyhow!("cannot apply {what}: {err}"))?;
        self.client
            .request::<K>(request)
            .await
            .map_err(|err| self.failed(&format!("applying {what}"), &err))
    }

    /// [`Kube::foreign`] for the namespace `name`.
    pub async fn foreign_namespace(&self, name: &str) -> anyhow::Result<Option<String>> {
        let namespace = k8s_openapi::api::core::v1::Namespace {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_string()),
                ..Default::default()
            },
            ..Default::default()
        };
        self.foreign(&namespace).await
    }

    /// Whether an object of `obj`'s kind, name and namespace exists that devenv did not make:
    /// its `app.kubernetes.io/managed-by` label is not `devenv`. `Ok(None)` when there is none
    /// or it is devenv's; else who manages it (the label's value, or `unknown`).
    pub async fn foreign<K>(&self, obj: &K) -> anyhow::Result<Option<String>>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
        K::Scope: ApplyScope,
    {
        let (name, namespace, what) = located(obj);
        let request = kube::core::Request::new(K::url_path(&(), namespace))
            .get(name, &GetParams::default())
            .map_err(|err| anyhow::anyhow!("cannot read {what}: {err}"))?;
        match self.client.request::<K>(request).await {
            Ok(live) => {
                let manager = live
                    .meta()
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(crate::render::cluster::MANAGED_BY_LABEL))
                    .cloned();
                Ok(match manager.as_deref() {
                    Some("devenv") => None,
                    Some(other) => Some(other.to_string()),
                    None => Some("unknown".to_string()),
                })
            }
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(None),
            Err(err) => Err(self.failed(&format!("reading {what}"), &err)),
        }
    }
}

/// `obj`'s name, its namespace (none for a cluster-scoped kind) and how messages name it.
fn located<K>(obj: &K) -> (&str, Option<&str>, ObjectName)
where
    K: Resource<DynamicType = ()>,
    K::Scope: ApplyScope,
{
    let meta = obj.meta();
    let name = meta.name.as_deref().unwrap_or_default();
    let namespace = if <K::Scope as ApplyScope>::NAMESPACED {
        meta.namespace.as_deref()
    } else {
        None
    };
    let what = ObjectName::new(&K::kind(&()), namespace, name);
    (name, namespace, what)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
    use k8s_openapi::api::rbac::v1::ClusterRole;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    use super::super::mock::{ApiServer, Expect, status};

    fn config_map() -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("devenv-ca".into()),
                namespace: Some("kube-public".into()),
                labels: Some(BTreeMap::from([(
                    "app.kubernetes.io/managed-by".to_string(),
                    "devenv".to_string(),
                )])),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                "ca.crt".to_string(),
                "-----BEGIN CERTIFICATE-----\n".to_string(),
            )])),
            ..ConfigMap::default()
        }
    }

    #[tokio::test]
    async fn a_namespaced_object_is_applied_with_devenv_as_forced_field_manager() {
        let (kube, mut server) = ApiServer::start();
        let sent = config_map();
        let expected_body = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "devenv-ca",
                "namespace": "kube-public",
                "labels": {"app.kubernetes.io/managed-by": "devenv"}
            },
            "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\n"}
        });
        let mut stored = expected_body.clone();
        stored["metadata"]["uid"] = json!("0b7e1c9e-5c53-4c55-9d7a-8f1f0f1c2b3a");
        stored["metadata"]["resourceVersion"] = json!("4711");
        let (applied, ()) = tokio::join!(kube.apply(&sent), async {
            server
                .expect(
                    Expect::apply("/api/v1/namespaces/kube-public/configmaps/devenv-ca")
                        .body(expected_body),
                )
                .await
                .reply(200, stored);
        });
        let applied = applied.unwrap();
        assert_eq!(applied.metadata.resource_version.as_deref(), Some("4711"));
        assert_eq!(applied.data, sent.data);
    }

    #[tokio::test]
    async fn a_cluster_scoped_object_is_applied_at_its_cluster_path() {
        let (kube, mut server) = ApiServer::start();
        let sent = ClusterRole {
            metadata: ObjectMeta {
                name: Some("devenv-traefik".into()),
                ..ObjectMeta::default()
            },
            ..ClusterRole::default()
        };
        let body = json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": "devenv-traefik"}
        });
        let (applied, ()) = tokio::join!(kube.apply(&sent), async {
            server
                .expect(
                    Expect::apply("/apis/rbac.authorization.k8s.io/v1/clusterroles/devenv-traefik")
                        .body(body.clone()),
                )
                .await
                .reply(200, body.clone());
        });
        assert_eq!(
            applied.unwrap().metadata.name.as_deref(),
            Some("devenv-traefik")
        );
    }

    #[tokio::test]
    async fn a_conflict_names_the_object_and_carries_the_api_message() {
        let (kube, mut server) = ApiServer::start();
        let message = "Apply failed with 1 conflict: conflict with \"kubectl\": .data.ca.crt";
        let sent = config_map();
        let (applied, ()) = tokio::join!(kube.apply(&sent), async {
            server
                .expect(Expect::apply(
                    "/api/v1/namespaces/kube-public/configmaps/devenv-ca",
                ))
                .await
                .reply(409, status(409, "Conflict", message));
        });
        let err = format!("{:#}", applied.unwrap_err());
        assert!(
            err.contains("applying ConfigMap kube-public/devenv-ca"),
            "{err}"
        );
        assert!(err.contains(message), "{err}");
        assert!(err.contains("Conflict, HTTP 409"), "{err}");
    }

    #[tokio::test]
    async fn an_invalid_object_surfaces_the_validation_message() {
        let (kube, mut server) = ApiServer::start();
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some("Devenv".into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let message = "Namespace \"Devenv\" is invalid: metadata.name: Invalid value: \"Devenv\": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'";
        let (applied, ()) = tokio::join!(kube.apply(&namespace), async {
            server
                .expect(Expect::apply("/api/v1/namespaces/Devenv"))
                .await
                .reply(422, status(422, "Invalid", message));
        });
        let err = format!("{:#}", applied.unwrap_err());
        assert!(err.starts_with("applying Namespace Devenv: "), "{err}");
        assert!(err.contains(message), "{err}");
    }

    #[tokio::test]
    async fn a_namespaced_object_without_namespace_is_refused_before_any_request() {
        let (kube, server) = ApiServer::start();
        // Any request now fails instead of waiting for an answer.
        drop(server);
        let mut cm = config_map();
        cm.metadata.namespace = None;
        let err = kube.apply(&cm).await.unwrap_err().to_string();
        assert_eq!(
            err,
            "cannot apply ConfigMap devenv-ca: it names no namespace"
        );
    }

    #[tokio::test]
    async fn an_object_is_foreign_only_when_it_exists_without_devenvs_label() {
        use k8s_openapi::api::networking::v1::IngressClass;
        let (kube, mut server) = ApiServer::start();
        let class = IngressClass {
            metadata: ObjectMeta {
                name: Some("nginx".into()),
                ..ObjectMeta::default()
            },
            ..IngressClass::default()
        };
        const PATH: &str = "/apis/networking.k8s.io/v1/ingressclasses/nginx";
        let live = |labels: serde_json::Value| {
            json!({
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IngressClass",
                "metadata": {"name": "nginx", "labels": labels},
                "spec": {"controller": "k8s.io/ingress-nginx"}
            })
        };
        for (answer, code, expected) in [
            (
                live(json!({"app.kubernetes.io/managed-by": "Helm"})),
                200,
                Some("Helm"),
            ),
            (live(json!({})), 200, Some("unknown")),
            (
                live(json!({"app.kubernetes.io/managed-by": "devenv"})),
                200,
                None,
            ),
            (status(404, "NotFound", "not found"), 404, None),
        ] {
            let (found, ()) = tokio::join!(kube.foreign(&class), async {
                server
                    .expect(Expect::get(PATH))
                    .await
                    .reply(code, answer.clone());
            });
            assert_eq!(found.unwrap().as_deref(), expected, "{answer}");
        }
        // A read that fails is an error naming the object, not "absent".
        let (found, ()) = tokio::join!(kube.foreign(&class), async {
            server
                .expect(Expect::get(PATH))
                .await
                .reply(403, status(403, "Forbidden", "ingressclasses is forbidden"));
        });
        let err = format!("{:#}", found.unwrap_err());
        assert!(err.starts_with("reading IngressClass nginx: "), "{err}");
    }
}
