//! `devenv doctor`: walk the whole chain (host, names, services, cluster) and say for each
//! link ok, warn, FAIL or skip, with the fix; exit 4 when a link fails. A script over
//! [`crate::doctor`].

use crate::doctor::{self, Facts, Status};
use crate::error::Failure;
use crate::output::Format;
use crate::state;

use super::Settings;

pub fn run(settings: &Settings) -> anyhow::Result<()> {
    let config = settings.load_environment(false)?.config;
    let state_dir = state::dir(&config.name)?;
    let kubeconfig = settings.kubeconfig(&config)?;
    let facts = Facts::new(config, state_dir, kubeconfig);
    let checks = doctor::checks(&facts);
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let p = &settings.printer;
    let human = p.format == Format::Human;
    let mut printed = Ok(());
    let report = settings.runtime.block_on(doctor::run(checks, |outcome| {
        if human && printed.is_ok() {
            printed = p.data(doctor::line(outcome, width));
        }
    }));
    printed?;
    if human {
        p.status(format!(
            "{} ok, {} warnings, {} failed, {} skipped",
            report.count(Status::Ok),
            report.count(Status::Warn),
            report.count(Status::Fail),
            report.count(Status::Skip)
        ));
    } else {
        p.json(&report)?;
    }
    if report.ok {
        return Ok(());
    }
    Err(Failure::check_failed(format!("failed: {}", report.failed().join(", "))).into())
}
