//! The live record store: the zone in force, swapped atomically when its records change, so
//! that readers (every query) never lock or wait, and a change channel for whoever follows it.
//!
//! Writers (a devenv.yaml reload, user routes, the cluster's Ingress watch) serialise on a mutex,
//! recompile the zone and publish it; a reader holding the old snapshot finishes with it.
//!
//! Not for: deciding what the records are (see [`super::records`]).

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::config::Config;

use super::fast::Served;
use super::records::{CONFIG_SOURCE, Entry, Records, Zone};

/// The zone in force and the table it was compiled from.
#[derive(Debug)]
pub struct Store {
    zone: ArcSwap<Served>,
    records: Mutex<Records>,
    recursion_available: bool,
    changed: watch::Sender<u32>,
}

impl Store {
    /// A store serving `records`. `recursion_available`: whether names outside the zone are
    /// forwarded (sets RA in answers).
    pub fn new(records: Records, recursion_available: bool) -> anyhow::Result<Store> {
        let zone = Zone::compile(&records, 1, recursion_available)?;
        let (changed, _) = watch::channel(1);
        Ok(Store {
            zone: ArcSwap::from_pointee(Served::new(zone)),
            records: Mutex::new(records),
            recursion_available,
            changed,
        })
    }

    /// The zone in force, for answering one query. Wait-free; does not allocate.
    pub fn load(&self) -> arc_swap::Guard<Arc<Served>> {
        self.zone.load()
    }

    /// The zone in force, to keep.
    pub fn snapshot(&self) -> Arc<Served> {
        self.zone.load_full()
    }

    /// A copy of the table in force.
    pub fn records(&self) -> Records {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// A receiver that sees the SOA serial of each new zone.
    pub fn subscribe(&self) -> watch::Receiver<u32> {
        self.changed.subscribe()
    }

    /// Change the table with `edit`, then compile and publish the result. Returns the new
    /// serial, or the unchanged one when `edit` changed nothing.
    pub fn update(&self, edit: impl FnOnce(&mut Records)) -> anyhow::Result<u32> {
        let mut records = self.records.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = records.clone();
        edit(&mut next);
        let current = self.zone.load().serial();
        if next == *records {
            return Ok(current);
        }
        let serial = current.wrapping_add(1).max(1);
        let zone = Zone::compile(&next, serial, self.recursion_available)?;
        *records = next;
        self.zone.store(Arc::new(Served::new(zone)));
        self.changed.send_replace(serial);
        Ok(serial)
    }

    /// Replace the entries of one source (`routes`, `ingress`, ...).
    pub fn set_source(&self, source: &str, entries: Vec<Entry>) -> anyhow::Result<u32> {
        self.update(|r| r.set_source(source, entries))
    }

    /// Take a new devenv.yaml: its settings and its entries; other sources stay.
    pub fn apply_config(&self, config: &Config) -> anyhow::Result<u32> {
        let fresh = Records::from_config(config);
        self.update(|r| {
            r.settings = fresh.settings;
            r.set_source(
                CONFIG_SOURCE,
                fresh
                    .sources
                    .get(CONFIG_SOURCE)
                    .cloned()
                    .unwrap_or_default(),
            );
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::records::Data;
    use hickory_proto::rr::{Name, RecordType};

    #[test]
    fn updates_are_seen_by_new_readers_and_announced() {
        let store = Store::new(Records::from_config(&Config::default()), true).unwrap();
        let mut rx = store.subscribe();
        let before = store.snapshot();
        let name = Name::from_ascii("api.macula.local.").unwrap();
        let serial = store
            .set_source(
                "routes",
                vec![Entry::new(
                    "api.macula.local",
                    Data::A("10.1.2.3".parse().unwrap()),
                )],
            )
            .unwrap();
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), serial);
        let a = store.load().lookup(&name, RecordType::A, 0).unwrap();
        assert_eq!(a.answers[0].data.to_string(), "10.1.2.3");
        // The old snapshot still answers as before.
        let old = before.lookup(&name, RecordType::A, 0).unwrap();
        assert_eq!(old.answers[0].data.to_string(), "127.0.0.2");
        // Re-applying the same config keeps the route and changes nothing.
        assert_eq!(store.apply_config(&Config::default()).unwrap(), serial);
        assert!(!rx.has_changed().unwrap());
    }
}
