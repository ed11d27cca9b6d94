//! `devenv snapshot` on the real PostgreSQL and Distribution registry (tests/support/realimages,
//! from Debian's packages), through the real binary: a row written, saved, changed and
//! restored reads as saved — while the environment is up, while it is down, and after
//! `down --purge` (the database opens with the password it was saved with); a truncated or
//! changed snapshot is refused with exit 2 and nothing stops or changes; a restore that fails
//! half way (one volume restored, the next one's archive unreadable) leaves every volume as it
//! was.
//!
//! Skips visibly without Docker or the images; fails instead under DEVENV_REQUIRE_DOCKER=1.

mod support;

use std::path::{Path, PathBuf};

use support::docker::{self, Env};
use support::realimages;

/// An environment of the real Postgres as `timescaledb` (the same image contract: POSTGRES_*
/// and pg_isready) and the real registry; every other service off.
fn env(test: &str) -> Option<Env> {
    if !docker::engine() {
        return None;
    }
    let images = realimages::images()?;
    let mut env = realimages::env(test, &images);
    for service in ["gateway", "pdns-db", "pdns", "prometheus"] {
        env.extra
            .insert(service.into(), "    enabled: false\n".into());
    }
    env.image_overrides
        .insert("timescaledb".into(), images["pdns-db"].clone());
    env.extra
        .insert("timescaledb".into(), "    enabled: true\n".into());
    env.write();
    Some(env)
}

/// Run `sql` in the database as the service's user, over TCP inside its container (so the
/// password is checked): stdout, trimmed, or a panic with what psql said.
fn sql(env: &Env, statement: &str) -> String {
    let password = env.secret("DEVENV_TIMESCALE_PASSWORD");
    let r = docker::docker(&[
        "exec",
        "-e",
        &format!("PGPASSWORD={password}"),
        &env.container("timescaledb"),
        "psql",
        "-h",
        "127.0.0.1",
        "-U",
        "devenv",
        "-d",
        "devenv",
        "-v",
        "ON_ERROR_STOP=1",
        "-tAc",
        statement,
    ]);
    assert_eq!(r.code, 0, "psql `{statement}`\n{r}");
    r.stdout.trim().to_string()
}

fn rows(env: &Env) -> String {
    sql(env, "select string_agg(v, ',' order by v) from notes")
}

fn ok(env: &Env, args: &[&str]) -> support::Run {
    let r = env.devenv(args);
    assert_eq!(r.code, 0, "devenv {args:?}\n{r}");
    r
}

fn snapshot_dir(env: &Env, name: &str) -> PathBuf {
    env.state().join("snapshots").join(name)
}

/// A copy of snapshot `from` as `to`, its volume file for `key` passed through `change`.
fn damaged_copy(env: &Env, from: &str, to: &str, key: &str, change: impl Fn(&mut Vec<u8>)) {
    let src = snapshot_dir(env, from);
    let dst = snapshot_dir(env, to);
    std::fs::create_dir_all(&dst).unwrap();
    for entry in std::fs::read_dir(&src).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dst.join(entry.file_name())).unwrap();
    }
    let manifest = dst.join("manifest.json");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        &format!("\"name\": \"{from}\""),
        &format!("\"name\": \"{to}\""),
    );
    std::fs::write(&manifest, text).unwrap();
    let file = dst.join(format!("{key}.tar.zst"));
    let mut bytes = std::fs::read(&file).unwrap();
    change(&mut bytes);
    std::fs::write(&file, bytes).unwrap();
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_row_saved_changed_and_restored_reads_as_saved_while_up_while_down_and_after_purge() {
    let Some(mut env) = env("snap") else {
        return;
    };
    let registry_port = support::free_port();
    env.publish("registry", "http", registry_port);
    ok(&env, &["up", "--pull", "never"]);
    sql(
        &env,
        "create table notes (v text); insert into notes values ('saved')",
    );

    let save = ok(&env, &["snapshot", "save", "before"]);
    assert!(save.stderr.contains("saved snapshot `before`"), "{save}");
    let dir = snapshot_dir(&env, "before");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("secrets.env")), 0o600);
    assert_eq!(mode(&dir.join("timescaledb-data.tar.zst")), 0o600);
    // The services were stopped for the copy and are back, healthy.
    let status = env.devenv(&["status"]);
    assert_eq!(status.code, 0, "{status}");
    let listed = ok(&env, &["snapshot", "list", "-o", "json"]);
    let doc: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let snap = &doc["snapshots"][0];
    assert_eq!(snap["name"], "before", "{doc}");
    let services: Vec<&str> = snap["manifest"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["service"].as_str().unwrap())
        .collect();
    assert!(
        services.contains(&"timescaledb") && services.contains(&"registry"),
        "{doc}"
    );
    assert!(
        snap["manifest"]["volumes"][0]["sha256"]
            .as_str()
            .unwrap()
            .len()
            == 64
    );
    // The secrets are never printed.
    let password = env.secret("DEVENV_TIMESCALE_PASSWORD");
    for out in [&save.stdout, &save.stderr, &listed.stdout] {
        assert!(!out.contains(&password));
    }

    // Up: changed, restored, as saved.
    sql(
        &env,
        "update notes set v = 'changed'; insert into notes values ('later')",
    );
    assert_eq!(rows(&env), "changed,later");
    let restore = ok(&env, &["snapshot", "restore", "before"]);
    assert!(
        restore.stderr.contains("restored snapshot `before`"),
        "{restore}"
    );
    assert_eq!(rows(&env), "saved");
    assert_eq!(env.devenv(&["status"]).code, 0);

    // Down: restored into the volumes, the services stay down until `up`.
    sql(&env, "update notes set v = 'changed while up'");
    ok(&env, &["down"]);
    let restore = ok(&env, &["snapshot", "restore", "before"]);
    assert!(restore.stderr.contains("stay down"), "{restore}");
    assert!(env.containers().is_empty(), "{:?}", env.containers());
    ok(&env, &["up", "--pull", "never"]);
    assert_eq!(rows(&env), "saved");

    // After --purge the volumes and the secrets are gone; the snapshot brings both back, and
    // the database opens with the password it was made with.
    let purge = ok(&env, &["down", "--purge", "--yes"]);
    assert!(purge.stderr.contains("kept 1 snapshot"), "{purge}");
    assert!(dir.is_dir());
    let restore = ok(&env, &["snapshot", "restore", "before"]);
    assert!(
        restore.stderr.contains("DEVENV_TIMESCALE_PASSWORD"),
        "{restore}"
    );
    ok(&env, &["up", "--pull", "never"]);
    assert_eq!(env.secret("DEVENV_TIMESCALE_PASSWORD"), password);
    assert_eq!(rows(&env), "saved");

    // Removed on request only.
    ok(&env, &["snapshot", "rm", "before"]);
    assert!(!dir.exists());
    ok(&env, &["down", "--purge", "--yes"]);
}

