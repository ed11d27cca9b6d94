//! `devenv trust` into a throwaway Debian root with the real `update-ca-certificates`: the CA
//! lands in the root's system bundle, and curl using that bundle — no `-k`, no `--cacert` of
//! devenv's — verifies a server with devenv's wildcard certificate (openssl s_server); status
//! says so; uninstall removes exactly what install added, after which the same curl refuses.

mod support;

use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::Command;

use support::process::{Guard, wait_for};
use support::{devenv, free_port, run, tool};

const CONFIG: &str = "name: names-trust-test\ndomain: trust.test\n";

fn curl_with_bundle(bundle: &Path, port: u16) -> support::Run {
    run(Command::new("curl")
        .env("CURL_CA_BUNDLE", bundle)
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--resolve",
        ])
        .arg(format!("app.trust.test:{port}:127.0.0.1"))
        .arg(format!("https://app.trust.test:{port}/")))
}

#[test]
fn install_into_a_debian_root_then_curl_verifies_and_uninstall_undoes_it() {
    for t in ["update-ca-certificates", "openssl", "curl", "run-parts"] {
        if tool(t).is_none() {
            return;
        }
    }
    let home = support::dns::home_with(CONFIG);
    let h = home.path();
    let root = h.join("root");
    support::debian_root(&root);
    let root_arg = root.to_str().unwrap();

    let r = run(devenv(h).args(["trust", "install", "--dry-run", "--root", root_arg]));
    assert_eq!(r.code, 0, "{r}");
    let file = root.join("usr/local/share/ca-certificates/devenv-names-trust-test.crt");
    assert!(
        r.stdout
            .contains(&format!("would write {}", file.display())),
        "{r}"
    );
    assert!(r.stdout.contains("would run update-ca-certificates"), "{r}");
    assert!(!file.exists(), "--dry-run wrote {}", file.display());

    let r = run(devenv(h).args(["trust", "install", "--root", root_arg]));
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("NODE_EXTRA_CA_CERTS="), "{r}");
    assert!(file.is_file());
    let bundle = root.join("etc/ssl/certs/ca-certificates.crt");
    let tls = h.join("state/tls");
    let ca = std::fs::read_to_string(tls.join("ca.crt")).unwrap();
    assert!(
        std::fs::read_to_string(&bundle)
            .unwrap()
            .contains(ca.trim())
    );

    let r = run(devenv(h).args(["trust", "status", "-o", "json"]));
    let s: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    assert_eq!(
        (s["installed"].as_bool(), s["in_store"].as_bool()),
        (Some(true), Some(true)),
        "{r}"
    );

    // A server with devenv's certificate, verified through the root's system bundle.
    let port = free_port();
    let mut server = Guard::spawn(
        "openssl s_server",
        Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(port.to_string())
            .arg("-cert")
            .arg(tls.join("tls.crt"))
            .arg("-key")
            .arg(tls.join("tls.key")),
    );
    wait_for("openssl s_server", &mut server, || {
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
    });
    let r = curl_with_bundle(&bundle, port);
    assert_eq!((r.code, r.stdout.as_str()), (0, "200"), "{r}");

    let r = run(devenv(h).args(["trust", "uninstall", "--root", root_arg]));
    assert_eq!(r.code, 0, "{r}");
    assert!(!file.exists());
    let after = std::fs::read_to_string(&bundle).unwrap();
    assert!(!after.contains(ca.trim()), "the CA is still in the bundle");
    assert!(
        after.contains("-----BEGIN CERTIFICATE-----"),
        "the other CA went too"
    );
    assert!(!h.join("state").join(devenv::trust::RECORD_FILE).exists());
    let r = curl_with_bundle(&bundle, port);
    assert_eq!(
        r.code, 60,
        "curl still trusts devenv's CA after uninstall\n{r}"
    );
    let r = run(devenv(h).args(["trust", "status"]));
    assert_eq!(r.stdout.trim(), "not installed", "{r}");
}

/// `sudo devenv trust install --root ROOT` as the sudo stand-in's user, with `config`, into a
/// throwaway Debian store at `root`; `None` after a skip notice.
fn sudo_trust_install(
    tmp: &tempfile::TempDir,
    passwd: &std::path::Path,
    config: &std::path::Path,
    root: &std::path::Path,
) -> Option<support::Run> {
    support::debian_root(root);
    let mut sudo = support::as_sudo_from(passwd, tmp.path())?;
    Some(run(sudo
        .arg("--config")
        .arg(config)
        .args(["trust", "install", "--root"])
        .arg(root)))
}

