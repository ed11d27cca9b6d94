//! Reads behind `devenv status`: the nodes and whether each is Ready, a Deployment's ready and
//! desired replicas, whether ConfigMaps exist.
//!
//! Not for: judging the results (the status command does) or waiting (that is `wait`).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;
use serde::Serialize;

use super::{Kube, ObjectName};

/// One node and its `Ready` condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    /// The node's name (`devenv-control-plane`).
    pub name: String,
    /// Whether its `Ready` condition is `True`.
    pub ready: bool,
    /// The `Ready` condition's reason and message when it is not ready.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl NodeStatus {
    pub(crate) fn of(node: &Node) -> NodeStatus {
        NodeStatus::since(node, None)
    }

    /// [`NodeStatus::of`], where a `Ready` condition whose last heartbeat is before `since`
    /// (when the node was started) is not Ready: it is what the node's kubelet said before it
    /// stopped, and the node controller keeps it for 40 s before it calls the node unknown.
    pub(crate) fn since(node: &Node, since: Option<Timestamp>) -> NodeStatus {
        let since = since.map(super::wait::whole_seconds);
        let name = node.metadata.name.clone().unwrap_or_default();
        let condition = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"));
        let heartbeat = condition
            .and_then(|c| c.last_heartbeat_time.as_ref())
            .map(|t| t.0);
        match condition {
            Some(c) if c.status == "True" && since.is_some_and(|s| heartbeat.is_none_or(|h| h < s)) => {
                NodeStatus {
                    name,
                    ready: false,
                    reason: Some(match heartbeat {
                        Some(h) => format!(
                            "its Ready condition is from before it was started (last heartbeat {h}); its kubelet has not reported since"
                        ),
                        None => "its Ready condition has no heartbeat; its kubelet has not reported since it was started".to_string(),
                    }),
                }
            }
            Some(c) if c.status == "True" => NodeStatus {
                name,
                ready: true,
                reason: None,
            },
            Some(c) => NodeStatus {
                name,
                ready: false,
                reason: Some(
                    [c.reason.as_deref(), c.message.as_deref()]
                        .into_iter()
                        .flatten()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join(": "),
                )
                .filter(|r| !r.is_empty()),
            },
            None => NodeStatus {
                name,
                ready: false,
                reason: Some("no Ready condition reported yet".to_string()),
            },
        }
    }
}

/// A Deployment's replicas: how many are ready of how many it wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Replicas {
    /// `status.readyReplicas`.
    pub ready: i32,
    /// `spec.replicas` (1 when unset, as the API defaults it).
    pub desired: i32,
}

impl Replicas {
    /// Whether every desired replica is ready.
    pub fn all_ready(&self) -> bool {
        self.ready >= self.desired
    }
}

