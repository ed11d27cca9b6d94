//! The node agent: the ONE test double of the real-control-plane tier. It stands in for the
//! kubelets and nothing else, as kwok does:
//!
//! - it registers its nodes and keeps each Ready: the Node's `Ready` condition with a heartbeat
//!   every few seconds, and the node's Lease in `kube-node-lease` renewed;
//! - it moves every pod the real scheduler put on one of its nodes from Pending to Running and
//!   Ready (all containers running, `restartCount` 0), or to Succeeded for a run-to-completion
//!   pod (`restartPolicy` Never or OnFailure, every container terminated with exit code 0);
//! - a pod whose image is named in [`UNPULLABLE`] stays Pending with its containers waiting in
//!   `ErrImagePull`, and the agent posts the kubelet's `Failed` event for it;
//! - a pod whose image is named in [`CRASHING`] is Running but never Ready: its containers wait
//!   in `CrashLoopBackOff` after a first run that exited 1, having written [`CRASH_LOG`];
//! - run-to-completion pods of the images given to [`runner::enable`] run FOR REAL, in a
//!   container (see [`runner`]): devenv's in-cluster lookup pod;
//! - it serves the kubelet's log endpoint ([`kubelet`]), so that `kubectl logs` and devenv's log
//!   reads go through the real API server;
//! - it finishes graceful deletions (`gracePeriodSeconds: 0`), as a kubelet does once the
//!   containers stopped.
//!
//! Not simulated: containers of the other pods (nothing runs; their logs are empty), pod
//! networking (pods get an address from 10.244.0.0/16, nothing answers there), the kubelet's
//! exec and port-forward endpoints, probes.

pub mod kubelet;
pub mod runner;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;

/// Images no node can pull: a pod of one never starts (a test of a rollout that times out).
pub const UNPULLABLE: &str = "devenv-test/unpullable";
/// Images whose containers exit 1 at once, each time they are started.
pub const CRASHING: &str = "devenv-test/crashing";
/// What a [`CRASHING`] container writes before it exits.
pub const CRASH_LOG: &str = "devenv-test: cannot listen on :8000: address already in use";

/// How often the agent looks at fake kind's node containers.
const TICK: Duration = Duration::from_secs(1);
/// Every how many ticks the nodes' heartbeats are posted (the node controller waits 40 s before
/// it calls a silent node NotReady).
const HEARTBEAT_TICKS: u64 = 5;

/// The label fake kind puts on the Nodes it registers for its node containers
/// (tests/support/fake-kind): the cluster's name.
pub const FAKE_KIND_LABEL: &str = "fake-kind.devenv.test/cluster";
/// The annotation on those Nodes: seconds from the container's start until its API server (and
/// so its kubelet) answers.
pub const FAKE_KIND_DELAY: &str = "fake-kind.devenv.test/api-delay";

/// The nodes whose pods the agent runs now: its own, and fake kind's whose container runs and
/// whose start-up delay has passed.
fn live() -> &'static std::sync::Mutex<std::collections::BTreeSet<String>> {
    static LIVE: std::sync::OnceLock<std::sync::Mutex<std::collections::BTreeSet<String>>> =
        std::sync::OnceLock::new();
    LIVE.get_or_init(Default::default)
}

/// Play the kubelet of each Node fake kind registered, as its container allows: nothing while
/// the container is stopped or starting (the node's heartbeat stops, as a stopped kind node's
/// does), and once it is up again, a heartbeat at once and its pods' containers restarted (a
/// new attempt, Ready since now), as a real node's kubelet does after `docker start`.
async fn fake_kind_nodes(
    client: &kube::Client,
    port: u16,
    boots: &mut BTreeMap<String, String>,
    tick: u64,
) -> anyhow::Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    let nodes = api
        .list(&ListParams::default().labels(FAKE_KIND_LABEL))
        .await?;
    for node in nodes.items {
        let Some(name) = node.metadata.name.clone() else {
            continue;
        };
        let delay: i64 = node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(FAKE_KIND_DELAY))
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        let out = tokio::process::Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{.State.Running}} {{.State.StartedAt}}",
                &name,
            ])
            .output()
            .await?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let (running, started) = text.split_once(' ').unwrap_or(("false", ""));
        let up_since = started
            .parse::<k8s_openapi::jiff::Timestamp>()
            .ok()
            .and_then(|t| {
                t.checked_add(k8s_openapi::jiff::SignedDuration::from_secs(delay))
                    .ok()
            });
        let up =
            running == "true" && up_since.is_some_and(|t| t <= k8s_openapi::jiff::Timestamp::now());
        if !up {
            live().lock().unwrap().remove(&name);
            continue;
        }
        let booted = boots.get(&name).map(String::as_str) != Some(started);
        if booted || tick.is_multiple_of(HEARTBEAT_TICKS) {
            heartbeat(client, &name, port, false).await?;
        }
        if booted {
            let restarted = boots.insert(name.clone(), started.to_string()).is_some();
            live().lock().unwrap().insert(name.clone());
            boot(client, &name, restarted).await?;
        }
    }
    Ok(())
}