/// `sudo devenv trust install` before the user ever ran `devenv up`: the CA, its keys and the
/// record it makes in the user's state directory (and the directories on the way there) are
/// the user's, so that their own devenv — without sudo — reads the CA's key and signs with it.
#[test]
fn under_sudo_what_install_makes_belongs_to_the_user_who_ran_it() {
    use std::os::unix::fs::MetadataExt;
    for t in ["update-ca-certificates", "openssl", "setpriv"] {
        if tool(t).is_none() {
            return;
        }
    }
    let support::SudoUser {
        tmp,
        home: user_home,
        config,
        passwd,
    } = support::sudo_user(CONFIG);
    let root = tmp.path().join("root");
    let Some(r) = sudo_trust_install(&tmp, &passwd, &config, &root) else {
        return;
    };
    assert_eq!(r.code, 0, "{r}");

    let state = user_home.join(".local/state/devenv/names-trust-test");
    let tls = state.join("tls");
    for p in [
        user_home.join(".local"),
        user_home.join(".local/state"),
        user_home.join(".local/state/devenv"),
        state.clone(),
        tls.clone(),
        tls.join("ca.key"),
        tls.join("ca.crt"),
        tls.join("tls.key"),
        state.join(devenv::trust::RECORD_FILE),
    ] {
        let meta = std::fs::metadata(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert_eq!(meta.uid(), 4242, "{} is the user's", p.display());
    }
    assert_eq!(
        std::fs::metadata(tls.join("ca.key")).unwrap().mode() & 0o777,
        0o600,
        "the CA's key stays private"
    );
    assert!(
        !tmp.path().join("root-home/.local").exists(),
        "nothing in root's home"
    );

    // The user's own devenv, without sudo, reads the CA and its key (`trust install
    // --dry-run` loads them to sign the certificate, as `up` does).
    let ca = std::fs::read_to_string(tls.join("ca.crt")).unwrap();
    let r = run(Command::new(tool("setpriv").unwrap())
        .args(["--reuid=4242", "--regid=4242", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_devenv"))
        .arg("--config")
        .arg(&config)
        .args(["trust", "install", "--dry-run", "--root"])
        .arg(&root)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", &user_home)
        .env("NO_COLOR", "1")
        .current_dir(&user_home));
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        std::fs::read_to_string(tls.join("ca.crt")).unwrap(),
        ca,
        "the same CA, never a new one"
    );
}

/// Under sudo, a state directory the user pointed elsewhere with a symbolic link (at a place
/// only root may write) gets nothing written as root and nothing handed over: devenv writes in
/// the user's state directory as the user, so the link leads nowhere they could not go.
#[test]
fn under_sudo_a_symlinked_state_directory_hands_nothing_of_roots_over() {
    use std::os::unix::fs::MetadataExt;
    if tool("update-ca-certificates").is_none() {
        return;
    }
    let support::SudoUser {
        tmp,
        home: user_home,
        config,
        passwd,
    } = support::sudo_user(CONFIG);
    // Root's place, with a file of root's where the state directory would be.
    let roots = tmp.path().join("roots");
    let victim_dir = roots.join("names-trust-test");
    std::fs::create_dir_all(&victim_dir).unwrap();
    let victim = victim_dir.join("secret");
    std::fs::write(&victim, "root's secret\n").unwrap();
    std::fs::set_permissions(&victim, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let state = user_home.join(".local/state");
    std::fs::create_dir_all(&state).unwrap();
    for p in [user_home.join(".local"), state.clone()] {
        std::os::unix::fs::chown(&p, Some(4242), Some(4242)).unwrap();
    }
    std::os::unix::fs::symlink(&roots, state.join("devenv")).unwrap();
    std::os::unix::fs::lchown(state.join("devenv"), Some(4242), Some(4242)).unwrap();
    let root = tmp.path().join("root");
    let Some(r) = sudo_trust_install(&tmp, &passwd, &config, &root) else {
        return;
    };
    assert_ne!(r.code, 0, "{r}");
    for p in [&roots, &victim_dir, &victim] {
        assert_eq!(
            std::fs::metadata(p).unwrap().uid(),
            0,
            "{} is still root's",
            p.display()
        );
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's secret\n");
    assert!(
        !root
            .join("usr/local/share/ca-certificates/devenv-names-trust-test.crt")
            .exists(),
        "nothing trusted: {r}"
    );
}
