//! Shared helpers for the integration tests: run the real binary with a scrubbed environment,
//! and find real tools (skipping with a visible notice on a laptop that lacks one, failing
//! under `DEVENV_REQUIRE_DOCKER=1` as in CI).
#![allow(dead_code)]

pub mod controlplane;
pub mod dns;
pub mod docker;
pub mod gateway_api;
pub mod kind;
pub mod postgres;
pub mod process;
pub mod realimages;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `DEVENV_REQUIRE_DOCKER`: when set to 1, a missing engine or tool fails the test.
pub const REQUIRE: &str = "DEVENV_REQUIRE_DOCKER";

/// Whether missing tools must fail tests (CI).
pub fn required() -> bool {
    std::env::var(REQUIRE).is_ok_and(|v| v == "1")
}

/// The path of `tool` on PATH (also /usr/sbin and /sbin), or `None` after printing a skip
/// notice. Panics when tools are required.
pub fn tool(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.push("/usr/sbin".into());
    dirs.push("/sbin".into());
    for d in dirs {
        let p = d.join(tool);
        if p.is_file() {
            return Some(p);
        }
    }
    skip(&format!("`{tool}` is not installed"));
    None
}

/// Whether Python's `websockets` (the real WebSocket server and client of the gateway tests) is
/// installed; a visible skip (or, when tools are required, a failure) when not.
#[allow(dead_code)]
pub fn python_websockets() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import websockets.sync.client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip("Python `websockets` is not installed (pip install websockets)");
    }
    ok
}

/// Print a visible skip notice, or panic when tools are required.
///
/// Written to the process's stderr handle, not with `eprintln!`: libtest captures the
/// `eprintln!` output of passing tests, so a skip would be invisible in `cargo test`.
pub fn skip(why: &str) {
    if required() {
        panic!("{why}, and {REQUIRE}=1 requires it (CI installs it in .ci/run)");
    }
    let line = format!("SKIPPED: {why} (set {REQUIRE}=1 to make this a failure)\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// A port that was free for both UDP (on 127.0.0.1) and TCP (on every address) a moment ago,
/// closed again before use. Never the same one twice in a test process, and, where the kernel's
/// ephemeral range leaves room below it, never one from that range, where the kernel picks
/// ports for outgoing connections and `bind(0)` and Docker picks published ports: so no other
/// process is handed the port between this choice and its use.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    // Below the ephemeral range (32768-60999 by default on Linux) when it leaves 4,000 ports
    // there, else from 1,024 up, which may meet an ephemeral port now and then.
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32_768);
    let (first, span) = if ephemeral >= 14_000 {
        (10_000, ephemeral - 10_000)
    } else {
        (1_024, 64_000)
    };
    // Each test process starts at its own place in the range (cargo runs them one at a time,
    // but two `cargo test` runs may share a machine).
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id() % span,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..span {
        let Ok(port) = u16::try_from(first + NEXT.fetch_add(1, Ordering::SeqCst) % span) else {
            continue;
        };
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && TcpListener::bind(("0.0.0.0", port)).is_ok()
        {
            return port;
        }
    }
    panic!("no free port in {first}..{}", first + span);
}

/// Whether this process runs as root (effective uid 0): it can then run devenv as another
/// user, and Postgres must not run as it.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// The devenv binary cargo built for the tests (the support code is also compiled into the
/// `controlplane` example, where there is none).
pub fn devenv_bin() -> &'static str {
    match option_env!("CARGO_BIN_EXE_devenv") {
        Some(path) => path,
        None => panic!("the devenv binary is built for tests only"),
    }
}

