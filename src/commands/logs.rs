//! `devenv logs <service> [-f] [--tail N]`: a service's output, stdout to stdout and stderr to
//! stderr, as the container wrote it; `devenv logs ingress`: the cluster's ingress controller
//! (every pod, each line prefixed with its pod's name). Not for: other pods (`kubectl logs`).

use std::io::Write;

use futures_util::StreamExt;

use crate::cli::LogsArgs;
use crate::cluster::kube::{Kube, LogOptions};
use crate::config::Config;
use crate::docker::Engine;
use crate::docker::logs::Output;
use crate::error::Failure;
use crate::render::cluster::{self as cluster_objects, traefik};

use super::Settings;

/// `logs`' settings, from its arguments.
struct Logs {
    service: String,
    follow: bool,
    /// How many of the last lines, in the engine's words (`all` or a number).
    tail: String,
}

impl Logs {
    fn from_arguments(args: LogsArgs) -> Logs {
        Logs {
            service: args.service,
            follow: args.follow,
            tail: args
                .tail
                .map_or_else(|| "all".to_string(), |n| n.to_string()),
        }
    }
}

pub fn run(settings: &Settings, args: LogsArgs) -> anyhow::Result<()> {
    let logs = Logs::from_arguments(args);
    let loaded = settings.load_environment(false)?;
    let config = &loaded.config;
    if logs.service == INGRESS {
        return ingress(settings, config, &logs);
    }
    let names = config.service_names();
    if !names.contains(&logs.service) {
        return Err(Failure::bad_input(
            format!("there is no service `{}`", logs.service),
            format!(
                "services: {}, and `{INGRESS}` for the cluster's ingress controller",
                names.join(", ")
            ),
        )
        .into());
    }
    settings.runtime.block_on(async {
        let engine = Engine::connect().await?;
        let containers = engine.project_containers(&config.name).await?;
        let Some(container) = containers
            .iter()
            .find(|c| c.service.as_deref() == Some(logs.service.as_str()))
        else {
            return Err(Failure::environment(
                format!(
                    "service {} of `{}` has no container",
                    logs.service, config.name
                ),
                "`devenv up` creates it".to_string(),
            )
            .into());
        };
        let stream = engine.logs(&container.id, &container.name, logs.follow, &logs.tail);
        let mut stream = std::pin::pin!(stream);
        while let Some(chunk) = stream.next().await {
            match chunk? {
                Output::Stderr(message) => {
                    let _ = std::io::stderr().write_all(&message);
                }
                Output::Stdout(message) => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&message)?;
                    out.flush()?;
                }
            }
        }
        Ok(())
    })
}

/// The name `logs` takes for the cluster's ingress controller.
const INGRESS: &str = "ingress";

/// The ingress controller's logs, through the cluster's API.
fn ingress(settings: &Settings, config: &Config, logs: &Logs) -> anyhow::Result<()> {
    let Some(context) = crate::converge::cluster::context(config) else {
        return Err(Failure::bad_input(
            "`cluster.provider` is `none`: there is no ingress controller",
            None,
        )
        .into());
    };
    let kubeconfig = settings.kubeconfig(config)?;
    let options = LogOptions {
        tail: logs.tail.parse().ok(),
        follow: logs.follow,
        container: None,
    };
    settings.runtime.block_on(async {
        let kube = Kube::connect(&kubeconfig, &context).await?;
        let selector = traefik::pod_selector(config);
        let mut lines = kube
            .pod_logs(cluster_objects::NAMESPACE, &selector, &options)
            .await?;
        while let Some(line) = lines.next().await {
            let line = line?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}: {}", line.pod, line.line)?;
            out.flush()?;
        }
        Ok(())
    })
}
