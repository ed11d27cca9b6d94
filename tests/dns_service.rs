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

// `devenv up` / `down` with the resolver, against the real engine (busybox stand-ins, no
// cluster): up starts it and says where, down stops only that one.

use support::docker::{self, Env};

/// An environment whose resolver `up` runs on `port`, or `None` (after a skip notice) without
/// an engine or dig.
fn env_with_resolver(test: &str, port: u16) -> Option<Env> {
    if !docker::engine() || tool("dig").is_none() {
        return None;
    }
    let image = docker::standin_image()?;
    let mut env = Env::new(test, &image);
    env.dns = format!("  port: {port}\n");
    env.write();
    Some(env)
}

/// Whether process `pid` is gone, waiting for it a while (it exits after removing its run
/// file, which `down` waits for).
fn gone(pid: u32) -> bool {
    let proc = std::path::PathBuf::from(format!("/proc/{pid}"));
    for _ in 0..200 {
        let zombie = std::fs::read_to_string(proc.join("stat"))
            .map(|s| {
                s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(true);
        if zombie {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

fn pid_in(text: &str, after: &str) -> u32 {
    let rest = &text[text
        .find(after)
        .unwrap_or_else(|| panic!("{after:?} in {text}"))
        + after.len()..];
    rest.split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a pid after {after:?} in {text}"))
}

#[test]
fn up_starts_the_resolver_follows_a_new_port_and_down_stops_it() {
    let port = support::free_port();
    let Some(mut env) = env_with_resolver("rsv", port) else {
        return;
    };
    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 0, "{up}");
    let said = "resolver: started in the background: pid ";
    let pid = pid_in(&up.stderr, said);
    assert!(
        up.stderr.contains(&format!(
            " on 127.0.0.1:{port}/udp and 127.0.0.1:{port}/tcp, log {}",
            env.state().join("dns.log").display()
        )),
        "{up}"
    );
    let p = port.to_string();
    assert_eq!(short(&p, &["grafana.macula.local", "A"]), ["127.0.0.1"]);
    let run = devenv::dns::RunFile::running(&env.state()).expect("a run file");
    assert_eq!(run.pid, pid);

    // A second up finds it; status shows it.
    let again = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(again.code, 0, "{again}");
    assert!(
        again.stderr.contains(&format!(
            "resolver: running (pid {pid}) on 127.0.0.1:{port}/udp"
        )),
        "{again}"
    );
    let status = env.devenv(&["status", "-o", "json"]);
    assert_eq!(status.code, 0, "{status}");
    let doc: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let row = doc["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["service"] == "resolver")
        .unwrap_or_else(|| panic!("no resolver row: {status}"));
    assert_eq!(row["state"], "running", "{status}");
    assert_eq!(row["health"], "healthy", "{status}");

    // devenv.yaml moves it: the next up restarts it there.
    let moved = support::free_port();
    env.dns = format!("  port: {moved}\n");
    env.write();
    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 0, "{up}");
    assert!(
        up.stderr.contains(&format!(
            "resolver: restarted (dns.address/dns.port 127.0.0.1:{port} -> 127.0.0.1:{moved})"
        )),
        "{up}"
    );
    assert!(gone(pid), "the old resolver (pid {pid}) still runs");
    let pid = pid_in(&up.stderr, "): pid ");
    assert_eq!(
        short(&moved.to_string(), &["grafana.macula.local", "A"]),
        ["127.0.0.1"]
    );

    let down = env.devenv(&["down"]);
    assert_eq!(down.code, 0, "{down}");
    assert!(
        down.stderr
            .contains(&format!("stopped resolver (pid {pid})")),
        "{down}"
    );
    assert!(gone(pid), "pid {pid} still runs after down");
    assert!(
        !env.state().join("dns.json").exists(),
        "the run file is gone"
    );
    let after = short(&moved.to_string(), &["grafana.macula.local", "A"]);
    assert!(after.iter().all(|l| l.starts_with(";;")), "{after:?}");
}

#[test]
fn down_leaves_a_resolver_run_in_a_terminal_alone() {
    let port = support::free_port();
    let Some(env) = env_with_resolver("rsvfg", port) else {
        return;
    };
    let serve = Serve::start(env.dir.path(), &["--no-forward"]);
    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 0, "{up}");
    assert!(
        up.stderr
            .contains(&format!("resolver: running (pid {})", serve.pid())),
        "{up}"
    );
    // It listens elsewhere than devenv.yaml says: said, not changed.
    assert!(up.stderr.contains("not started by `devenv up`"), "{up}");
    let down = env.devenv(&["down"]);
    assert_eq!(down.code, 0, "{down}");
    assert!(
        down.stderr.contains(&format!(
            "left the resolver running (pid {}): `devenv up` did not start it",
            serve.pid()
        )),
        "{down}"
    );
    assert_eq!(
        short(&serve.port(), &["grafana.macula.local", "A"]),
        ["127.0.0.1"]
    );
    assert_eq!(serve.stop(), 0);
}

#[test]
fn up_with_the_resolver_port_taken_names_the_holder_and_changes_nothing() {
    let port = support::free_port();
    let Some(env) = env_with_resolver("rsvtaken", port) else {
        return;
    };
    let holder = std::net::UdpSocket::bind(("127.0.0.1", port)).unwrap();
    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 3, "{up}");
    assert!(
        up.stderr.contains(&format!(
            "127.0.0.1:{port}/udp for the resolver (dns.port) is taken by"
        )) && up.stderr.contains(&format!("pid {}", std::process::id())),
        "{up}"
    );
    assert!(up.stderr.contains("dns.enabled: false"), "{up}");
    assert!(env.containers().is_empty(), "nothing was created");
    assert!(!env.state().join("dns.json").exists());
    assert!(!env.state().join("dns-background.json").exists());
    drop(holder);
}
