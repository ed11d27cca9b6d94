//! The in-cluster lookup check: a short-lived Pod in namespace `devenv` resolves names with
//! busybox `nslookup` (the pinned Traefik image carries it, so no extra image is needed), and
//! its log says, per name, which addresses a pod gets.
//!
//! Not for: judging the answers (the caller compares them with devenv's record table).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, LogParams, PostParams};
use serde::Serialize;

use super::wait::POLL_INTERVAL;
use super::{FIELD_MANAGER, Kube, describe};
use crate::error::Failure;

/// The namespace the lookup pod runs in (devenv's own; it must exist).
pub const LOOKUP_NAMESPACE: &str = "devenv";
/// The API server appends a random suffix to this.
const POD_NAME_PREFIX: &str = "devenv-lookup-";
/// Marks the start of one name's output in the pod's log.
const MARK: &str = "=== devenv-lookup";

/// The pod's shell script: the names come as arguments, never spliced into the script. A
/// script given to [`Kube::lookup_with`] must print the same sections (its extra lines land in
/// [`LookupResult::output`]).
pub const SCRIPT: &str = r#"for name in "$@"; do
  echo "=== devenv-lookup $name"
  nslookup "$name" 2>&1
done
"#;

/// What a pod got for one name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LookupResult {
    /// The name as asked.
    pub name: String,
    /// The addresses in the answer (after CNAMEs), in order; empty when it did not resolve.
    pub addresses: Vec<IpAddr>,
    /// nslookup's own lines for the name, to show when it did not resolve.
    pub output: Vec<String>,
}

impl LookupResult {
    /// Whether the name resolved to at least one address.
    pub fn resolved(&self) -> bool {
        !self.addresses.is_empty()
    }
}

/// The lookup pod: `image` runs `sh -c SCRIPT` over `names`, once, without a service account
/// token, and goes away at once when deleted.
fn lookup_pod(
    image: &str,
    script: &str,
    names: &[String],
    labels: &BTreeMap<String, String>,
) -> Pod {
    let mut command = vec![
        "sh".to_string(),
        "-c".to_string(),
        script.to_string(),
        "devenv-lookup".to_string(),
    ];
    command.extend(names.iter().cloned());
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(POD_NAME_PREFIX.to_string()),
            namespace: Some(LOOKUP_NAMESPACE.to_string()),
            labels: Some(labels.clone()),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_string()),
            automount_service_account_token: Some(false),
            termination_grace_period_seconds: Some(0),
            containers: vec![Container {
                name: "lookup".to_string(),
                image: Some(image.to_string()),
                image_pull_policy: Some("IfNotPresent".to_string()),
                command: Some(command),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    }
}

/// Split the pod's log into one result per name asked, in the order asked.
///
/// busybox nslookup prints the server first (`Server:` and `Address:` lines), then per answer
/// `Name:` and `Address:` lines (CNAMEs as `canonical name =` lines): an address counts once a
/// `Name:` line came before it.
pub(crate) fn parse_log(log: &str, names: &[String]) -> Vec<LookupResult> {
    let mut sections: Vec<(String, Vec<String>)> = Vec::new();
    for line in log.lines() {
        if let Some(name) = line.strip_prefix(MARK) {
            sections.push((name.trim().to_string(), Vec::new()));
        } else if let Some((_, lines)) = sections.last_mut() {
            lines.push(line.to_string());
        }
    }
    names
        .iter()
        .map(|name| {
            let output = sections
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, lines)| lines.clone())
                .unwrap_or_else(|| vec!["(the pod printed nothing for this name)".to_string()]);
            let mut answered = false;
            let mut addresses = Vec::new();
            for line in &output {
                if line.starts_with("Name:") {
                    answered = true;
                } else if let Some(address) = line.strip_prefix("Address:")
                    && answered
                    && let Ok(ip) = address.trim().parse::<IpAddr>()
                    && !addresses.contains(&ip)
                {
                    addresses.push(ip);
                }
            }
            LookupResult {
                name: name.clone(),
                addresses,
                output: output
                    .into_iter()
                    .filter(|l| !l.trim().is_empty())
                    .collect(),
            }
        })
        .collect()
}

