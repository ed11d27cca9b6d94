//! Step: the waits of one service — for the services it depends on (their milestones on the
//! [`Ready`] board), and until its own healthcheck passes (`docker::health`).
//!
//! Not for: what happens between the two (creating and starting: [`super::apply`]).

use std::time::Duration;

use tokio::time::Instant;

use crate::docker::{ContainerSpec, Engine, health};

use super::Ready;

/// A service not started because one it depends on failed.
#[derive(Debug)]
pub struct Skipped {
    /// The service that was not started.
    pub service: String,
    /// The dependency that did not come up.
    pub dependency: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "service {}: not started, {} did not come up",
            self.service, self.dependency
        )
    }
}

impl std::error::Error for Skipped {}

/// Wait until every one of `deps` came up, in order; `note` hears which one is awaited. The
/// first that did not makes `service` skipped.
pub async fn dependencies(
    ready: &Ready,
    service: &str,
    deps: &[String],
    note: impl Fn(&str),
) -> Result<(), Skipped> {
    for dep in deps {
        note(&format!("waiting for {dep}"));
        if !ready.wait(dep).await {
            return Err(Skipped {
                service: service.to_string(),
                dependency: dep.clone(),
            });
        }
    }
    Ok(())
}

/// Wait until container `id` of `spec` is healthy by its own healthcheck, or fail at
/// `deadline` (see [`health::wait_healthy`]).
pub async fn healthy(
    engine: &Engine,
    id: &str,
    spec: &ContainerSpec,
    deadline: Instant,
    timeout: Duration,
) -> anyhow::Result<()> {
    health::wait_healthy(
        engine,
        id,
        &spec.service,
        spec.healthcheck.as_ref(),
        spec.probe.as_ref(),
        deadline,
        timeout,
    )
    .await
}
