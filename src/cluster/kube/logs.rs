//! Container logs of the pods a label selector matches, as one stream of lines tagged with their
//! pod, for `devenv logs ingress`: the last N lines, and optionally following.
//!
//! Not for: printing (the command does), or the log tails in error messages (that is
//! `diagnose`).

use futures_util::AsyncBufReadExt;
use futures_util::stream::{BoxStream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::{ListParams, LogParams};

use super::{Kube, describe};
use crate::error::Failure;

/// Which lines to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only the last this many lines of each pod (all when `None`).
    pub tail: Option<i64>,
    /// Keep reading as the containers write, until they stop or the caller drops the stream.
    pub follow: bool,
    /// The container to read, for pods with more than one.
    pub container: Option<String>,
}

/// One line a container wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The pod it came from.
    pub pod: String,
    /// The line, without its newline.
    pub line: String,
}

impl Kube {
    /// The logs of every pod in `namespace` matching `selector` (a label selector such as
    /// `app.kubernetes.io/name=traefik`), merged into one stream as lines arrive.
    ///
    /// No matching pod is a [`Failure::environment`] (exit 3).
    pub async fn pod_logs(
        &self,
        namespace: &str,
        selector: &str,
        options: &LogOptions,
    ) -> anyhow::Result<BoxStream<'static, anyhow::Result<LogLine>>> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let list = pods
            .list(&ListParams::default().labels(selector))
            .await
            .map_err(|err| {
                anyhow::anyhow!(
                    "listing the pods {selector} in namespace {namespace}: {}",
                    describe(&err)
                )
            })?;
        if list.items.is_empty() {
            return Err(Failure::environment(
                format!("no pod in namespace {namespace} matches {selector}"),
                Some("`devenv up` starts it; `devenv status` shows what runs".to_string()),
            )
            .into());
        }
        // Following streams may stay quiet for minutes: read them without a read timeout.
        let streaming: Api<Pod> = Api::namespaced(self.stream_client.clone(), namespace);
        let params = LogParams {
            follow: options.follow,
            tail_lines: options.tail,
            container: options.container.clone(),
            ..LogParams::default()
        };
        let mut streams = Vec::new();
        for pod in &list.items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            let reader = streaming.log_stream(&name, &params).await.map_err(|err| {
                anyhow::anyhow!(
                    "reading the log of pod {namespace}/{name}: {}",
                    describe(&err)
                )
            })?;
            let tag = name.clone();
            let namespace = namespace.to_string();
            let lines = reader
                .lines()
                .map_ok(move |line| LogLine {
                    pod: tag.clone(),
                    line,
                })
                .map_err(move |err| {
                    anyhow::anyhow!("reading the log of pod {namespace}/{name}: {err}")
                });
            streams.push(lines.boxed());
        }
        Ok(futures_util::stream::select_all(streams).boxed())
    }
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;
    use serde_json::json;

    use super::super::mock::{ApiServer, Expect, list};
    use super::*;

    fn pod(name: &str) -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "devenv", "labels": {"app.kubernetes.io/name": "traefik"}},
            "spec": {"containers": [{"name": "traefik", "image": "traefik:v3.6.2"}]},
            "status": {"phase": "Running"}
        })
    }

    #[tokio::test]
    async fn logs_of_every_matching_pod_are_tagged_with_their_pod() {
        let (kube, mut server) = ApiServer::start();
        let options = LogOptions {
            tail: Some(5),
            follow: true,
            container: None,
        };
        let (lines, ()) = tokio::join!(
            async {
                let stream = kube
                    .pod_logs("devenv", "app.kubernetes.io/name=traefik", &options)
                    .await?;
                stream.try_collect::<Vec<_>>().await
            },
            async move {
                server
                    .expect(
                        Expect::get("/api/v1/namespaces/devenv/pods")
                            .query("labelSelector", "app.kubernetes.io/name=traefik"),
                    )
                    .await
                    .reply(
                        200,
                        list("PodList", vec![pod("traefik-a"), pod("traefik-b")]),
                    );
                for name in ["traefik-a", "traefik-b"] {
                    server
                        .expect(
                            Expect::get(&format!("/api/v1/namespaces/devenv/pods/{name}/log"))
                                .query("follow", "true")
                                .query("tailLines", "5"),
                        )
                        .await
                        .reply_text(200, &format!("{name} started\n{name} listening on :80\n"));
                }
            }
        );
        let mut lines = lines.unwrap();
        lines.sort_by(|a, b| (&a.pod, &a.line).cmp(&(&b.pod, &b.line)));
        let got: Vec<(&str, &str)> = lines
            .iter()
            .map(|l| (l.pod.as_str(), l.line.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("traefik-a", "traefik-a listening on :80"),
                ("traefik-a", "traefik-a started"),
                ("traefik-b", "traefik-b listening on :80"),
                ("traefik-b", "traefik-b started"),
            ]
        );
    }

    #[tokio::test]
    async fn no_matching_pod_is_an_environment_failure() {
        let (kube, mut server) = ApiServer::start();
        let options = LogOptions::default();
        let (logs, ()) = tokio::join!(
            kube.pod_logs("devenv", "app.kubernetes.io/name=traefik", &options),
            async move {
                server
                    .expect(
                        Expect::get("/api/v1/namespaces/devenv/pods")
                            .query("labelSelector", "app.kubernetes.io/name=traefik"),
                    )
                    .await
                    .reply(200, list("PodList", vec![]));
            }
        );
        let err = logs.err().unwrap();
        assert_eq!(
            crate::error::exit_code(&err),
            crate::error::exit::ENVIRONMENT
        );
        assert_eq!(
            err.to_string(),
            "no pod in namespace devenv matches app.kubernetes.io/name=traefik"
        );
    }
}
