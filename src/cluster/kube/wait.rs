//! Waits, each an explicit condition with a timeout: every node Ready, a Deployment rolled out.
//! On a timeout (or a rollout that gave up) the error carries what the cluster says about it:
//! Events, container states and log tails ([`super::diagnose`]).
//!
//! Not for: reading status once (that is `status`).
//!
//! The conditions are polled with plain GETs rather than watched: each answer holds the whole
//! state a message needs, there is no watch re-list or backoff to reason about, and on a local
//! API server half a second between reads costs nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::ListParams;

use super::status::NodeStatus;
use super::{Kube, ObjectName, describe};
use crate::error::Failure;

/// How long a wait sleeps between two reads.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Where a Deployment's rollout stands, as `kubectl rollout status` judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rollout {
    /// Every replica runs the current template and is available.
    Done,
    /// Still going: what it waits for.
    Progressing(String),
    /// The controller gave up (`ProgressDeadlineExceeded`): why.
    Failed(String),
}

/// The rollout state of a Deployment as the API returned it.
pub(crate) fn rollout(deployment: &Deployment) -> Rollout {
    let generation = deployment.metadata.generation.unwrap_or(0);
    let Some(status) = &deployment.status else {
        return Rollout::Progressing("the controller has not reported a status yet".into());
    };
    if status.observed_generation.unwrap_or(0) < generation {
        return Rollout::Progressing("the controller has not seen the latest change yet".into());
    }
    if let Some(stuck) = status.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Rollout::Failed(
            stuck
                .message
                .clone()
                .unwrap_or_else(|| "progress deadline exceeded".into()),
        );
    }
    let desired = desired_replicas(deployment);
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    if updated < desired {
        Rollout::Progressing(format!(
            "{updated} of {desired} replicas run the current template"
        ))
    } else if replicas > updated {
        Rollout::Progressing(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ))
    } else if available < updated {
        Rollout::Progressing(format!(
            "{available} of {updated} updated replicas are available"
        ))
    } else {
        Rollout::Done
    }
}

/// `spec.replicas`, 1 when unset (as the API defaults it).
fn desired_replicas(deployment: &Deployment) -> i32 {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
}

/// How many of `pods` are Ready and became so at or after their node's start in `started`
/// (their `Ready` condition's last transition), so not on status left from before the node
/// stopped; a pod on a node `started` does not name counts when it is Ready. The API's times
/// have whole seconds: the starts are compared at that precision.
pub(crate) fn ready_since(pods: &[Pod], started: &BTreeMap<String, Timestamp>) -> i32 {
    let fresh = pods.iter().filter(|pod| {
        let since = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .and_then(|node| started.get(node))
            .map(|t| whole_seconds(*t));
        pod.metadata.deletion_timestamp.is_none()
            && pod
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
                .is_some_and(|c| {
                    c.status == "True"
                        && since.is_none_or(|since| {
                            c.last_transition_time
                                .as_ref()
                                .is_some_and(|t| t.0 >= since)
                        })
                })
    });
    i32::try_from(fresh.count()).unwrap_or(i32::MAX)
}

/// `t` with its fraction of a second dropped.
pub(crate) fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

/// The label selector of a Deployment's pods (`k=v,k2=v2`), from its `matchLabels`.
pub(crate) fn pod_selector(deployment: &Deployment) -> Option<String> {
    let labels = deployment.spec.as_ref()?.selector.match_labels.as_ref()?;
    let selector = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    (!selector.is_empty()).then_some(selector)
}

