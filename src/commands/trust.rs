//! `devenv trust install|uninstall|status`: devenv's CA in the OS store and the NSS databases
//! (`crate::trust`), recorded in the state directory so that `uninstall` undoes exactly it.
//! Not for: making the CA (`tls`).

use std::path::Path;

use crate::cli::{TrustArgs, TrustCommand, TrustInstallArgs};
use crate::error::Failure;
use crate::output::Format;
use crate::trust::{self, Inputs, Store};
use crate::{dns, env, tls};

use super::Settings;

pub fn run(settings: &Settings, args: TrustArgs) -> anyhow::Result<()> {
    match args.command {
        TrustCommand::Install(a) => install(settings, a),
        TrustCommand::Uninstall(a) => uninstall(settings, a),
        TrustCommand::Status => status(settings),
    }
}

fn install(settings: &Settings, args: TrustInstallArgs) -> anyhow::Result<()> {
    let config = settings.load_environment(false)?.config;
    let p = &settings.printer;
    // Under sudo, the invoking user's state directory: their CA, their record, written as them.
    let record_dir = dns::os::record_dir(&config.name)?;
    let dir = record_dir.dir.clone();
    let owner = record_dir.owner;
    let bundle = dns::os::as_user(owner, &dir, || tls::ensure(&dir, &config))?;
    if bundle.issued && !args.dry_run {
        refresh_gateway(settings, &config, &dir, owner);
    }
    let store = Store::detect(&args.root).ok_or_else(|| {
        Failure::environment(
            "no certificate store devenv knows on this host (update-ca-certificates, p11-kit trust, macOS, Windows)",
            Some(format!(
                "trust {} by hand with your system's tool",
                dir.join(tls::DIR).join(tls::CA_CERT).display()
            )),
        )
    })?;
    let home: std::path::PathBuf = std::env::var_os(env::HOME)
        .map(Into::into)
        .unwrap_or_default();
    let real_root = args.root == Path::new("/");
    let certutil = real_root && which("certutil");
    let ca_path = dir.join(tls::DIR).join(tls::CA_CERT);
    let plan = trust::plan(
        store,
        &args.root,
        &Inputs {
            name: &config.name,
            ca_pem: &bundle.ca_cert_pem,
            ca_path: &ca_path,
            nss: if certutil {
                trust::nss_databases(&home)
            } else {
                Vec::new()
            },
            home,
        },
    );
    if args.dry_run {
        for step in &plan.steps {
            p.data(format!("would {step}"))?;
        }
        if !certutil {
            p.status("certutil not found (libnss3-tools, nss-tools): Firefox and Chromium databases would be left out");
        }
        return Ok(());
    }
    if let Some(existing) = trust::load_record(&dir)
        && existing.steps == plan.steps
    {
        p.status(format!("already installed ({:?} store)", existing.store));
        return Ok(());
    }
    if let Err(e) = trust::apply(&plan.steps, real_root) {
        // Put back what was done before the failure.
        let _ = trust::apply(&plan.undo, real_root);
        return Err(e);
    }
    dns::os::as_user(owner, &dir, || trust::save_record(&dir, &plan))?;
    for step in &plan.steps {
        p.step("done", step.to_string());
    }
    p.status("runtimes that ignore the OS store:");
    for hint in &plan.hints {
        p.status(format!("  {hint}"));
    }
    Ok(())
}

/// A certificate `tls::ensure` just issued (renewed within 30 days of expiry) reaches a
/// running gateway now, through the same checked reload as a route change, rather than at the
/// next `up`: its live directory is refilled and, when that changed it, the gateway reloaded.
/// Under sudo (`owner`) it is left to the user's next `up`, which reloads it the same way:
/// the reload writes in their state directory. Best effort: the trust install itself stands
/// whatever happens here, and what did not happen is said.
fn refresh_gateway(
    settings: &Settings,
    config: &crate::config::Config,
    dir: &Path,
    owner: Option<(u32, u32)>,
) {
    let p = &settings.printer;
    if !crate::gateway::dir(dir).exists() {
        // No environment ever ran here: `up` fills the live directory when it starts one.
        return;
    }
    if owner.is_some() {
        p.status("the certificate was renewed: your next `devenv up` reloads the gateway with it");
        return;
    }
    let reload = || -> anyhow::Result<Option<String>> {
        if !crate::gateway::prepare(config, dir)?.changed {
            return Ok(None);
        }
        let routes = crate::routes::load(dir)?;
        let served =
            settings
                .runtime
                .block_on(crate::gateway::serve(config, dir, &routes.routes))?;
        Ok(match served {
            crate::gateway::Served::Live(crate::gateway::Applied::Reloaded { .. }) => {
                p.step("reloaded", "the gateway, with the renewed certificate");
                None
            }
            crate::gateway::Served::Live(crate::gateway::Applied::Unchanged { .. }) => None,
            crate::gateway::Served::NotRunning(why) => Some(why),
        })
    };
    match reload() {
        Ok(None) => {}
        Ok(Some(why)) => p.status(format!(
            "the certificate was renewed; the gateway is not reloaded ({why}): `devenv up` serves it"
        )),
        Err(e) => p.warn(format!(
            "the certificate was renewed, but reloading the gateway failed: {e:#}; `devenv up` serves it"
        )),
    }
}

fn uninstall(settings: &Settings, args: TrustInstallArgs) -> anyhow::Result<()> {
    let config = settings.load_environment(false)?.config;
    let p = &settings.printer;
    let dir = dns::os::record_dir(&config.name)?.dir;
    let Some(plan) = trust::load_record(&dir) else {
        p.status("nothing to undo: no `devenv trust install` is recorded");
        return Ok(());
    };
    if args.dry_run {
        for step in &plan.undo {
            p.data(format!("would {step}"))?;
        }
        return Ok(());
    }
    trust::apply(&plan.undo, plan.root == Path::new("/"))?;
    std::fs::remove_file(dir.join(trust::RECORD_FILE))
        .map_err(|e| anyhow::anyhow!("removing {}: {e}", dir.join(trust::RECORD_FILE).display()))?;
    for step in &plan.undo {
        p.step("undone", step.to_string());
    }
    Ok(())
}

fn status(settings: &Settings) -> anyhow::Result<()> {
    let config = settings.load_environment(false)?.config;
    let p = &settings.printer;
    let dir = dns::os::record_dir(&config.name)?.dir;
    let record = trust::load_record(&dir);
    let ca = std::fs::read_to_string(dir.join(tls::DIR).join(tls::CA_CERT)).ok();
    let in_store = match (&record, &ca) {
        (Some(r), Some(pem)) => trust::in_store(r, pem),
        _ => None,
    };
    if p.format == Format::Json {
        p.json(&serde_json::json!({
            "installed": record.is_some(),
            "store": record.as_ref().map(|r| r.store),
            "root": record.as_ref().map(|r| r.root.clone()),
            "in_store": in_store,
            "steps": record.as_ref().map(|r| r.steps.iter().map(ToString::to_string).collect::<Vec<_>>()),
        }))?;
    } else {
        match &record {
            None => p.data("not installed")?,
            Some(r) => {
                p.data(format!(
                    "installed in the {:?} store under {}",
                    r.store,
                    r.root.display()
                ))?;
                for step in &r.steps {
                    p.data(format!("  {step}"))?;
                }
                if let Some(found) = in_store {
                    p.data(format!(
                        "  CA in the store's bundle: {}",
                        if found { "yes" } else { "no" }
                    ))?;
                }
            }
        }
    }
    Ok(())
}

fn which(tool: &str) -> bool {
    std::env::var_os(env::PATH)
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(tool).is_file()))
}