impl Kube {
    /// Every node of the cluster and whether it is Ready.
    pub async fn nodes(&self) -> anyhow::Result<Vec<NodeStatus>> {
        let api: Api<Node> = Api::all(self.client.clone());
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|err| self.failed("listing the cluster's nodes", &err))?;
        Ok(list.items.iter().map(NodeStatus::of).collect())
    }

    /// The ready and desired replicas of Deployment `namespace/name`, `None` when it does not
    /// exist.
    pub async fn deployment_replicas(
        &self,
        namespace: &str,
        name: &str,
    ) -> anyhow::Result<Option<Replicas>> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let what = ObjectName::new("Deployment", Some(namespace), name);
        let deployment = api
            .get_opt(name)
            .await
            .map_err(|err| self.failed(&format!("reading {what}"), &err))?;
        Ok(deployment.map(|d| Replicas {
            ready: d
                .status
                .as_ref()
                .and_then(|s| s.ready_replicas)
                .unwrap_or(0),
            desired: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        }))
    }

    /// The value of `key` in ConfigMap `namespace/name`; `None` when the ConfigMap or the key
    /// is not there.
    pub async fn config_map_value(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> anyhow::Result<Option<String>> {
        let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        let what = ObjectName::new("ConfigMap", Some(namespace), name);
        let found = api
            .get_opt(name)
            .await
            .map_err(|err| self.failed(&format!("reading {what}"), &err))?;
        Ok(found.and_then(|cm| cm.data).and_then(|mut d| d.remove(key)))
    }

    /// Whether each ConfigMap `(namespace, name)` exists, in the order asked.
    pub async fn config_maps_exist(&self, wanted: &[(&str, &str)]) -> anyhow::Result<Vec<bool>> {
        let mut out = Vec::with_capacity(wanted.len());
        for (namespace, name) in wanted {
            let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
            let what = ObjectName::new("ConfigMap", Some(namespace), name);
            let found = api
                .get_metadata_opt(name)
                .await
                .map_err(|err| self.failed(&format!("reading {what}"), &err))?;
            out.push(found.is_some());
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::mock::{ApiServer, Expect, list, status};
    use super::*;

    fn node(name: &str, ready: &str, reason: &str, message: &str) -> serde_json::Value {
        json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "status": {"conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory"},
                {"type": "Ready", "status": ready, "reason": reason, "message": message}
            ]}
        })
    }

    #[tokio::test]
    async fn nodes_report_ready_and_the_reason_when_not() {
        let (kube, mut server) = ApiServer::start();
        let (nodes, ()) = tokio::join!(kube.nodes(), async move {
            server.expect(Expect::get("/api/v1/nodes")).await.reply(
                200,
                list(
                    "NodeList",
                    vec![
                        node(
                            "devenv-control-plane",
                            "True",
                            "KubeletReady",
                            "kubelet is posting ready status",
                        ),
                        node(
                            "devenv-worker",
                            "False",
                            "KubeletNotReady",
                            "container runtime network not ready: NetworkReady=false",
                        ),
                    ],
                ),
            );
        });
        assert_eq!(
            nodes.unwrap(),
            [
                NodeStatus {
                    name: "devenv-control-plane".into(),
                    ready: true,
                    reason: None
                },
                NodeStatus {
                    name: "devenv-worker".into(),
                    ready: false,
                    reason: Some(
                        "KubeletNotReady: container runtime network not ready: NetworkReady=false"
                            .into()
                    )
                },
            ]
        );
    }

    #[tokio::test]
    async fn deployment_replicas_read_ready_of_desired_and_absence() {
        let (kube, mut server) = ApiServer::start();
        let ((present, absent), ()) =
            tokio::join!(
                async {
                    let a = kube.deployment_replicas("devenv", "traefik").await;
                    let b = kube.deployment_replicas("devenv", "traefik").await;
                    (a, b)
                },
                async move {
                    server
                    .expect(Expect::get("/apis/apps/v1/namespaces/devenv/deployments/traefik"))
                    .await
                    .reply(
                        200,
                        json!({
                            "apiVersion": "apps/v1", "kind": "Deployment",
                            "metadata": {"name": "traefik", "namespace": "devenv", "generation": 1},
                            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "traefik"}},
                                     "template": {"spec": {"containers": [{"name": "traefik"}]}}},
                            "status": {"replicas": 2, "readyReplicas": 1, "observedGeneration": 1}
                        }),
                    );
                    server
                        .expect(Expect::get(
                            "/apis/apps/v1/namespaces/devenv/deployments/traefik",
                        ))
                        .await
                        .reply(
                            404,
                            status(404, "NotFound", "deployments.apps \"traefik\" not found"),
                        );
                }
            );
        let replicas = present.unwrap().unwrap();
        assert_eq!(
            replicas,
            Replicas {
                ready: 1,
                desired: 2
            }
        );
        assert!(!replicas.all_ready());
        assert_eq!(absent.unwrap(), None);
    }

    #[tokio::test]
    async fn config_maps_exist_asks_for_each_one() {
        let (kube, mut server) = ApiServer::start();
        let (found, ()) = tokio::join!(
            kube.config_maps_exist(&[
                ("kube-public", "local-registry-hosting"),
                ("devenv", "devenv-ca")
            ]),
            async move {
                server
                    .expect(Expect::get(
                        "/api/v1/namespaces/kube-public/configmaps/local-registry-hosting",
                    ))
                    .await
                    .reply(
                        200,
                        json!({
                            "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                            "metadata": {"name": "local-registry-hosting", "namespace": "kube-public"}
                        }),
                    );
                server
                    .expect(Expect::get(
                        "/api/v1/namespaces/devenv/configmaps/devenv-ca",
                    ))
                    .await
                    .reply(
                        404,
                        status(404, "NotFound", "configmaps \"devenv-ca\" not found"),
                    );
            }
        );
        assert_eq!(found.unwrap(), [true, false]);
    }
}