/// The devenv binary under test, with an environment holding only PATH, a private HOME and
/// state directory, and no colour.
pub fn devenv(home: &Path) -> Command {
    let mut cmd = Command::new(devenv_bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("DEVENV_STATE_DIR", home.join("state"))
        .env("NO_COLOR", "1")
        .current_dir(home);
    if let Some(host) = std::env::var_os("DOCKER_HOST") {
        cmd.env("DOCKER_HOST", host);
    }
    cmd
}

/// stdout, stderr and exit code of a finished command, for assertions with context.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// Run `cmd` to completion.
pub fn run(cmd: &mut Command) -> Run {
    Run::of(cmd.output().expect("the command starts"))
}

/// The user `devuser` (uid 4242) that [`as_sudo_from`] runs devenv for: a home of their own
/// (theirs, in directories others can enter) holding their `devenv.yaml`, and an /etc/passwd
/// that has them.
pub struct SudoUser {
    pub tmp: tempfile::TempDir,
    pub home: PathBuf,
    pub config: PathBuf,
    pub passwd: PathBuf,
}

/// [`SudoUser`] with `config` as their devenv.yaml.
pub fn sudo_user(config: &str) -> SudoUser {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let open = || std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(tmp.path(), open()).unwrap();
    let home = tmp.path().join("home/devuser");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::set_permissions(tmp.path().join("home"), open()).unwrap();
    let config_file = home.join("devenv.yaml");
    std::fs::write(&config_file, config).unwrap();
    for p in [&home, &config_file] {
        std::os::unix::fs::chown(p, Some(4242), Some(4242)).unwrap_or(());
    }
    let passwd = tmp.path().join("passwd");
    let mut accounts = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    accounts.push_str(&format!(
        "devuser:x:4242:4242::{}:/bin/sh\n",
        home.display()
    ));
    std::fs::write(&passwd, accounts).unwrap();
    SudoUser {
        tmp,
        home,
        config: config_file,
        passwd,
    }
}

/// `sudo devenv ...` as the user `devuser` (uid 4242), whose account lives only in a private
/// mount namespace where `/etc/passwd` has it: `None` after a skip notice when this host
/// cannot do that (not root, or no util-linux).
pub fn as_sudo_from(passwd: &Path, home: &Path) -> Option<Command> {
    let is_root = Command::new("id").arg("-u").output().ok()?.stdout == b"0\n";
    if !is_root {
        skip("only root can stand in for `sudo` here");
        return None;
    }
    let unshare = tool("unshare")?;
    let mut cmd = Command::new(unshare);
    cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc/passwd && exec \"$@\"")
        .arg(passwd)
        .arg(devenv_bin())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home.join("root-home"))
        .env("SUDO_USER", "devuser")
        .env("SUDO_UID", "4242")
        .env("SUDO_GID", "4242")
        .env("NO_COLOR", "1")
        .current_dir(home);
    Some(cmd)
}

/// A Debian root with one CA of its own (a real store is never empty: update-ca-certificates
/// leaves the bundle alone when it has no certificate at all to write).
pub fn debian_root(root: &Path) {
    for d in [
        "usr/share/ca-certificates",
        "usr/local/share/ca-certificates",
        "etc/ssl/certs",
        "etc/ca-certificates/update.d",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let other = root.join("usr/share/ca-certificates/other");
    std::fs::create_dir_all(&other).unwrap();
    let r = run(Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-subj", "/CN=another CA", "-days", "2", "-keyout"])
        .arg(root.join("other.key"))
        .arg("-out")
        .arg(other.join("another.crt")));
    assert_eq!(r.code, 0, "{r}");
    std::fs::write(root.join("etc/ca-certificates.conf"), "other/another.crt\n").unwrap();
    std::fs::write(root.join("etc/debian_version"), "12.0\n").unwrap();
}

/// The removal command `devenv ci --keep` printed in `kept`, run as a person would later: by
/// `sh` in `home` (also HOME), with devenv's build first on PATH, DOCKER_HOST when set, `vars`
/// and nothing else. The command and how it ran.
pub fn run_kept_removal(
    kept: &Run,
    home: &Path,
    vars: &[(String, std::ffi::OsString)],
) -> (String, Run) {
    let command = kept
        .stderr
        .lines()
        .find_map(|l| l.split_once("remove it with: ").map(|(_, c)| c.to_string()))
        .unwrap_or_else(|| panic!("no removal command: {kept}"));
    let bin = Path::new(devenv_bin()).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut shell = Command::new("sh");
    shell
        .args(["-c", &command])
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .current_dir(home);
    if let Ok(host) = std::env::var("DOCKER_HOST") {
        shell.env("DOCKER_HOST", host);
    }
    for (k, v) in vars {
        shell.env(k, v);
    }
    let removed = run(&mut shell);
    (command, removed)
}