/// The kubelet of `node` starts: it runs the pods waiting for it, and after a stop (`restarted`
/// seen by this agent, or pods that already run there) starts the containers of its running
/// pods anew.
async fn boot(client: &kube::Client, node: &str, restarted: bool) -> anyhow::Result<()> {
    let all: Api<Pod> = Api::all(client.clone());
    let list = all
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    let running = |p: &Pod| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    let again = restarted || list.items.iter().any(running);
    for pod in list.items {
        let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
        if phase.as_deref() != Some("Running") || !again {
            kubelet(client, &pod).await?;
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let t = now();
        let containers: Vec<_> = pod
            .status
            .as_ref()
            .and_then(|s| s.container_statuses.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|c| {
                let attempt = c.restart_count as u32 + 1;
                json!({"name": c.name, "image": c.image, "imageID": c.image_id,
                       "containerID": container_id(&name, &c.name, attempt),
                       "ready": true, "started": true, "restartCount": attempt,
                       "state": {"running": {"startedAt": t}},
                       "lastState": {"terminated": {"exitCode": 255, "reason": "Unknown",
                                     "startedAt": t, "finishedAt": t,
                                     "containerID": c.container_id}}})
            })
            .collect();
        let body = json!({"status": {
            "conditions": conditions(&t, None),
            "containerStatuses": containers,
        }});
        let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
    }
    Ok(())
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// Keep `nodes` Ready and run the pods scheduled on them, until the process ends.
pub async fn run(client: kube::Client, nodes: Vec<String>) {
    let port = match kubelet::serve(client.clone()).await {
        Ok(port) => port,
        Err(e) => panic!("node agent: the kubelet endpoint does not start: {e:#}"),
    };
    for node in &nodes {
        live().lock().unwrap().insert(node.clone());
    }
    let heartbeats = {
        let client = client.clone();
        let nodes = nodes.clone();
        async move {
            let mut boots = BTreeMap::new();
            for tick in 0u64.. {
                if tick.is_multiple_of(HEARTBEAT_TICKS) {
                    for node in &nodes {
                        if let Err(e) = heartbeat(&client, node, port, true).await {
                            eprintln!("node agent: heartbeat of {node}: {e:#}");
                        }
                    }
                }
                if let Err(e) = fake_kind_nodes(&client, port, &mut boots, tick).await {
                    eprintln!("node agent: fake kind's nodes: {e:#}");
                }
                tokio::time::sleep(TICK).await;
            }
        }
    };
    let pods = async move {
        loop {
            let api: Api<Pod> = Api::all(client.clone());
            let mut stream = watcher(api, watcher::Config::default()).boxed();
            while let Some(event) = stream.next().await {
                let pods = match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => vec![pod],
                    Ok(_) => continue,
                    Err(_) => break,
                };
                for pod in pods {
                    if let Err(e) = kubelet(&client, &pod).await {
                        let name = pod.metadata.name.clone().unwrap_or_default();
                        eprintln!("node agent: pod {name}: {e:#}");
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::join!(heartbeats, pods);
}

/// Register `name` if needed (`register`; fake kind registers its own), post its Ready
/// condition and renew its Lease.
async fn heartbeat(
    client: &kube::Client,
    name: &str,
    port: u16,
    register: bool,
) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    if nodes.get_opt(name).await?.is_none() {
        if !register {
            return Ok(());
        }
        let node: Node = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": super::node_labels(name)},
        }))?;
        nodes.create(&PostParams::default(), &node).await?;
    }
    let t = now();
    let status = json!({"status": {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubelet is posting ready status (devenv's node agent)",
             "lastHeartbeatTime": t, "lastTransitionTime": t},
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
             "lastHeartbeatTime": t, "lastTransitionTime": t},
            {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure",
             "lastHeartbeatTime": t, "lastTransitionTime": t},
            {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID",
             "lastHeartbeatTime": t, "lastTransitionTime": t},
        ],
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                      {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
        "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
        "nodeInfo": {"kubeletVersion": "v1.20.2", "kubeProxyVersion": "v1.20.2",
                     "operatingSystem": "linux", "architecture": "amd64",
                     "containerRuntimeVersion": "devenv-node-agent://0", "kernelVersion": "",
                     "osImage": "devenv node agent", "machineID": "", "systemUUID": "",
                     "bootID": ""},
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let lease = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": name, "leaseDurationSeconds": 40,
                 "renewTime": MicroTime(k8s_openapi::jiff::Timestamp::now())},
    });
    leases
        .patch(
            name,
            &PatchParams::apply("devenv-node-agent").force(),
            &Patch::Apply(&lease),
        )
        .await?;
    Ok(())
}

static NEXT_IP: AtomicU32 = AtomicU32::new(2);

/// What a kubelet would do next for `pod`, if it is on a node the agent keeps that runs now.
async fn kubelet(client: &kube::Client, pod: &Pod) -> anyhow::Result<()> {
    let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.as_deref()) else {
        return Ok(());
    };
    if !live().lock().unwrap().contains(node) {
        return Ok(());
    }
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    if pod.metadata.deletion_timestamp.is_some() {
        let mut params = DeleteParams::default().grace_period(0);
        params.preconditions = Some(kube::api::Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        });
        return match api.delete(name, &params).await {
            Ok(_) | Err(kube::Error::Api(_)) => Ok(()),
            Err(e) => Err(e.into()),
        };
    }
    let status = pod.status.as_ref();
    let phase = status.and_then(|s| s.phase.as_deref()).unwrap_or("Pending");
    if phase != "Pending" || status.and_then(|s| s.start_time.as_ref()).is_some() {
        return Ok(());
    }
    let spec = pod.spec.as_ref().expect("a pod has a spec");
    let t = now();
    let unpullable = spec
        .containers
        .iter()
        .find_map(|c| c.image.as_deref().filter(|i| i.starts_with(UNPULLABLE)));
    let ip = format!(
        "10.244.{}.{}",
        NEXT_IP.load(Ordering::SeqCst) / 250,
        NEXT_IP.fetch_add(1, Ordering::SeqCst) % 250 + 2
    );
    if let Some(image) = unpullable {
        let message = format!(
            "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
        );
        let containers: Vec<_> = spec
            .containers
            .iter()
            .map(|c| {
                json!({"name": c.name, "image": c.image, "imageID": "", "ready": false,
                       "restartCount": 0,
                       "state": {"waiting": {"reason": "ErrImagePull", "message": message}}})
            })
            .collect();
        let body = json!({"status": {
            "phase": "Pending", "startTime": t, "hostIP": "127.0.0.1", "podIP": ip,
            "conditions": conditions(&t, Some("ContainersNotReady")),
            "containerStatuses": containers,
        }});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
            .await?;
        let events: Api<Event> = Api::namespaced(client.clone(), namespace);
        let event: Event = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": format!("{name}."), "namespace": namespace},
            "involvedObject": {"kind": "Pod", "namespace": namespace, "name": name,
                               "uid": pod.metadata.uid, "apiVersion": "v1",
                               "fieldPath": format!("spec.containers{{{}}}", spec.containers[0].name)},
            "reason": "Failed", "message": message, "type": "Warning", "count": 1,
            "firstTimestamp": t, "lastTimestamp": t,
            "source": {"component": "kubelet", "host": node},
        }))?;
        events.create(&PostParams::default(), &event).await?;
        return Ok(());
    }
    let completes = matches!(
        spec.restart_policy.as_deref(),
        Some("Never") | Some("OnFailure")
    );
    let crashing = spec
        .containers
        .iter()
        .any(|c| c.image.as_deref().is_some_and(|i| i.starts_with(CRASHING)));
    if crashing {
        return crash_loop(&api, name, spec, &ip).await;
    }
    if completes && runner::runs(spec) {
        let (client, pod) = (client.clone(), pod.clone());
        let running = started(name, spec, &ip, false);
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(&running))
            .await?;
        tokio::spawn(async move {
            if let Err(e) = runner::run(&client, &pod, &ip).await {
                eprintln!(
                    "node agent: running pod {} for real: {e:#}",
                    pod.metadata.name.unwrap_or_default()
                );
            }
        });
        return Ok(());
    }
    let body = started(name, spec, &ip, completes);
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    Ok(())
}