impl Kube {
    /// Resolve `names` from inside the cluster: run a Pod of `image` (which must carry busybox
    /// `nslookup`) in namespace `devenv` with `labels`, wait up to `timeout` for it to finish,
    /// read its log, delete it, and return one result per name.
    ///
    /// Give names with a trailing dot to skip the pod's search domains. A pod that fails or does
    /// not finish in time is an error (exit 3) with its state, Events and log; it is deleted
    /// either way.
    pub async fn lookup(
        &self,
        image: &str,
        names: &[String],
        labels: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> anyhow::Result<Vec<LookupResult>> {
        self.lookup_with(SCRIPT, image, names, labels, timeout)
            .await
    }

    /// [`Kube::lookup`] with another `script`, which must print one [`SCRIPT`]-like section
    /// per name (`doctor` also tries to reach each name).
    pub async fn lookup_with(
        &self,
        script: &str,
        image: &str,
        names: &[String],
        labels: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> anyhow::Result<Vec<LookupResult>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), LOOKUP_NAMESPACE);
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.to_string()),
            ..PostParams::default()
        };
        let created = pods
            .create(&params, &lookup_pod(image, script, names, labels))
            .await
            .map_err(|err| {
                anyhow::anyhow!(
                    "creating the lookup pod in namespace {LOOKUP_NAMESPACE}: {}",
                    describe(&err)
                )
            })?;
        let name = created.metadata.name.clone().unwrap_or_default();
        let outcome = self
            .finish_lookup(&pods, &name, created, names, timeout)
            .await;
        let deleted = pods
            .delete(
                &name,
                &DeleteParams {
                    grace_period_seconds: Some(0),
                    ..DeleteParams::default()
                },
            )
            .await;
        if let Err(err) = deleted {
            tracing::warn!(
                "could not delete the lookup pod {LOOKUP_NAMESPACE}/{name}: {}",
                describe(&err)
            );
        }
        outcome
    }

    async fn finish_lookup(
        &self,
        pods: &Api<Pod>,
        name: &str,
        created: Pod,
        names: &[String],
        timeout: Duration,
    ) -> anyhow::Result<Vec<LookupResult>> {
        let mut last = created;
        let waited = tokio::time::timeout(timeout, async {
            loop {
                tokio::time::sleep(POLL_INTERVAL).await;
                if let Ok(pod) = pods.get(name).await {
                    let phase = pod.status.as_ref().and_then(|s| s.phase.clone());
                    last = pod;
                    if matches!(phase.as_deref(), Some("Succeeded" | "Failed")) {
                        return phase;
                    }
                }
            }
        })
        .await;
        let headline = match waited.as_ref().map(|p| p.as_deref()) {
            Ok(Some("Succeeded")) => {
                let log = pods
                    .logs(name, &LogParams::default())
                    .await
                    .map_err(|err| {
                        anyhow::anyhow!(
                            "reading the log of the lookup pod {LOOKUP_NAMESPACE}/{name}: {}",
                            describe(&err)
                        )
                    })?;
                return Ok(parse_log(&log, names));
            }
            Ok(_) => format!("the lookup pod {LOOKUP_NAMESPACE}/{name} failed"),
            Err(_) => format!(
                "the lookup pod {LOOKUP_NAMESPACE}/{name} did not finish within {} s",
                timeout.as_secs()
            ),
        };
        let diagnosis = self.diagnose_pod(&last).await;
        Err(Failure::environment(
            format!("{headline}\n{}", diagnosis.to_string().trim_end()),
            Some(self.kubectl_hint(&format!("-n {LOOKUP_NAMESPACE} get events"))),
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::super::mock::{ApiServer, Expect, list};
    use super::*;
    use crate::error;

    const IMAGE: &str = "docker.io/library/traefik:v3.6.2";

    fn names() -> Vec<String> {
        vec![
            "registry.macula.local.".to_string(),
            "app.macula.local.".to_string(),
            "nothing.macula.local.".to_string(),
        ]
    }

    fn labels() -> BTreeMap<String, String> {
        BTreeMap::from([
            (
                "app.kubernetes.io/managed-by".to_string(),
                "devenv".to_string(),
            ),
            ("dev.devenv.project".to_string(), "devenv".to_string()),
        ])
    }

    /// What busybox's nslookup (1.35, run against a local server answering the same records)
    /// prints for a CNAME to the gateway, a CNAME to the ingress Service, and a name with no
    /// record: the AAAA query's answer (the CNAME alone) comes before the A query's.
    const LOG: &str = "=== devenv-lookup registry.macula.local.
Server:\t\t10.96.0.10
Address:\t10.96.0.10:53

registry.macula.local\tcanonical name = devenv-gateway

registry.macula.local\tcanonical name = devenv-gateway
Name:\tdevenv-gateway
Address: 172.18.0.3

=== devenv-lookup app.macula.local.
Server:\t\t10.96.0.10
Address:\t10.96.0.10:53

app.macula.local\tcanonical name = traefik.devenv.svc.cluster.local

app.macula.local\tcanonical name = traefik.devenv.svc.cluster.local
Name:\ttraefik.devenv.svc.cluster.local
Address: 10.96.141.7

=== devenv-lookup nothing.macula.local.
Server:\t\t10.96.0.10
Address:\t10.96.0.10:53

** server can't find nothing.macula.local.: NXDOMAIN

** server can't find nothing.macula.local.: NXDOMAIN

";

    #[test]
    fn the_log_is_split_per_name_with_answer_addresses_only() {
        let results = parse_log(LOG, &names());
        assert_eq!(results.len(), 3);
        assert_eq!(
            results[0].addresses,
            ["172.18.0.3".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(
            results[1].addresses,
            ["10.96.141.7".parse::<IpAddr>().unwrap()]
        );
        assert!(!results[2].resolved());
        assert_eq!(
            results[2].output,
            [
                "Server:\t\t10.96.0.10",
                "Address:\t10.96.0.10:53",
                "** server can't find nothing.macula.local.: NXDOMAIN",
                "** server can't find nothing.macula.local.: NXDOMAIN"
            ]
        );
    }

    fn pod(phase: &str) -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "devenv-lookup-7xk2p", "generateName": "devenv-lookup-",
                         "namespace": "devenv", "labels": {"app.kubernetes.io/managed-by": "devenv", "dev.devenv.project": "devenv"}},
            "spec": {"containers": [{"name": "lookup", "image": IMAGE}], "restartPolicy": "Never"},
            "status": {"phase": phase}
        })
    }

    fn expected_pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "generateName": "devenv-lookup-",
                "namespace": "devenv",
                "labels": {"app.kubernetes.io/managed-by": "devenv", "dev.devenv.project": "devenv"}
            },
            "spec": {
                "automountServiceAccountToken": false,
                "restartPolicy": "Never",
                "terminationGracePeriodSeconds": 0,
                "containers": [{
                    "name": "lookup",
                    "image": IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["sh", "-c", SCRIPT, "devenv-lookup",
                                "registry.macula.local.", "app.macula.local.", "nothing.macula.local."]
                }]
            }
        })
    }

    const POD: &str = "/api/v1/namespaces/devenv/pods/devenv-lookup-7xk2p";

    #[tokio::test(start_paused = true)]
    async fn the_lookup_pod_runs_is_read_and_deleted() {
        let (kube, mut server) = ApiServer::start();
        let (names, labels) = (names(), labels());
        let (results, ()) = tokio::join!(
            kube.lookup(IMAGE, &names, &labels, Duration::from_secs(60)),
            async move {
                server
                    .expect(
                        Expect::post("/api/v1/namespaces/devenv/pods")
                            .query("fieldManager", "devenv")
                            .body(expected_pod()),
                    )
                    .await
                    .reply(201, pod("Pending"));
                server
                    .expect(Expect::get(POD))
                    .await
                    .reply(200, pod("Running"));
                server
                    .expect(Expect::get(POD))
                    .await
                    .reply(200, pod("Succeeded"));
                server
                    .expect(Expect::get(&format!("{POD}/log")))
                    .await
                    .reply_text(200, LOG);
                server
                    .expect(Expect::delete(POD).body(json!({"gracePeriodSeconds": 0})))
                    .await
                    .reply(200, pod("Succeeded"));
            }
        );
        let results = results.unwrap();
        assert_eq!(
            results.iter().map(|r| r.resolved()).collect::<Vec<_>>(),
            [true, true, false]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lookup_pod_that_never_finishes_shows_its_state_and_events_and_is_deleted() {
        let (kube, mut server) = ApiServer::start();
        let mut pending = pod("Pending");
        pending["status"]["containerStatuses"] = json!([{
            "name": "lookup", "ready": false, "restartCount": 0, "image": IMAGE, "imageID": "",
            "state": {"waiting": {"reason": "ErrImageNeverPull",
                      "message": "Container image \"docker.io/library/traefik:v3.6.2\" is not present with pull policy of Never"}}
        }]);
        let (names, labels) = (names(), labels());
        let (results, ()) = tokio::join!(
            kube.lookup(IMAGE, &names, &labels, Duration::from_secs(10)),
            async move {
                server
                    .expect(
                        Expect::post("/api/v1/namespaces/devenv/pods")
                            .query("fieldManager", "devenv"),
                    )
                    .await
                    .reply(201, pod("Pending"));
                let (polls, events) = server
                    .polls(
                        Expect::get(POD),
                        pending,
                        Expect::get("/api/v1/namespaces/devenv/events").query(
                            "fieldSelector",
                            "involvedObject.kind=Pod,involvedObject.name=devenv-lookup-7xk2p",
                        ),
                    )
                    .await;
                assert!(polls > 1);
                events.reply(200, list("EventList", vec![json!({
                    "metadata": {"name": "devenv-lookup-7xk2p.1", "namespace": "devenv"},
                    "involvedObject": {"kind": "Pod", "name": "devenv-lookup-7xk2p"},
                    "type": "Warning", "reason": "ErrImageNeverPull",
                    "message": "Container image \"docker.io/library/traefik:v3.6.2\" is not present with pull policy of Never",
                    "count": 3
                })]));
                server
                    .expect(
                        Expect::get(&format!("{POD}/log"))
                            .query("container", "lookup")
                            .query("tailLines", "20"),
                    )
                    .await
                    .reply(400, super::super::mock::status(400, "BadRequest",
                        "container \"lookup\" in pod \"devenv-lookup-7xk2p\" is waiting to start: ErrImageNeverPull"));
                server
                    .expect(Expect::delete(POD).body(json!({"gracePeriodSeconds": 0})))
                    .await
                    .reply(200, pod("Pending"));
            }
        );
        let err = results.unwrap_err();
        assert_eq!(error::exit_code(&err), error::exit::ENVIRONMENT);
        let message = &error::failure(&err).unwrap().message;
        assert!(
            message.starts_with(
                "the lookup pod devenv/devenv-lookup-7xk2p did not finish within 10 s\n\
                 pod devenv/devenv-lookup-7xk2p is not ready (phase Pending):\n  \
                 container lookup: waiting (ErrImageNeverPull: Container image"
            ),
            "{message}"
        );
        assert!(message.contains("    Warning ErrImageNeverPull: Container image \"docker.io/library/traefik:v3.6.2\" is not present with pull policy of Never (x3)"), "{message}");
        assert!(message.contains("(no log: container \"lookup\" in pod \"devenv-lookup-7xk2p\" is waiting to start: ErrImageNeverPull (BadRequest, HTTP 400))"), "{message}");
    }
}
