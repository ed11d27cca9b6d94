//! What the cluster says about something that did not become ready: the object's recent Events,
//! and for each of its pods that is not ready, the containers' states, the pod's Events and the
//! last log lines of its containers. Waits attach this to their errors so that a failure explains
//! itself without a `kubectl describe`.
//!
//! Not for: deciding readiness (that is `wait`). Gathering is best effort: a request that fails
//! becomes a line saying so, never the error itself.

use std::fmt;

use k8s_openapi::api::core::v1::{Event, Pod};
use kube::Api;
use kube::api::{ListParams, LogParams};

use super::{Kube, ObjectName, describe};

/// How many of an object's Events are shown (the most recent).
const EVENTS_SHOWN: usize = 10;
/// How many log lines of each container are shown.
pub(crate) const LOG_LINES: i64 = 20;
/// How many not-ready pods are described (a Deployment may have many, all alike).
const PODS_SHOWN: usize = 3;

/// Indented lines of explanation, shown under an error message.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Diagnosis {
    lines: Vec<String>,
}

impl Diagnosis {
    fn push(&mut self, depth: usize, line: impl AsRef<str>) {
        self.lines
            .push(format!("{}{}", "  ".repeat(depth), line.as_ref()));
    }

    fn extend(&mut self, other: Diagnosis) {
        self.lines.extend(other.lines);
    }
}

impl fmt::Display for Diagnosis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

impl Kube {
    /// The recent Events of `object`, then the state, Events and log tail of each of the pods
    /// matched by `pod_selector` (a label selector) that is not ready.
    pub(crate) async fn diagnose(
        &self,
        object: &ObjectName,
        pod_selector: Option<&str>,
    ) -> Diagnosis {
        let mut out = Diagnosis::default();
        out.push(0, format!("events of {object}:"));
        out.extend(self.events(object, 1).await);
        let (Some(namespace), Some(selector)) = (object.namespace.as_deref(), pod_selector) else {
            return out;
        };
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        match pods.list(&ListParams::default().labels(selector)).await {
            Ok(list) => {
                let waiting: Vec<Pod> = list.items.into_iter().filter(|p| !pod_ready(p)).collect();
                if waiting.is_empty() {
                    out.push(0, format!("no pod matching {selector} is waiting"));
                }
                for pod in waiting.iter().take(PODS_SHOWN) {
                    out.extend(self.diagnose_pod(pod).await);
                }
                if waiting.len() > PODS_SHOWN {
                    out.push(
                        0,
                        format!("({} more pods are not ready)", waiting.len() - PODS_SHOWN),
                    );
                }
            }
            Err(err) => out.push(
                0,
                format!("(cannot list the pods {selector}: {})", describe(&err)),
            ),
        }
        out
    }

    /// One pod that is not ready: its containers' states, its Events, its log tails.
    pub(crate) async fn diagnose_pod(&self, pod: &Pod) -> Diagnosis {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let object = ObjectName::new("Pod", Some(namespace), name);
        let mut out = Diagnosis::default();
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Unknown");
        out.push(
            0,
            format!("pod {namespace}/{name} is not ready (phase {phase}):"),
        );
        for line in container_states(pod) {
            out.push(1, line);
        }
        out.push(1, "events:");
        out.extend(self.events(&object, 2).await);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        for container in containers_to_log(pod) {
            out.push(
                1,
                format!("last {LOG_LINES} log lines of container {container}:"),
            );
            let params = LogParams {
                container: Some(container.clone()),
                tail_lines: Some(LOG_LINES),
                ..LogParams::default()
            };
            match pods.logs(name, &params).await {
                Ok(text) if text.trim().is_empty() => out.push(2, "(empty)"),
                Ok(text) => {
                    for line in text.lines() {
                        out.push(2, line);
                    }
                }
                Err(err) => out.push(2, format!("(no log: {})", describe(&err))),
            }
        }
        out
    }

    /// The most recent Events whose involved object is `object`, one line each.
    async fn events(&self, object: &ObjectName, depth: usize) -> Diagnosis {
        let api: Api<Event> = match &object.namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        };
        let fields = format!(
            "involvedObject.kind={},involvedObject.name={}",
            object.kind, object.name
        );
        let mut out = Diagnosis::default();
        match api.list(&ListParams::default().fields(&fields)).await {
            Ok(list) => {
                let mut events = list.items;
                events.sort_by_key(event_time);
                let skip = events.len().saturating_sub(EVENTS_SHOWN);
                if events.is_empty() {
                    out.push(depth, "(none)");
                }
                for event in &events[skip..] {
                    out.push(depth, event_line(event));
                }
            }
            Err(err) => out.push(depth, format!("(cannot list them: {})", describe(&err))),
        }
        out
    }
}