impl Kube {
    /// Wait until the cluster has a node and every node is Ready; return the nodes.
    ///
    /// After `timeout` the error (exit 3) names each node that is not Ready with its condition's
    /// reason, and the node's recent Events.
    ///
    /// `started`: when each node was last started (its container's start, on kind); a node whose
    /// last heartbeat is older is not Ready yet ([`NodeStatus::since`]). Nodes it does not name
    /// are judged by their condition alone.
    pub async fn wait_nodes_ready(
        &self,
        timeout: Duration,
        started: &BTreeMap<String, Timestamp>,
    ) -> anyhow::Result<Vec<NodeStatus>> {
        let api: Api<Node> = Api::all(self.client.clone());
        let mut last = Vec::new();
        let mut last_error = None;
        let waited = tokio::time::timeout(timeout, async {
            loop {
                match api.list(&ListParams::default()).await {
                    Ok(list) => {
                        last = list
                            .items
                            .iter()
                            .map(|n| {
                                let name = n.metadata.name.as_deref().unwrap_or_default();
                                NodeStatus::since(n, started.get(name).copied())
                            })
                            .collect::<Vec<_>>();
                        last_error = None;
                        if !last.is_empty() && last.iter().all(|n| n.ready) {
                            return;
                        }
                    }
                    Err(err) => last_error = Some(describe(&err)),
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        })
        .await;
        if waited.is_ok() {
            return Ok(last);
        }
        let mut message = format!(
            "the cluster's nodes did not become Ready within {} s",
            timeout.as_secs()
        );
        if let Some(err) = last_error {
            message.push_str(&format!(" (last read failed: {err})"));
        }
        if last.is_empty() {
            message.push_str("\nno node has registered");
        }
        for node in last.iter().filter(|n| !n.ready) {
            message.push_str(&format!(
                "\nnode {} is not Ready: {}",
                node.name,
                node.reason.as_deref().unwrap_or("no reason given")
            ));
            let object = ObjectName::new("Node", None, &node.name);
            message.push('\n');
            message.push_str(self.diagnose(&object, None).await.to_string().trim_end());
        }
        Err(Failure::environment(message, Some(self.kubectl_hint("get nodes -o wide"))).into())
    }

    /// Wait until Deployment `namespace/name` has rolled out: the controller observed its latest
    /// generation, and every desired replica is updated and available with no old one left.
    ///
    /// A rollout that gives up (`ProgressDeadlineExceeded`) fails at once; one still going after
    /// `timeout` fails then. Either error (exit 3) carries the Deployment's Events and, for each
    /// pod that is not ready, its container states, Events and last log lines.
    ///
    /// `started`: when each node was last started. After a node restarted, the Deployment's
    /// status may still be the one from before, at the same generation: then it has rolled out
    /// only when as many of its pods as it wants are Ready since their node started
    /// ([`ready_since`]).
    pub async fn wait_rollout(
        &self,
        namespace: &str,
        name: &str,
        timeout: Duration,
        started: &BTreeMap<String, Timestamp>,
    ) -> anyhow::Result<()> {
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), namespace);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let object = ObjectName::new("Deployment", Some(namespace), name);
        let mut last = "it was not read yet".to_string();
        let mut selector = None;
        let waited = tokio::time::timeout(timeout, async {
            loop {
                match api.get_opt(name).await {
                    Ok(Some(deployment)) => {
                        selector = pod_selector(&deployment);
                        match rollout(&deployment) {
                            Rollout::Done => match (started.is_empty(), &selector) {
                                (false, Some(selector)) => {
                                    let listed = pods.list(&ListParams::default().labels(selector)).await;
                                    match listed {
                                        Ok(list) => {
                                            let desired = desired_replicas(&deployment);
                                            let fresh = ready_since(&list.items, started);
                                            if fresh >= desired {
                                                return Ok(());
                                            }
                                            last = format!(
                                                "{fresh} of {desired} pods have turned Ready since their node was started"
                                            );
                                        }
                                        Err(err) => last = format!("listing its pods failed: {}", describe(&err)),
                                    }
                                }
                                _ => return Ok(()),
                            },
                            Rollout::Failed(why) => return Err(why),
                            Rollout::Progressing(why) => last = why,
                        }
                    }
                    Ok(None) => last = "it does not exist".to_string(),
                    Err(err) => last = format!("reading it failed: {}", describe(&err)),
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        })
        .await;
        let headline = match waited {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(why)) => format!("{object} failed to roll out: {why}"),
            Err(_) => format!(
                "{object} did not roll out within {} s: {last}",
                timeout.as_secs()
            ),
        };
        let diagnosis = self.diagnose(&object, selector.as_deref()).await;
        Err(Failure::environment(
            format!("{headline}\n{}", diagnosis.to_string().trim_end()),
            Some(self.kubectl_hint(&format!("-n {namespace} describe deployment {name}"))),
        )
        .into())
    }

    /// `kubectl [--context C] ARGS shows more`.
    pub(crate) fn kubectl_hint(&self, args: &str) -> String {
        match &self.context {
            Some(context) => format!("`kubectl --context {context} {args}` shows more"),
            None => format!("`kubectl {args}` shows more"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::mock::{ApiServer, Expect, list, status};
    use super::*;
    use crate::error::{self, exit};

    /// No node starts known (a cluster devenv did not create).
    static NO_STARTS: BTreeMap<String, Timestamp> = BTreeMap::new();

    const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/devenv/deployments/traefik";

    /// A Deployment `devenv/traefik` of `desired` replicas, at generation 2, whose controller
    /// has observed `observed` and reports `updated`/`available`.
    fn traefik(observed: i64, updated: i32, available: i32) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "traefik", "namespace": "devenv", "generation": 2},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": "traefik"}},
                "template": {"metadata": {"labels": {"app.kubernetes.io/name": "traefik"}},
                             "spec": {"containers": [{"name": "traefik", "image": "traefik:v3"}]}}
            },
            "status": {
                "observedGeneration": observed,
                "replicas": updated.max(1),
                "updatedReplicas": updated,
                "availableReplicas": available,
                "readyReplicas": available
            }
        })
    }

    fn deployment(value: Value) -> Deployment {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn rollout_follows_kubectl_rollout_status() {
        assert_eq!(
            rollout(&deployment(traefik(1, 1, 1))),
            Rollout::Progressing("the controller has not seen the latest change yet".into())
        );
        assert_eq!(
            rollout(&deployment(traefik(2, 0, 0))),
            Rollout::Progressing("0 of 1 replicas run the current template".into())
        );
        let mut old_left = traefik(2, 1, 1);
        old_left["status"]["replicas"] = json!(2);
        assert_eq!(
            rollout(&deployment(old_left)),
            Rollout::Progressing("1 old replicas are pending termination".into())
        );
        assert_eq!(
            rollout(&deployment(traefik(2, 1, 0))),
            Rollout::Progressing("0 of 1 updated replicas are available".into())
        );
        assert_eq!(rollout(&deployment(traefik(2, 1, 1))), Rollout::Done);
        let mut stuck = traefik(2, 1, 0);
        stuck["status"]["conditions"] = json!([{
            "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": "ReplicaSet \"traefik-5d8c\" has timed out progressing."
        }]);
        assert_eq!(
            rollout(&deployment(stuck)),
            Rollout::Failed("ReplicaSet \"traefik-5d8c\" has timed out progressing.".into())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_rollout_is_waited_for() {
        let (kube, mut server) = ApiServer::start();
        let (waited, ()) = tokio::join!(
            kube.wait_rollout("devenv", "traefik", Duration::from_secs(60), &NO_STARTS),
            async move {
                for answer in [traefik(1, 0, 0), traefik(2, 1, 0), traefik(2, 1, 1)] {
                    server
                        .expect(Expect::get(DEPLOYMENT))
                        .await
                        .reply(200, answer);
                }
            }
        );
        waited.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_rollout_that_times_out_shows_events_states_and_log_lines() {
        let (kube, mut server) = ApiServer::start();
        let (waited, ()) = tokio::join!(
            kube.wait_rollout("devenv", "traefik", Duration::from_secs(5), &NO_STARTS),
            async move {
                let (polls, events) = server
                    .polls(
                        Expect::get(DEPLOYMENT),
                        traefik(2, 1, 0),
                        Expect::get("/api/v1/namespaces/devenv/events").query(
                            "fieldSelector",
                            "involvedObject.kind=Deployment,involvedObject.name=traefik",
                        ),
                    )
                    .await;
                assert!(polls > 1, "the Deployment was read again while waiting");
                events.reply(
                    200,
                    list(
                        "EventList",
                        vec![event(
                            "traefik.1",
                            "Deployment",
                            "traefik",
                            "Normal",
                            "ScalingReplicaSet",
                            "Scaled up replica set traefik-7c9f6 to 1",
                            1,
                            "2026-11-23T18:00:00Z",
                        )],
                    ),
                );
                server
                    .expect(
                        Expect::get("/api/v1/namespaces/devenv/pods")
                            .query("labelSelector", "app.kubernetes.io/name=traefik"),
                    )
                    .await
                    .reply(200, list("PodList", vec![crashing_pod()]));
                server
                    .expect(Expect::get("/api/v1/namespaces/devenv/events").query(
                        "fieldSelector",
                        "involvedObject.kind=Pod,involvedObject.name=traefik-7c9f6-x2x4q",
                    ))
                    .await
                    .reply(200, list("EventList", vec![
                        event("traefik-7c9f6-x2x4q.2", "Pod", "traefik-7c9f6-x2x4q", "Warning",
                              "BackOff", "Back-off restarting failed container traefik", 7,
                              "2026-11-23T18:04:00Z"),
                        event("traefik-7c9f6-x2x4q.1", "Pod", "traefik-7c9f6-x2x4q", "Normal",
                              "Scheduled", "Successfully assigned devenv/traefik-7c9f6-x2x4q to devenv-control-plane", 1,
                              "2026-11-23T18:00:01Z"),
                    ]));
                server
                    .expect(
                        Expect::get("/api/v1/namespaces/devenv/pods/traefik-7c9f6-x2x4q/log")
                            .query("container", "traefik")
                            .query("tailLines", "20"),
                    )
                    .await
                    .reply_text(
                        200,
                        "2026-11-23T18:04:00Z INF Traefik version 3.6.2\n\
                         2026-11-23T18:04:00Z ERR error=\"open /certs/tls.crt: no such file or directory\"\n",
                    );
            }
        );
        let err = waited.unwrap_err();
        assert_eq!(error::exit_code(&err), exit::ENVIRONMENT);
        let failure = error::failure(&err).unwrap();
        assert_eq!(
            failure.message,
            "Deployment devenv/traefik did not roll out within 5 s: 0 of 1 updated replicas are available
events of Deployment devenv/traefik:
  Normal ScalingReplicaSet: Scaled up replica set traefik-7c9f6 to 1
pod devenv/traefik-7c9f6-x2x4q is not ready (phase Running):
  container traefik: waiting (CrashLoopBackOff: back-off 1m20s restarting failed container=traefik), 4 restarts
  events:
    Normal Scheduled: Successfully assigned devenv/traefik-7c9f6-x2x4q to devenv-control-plane
    Warning BackOff: Back-off restarting failed container traefik (x7)
  last 20 log lines of container traefik:
    2026-11-23T18:04:00Z INF Traefik version 3.6.2
    2026-11-23T18:04:00Z ERR error=\"open /certs/tls.crt: no such file or directory\""
        );
        assert_eq!(
            failure.hint.as_deref(),
            Some("`kubectl -n devenv describe deployment traefik` shows more")
        );
    }

    #[tokio::test]
    async fn a_rollout_past_its_deadline_fails_at_once_and_tolerates_a_pod_without_log() {
        let (kube, mut server) = ApiServer::start();
        let mut stuck = traefik(2, 1, 0);
        stuck["status"]["conditions"] = json!([{
            "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
            "message": "ReplicaSet \"traefik-7c9f6\" has timed out progressing."
        }]);
        let (waited, ()) = tokio::join!(
            kube.wait_rollout("devenv", "traefik", Duration::from_secs(600), &NO_STARTS),
            async move {
                server
                    .expect(Expect::get(DEPLOYMENT))
                    .await
                    .reply(200, stuck);
                server
                    .expect(Expect::get("/api/v1/namespaces/devenv/events").query(
                        "fieldSelector",
                        "involvedObject.kind=Deployment,involvedObject.name=traefik",
                    ))
                    .await
                    .reply(200, list("EventList", vec![]));
                let mut pulling = crashing_pod();
                pulling["status"]["phase"] = json!("Pending");
                pulling["status"]["containerStatuses"][0]["restartCount"] = json!(0);
                pulling["status"]["containerStatuses"][0]["state"] = json!({"waiting": {
                    "reason": "ImagePullBackOff",
                    "message": "Back-off pulling image \"traefik:v3.6.2\""
                }});
                server
                    .expect(
                        Expect::get("/api/v1/namespaces/devenv/pods")
                            .query("labelSelector", "app.kubernetes.io/name=traefik"),
                    )
                    .await
                    .reply(200, list("PodList", vec![pulling]));
                server
                    .expect(Expect::get("/api/v1/namespaces/devenv/events").query(
                        "fieldSelector",
                        "involvedObject.kind=Pod,involvedObject.name=traefik-7c9f6-x2x4q",
                    ))
                    .await
                    .reply(403, status(403, "Forbidden", "events is forbidden"));
                server
                    .expect(
                        Expect::get("/api/v1/namespaces/devenv/pods/traefik-7c9f6-x2x4q/log")
                            .query("container", "traefik")
                            .query("tailLines", "20"),
                    )
                    .await
                    .reply(400, status(400, "BadRequest",
                        "container \"traefik\" in pod \"traefik-7c9f6-x2x4q\" is waiting to start: trying and failing to pull image"));
            }
        );
        let message = error::failure(&waited.unwrap_err())
            .unwrap()
            .message
            .clone();
        assert_eq!(
            message,
            "Deployment devenv/traefik failed to roll out: ReplicaSet \"traefik-7c9f6\" has timed out progressing.
events of Deployment devenv/traefik:
  (none)
pod devenv/traefik-7c9f6-x2x4q is not ready (phase Pending):
  container traefik: waiting (ImagePullBackOff: Back-off pulling image \"traefik:v3.6.2\")
  events:
    (cannot list them: events is forbidden (Forbidden, HTTP 403))
  last 20 log lines of container traefik:
    (no log: container \"traefik\" in pod \"traefik-7c9f6-x2x4q\" is waiting to start: trying and failing to pull image (BadRequest, HTTP 400))"
        );
    }

    /// A node Ready since its last heartbeat at `heartbeat`.
    fn node_heard(name: &str, heartbeat: &str) -> Node {
        let mut node = node(name, "True");
        node["status"]["conditions"][0]["lastHeartbeatTime"] = json!(heartbeat);
        serde_json::from_value(node).unwrap()
    }

    fn at(t: &str) -> Timestamp {
        t.parse().unwrap()
    }

    #[test]
    fn after_a_start_a_node_is_ready_only_on_a_heartbeat_since() {
        let started = at("2026-12-07T10:00:05.700Z");
        // What its kubelet said before the stop.
        let old = NodeStatus::since(&node_heard("n", "2026-12-07T09:58:00Z"), Some(started));
        assert!(!old.ready);
        assert_eq!(
            old.reason.as_deref(),
            Some(
                "its Ready condition is from before it was started (last heartbeat 2026-12-07T09:58:00Z); its kubelet has not reported since"
            )
        );
        // The API's times have whole seconds: a heartbeat in the second of the start counts.
        assert!(NodeStatus::since(&node_heard("n", "2026-12-07T10:00:05Z"), Some(started)).ready);
        assert!(NodeStatus::since(&node_heard("n", "2026-12-07T10:00:09Z"), Some(started)).ready);
        // Without a start, the heartbeat does not matter.
        assert!(NodeStatus::since(&node_heard("n", "2026-12-07T09:58:00Z"), None).ready);
        let silent: Node = serde_json::from_value(node("n", "True")).unwrap();
        assert!(!NodeStatus::since(&silent, Some(started)).ready);
    }

    /// A pod on `node` whose Ready condition is `status` since `transition`.
    fn pod_ready(name: &str, node: &str, status: &str, transition: &str, deleting: bool) -> Pod {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "devenv"},
            "spec": {"nodeName": node, "containers": []},
            "status": {"conditions": [
                {"type": "Ready", "status": status, "lastTransitionTime": transition}
            ]}
        });
        if deleting {
            pod["metadata"]["deletionTimestamp"] = json!("2026-12-07T10:00:06Z");
        }
        serde_json::from_value(pod).unwrap()
    }

    #[test]
    fn only_pods_that_turned_ready_since_their_node_started_count() {
        // Node `a` was started again; node `b` has run all along (its start is long ago).
        let started = BTreeMap::from([
            ("a".to_string(), at("2026-12-07T10:00:05.700Z")),
            ("b".to_string(), at("2026-12-01T08:00:00Z")),
        ]);
        let pods = [
            // Ready before the restart: its kubelet has not looked at it yet.
            pod_ready("old", "a", "True", "2026-12-07T09:00:00Z", false),
            pod_ready("new", "a", "True", "2026-12-07T10:00:05Z", false),
            pod_ready("starting", "a", "False", "2026-12-07T10:00:07Z", false),
            pod_ready("going", "a", "True", "2026-12-07T10:00:08Z", true),
            // On the node that kept running: Ready since long before `a`'s restart, and fine.
            pod_ready("kept", "b", "True", "2026-12-05T12:00:00Z", false),
            // A node devenv knows no start of (not a kind node).
            pod_ready("elsewhere", "c", "True", "2026-01-01T00:00:00Z", false),
        ];
        assert_eq!(ready_since(&pods, &started), 3);
        assert_eq!(ready_since(&pods[..1], &started), 0);
        assert_eq!(ready_since(&pods[..1], &NO_STARTS), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_restart_a_rollout_left_from_before_is_not_taken_as_done() {
        let started = BTreeMap::from([("n".to_string(), at("2026-12-07T10:00:05Z"))]);
        let (kube, mut server) = ApiServer::start();
        let pods_path = "/api/v1/namespaces/devenv/pods";
        let (done, ()) = tokio::join!(
            kube.wait_rollout("devenv", "traefik", Duration::from_secs(60), &started),
            async move {
                // The Deployment reports what it did before the stop, at the same generation.
                for transition in ["2026-12-07T09:00:00Z", "2026-12-07T10:00:11Z"] {
                    server
                        .expect(Expect::get(DEPLOYMENT))
                        .await
                        .reply(200, traefik(2, 1, 1));
                    server
                        .expect(
                            Expect::get(pods_path)
                                .query("labelSelector", "app.kubernetes.io/name=traefik"),
                        )
                        .await
                        .reply(
                            200,
                            list(
                                "PodList",
                                vec![
                                    serde_json::to_value(pod_ready(
                                        "t", "n", "True", transition, false,
                                    ))
                                    .unwrap(),
                                ],
                            ),
                        );
                }
            }
        );
        done.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn nodes_are_waited_for_until_all_are_ready() {
        let (kube, mut server) = ApiServer::start();
        let (nodes, ()) = tokio::join!(
            kube.wait_nodes_ready(Duration::from_secs(60), &NO_STARTS),
            async move {
                let answers = [
                    list("NodeList", vec![]),
                    list("NodeList", vec![node("devenv-control-plane", "False")]),
                    list("NodeList", vec![node("devenv-control-plane", "True")]),
                ];
                for answer in answers {
                    server
                        .expect(Expect::get("/api/v1/nodes"))
                        .await
                        .reply(200, answer);
                }
            }
        );
        let nodes = nodes.unwrap();
        assert_eq!(nodes.len(), 1);
        assert!(nodes[0].ready);
    }

    #[tokio::test(start_paused = true)]
    async fn nodes_that_stay_not_ready_are_named_with_their_events() {
        let (kube, mut server) = ApiServer::start();
        let (nodes, ()) = tokio::join!(
            kube.wait_nodes_ready(Duration::from_secs(2), &NO_STARTS),
            async move {
                let (polls, events) = server
                    .polls(
                        Expect::get("/api/v1/nodes"),
                        list("NodeList", vec![node("devenv-control-plane", "False")]),
                        Expect::get("/api/v1/events").query(
                            "fieldSelector",
                            "involvedObject.kind=Node,involvedObject.name=devenv-control-plane",
                        ),
                    )
                    .await;
                assert!(polls > 1, "the nodes were read again while waiting");
                events.reply(
                    200,
                    list(
                        "EventList",
                        vec![event(
                            "devenv-control-plane.1",
                            "Node",
                            "devenv-control-plane",
                            "Normal",
                            "NodeHasSufficientMemory",
                            "Node devenv-control-plane status is now: NodeHasSufficientMemory",
                            1,
                            "2026-11-23T18:00:00Z",
                        )],
                    ),
                );
            }
        );
        let err = nodes.unwrap_err();
        assert_eq!(error::exit_code(&err), exit::ENVIRONMENT);
        assert_eq!(
            error::failure(&err).unwrap().message,
            "the cluster's nodes did not become Ready within 2 s
node devenv-control-plane is not Ready: KubeletNotReady: container runtime network not ready
events of Node devenv-control-plane:
  Normal NodeHasSufficientMemory: Node devenv-control-plane status is now: NodeHasSufficientMemory"
        );
    }

    fn node(name: &str, ready: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name},
            "status": {"conditions": [{
                "type": "Ready", "status": ready,
                "reason": if ready == "True" { "KubeletReady" } else { "KubeletNotReady" },
                "message": if ready == "True" { "kubelet is posting ready status" } else { "container runtime network not ready" }
            }]}
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn event(
        name: &str,
        kind: &str,
        object: &str,
        type_: &str,
        reason: &str,
        message: &str,
        count: i32,
        last: &str,
    ) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "devenv"},
            "involvedObject": {"kind": kind, "name": object, "namespace": "devenv"},
            "type": type_, "reason": reason, "message": message,
            "count": count, "firstTimestamp": last, "lastTimestamp": last
        })
    }

    fn crashing_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "traefik-7c9f6-x2x4q", "namespace": "devenv",
                         "labels": {"app.kubernetes.io/name": "traefik"}},
            "spec": {"containers": [{"name": "traefik", "image": "traefik:v3.6.2"}]},
            "status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "False", "reason": "ContainersNotReady"}],
                "containerStatuses": [{
                    "name": "traefik", "ready": false, "restartCount": 4,
                    "image": "traefik:v3.6.2", "imageID": "",
                    "state": {"waiting": {"reason": "CrashLoopBackOff",
                              "message": "back-off 1m20s restarting failed container=traefik"}}
                }]
            }
        })
    }
}