/// A pod's conditions as of `t`: scheduled and initialized, and Ready (with its containers)
/// unless `not_ready` gives the reason why not.
pub fn conditions(t: &Time, not_ready: Option<&str>) -> serde_json::Value {
    let ready = |kind: &str| match not_ready {
        None => json!({"type": kind, "status": "True", "lastTransitionTime": t}),
        Some(reason) => {
            json!({"type": kind, "status": "False", "reason": reason, "lastTransitionTime": t})
        }
    };
    json!([
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": t},
        {"type": "Initialized", "status": "True", "lastTransitionTime": t},
        ready("ContainersReady"),
        ready("Ready"),
    ])
}

/// The image ID the agent reports for a container of `image`.
pub fn image_id(image: Option<&str>) -> String {
    format!("devenv-node-agent://{}", image.unwrap_or(""))
}

/// The container ID the agent gives the `attempt`-th run of `container` in pod `pod` (the key
/// of its log, [`kubelet::record`]).
pub fn container_id(pod: &str, container: &str, attempt: u32) -> String {
    format!("devenv-node-agent://{pod}/{container}/{attempt}")
}

/// The status of a pod whose containers started now: running and Ready, or (`completes`)
/// terminated with exit code 0.
fn started(
    name: &str,
    spec: &k8s_openapi::api::core::v1::PodSpec,
    ip: &str,
    completes: bool,
) -> serde_json::Value {
    let t = now();
    let containers: Vec<_> = spec
        .containers
        .iter()
        .map(|c| {
            let id = container_id(name, &c.name, 0);
            let state = if completes {
                json!({"terminated": {"exitCode": 0, "reason": "Completed",
                                      "startedAt": t, "finishedAt": t, "containerID": id}})
            } else {
                json!({"running": {"startedAt": t}})
            };
            json!({"name": c.name, "image": c.image,
                   "imageID": image_id(c.image.as_deref()),
                   "containerID": id,
                   "ready": !completes, "started": !completes, "restartCount": 0, "state": state})
        })
        .collect();
    json!({"status": {
        "phase": if completes { "Succeeded" } else { "Running" },
        "startTime": t, "hostIP": "127.0.0.1", "podIP": ip, "podIPs": [{"ip": ip}],
        "conditions": conditions(&t, completes.then_some("PodCompleted")),
        "containerStatuses": containers,
    }})
}