/// Whether a pod's `Ready` condition is true.
pub(crate) fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// When an Event last happened, by the first of its timestamps that is set.
fn event_time(event: &Event) -> Option<k8s_openapi::jiff::Timestamp> {
    event
        .last_timestamp
        .as_ref()
        .map(|t| t.0)
        .or_else(|| event.event_time.as_ref().map(|t| t.0))
        .or_else(|| event.first_timestamp.as_ref().map(|t| t.0))
        .or_else(|| event.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// `Warning BackOff: Back-off restarting failed container (x5)`.
fn event_line(event: &Event) -> String {
    let mut line = format!(
        "{} {}: {}",
        event.type_.as_deref().unwrap_or("Normal"),
        event.reason.as_deref().unwrap_or("-"),
        event.message.as_deref().unwrap_or("").trim()
    );
    let count = event
        .series
        .as_ref()
        .and_then(|s| s.count)
        .or(event.count)
        .unwrap_or(1);
    if count > 1 {
        line.push_str(&format!(" (x{count})"));
    }
    line
}

/// One line per container status: waiting or terminated with reason and message, restarts.
fn container_states(pod: &Pod) -> Vec<String> {
    let Some(statuses) = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
    else {
        return vec!["no container has started yet".to_string()];
    };
    statuses
        .iter()
        .map(|status| {
            let state = status.state.as_ref();
            let what = if let Some(waiting) = state.and_then(|s| s.waiting.as_ref()) {
                reason_message(
                    "waiting",
                    waiting.reason.as_deref(),
                    waiting.message.as_deref(),
                )
            } else if let Some(done) = state.and_then(|s| s.terminated.as_ref()) {
                let mut line = reason_message(
                    "terminated",
                    done.reason.as_deref(),
                    done.message.as_deref(),
                );
                line.push_str(&format!(", exit code {}", done.exit_code));
                line
            } else if status.ready {
                "running, ready".to_string()
            } else {
                "running, not ready".to_string()
            };
            let mut line = format!("container {}: {what}", status.name);
            if status.restart_count > 0 {
                line.push_str(&format!(", {} restarts", status.restart_count));
            }
            line
        })
        .collect()
}

fn reason_message(state: &str, reason: Option<&str>, message: Option<&str>) -> String {
    match (reason, message.map(str::trim).filter(|m| !m.is_empty())) {
        (Some(reason), Some(message)) => format!("{state} ({reason}: {message})"),
        (Some(reason), None) => format!("{state} ({reason})"),
        (None, Some(message)) => format!("{state} ({message})"),
        (None, None) => state.to_string(),
    }
}

/// The containers whose logs explain a pod that is not ready: those not ready (all of them when
/// the pod reports no statuses yet).
fn containers_to_log(pod: &Pod) -> Vec<String> {
    let declared: Vec<String> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default();
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    match statuses {
        Some(statuses) => declared
            .into_iter()
            .filter(|name| {
                statuses
                    .iter()
                    .find(|s| &s.name == name)
                    .is_none_or(|s| !s.ready)
            })
            .collect(),
        None => declared,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_event_line_shows_type_reason_message_and_count() {
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": "traefik.1", "namespace": "devenv"},
            "involvedObject": {"kind": "Pod", "name": "traefik"},
            "type": "Warning",
            "reason": "BackOff",
            "message": "Back-off restarting failed container traefik\n",
            "count": 5
        }))
        .unwrap();
        assert_eq!(
            event_line(&event),
            "Warning BackOff: Back-off restarting failed container traefik (x5)"
        );
    }

    #[test]
    fn only_containers_that_are_not_ready_are_logged() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]},
            "status": {"containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "image": "i", "imageID": ""},
                {"name": "b", "ready": false, "restartCount": 2, "image": "i", "imageID": "",
                 "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s"}}}
            ]}
        }))
        .unwrap();
        assert_eq!(containers_to_log(&pod), ["b", "c"]);
        assert_eq!(
            container_states(&pod),
            [
                "container a: running, ready",
                "container b: waiting (CrashLoopBackOff: back-off 20s), 2 restarts"
            ]
        );
    }
}
