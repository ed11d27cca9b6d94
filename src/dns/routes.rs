//! The user's routes (`crate::routes`) as a source of the zone: each route's host answers
//! the gateway's address, as the infrastructure's names do. The resolver follows the routes
//! file as it follows devenv.yaml. Not for: validating or writing routes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::config::Config;
use crate::routes::relay::Relays;
use crate::routes::{self, Routes};

use super::records::{Data, Entry, Records};
use super::store::Store;

/// The source name of the routes' entries.
pub const SOURCE: &str = "routes";

/// The entries of `routes`: each host to the gateway (its own address when devenv.yaml gives
/// it one).
pub fn entries(config: &Config, routes: &Routes) -> Vec<Entry> {
    let gateway = config.services.get("gateway").and_then(|s| s.address);
    routes
        .routes
        .iter()
        .map(|r| Entry::new(&r.host, Data::Infrastructure(gateway)))
        .collect()
}

/// The table of `config` with the routes in `state_dir` (when given and readable; an
/// unreadable routes file is logged and left out rather than failing the resolver).
pub fn records(config: &Config, state_dir: Option<&Path>) -> Records {
    let mut records = Records::from_config(config);
    if let Some(dir) = state_dir {
        match routes::load(dir) {
            Ok(r) => records.set_source(SOURCE, entries(config, &r)),
            Err(e) => tracing::warn!("routes not served: {e:#}"),
        }
    }
    records
}

/// Follow the routes file in `state_dir`: when its contents change, load it, replace the
/// routes' entries in `store`, and serve the routes' relays (`routes::relay`: this process is
/// the host side of routes to loopback-only dev servers). A file that fails to load keeps the
/// entries and relays in force. Returns when `stop` is set.
pub async fn follow(config: Config, state_dir: PathBuf, store: Arc<Store>, stop: Arc<AtomicBool>) {
    let file = routes::path(&state_dir);
    let read = |p: &Path| std::fs::read(p).ok();
    let mut relays = Relays::default();
    let mut served = routes::load(&state_dir)
        .map(|r| r.routes)
        .unwrap_or_default();
    relays.reconcile(&served);
    let mut last = read(&file);
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        let now = read(&file);
        if now == last {
            // A relay that could not listen, or stopped, is tried again.
            if served.iter().filter(|r| r.relay.is_some()).count() != relays.len() {
                relays.reconcile(&served);
            }
            continue;
        }
        last = now;
        match routes::load(&state_dir) {
            Ok(r) => {
                relays.reconcile(&r.routes);
                served = r.routes.clone();
                match store.set_source(SOURCE, entries(&config, &r)) {
                    Ok(serial) => {
                        tracing::info!("{}: reloaded (zone serial {serial})", file.display())
                    }
                    Err(e) => tracing::error!("{}: not applied: {e:#}", file.display()),
                }
            }
            Err(e) => tracing::error!(
                "{}: not reloaded, keeping the routes in force: {e:#}",
                file.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_answers_the_gateway_address() {
        let config = Config::default();
        let dir = tempfile::tempdir().unwrap();
        let mut table = Routes::default();
        table.add(&config, "api", "127.0.0.1:3000", None).unwrap();
        routes::save(dir.path(), &table).unwrap();
        let zone =
            super::super::Zone::compile(&records(&config, Some(dir.path())), 1, true).unwrap();
        let name = hickory_proto::rr::Name::from_ascii("api.macula.local.").unwrap();
        let answer = zone
            .lookup(
                &name,
                hickory_proto::rr::RecordType::A,
                zone.view_of("127.0.0.1".parse().unwrap()),
            )
            .expect("an answer");
        let text = format!("{answer:?}");
        assert!(text.contains("127.0.0.1"), "{text}");
        // Without the routes it is an application name: the ingress's address.
        let none = super::super::Zone::compile(&records(&config, None), 1, true).unwrap();
        let answer = none
            .lookup(
                &name,
                hickory_proto::rr::RecordType::A,
                none.view_of("127.0.0.1".parse().unwrap()),
            )
            .expect("an answer");
        let text = format!("{answer:?}");
        assert!(
            text.contains("127.0.0.2") && !text.contains("127.0.0.1"),
            "{text}"
        );
    }
}