/// A pod of a [`CRASHING`] image: its containers ran once, wrote [`CRASH_LOG`] and exited 1, and
/// wait in `CrashLoopBackOff`; the pod is Running, never Ready.
async fn crash_loop(
    api: &Api<Pod>,
    name: &str,
    spec: &k8s_openapi::api::core::v1::PodSpec,
    ip: &str,
) -> anyhow::Result<()> {
    let t = now();
    let containers: Vec<_> = spec
        .containers
        .iter()
        .map(|c| {
            let id = container_id(name, &c.name, 0);
            kubelet::record(&id, CRASH_LOG);
            json!({"name": c.name, "image": c.image,
                   "imageID": image_id(c.image.as_deref()),
                   "containerID": id, "ready": false, "started": false, "restartCount": 1,
                   "state": {"waiting": {"reason": "CrashLoopBackOff",
                             "message": format!("back-off 10s restarting failed container={} pod={name}", c.name)}},
                   "lastState": {"terminated": {"exitCode": 1, "reason": "Error",
                                 "startedAt": t, "finishedAt": t, "containerID": id}}})
        })
        .collect();
    let body = json!({"status": {
        "phase": "Running", "startTime": t, "hostIP": "127.0.0.1", "podIP": ip,
        "podIPs": [{"ip": ip}],
        "conditions": conditions(&t, Some("ContainersNotReady")),
        "containerStatuses": containers,
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await?;
    Ok(())
}

/// What kubeadm leaves in kube-system for CoreDNS: its ConfigMap (the `.:53` server block) and
/// its Deployment (the config volume projecting only the `Corefile` key), made by field manager
/// `kubeadm`, as `kubeadm init` creates them.
async fn kubeadm_coredns(client: &kube::Client) -> anyhow::Result<()> {
    let corefile = ".:53 {\n    errors\n    health {\n       lameduck 5s\n    }\n    ready\n    \
kubernetes cluster.local in-addr.arpa ip6.arpa {\n       pods insecure\n       fallthrough in-addr.arpa ip6.arpa\n       ttl 30\n    }\n    \
prometheus :9153\n    forward . /etc/resolv.conf {\n       max_concurrent 1000\n    }\n    cache 30\n    loop\n    reload\n    loadbalance\n}\n";
    let config_map: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "coredns", "namespace": "kube-system"},
        "data": {"Corefile": corefile},
    }))?;
    let labels = BTreeMap::from([("k8s-app", "kube-dns")]);
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "coredns", "namespace": "kube-system", "labels": labels},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": labels},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "priorityClassName": "system-cluster-critical",
                    "containers": [{
                        "name": "coredns",
                        "image": "registry.k8s.io/coredns/coredns:v1.12.0",
                        "args": ["-conf", "/etc/coredns/Corefile"],
                        "volumeMounts": [{"name": "config-volume", "mountPath": "/etc/coredns",
                                          "readOnly": true}],
                        "ports": [{"name": "dns", "containerPort": 53, "protocol": "UDP"},
                                  {"name": "dns-tcp", "containerPort": 53, "protocol": "TCP"},
                                  {"name": "metrics", "containerPort": 9153, "protocol": "TCP"}],
                    }],
                    "volumes": [{"name": "config-volume", "configMap": {
                        "name": "coredns",
                        "items": [{"key": "Corefile", "path": "Corefile"}],
                    }}],
                },
            },
        },
    }))?;
    let post = PostParams {
        field_manager: Some("kubeadm".into()),
        ..PostParams::default()
    };
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "kube-system");
    let gone = DeleteParams::foreground();
    let _ = maps.delete("coredns", &DeleteParams::default()).await;
    let _ = deployments.delete("coredns", &gone).await;
    wait_gone(&deployments, "coredns").await?;
    wait_gone(&maps, "coredns").await?;
    maps.create(&post, &config_map).await?;
    deployments.create(&post, &deployment).await?;
    Ok(())
}

