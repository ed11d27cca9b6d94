//! `devenv logs <service> [-f] [--tail N]`: a service's output, stdout to stdout and stderr to
//! stderr, as the container wrote it.

use std::io::Write;

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;

use crate::cli::LogsArgs;
use crate::config::Config;
use crate::docker::{Engine, runtime};
use crate::error::Failure;

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
    let loaded = settings.load_config()?;
    let config = &loaded.config;
    if !Config::known_services().contains(&logs.service.as_str()) {
        return Err(Failure::bad_input(
            format!("there is no service `{}`", logs.service),
            format!("services: {}", Config::known_services().join(", ")),
        )
        .into());
    }
    runtime()?.block_on(async {
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
        let mut stream = engine.docker.logs(
            &container.id,
            Some(LogsOptions {
                follow: logs.follow,
                stdout: true,
                stderr: true,
                tail: logs.tail.clone(),
                ..Default::default()
            }),
        );
        while let Some(item) = stream.next().await {
            let item = item.map_err(|e| {
                anyhow::anyhow!("reading the logs of container {}: {e}", container.name)
            })?;
            match item {
                LogOutput::StdErr { message } => {
                    let _ = std::io::stderr().write_all(&message);
                }
                LogOutput::StdOut { message } | LogOutput::Console { message } => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(&message)?;
                    out.flush()?;
                }
                LogOutput::StdIn { .. } => {}
            }
        }
        Ok(())
    })
}
