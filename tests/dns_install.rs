//! `devenv dns install` / `uninstall` against a temporary root: exactly the files of the plan
//! are written, and exactly those are removed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::dns::home_with;
use support::{devenv, run, tool};

fn read(root: &Path, path: &str) -> Option<String> {
    std::fs::read_to_string(root.join(path)).ok()
}

#[test]
fn install_and_uninstall_write_and_remove_exactly_the_drop_in() {
    // The default port: unprivileged, and named in every file.
    let home = home_with("");
    let root = tempfile::tempdir().unwrap();
    let r_ = root.path().to_str().unwrap();
    // Nothing detected: a clear environment failure.
    let r = run(devenv(home.path()).args(["dns", "install", "--root", r_]));
    assert_eq!(r.code, 3, "{r}");
    // systemd-resolved, as this host would look with it running.
    std::fs::create_dir_all(root.path().join("run/systemd/resolve")).unwrap();
    std::fs::create_dir_all(root.path().join("etc/systemd/resolved.conf.d")).unwrap();
    std::fs::write(
        root.path().join("etc/systemd/resolved.conf.d/vpn.conf"),
        "[Resolve]\nDNS=10.8.0.1\n",
    )
    .unwrap();
    let drop_in = "etc/systemd/resolved.conf.d/devenv-macula.local.conf";
    let expected = "# Written by `devenv dns install` for macula.local; `devenv dns uninstall` removes it.\n[Resolve]\nDNS=127.0.0.1:20053\nDomains=~macula.local\n";

    let r = run(devenv(home.path()).args(["dns", "install", "--dry-run", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        r.stdout,
        "write /etc/systemd/resolved.conf.d/devenv-macula.local.conf:\n    # Written by `devenv dns install` for macula.local; `devenv dns uninstall` removes it.\n    [Resolve]\n    DNS=127.0.0.1:20053\n    Domains=~macula.local\nrun systemctl restart systemd-resolved\n"
    );
    assert_eq!(read(root.path(), drop_in), None, "a dry run writes nothing");

    let r = run(devenv(home.path()).args(["dns", "install", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(read(root.path(), drop_in).as_deref(), Some(expected));
    assert!(home.path().join("state/dns-install.json").is_file(), "{r}");

    let r = run(devenv(home.path()).args(["dns", "uninstall", "--dry-run", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        r.stdout,
        "would remove /etc/systemd/resolved.conf.d/devenv-macula.local.conf\n"
    );
    assert!(read(root.path(), drop_in).is_some());

    let r = run(devenv(home.path()).args(["dns", "uninstall", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(read(root.path(), drop_in), None);
    assert_eq!(
        read(root.path(), "etc/systemd/resolved.conf.d/vpn.conf").as_deref(),
        Some("[Resolve]\nDNS=10.8.0.1\n")
    );
    assert!(!home.path().join("state/dns-install.json").exists());
    let left: Vec<PathBuf> = walk(root.path());
    assert_eq!(left.len(), 1, "only the neighbour's file is left: {left:?}");

    // NetworkManager in dnsmasq mode, and macOS with its port line.
    std::fs::create_dir_all(root.path().join("etc/NetworkManager")).unwrap();
    std::fs::write(
        root.path().join("etc/NetworkManager/NetworkManager.conf"),
        "[main]\ndns=dnsmasq\n",
    )
    .unwrap();
    let r = run(devenv(home.path()).args(["dns", "install", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert!(
        read(
            root.path(),
            "etc/NetworkManager/dnsmasq.d/devenv-macula.local.conf"
        )
        .unwrap()
        .ends_with("server=/macula.local/127.0.0.1#20053\n")
    );
    let r = run(devenv(home.path()).args(["dns", "uninstall", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        r.stdout,
        "removed /etc/NetworkManager/dnsmasq.d/devenv-macula.local.conf\nremoved /etc/NetworkManager/dnsmasq.d/\n",
        "the directory install created goes too"
    );
    assert!(!root.path().join("etc/NetworkManager/dnsmasq.d").exists());
    assert!(
        root.path()
            .join("etc/NetworkManager/NetworkManager.conf")
            .is_file()
    );

    // macOS: /etc/resolver did not exist; installing twice still records that it made it.
    for _ in 0..2 {
        let r =
            run(devenv(home.path()).args(["dns", "install", "--mechanism", "macos", "--root", r_]));
        assert_eq!(r.code, 0, "{r}");
    }
    let r = run(devenv(home.path()).args(["dns", "uninstall", "--dry-run", "--root", r_]));
    assert_eq!(
        r.stdout, "would remove /etc/resolver/macula.local\nwould remove /etc/resolver/\n",
        "{r}"
    );
    assert!(root.path().join("etc/resolver/macula.local").is_file());
    let r = run(devenv(home.path()).args(["dns", "uninstall", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert!(!root.path().join("etc/resolver").exists(), "{r}");
    // Exactly the tree before the installs: the neighbours' files and the directories that
    // were there.
    let mut dirs = walk_dirs(root.path());
    dirs.sort();
    let expected: Vec<PathBuf> = [
        "etc",
        "etc/NetworkManager",
        "etc/systemd",
        "etc/systemd/resolved.conf.d",
        "run",
        "run/systemd",
        "run/systemd/resolve",
    ]
    .iter()
    .map(|d| root.path().join(d))
    .collect();
    assert_eq!(dirs, expected);
    assert_eq!(
        walk(root.path()).len(),
        2,
        "vpn.conf and NetworkManager.conf"
    );
    let r = run(devenv(home.path()).args([
        "dns",
        "install",
        "--dry-run",
        "--mechanism",
        "macos",
        "--root",
        r_,
    ]));
    assert!(
        r.stdout.contains("write /etc/resolver/macula.local:")
            && r.stdout.contains("    port 20053"),
        "{r}"
    );
    assert!(r.stderr.contains("multicast DNS"), "{r}");
    let r =
        run(devenv(home.path()).args(["dns", "install", "--mechanism", "windows", "--root", r_]));
    assert!(
        r.stdout
            .contains("Add-DnsClientNrptRule -Namespace \".macula.local\""),
        "{r}"
    );
    assert!(r.stderr.contains("port 53"), "{r}");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn walk_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_dirs(&p));
            out.push(p);
        }
    }
    out
}

#[test]
fn sudo_install_records_where_the_users_own_status_and_uninstall_find_it() {
    use std::os::unix::fs::MetadataExt;
    let support::SudoUser {
        tmp,
        home: user_home,
        config,
        passwd,
    } = support::sudo_user("dns: {port: 5454}\n");
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("run/systemd/resolve")).unwrap();
    std::fs::create_dir_all(root.join("run/systemd/system")).unwrap();
    let (fake, calls) = recording_program(tmp.path());
    let Some(mut sudo) = support::as_sudo_from(&passwd, tmp.path()) else {
        return;
    };
    let r = run(sudo
        .env("DEVENV_SYSTEMCTL", &fake)
        .arg("--config")
        .arg(&config)
        .args(["dns", "install", "--root"])
        .arg(&root));
    assert_eq!(r.code, 0, "{r}");
    let record = user_home.join(".local/state/devenv/macula/dns-install.json");
    assert!(
        record.is_file(),
        "the record is in the user's state directory: {r}"
    );
    assert!(
        !tmp.path().join("root-home/.local").exists(),
        "nothing in root's home"
    );
    for p in [
        user_home.join(".local"),
        user_home.join(".local/state/devenv/macula"),
        record.clone(),
    ] {
        assert_eq!(
            std::fs::metadata(&p).unwrap().uid(),
            4242,
            "{} is the user's",
            p.display()
        );
    }

    // The login service is the user's: in their home, theirs, in their manager.
    let unit = format!(
        "{}/.config/systemd/user/devenv-dns-macula.service",
        user_home.display()
    );
    let on_root = root.join(&unit[1..]);
    assert_eq!(std::fs::metadata(&on_root).unwrap().uid(), 4242, "{r}");
    assert_eq!(
        std::fs::metadata(on_root.parent().unwrap()).unwrap().uid(),
        4242
    );
    assert!(
        std::fs::read_to_string(&on_root)
            .unwrap()
            .contains(&format!(
                "DEVENV_STATE_DIR={}/.local/state/devenv/macula",
                user_home.display()
            )),
        "the user's state directory"
    );
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "--user --machine=devuser@ daemon-reload\n--user --machine=devuser@ enable devenv-dns-macula.service\n--user --machine=devuser@ restart devenv-dns-macula.service\n"
    );

    // The user, without sudo, sees it.
    if let Some(setpriv) = tool("setpriv") {
        let r = run(Command::new(setpriv)
            .args(["--reuid=4242", "--regid=4242", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_devenv"))
            .arg("--config")
            .arg(&config)
            .args(["dns", "status", "-o", "json"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &user_home)
            .env("NO_COLOR", "1")
            .current_dir(&user_home));
        let v: serde_json::Value =
            serde_json::from_str(&r.stdout).unwrap_or_else(|_| panic!("status as the user: {r}"));
        assert_eq!(v["installed"], "systemd-resolved", "{r}");
    }

    // `sudo devenv dns uninstall` finds it and undoes exactly the install.
    let mut sudo = support::as_sudo_from(&passwd, tmp.path()).unwrap();
    let r = run(sudo
        .env("DEVENV_SYSTEMCTL", &fake)
        .arg("--config")
        .arg(&config)
        .args(["dns", "uninstall", "--root"])
        .arg(&root));
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.starts_with(&format!(
            "removed /etc/systemd/resolved.conf.d/devenv-macula.local.conf\nremoved {unit}\nremoved /etc/systemd/resolved.conf.d/\nremoved /etc/systemd/\nremoved /etc/\n"
        )),
        "{r}"
    );
    assert!(
        std::fs::read_to_string(&calls)
            .unwrap()
            .ends_with("--user --machine=devuser@ disable --now devenv-dns-macula.service\n--user --machine=devuser@ daemon-reload\n")
    );
    assert!(walk(&root).is_empty(), "{:?}", walk(&root));
    let mut left = walk_dirs(&root);
    left.sort();
    assert_eq!(
        left,
        [
            "run",
            "run/systemd",
            "run/systemd/resolve",
            "run/systemd/system"
        ]
        .map(|d| root.join(d))
    );
    assert!(!record.exists(), "{r}");
}

/// A stand-in for `systemctl` that appends its arguments, one call a line, to `calls`.
fn recording_program(dir: &Path) -> (PathBuf, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let script = dir.join("fake-systemctl");
    let calls = dir.join("calls");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$*\" >> '{}'\n", calls.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, calls)
}

#[test]
fn the_login_service_is_a_user_unit_enabled_with_systemctl_and_removed_exactly() {
    let home = home_with("name: macula\n");
    let root = tempfile::tempdir().unwrap();
    let r_ = root.path().to_str().unwrap();
    // A host booted with systemd, resolved running.
    std::fs::create_dir_all(root.path().join("run/systemd/system")).unwrap();
    std::fs::create_dir_all(root.path().join("run/systemd/resolve")).unwrap();
    let mut before = walk_dirs(root.path());
    before.sort();
    let tools = tempfile::tempdir().unwrap();
    let (fake, calls) = recording_program(tools.path());
    let devenv_with_fake = || {
        let mut cmd = devenv(home.path());
        cmd.env("DEVENV_SYSTEMCTL", &fake);
        cmd
    };
    let unit_path = format!(
        "{}/.config/systemd/user/devenv-dns-macula.service",
        home.path().display()
    );
    let exe = env!("CARGO_BIN_EXE_devenv");
    let config = home.path().join("devenv.yaml");
    let state = home.path().join("state");
    let unit = format!(
        "# Written by `devenv dns install` for macula; `devenv dns uninstall` removes it.\n\
         [Unit]\nDescription=devenv resolver for macula.local (macula)\n\n\
         [Service]\nType=simple\n\
         Environment=\"DEVENV_STATE_DIR={state}\"\n\
         WorkingDirectory=\"{state}\"\n\
         ExecStart=\"{exe}\" \"--config\" \"{config}\" \"--color\" \"never\" \"dns\" \"serve\"\n\
         Restart=on-failure\nRestartSec=5\n\n\
         [Install]\nWantedBy=default.target\n",
        state = state.display(),
        config = config.display(),
    );

    let r = run(devenv_with_fake().args(["dns", "install", "--dry-run", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains(&format!("write {unit_path}:\n")), "{r}");
    assert!(
        r.stdout.ends_with(
            "run systemctl --user daemon-reload\nrun systemctl --user enable devenv-dns-macula.service\nrun systemctl --user restart devenv-dns-macula.service\n"
        ),
        "{r}"
    );
    assert!(!calls.exists(), "a dry run calls nothing");

    let r = run(devenv_with_fake().args(["dns", "install", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        read(root.path(), &unit_path[1..]).as_deref(),
        Some(unit.as_str()),
        "{r}"
    );
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "--user daemon-reload\n--user enable devenv-dns-macula.service\n--user restart devenv-dns-macula.service\n"
    );
    assert!(
        r.stderr
            .contains("the resolver starts at login (systemd user unit devenv-dns-macula.service)"),
        "{r}"
    );

    std::fs::remove_file(&calls).unwrap();
    let r = run(devenv_with_fake().args(["dns", "uninstall", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains(&format!("removed {unit_path}\n")), "{r}");
    assert_eq!(
        std::fs::read_to_string(&calls).unwrap(),
        "--user disable --now devenv-dns-macula.service\n--user daemon-reload\n"
    );
    // The root as before: no file, and none of the directories install made.
    assert!(walk(root.path()).is_empty(), "{:?}", walk(root.path()));
    let mut after = walk_dirs(root.path());
    after.sort();
    assert_eq!(after, before);

    // Opting out writes only the routing.
    std::fs::remove_file(&calls).unwrap();
    let r = run(devenv_with_fake().args(["dns", "install", "--no-login-service", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(read(root.path(), &unit_path[1..]), None);
    assert!(!calls.exists());
    let r = run(devenv_with_fake().args(["dns", "uninstall", "--root", r_]));
    assert_eq!(r.code, 0, "{r}");
}

#[test]
fn a_domain_that_takes_names_from_the_real_dns_is_refused_without_force() {
    let root = tempfile::tempdir().unwrap();
    let r_ = root.path().to_str().unwrap();
    std::fs::create_dir_all(root.path().join("run/systemd/resolve")).unwrap();
    std::fs::create_dir_all(root.path().join("etc/systemd/resolved.conf.d")).unwrap();
    for (domain, why) in [
        ("google.com", "under the public suffix `com`"),
        ("dev", "it is a public suffix"),
        ("local", "the whole `local` of mDNS"),
    ] {
        let home = home_with(&format!("domain: {domain}\n"));
        let r = run(devenv(home.path()).args(["dns", "install", "--root", r_]));
        assert_eq!(r.code, 2, "{domain}: {r}");
        assert!(r.stderr.contains(&format!("domain `{domain}`: ")), "{r}");
        assert!(r.stderr.contains(why), "{r}");
        assert!(r.stderr.contains("--force"), "{r}");
        assert!(
            walk(&root.path().join("etc")).is_empty(),
            "nothing written: {r}"
        );
        let forced =
            run(devenv(home.path()).args(["dns", "install", "--force", "--dry-run", "--root", r_]));
        assert_eq!(forced.code, 0, "{forced}");
        assert!(
            forced.stderr.contains("installed all the same: --force"),
            "{forced}"
        );
    }
    // Quiet for devenv's own kind of domain.
    for domain in ["shop.test", "corp.internal", "dev.local", "lab.home.arpa"] {
        let home = home_with(&format!("domain: {domain}\n"));
        let r = run(devenv(home.path()).args(["dns", "install", "--dry-run", "--root", r_]));
        assert_eq!(r.code, 0, "{domain}: {r}");
        assert!(
            !r.stderr.contains(&format!("domain `{domain}`")),
            "{domain}: {r}"
        );
    }
}