#[test]
fn a_damaged_snapshot_is_refused_and_a_failed_restore_leaves_every_volume_as_it_was() {
    let Some(env) = env("snapbad") else {
        return;
    };
    ok(&env, &["up", "--pull", "never"]);
    sql(
        &env,
        "create table notes (v text); insert into notes values ('saved')",
    );
    ok(&env, &["snapshot", "save", "good"]);
    sql(&env, "update notes set v = 'now'");
    let before = env.containers();
    let states = env.states();

    // Cut off, and one byte changed: exit 2 before anything stops.
    damaged_copy(&env, "good", "cut", "timescaledb-data", |b| {
        b.truncate(b.len() / 2)
    });
    damaged_copy(&env, "good", "changed", "timescaledb-data", |b| {
        let i = b.len() / 2;
        b[i] ^= 0x55;
    });
    for (name, said) in [
        ("cut", "bytes where the manifest says"),
        ("changed", "SHA-256"),
    ] {
        let r = env.devenv(&["snapshot", "restore", name]);
        assert_eq!(r.code, 2, "{r}");
        assert!(
            r.stderr.contains(said) && r.stderr.contains("nothing was changed"),
            "{r}"
        );
        assert_eq!(env.containers(), before, "nothing was re-created");
        assert_eq!(env.states(), states, "nothing was stopped");
        assert_eq!(rows(&env), "now");
    }

    // Checksums that match an archive that does not decompress: the registry's volume is
    // restored first, the database's then fails; both are given their content back.
    let registry = env.container("registry");
    let marker = docker::docker(&[
        "exec",
        &registry,
        "sh",
        "-c",
        "echo kept > /var/lib/registry/marker",
    ]);
    assert_eq!(marker.code, 0, "{marker}");
    let dir = snapshot_dir(&env, "broken");
    damaged_copy(&env, "good", "broken", "timescaledb-data", |b| {
        *b = b"not zstd at all".repeat(1000);
    });
    let manifest_path = dir.join("manifest.json");
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    let volumes = manifest["volumes"].as_array_mut().unwrap();
    // The registry first, so that one volume is already replaced when the other fails.
    volumes.sort_by_key(|v| v["service"] != "registry");
    for v in volumes.iter_mut() {
        let file = dir.join(v["file"].as_str().unwrap());
        v["stored"] = std::fs::metadata(&file).unwrap().len().into();
        v["sha256"] = sha256_hex(&file).into();
    }
    std::fs::write(
        &manifest_path,
        serde_json::to_string_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let r = env.devenv(&["snapshot", "restore", "broken"]);
    assert_ne!(r.code, 0, "{r}");
    assert!(r.stderr.contains("holds the data it held before"), "{r}");
    assert_eq!(rows(&env), "now", "the database as it was");
    let registry = env.container("registry");
    let kept = docker::docker(&["exec", &registry, "cat", "/var/lib/registry/marker"]);
    assert_eq!(
        kept.stdout.trim(),
        "kept",
        "the registry's volume as it was: {kept}"
    );
    let leftovers = docker::docker(&[
        "volume",
        "ls",
        "-q",
        "--filter",
        &format!("name={}", env.name),
    ]);
    assert!(!leftovers.stdout.contains("before-restore"), "{leftovers}");

    // A restore killed half way leaves its journal: `up` and `save` refuse to go on, and the
    // next restore finishes or undoes what the journal says. Killed while copying the
    // registry's volume aside: the volume is intact, the copy half made; it goes.
    let registry_image = docker::docker(&["inspect", "-f", "{{.Config.Image}}", &registry])
        .stdout
        .trim()
        .to_string();
    let volume = format!("{}-registry-data", env.name);
    let copy = format!("{volume}-before-restore");
    let journal = env.state().join("restore-journal.json");
    let interrupted = |phase: &str, marker: &str| {
        let made = docker::docker(&[
            "volume",
            "create",
            "--label",
            &format!("dev.devenv.project={}", env.name),
            &copy,
        ]);
        assert_eq!(made.code, 0, "{made}");
        let wrote = docker::docker(&[
            "run",
            "--rm",
            "--network",
            "none",
            "-v",
            &format!("{copy}:/x"),
            "--entrypoint",
            "sh",
            &registry_image,
            "-c",
            &format!("echo {marker} > /x/marker"),
        ]);
        assert_eq!(wrote.code, 0, "{wrote}");
        let entry = serde_json::json!({
            "snapshot": "good",
            "entries": [{"volume": volume, "copy": copy, "phase": phase}],
            "committed": false,
        });
        std::fs::write(&journal, entry.to_string()).unwrap();
    };
    let marker = |env: &Env| {
        let r = docker::docker(&[
            "exec",
            &env.container("registry"),
            "cat",
            "/var/lib/registry/marker",
        ]);
        r.stdout.trim().to_string()
    };
    interrupted("copying", "half-copied");
    let up = env.devenv(&["up", "--pull", "never"]);
    assert_eq!(up.code, 3, "{up}");
    assert!(
        up.stderr
            .contains("interrupted `devenv snapshot restore good`"),
        "{up}"
    );
    let save = env.devenv(&["snapshot", "save", "again"]);
    assert_eq!(save.code, 3, "{save}");
    assert!(!snapshot_dir(&env, "again").exists());
    ok(
        &env,
        &["snapshot", "restore", "good", "--only", "timescaledb"],
    );
    assert_eq!(marker(&env), "kept", "the volume was intact and stays so");
    assert!(!journal.exists());
    let volumes = docker::docker(&["volume", "ls", "-q"]);
    assert!(!volumes.stdout.lines().any(|v| v == copy), "{volumes}");

    // Killed while replacing it: the copy is whole, and the volume gets its content back.
    interrupted("replacing", "from-before");
    let r = ok(
        &env,
        &["snapshot", "restore", "good", "--only", "timescaledb"],
    );
    assert!(r.stderr.contains("put back"), "{r}");
    assert_eq!(marker(&env), "from-before");
    assert!(!journal.exists());
    assert_eq!(rows(&env), "saved");

    // No carrier is left behind.
    let carriers = docker::docker(&["ps", "-aq", "--filter", "label=dev.devenv.carrier"]);
    assert!(carriers.stdout.trim().is_empty(), "{carriers}");
    ok(&env, &["down", "--purge", "--yes"]);

    // After the purge, a volume of the environment's name that devenv did not make: the
    // restore refuses before it changes anything, and the volume keeps its content.
    let foreign = format!("{}-registry-data", env.name);
    let image = realimages::images().expect("built above")["registry"].clone();
    let made = docker::docker(&["volume", "create", &foreign]);
    assert_eq!(made.code, 0, "{made}");
    let mount = format!("{foreign}:/v");
    let put = docker::docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "sh",
        "-v",
        &mount,
        &image,
        "-c",
        "echo theirs > /v/mark",
    ]);
    assert_eq!(put.code, 0, "{put}");
    let r = env.devenv(&["snapshot", "restore", "good"]);
    assert_eq!(r.code, 3, "{r}");
    assert!(
        r.stderr.contains(&format!(
            "volume {foreign} exists, but devenv did not make it"
        )),
        "{r}"
    );
    let read = docker::docker(&[
        "run",
        "--rm",
        "--entrypoint",
        "cat",
        "-v",
        &mount,
        &image,
        "/v/mark",
    ]);
    assert_eq!(read.stdout.trim(), "theirs", "{read}");
    let labels = docker::docker(&["volume", "inspect", "-f", "{{json .Labels}}", &foreign]);
    assert!(!labels.stdout.contains("dev.devenv"), "{labels}");
    let db = format!("{}-timescaledb-data", env.name);
    assert_ne!(
        docker::docker(&["volume", "inspect", &db]).code,
        0,
        "nothing was restored"
    );
    assert!(env.containers().is_empty(), "nothing was started");
    docker::docker(&["volume", "rm", "-f", &foreign]);
}

/// SHA-256 of a file, by the machine's `sha256sum`.
fn sha256_hex(path: &Path) -> String {
    let r = support::run(std::process::Command::new("sha256sum").arg(path));
    assert_eq!(r.code, 0, "{r}");
    r.stdout.split_whitespace().next().unwrap().to_string()
}
