//! The resolver in the background (`dns::service`), as `devenv up` starts it and `down` stops
//! it: the real binary started detached, answering on the address its run file names, found
//! again (not started twice), stopped by `stop`, and a resolver the user runs in a terminal
//! left alone.

mod support;

use devenv::dns::service::{self, Stopped};
use support::dns::{Serve, home_with, short};
use support::tool;

const CONFIG: &str = "name: names-service-test\ndomain: service.test\ndns:\n  port: 0\n";

#[test]
fn started_in_the_background_answers_is_found_again_and_stops() {
    if tool("dig").is_none() {
        return;
    }
    let home = home_with(CONFIG);
    let state = home.path().join("state");
    let loaded = devenv::config::load(Some(&home.path().join("devenv.yaml"))).unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_devenv"));

    let first = service::ensure_running_with(exe, &loaded, &state).unwrap();
    assert!(first.started);
    let port = first.run.udp.port().to_string();
    assert_eq!(short(&port, &["grafana.service.test", "A"]), ["127.0.0.1"]);
    let log = std::fs::read_to_string(&first.log).unwrap();
    assert!(log.contains("serving service.test"), "{log}");

    let again = service::ensure_running_with(exe, &loaded, &state).unwrap();
    assert!(!again.started);
    assert_eq!(again.run.pid, first.run.pid);

    assert_eq!(
        service::stop(&state).unwrap(),
        Stopped::Stopped(first.run.pid)
    );
    assert!(devenv::dns::RunFile::running(&state).is_none());
    // Nobody answers there any more (dig says why on its one line).
    let after = short(&port, &["grafana.service.test", "A"]);
    assert!(after.iter().all(|l| l.starts_with(";;")), "{after:?}");
    assert_eq!(service::stop(&state).unwrap(), Stopped::NotRunning);
}

#[test]
fn a_resolver_in_a_terminal_is_used_and_left_alone() {
    let home = home_with(CONFIG);
    let state = home.path().join("state");
    let serve = Serve::start(home.path(), &["--no-forward"]);
    let loaded = devenv::config::load(Some(&home.path().join("devenv.yaml"))).unwrap();
    let exe = std::path::Path::new(env!("CARGO_BIN_EXE_devenv"));
    let found = service::ensure_running_with(exe, &loaded, &state).unwrap();
    assert!(!found.started);
    assert_eq!(found.run.pid, serve.pid());
    assert_eq!(
        service::stop(&state).unwrap(),
        Stopped::NotOurs(serve.pid())
    );
    assert!(devenv::dns::RunFile::running(&state).is_some());
}