async fn wait_gone<K>(api: &Api<K>, name: &str) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for _ in 0..600 {
        if api.get_metadata_opt(name).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{name} is still there after 60 s")
}

/// See [`super::ControlPlane::reset`].
pub async fn reset(client: &kube::Client) -> anyhow::Result<()> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let _ = namespaces.delete("devenv", &DeleteParams::default()).await;
    for kind in [
        "ingressclasses.networking.k8s.io",
        "clusterroles.rbac.authorization.k8s.io",
        "clusterrolebindings.rbac.authorization.k8s.io",
    ] {
        delete_managed(client, kind).await?;
    }
    let public: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-public");
    for name in ["local-registry-hosting", "devenv-ca"] {
        let _ = public.delete(name, &DeleteParams::default()).await;
    }
    kubeadm_coredns(client).await?;
    remove_gateway_api(client).await?;
    let nodes: Api<Node> = Api::all(client.clone());
    for node in nodes
        .list(&ListParams::default().labels(FAKE_KIND_LABEL))
        .await?
    {
        if let Some(name) = node.metadata.name {
            let _ = nodes.delete(&name, &DeleteParams::default()).await;
        }
    }
    wait_gone(&namespaces, "devenv").await?;
    Ok(())
}

/// Delete every Gateway API CRD (devenv's and those a test made as another tool's), with
/// the objects of their kinds, and wait until they are gone: a cluster without Gateway API.
async fn remove_gateway_api(client: &kube::Client) -> anyhow::Result<()> {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let ours = |c: &CustomResourceDefinition| {
        c.metadata
            .name
            .as_deref()
            .is_some_and(|n| n.ends_with(".gateway.networking.k8s.io"))
    };
    for crd in crds
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .filter(|c| ours(c))
    {
        let _ = crds
            .delete(
                crd.metadata.name.as_deref().unwrap_or_default(),
                &DeleteParams::default(),
            )
            .await;
    }
    for _ in 0..300 {
        if !crds
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .any(ours)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the Gateway API CRDs were not deleted within 30 s")
}

/// Delete the cluster-scoped objects of `kind` (plural.group) that carry devenv's managed-by
/// label.
async fn delete_managed(client: &kube::Client, kind: &str) -> anyhow::Result<()> {
    let (plural, group) = kind.split_once('.').expect("plural.group");
    let resource = kube::discovery::ApiResource {
        group: group.to_string(),
        version: "v1".into(),
        api_version: format!("{group}/v1"),
        kind: String::new(),
        plural: plural.to_string(),
    };
    let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &resource);
    let list = api
        .list(&ListParams::default().labels("app.kubernetes.io/managed-by=devenv"))
        .await?;
    for object in list.items {
        if let Some(name) = object.metadata.name {
            let _ = api.delete(&name, &DeleteParams::default()).await;
        }
    }
    Ok(())
}
