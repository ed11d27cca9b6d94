//! Split DNS at the OS level: send only the domain to devenv's resolver, through whatever
//! the host uses — systemd-resolved (a drop-in with a `~domain` routing domain, so devenv
//! never fights the stub resolver for port 53), NetworkManager's dnsmasq mode, macOS's
//! `/etc/resolver/<domain>`, or, on Windows, an NRPT rule the user runs.
//!
//! Everything is relative to a root directory (`/` in use, a temporary directory in tests), a
//! [`Plan`] says exactly what would change (`--dry-run` prints it), and the [`Installed`]
//! record kept in the state directory lets `uninstall` undo exactly that and nothing else.
//!
//! It also checks whether the host actually sends the domain to devenv ([`check_host`]).
//!
//! Not for: running the resolver.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::Context;
use hickory_proto::rr::{Name, RecordType};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::records::Zone;
use crate::config::Config;
use crate::error::Failure;

/// The file name of the install record in the state directory.
pub const RECORD_FILE: &str = "dns-install.json";

/// The first line of every file devenv writes, so a stray one can be recognised.
const MARKER: &str = "# Written by `devenv dns install`";

/// How the host routes DNS queries by domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mechanism {
    /// systemd-resolved: a drop-in in /etc/systemd/resolved.conf.d.
    SystemdResolved,
    /// NetworkManager with `dns=dnsmasq`: a file in /etc/NetworkManager/dnsmasq.d.
    NetworkManager,
    /// macOS: /etc/resolver/<domain>.
    Macos,
    /// Windows: a Name Resolution Policy Table rule (printed, not applied).
    Windows,
}

impl Mechanism {
    /// A short human name.
    pub fn describe(self) -> &'static str {
        match self {
            Mechanism::SystemdResolved => "systemd-resolved",
            Mechanism::NetworkManager => "NetworkManager (dnsmasq mode)",
            Mechanism::Macos => "macOS /etc/resolver",
            Mechanism::Windows => "Windows NRPT",
        }
    }
}

pub(crate) fn under(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

/// Whether NetworkManager is configured with `dns=dnsmasq` (main file or conf.d).
fn network_manager_dnsmasq(root: &Path) -> bool {
    let dir = under(root, Path::new("/etc/NetworkManager"));
    let mut files = vec![dir.join("NetworkManager.conf")];
    if let Ok(entries) = std::fs::read_dir(dir.join("conf.d")) {
        files.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    files.iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|text| {
            text.lines().any(|l| {
                let l = l.trim();
                !l.starts_with('#') && l.replace(' ', "") == "dns=dnsmasq"
            })
        })
    })
}

/// The mechanism this host uses, looking under `root`. `None` when there is none devenv
/// knows (a static /etc/resolv.conf).
pub fn detect(root: &Path) -> Option<Mechanism> {
    if cfg!(target_os = "macos") {
        return Some(Mechanism::Macos);
    }
    if cfg!(windows) {
        return Some(Mechanism::Windows);
    }
    if network_manager_dnsmasq(root) {
        return Some(Mechanism::NetworkManager);
    }
    // resolved creates this directory when it runs.
    if under(root, Path::new("/run/systemd/resolve")).is_dir() {
        return Some(Mechanism::SystemdResolved);
    }
    None
}

/// One file to write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Absolute path on the host (relative to the root when applied).
    pub path: PathBuf,
    pub contents: String,
}

/// Exactly what `install` changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub mechanism: Mechanism,
    pub domain: String,
    pub resolver: SocketAddr,
    pub files: Vec<FileChange>,
    /// Commands run after writing, to make the host re-read its configuration.
    pub commands: Vec<Vec<String>>,
    /// Commands the user must run (Windows), printed instead of run.
    pub manual: Vec<String>,
    /// Caveats worth a warning.
    pub notes: Vec<String>,
}

fn file_name(domain: &str) -> String {
    format!("devenv-{domain}.conf")
}

/// What `install` would do for `domain` served at `resolver` with `mechanism`.
pub fn plan(mechanism: Mechanism, domain: &str, resolver: SocketAddr) -> Plan {
    let ip = resolver.ip();
    let port = resolver.port();
    let header = format!("{MARKER} for {domain}; `devenv dns uninstall` removes it.\n");
    let mut notes = Vec::new();
    let mut files = Vec::new();
    let mut commands = Vec::new();
    let mut manual = Vec::new();
    match mechanism {
        Mechanism::SystemdResolved => {
            // DNS= takes ip:port since systemd 246; IPv6 needs brackets.
            let server = match (ip, port) {
                (_, 53) => ip.to_string(),
                (std::net::IpAddr::V6(_), _) => format!("[{ip}]:{port}"),
                _ => format!("{ip}:{port}"),
            };
            files.push(FileChange {
                path: PathBuf::from("/etc/systemd/resolved.conf.d").join(file_name(domain)),
                contents: format!("{header}[Resolve]\nDNS={server}\nDomains=~{domain}\n"),
            });
            commands.push(vec![
                "systemctl".into(),
                "restart".into(),
                "systemd-resolved".into(),
            ]);
            notes.push(format!(
                "systemd-resolved may also send names matching no routing domain to {server}; devenv forwards them to the system's upstreams"
            ));
        }
        Mechanism::NetworkManager => {
            files.push(FileChange {
                path: PathBuf::from("/etc/NetworkManager/dnsmasq.d").join(file_name(domain)),
                contents: format!("{header}server=/{domain}/{ip}#{port}\n"),
            });
            commands.push(vec![
                "nmcli".into(),
                "general".into(),
                "reload".into(),
                "dns-full".into(),
            ]);
        }
        Mechanism::Macos => {
            let mut contents = format!("{header}nameserver {ip}\n");
            // resolver(5) documents `port`, and mDNSResponder uses it for the domain's
            // servers (mDNSMacOSX.c `ConfigDNSServers`; mdns_dns_service.c in 1310+) — except
            // 5353, which it takes to mean multicast DNS.
            if port != 53 {
                contents.push_str(&format!("port {port}\n"));
            }
            if port == 5353 {
                notes.push("macOS treats a resolver on port 5353 as multicast DNS and would never ask devenv: use another dns.port (the default, 20053)".to_string());
            }
            files.push(FileChange {
                path: PathBuf::from("/etc/resolver").join(domain),
                contents,
            });
            commands.push(vec!["dscacheutil".into(), "-flushcache".into()]);
            if domain == "local" || domain.ends_with(".local") {
                notes.push(format!(
                    "macOS sends .local names to multicast DNS (Bonjour) first: lookups of {domain} may take a few seconds before falling back to devenv; a domain such as `{}.test` avoids that",
                    domain.trim_end_matches(".local").rsplit('.').next().unwrap_or("dev")
                ));
            }
        }
        Mechanism::Windows => {
            manual.push(format!(
                "Add-DnsClientNrptRule -Namespace \".{domain}\" -NameServers \"{ip}\""
            ));
            if port != 53 {
                notes.push(format!(
                    "NRPT rules cannot name a port: devenv must listen on port 53 (dns.port: 53), not {port}"
                ));
            }
        }
    }
    Plan {
        mechanism,
        domain: domain.to_string(),
        resolver,
        files,
        commands,
        manual,
        notes,
    }
}

/// The commands that undo a Windows install.
pub fn windows_uninstall(domain: &str) -> String {
    format!(
        "Get-DnsClientNrptRule | Where-Object Namespace -eq '.{domain}' | Remove-DnsClientNrptRule -Force"
    )
}

/// A file `install` wrote, with the hash of what it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenFile {
    pub path: PathBuf,
    pub sha256: String,
}

/// What `install` did, kept in the state directory for `uninstall`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub mechanism: Mechanism,
    pub domain: String,
    pub resolver: SocketAddr,
    pub files: Vec<WrittenFile>,
    /// Directories `install` created for the files, the outermost first; `uninstall` removes
    /// those left empty.
    #[serde(default)]
    pub dirs: Vec<PathBuf>,
    /// Re-run after removing the files.
    pub commands: Vec<Vec<String>>,
    /// The per-user service that starts the resolver at login, when install made one.
    #[serde(default)]
    pub login: Option<super::login::Installed>,
}

fn sha(text: &[u8]) -> String {
    hex::encode(Sha256::digest(text))
}

fn permission(e: std::io::Error, path: &Path, what: &str) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        Failure::environment(
            format!("{what} {}: permission denied", path.display()),
            Some(format!(
                "this changes the system's DNS configuration and needs root: `sudo devenv dns {}` (`--dry-run` shows exactly what changes)",
                if matches!(what, "writing" | "creating") { "install" } else { "uninstall" }
            )),
        )
        .into()
    } else {
        anyhow::Error::new(e).context(format!("{what} {}", path.display()))
    }
}

/// The directories `create_dir_all(dir)` would create: `dir` and its missing ancestors, the
/// outermost first.
fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut missing: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect();
    missing.reverse();
    missing
}

/// The host path (as in the plan) of `path` under `root`.
fn on_host(root: &Path, path: &Path) -> PathBuf {
    Path::new("/").join(path.strip_prefix(root).unwrap_or(path))
}

/// Write the plan's files under `root` and, when `root` is `/`, run its commands. A file
/// already there that devenv did not write is never overwritten. Files are replaced by an
/// atomic rename, so the host never reads half of one; directories created on the way are
/// recorded so that `uninstall` removes them again.
///
/// `previous` is the record of an earlier install of the same domain, if any: the directories
/// it created stay recorded, since re-installing over an unchanged file creates none.
pub fn apply(plan: &Plan, root: &Path, previous: Option<&Installed>) -> anyhow::Result<Installed> {
    let created: Vec<PathBuf> = previous
        .filter(|p| p.mechanism == plan.mechanism && p.domain == plan.domain)
        .map(|p| p.dirs.clone())
        .unwrap_or_default();
    let (written, created) = write_files(&plan.files, root, created, None, |existing| {
        existing.starts_with(MARKER)
    })?;
    if root == Path::new("/") {
        run_all(&plan.commands)?;
    }
    Ok(Installed {
        mechanism: plan.mechanism,
        domain: plan.domain.clone(),
        resolver: plan.resolver,
        files: written,
        dirs: created,
        commands: plan.commands.clone(),
        login: previous.and_then(|p| p.login.clone()),
    })
}

/// Write `files` under `root`, each replaced by an atomic rename. A file already there is
/// replaced only when `ours` says devenv wrote it (or it already holds the contents); else the
/// install stops, naming it. Directories created on the way are added to `created` (host
/// paths, the outermost first) and, with `owner`, given to that user with the files.
pub(crate) fn write_files(
    files: &[FileChange],
    root: &Path,
    mut created: Vec<PathBuf>,
    owner: Option<(u32, u32)>,
    ours: impl Fn(&str) -> bool,
) -> anyhow::Result<(Vec<WrittenFile>, Vec<PathBuf>)> {
    let mut written = Vec::new();
    for f in files {
        let path = under(root, &f.path);
        match std::fs::read_to_string(&path) {
            Ok(existing) if existing == f.contents => {}
            Ok(existing) if !ours(&existing) => {
                return Err(Failure::environment(
                    format!("{} exists and was not written by devenv", path.display()),
                    Some("move it away, or configure the domain by hand from `devenv dns install --dry-run`".to_string()),
                )
                .into());
            }
            _ => {
                if let Some(parent) = path.parent() {
                    for dir in missing_dirs(parent) {
                        std::fs::create_dir(&dir).map_err(|e| permission(e, &dir, "creating"))?;
                        give(&dir, owner)?;
                        let host = on_host(root, &dir);
                        if !created.contains(&host) {
                            created.push(host);
                        }
                    }
                }
                crate::state::write_atomic(&path, f.contents.as_bytes(), 0o644)
                    .map_err(|e| permission_in(e, &path, "writing"))?;
                give(&path, owner)?;
            }
        }
        written.push(WrittenFile {
            path: f.path.clone(),
            sha256: sha(f.contents.as_bytes()),
        });
    }
    Ok((written, created))
}

/// Give `path` to `owner` (user, group), when there is one (under sudo).
fn give(path: &Path, owner: Option<(u32, u32)>) -> anyhow::Result<()> {
    #[cfg(unix)]
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .with_context(|| format!("giving {} to its user", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = (path, owner);
    Ok(())
}

/// [`permission`] for an error chain with an I/O error in it.
fn permission_in(e: anyhow::Error, path: &Path, what: &str) -> anyhow::Error {
    let denied = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::PermissionDenied)
    });
    if denied {
        permission(std::io::ErrorKind::PermissionDenied.into(), path, what)
    } else {
        e
    }
}

fn run_all(commands: &[Vec<String>]) -> anyhow::Result<()> {
    for cmd in commands {
        let Some((program, args)) = cmd.split_first() else {
            continue;
        };
        let status = std::process::Command::new(program)
            .args(args)
            .status()
            .with_context(|| format!("running `{}`", cmd.join(" ")))?;
        if !status.success() {
            anyhow::bail!("`{}` failed ({status})", cmd.join(" "));
        }
    }
    Ok(())
}

/// Where the install record lives: the state directory of the user who ran the command.
/// Under `sudo` that is the invoking user's (`SUDO_USER`), not root's, so that the user's own
/// `dns status` and `dns uninstall` find it; what is created there is then theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordDir {
    pub dir: PathBuf,
    /// The user and group that must own what is created (under sudo).
    pub owner: Option<(u32, u32)>,
}

/// The record directory of environment `name` (see [`RecordDir`]). An explicit
/// `DEVENV_STATE_DIR` wins, as everywhere.
pub fn record_dir(name: &str) -> anyhow::Result<RecordDir> {
    if std::env::var_os(crate::env::STATE_DIR).is_none()
        && let Some(user) = sudo_user()
    {
        return Ok(RecordDir {
            dir: user
                .home
                .join(".local")
                .join("state")
                .join("devenv")
                .join(name),
            owner: Some((user.uid, user.gid)),
        });
    }
    Ok(RecordDir {
        dir: crate::state::dir(name)?,
        owner: None,
    })
}

/// The user a command acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Their name, when this runs under sudo for them (`SUDO_USER`).
    pub sudo: Option<String>,
    pub home: PathBuf,
    pub uid: u32,
    pub gid: u32,
}

/// The user who ran `sudo devenv ...`, when this runs as root under sudo for another user.
fn sudo_user() -> Option<User> {
    if !is_root() {
        return None;
    }
    let name = std::env::var(crate::env::SUDO_USER)
        .ok()
        .filter(|u| !u.is_empty() && u != "root")?;
    let (home, uid, gid) = account(&name)?;
    Some(User {
        sudo: Some(name),
        home,
        uid,
        gid,
    })
}

/// The user a command acts for: under sudo the one who ran it, else this process's own (home
/// from `HOME`). `None` where that cannot be told (no home).
pub fn invoking_user() -> Option<User> {
    if let Some(user) = sudo_user() {
        return Some(user);
    }
    let home = PathBuf::from(std::env::var_os(crate::env::HOME).filter(|h| !h.is_empty())?);
    #[cfg(unix)]
    // SAFETY: getuid and getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    #[cfg(not(unix))]
    let (uid, gid) = (0, 0);
    Some(User {
        sudo: None,
        home,
        uid,
        gid,
    })
}

fn is_root() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// The home directory, user id and group id of account `user`, from the system's user
/// database.
fn account(user: &str) -> Option<(PathBuf, u32, u32)> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::CString::new(user).ok()?;
        // SAFETY: passwd is a plain C struct for which all-zero bytes are valid.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call; the strings it fills point into `buf`,
        // which outlives their use below.
        let rc = unsafe {
            libc::getpwnam_r(
                name.as_ptr(),
                &mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        if rc != 0 || found.is_null() || entry.pw_dir.is_null() {
            return None;
        }
        // SAFETY: getpwnam_r set pw_dir to a NUL-terminated string inside `buf`.
        let home = unsafe { std::ffi::CStr::from_ptr(entry.pw_dir) };
        let home = PathBuf::from(std::ffi::OsStr::from_bytes(home.to_bytes()));
        Some((home, entry.pw_uid, entry.pw_gid))
    }
    #[cfg(not(unix))]
    {
        let _ = user;
        None
    }
}

/// The install record kept in `state_dir`, if there is one that reads.
pub fn load_record(state_dir: &Path) -> Option<Installed> {
    let text = std::fs::read(state_dir.join(RECORD_FILE)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Keep `installed` in `at` for `uninstall`; under sudo, written as the invoking user
/// ([`as_user`]), so the directories created for it and the record itself are theirs.
pub fn save_record(at: &RecordDir, installed: &Installed) -> anyhow::Result<()> {
    let text = serde_json::to_vec_pretty(installed).context("encoding the install record")?;
    let path = at.dir.join(RECORD_FILE);
    as_user(at.owner, &at.dir, || {
        crate::state::write_atomic(&path, &text, 0o644)
    })
}

/// Run `f`, which writes in `dir`, the invoking user's own state directory, as that user
/// (`owner`, under sudo). On Linux this thread's filesystem identity is switched to theirs
/// (`setfsuid`/`setfsgid`, restored after): what `f` creates is theirs and every permission is
/// checked as theirs, so a symbolic link they planted leads only where they could write
/// themselves, never into root's files. Elsewhere `f` runs as root and what it made under
/// `dir` is given to them afterwards, refusing any path with a symbolic link on the way.
/// Without an owner, `f` runs as it is.
pub fn as_user<T>(
    owner: Option<(u32, u32)>,
    dir: &Path,
    f: impl FnOnce() -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let Some((uid, gid)) = owner else {
        return f();
    };
    #[cfg(target_os = "linux")]
    {
        let _ = dir;
        // SAFETY: setfsgid and setfsuid change only the calling thread's filesystem ids; the
        // previous ones are put back before returning. Root keeps CAP_SETUID/CAP_SETGID
        // meanwhile (the switch drops only the filesystem capabilities), so the restore works.
        let previous_gid = unsafe { libc::setfsgid(gid) };
        let previous_uid = unsafe { libc::setfsuid(uid) };
        let out = f();
        unsafe {
            libc::setfsuid(previous_uid as libc::uid_t);
            libc::setfsgid(previous_gid as libc::gid_t);
        }
        out
    }
    #[cfg(all(unix, not(target_os = "linux")))]
    {
        let made = missing_dirs(dir);
        let out = f()?;
        hand_over(&made, dir, (uid, gid))?;
        Ok(out)
    }
    #[cfg(not(unix))]
    {
        let _ = (uid, gid, dir);
        f()
    }
}

/// Give `owner` the directories in `made` and whatever root owns under `dir`, never through a
/// symbolic link (where there is no per-thread identity to write as the user in the first
/// place).
#[cfg(all(unix, not(target_os = "linux")))]
fn hand_over(made: &[PathBuf], dir: &Path, owner: (u32, u32)) -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    for p in dir.ancestors() {
        if std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()) {
            anyhow::bail!(
                "{} is a symbolic link: devenv does not hand files over through it",
                p.display()
            );
        }
    }
    for d in made {
        std::os::unix::fs::lchown(d, Some(owner.0), Some(owner.1))
            .with_context(|| format!("giving {} to its user", d.display()))?;
    }
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.uid() == 0 {
            std::os::unix::fs::lchown(&path, Some(owner.0), Some(owner.1))
                .with_context(|| format!("giving {} to its user", path.display()))?;
        }
        if meta.is_dir() {
            let entries =
                std::fs::read_dir(&path).with_context(|| format!("reading {}", path.display()))?;
            pending.extend(entries.flatten().map(|e| e.path()));
        }
    }
    Ok(())
}

/// Drop the install record from `state_dir` (after `uninstall`).
pub fn forget_record(state_dir: &Path) -> anyhow::Result<()> {
    let path = state_dir.join(RECORD_FILE);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::Error::new(e).context(format!("removing {}", path.display())))
        }
        _ => Ok(()),
    }
}

/// What `uninstall` did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub removed: Vec<PathBuf>,
    /// Files changed since devenv wrote them: left in place.
    pub kept: Vec<PathBuf>,
    /// Already gone.
    pub missing: Vec<PathBuf>,
    /// Directories `install` created, removed because nothing else is in them.
    pub dirs: Vec<PathBuf>,
}

/// Remove exactly the files of `installed` (those still as devenv wrote them) under `root`,
/// and the directories it created that are then empty; then, when `root` is `/`, re-run the
/// commands so the host forgets them. `dry_run` only reports.
pub fn undo(installed: &Installed, root: &Path, dry_run: bool) -> anyhow::Result<Removed> {
    let out = remove_files(&installed.files, &installed.dirs, root, dry_run)?;
    if !dry_run && root == Path::new("/") && !out.removed.is_empty() {
        run_all(&installed.commands)?;
    }
    Ok(out)
}

/// Remove exactly `files` (those still as devenv wrote them) under `root`, and those of `dirs`
/// (created by the install, the outermost first) that are then empty. `dry_run` only reports.
pub(crate) fn remove_files(
    files: &[WrittenFile],
    dirs: &[PathBuf],
    root: &Path,
    dry_run: bool,
) -> anyhow::Result<Removed> {
    let mut out = Removed::default();
    for f in files {
        let path = under(root, &f.path);
        match std::fs::read(&path) {
            Ok(bytes) if sha(&bytes) == f.sha256 => {
                if !dry_run {
                    std::fs::remove_file(&path).map_err(|e| permission(e, &path, "removing"))?;
                }
                out.removed.push(f.path.clone());
            }
            Ok(_) => out.kept.push(f.path.clone()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.missing.push(f.path.clone()),
            Err(e) => return Err(permission(e, &path, "reading")),
        }
    }
    // The innermost first, so a parent is empty once its created children are gone.
    for dir in dirs.iter().rev() {
        let path = under(root, dir);
        let Ok(entries) = std::fs::read_dir(&path) else {
            continue;
        };
        // Empty, or (in a dry run) holding only what this uninstall would remove.
        let empty = entries.filter_map(Result::ok).all(|e| {
            let host = dir.join(e.file_name());
            dry_run && (out.removed.contains(&host) || out.dirs.contains(&host))
        });
        if !empty {
            continue;
        }
        if !dry_run {
            match std::fs::remove_dir(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(permission(e, &path, "removing")),
            }
        }
        out.dirs.push(dir.clone());
    }
    Ok(out)
}

/// The install record of `plan`'s files as they would be if devenv had written them: for an
/// uninstall without a record (state directory lost, install run as another user), only files
/// still carrying devenv's marker and exactly the planned contents are claimed.
pub fn recover(plan: &Plan, root: &Path) -> Installed {
    let files = plan
        .files
        .iter()
        .filter(|f| {
            std::fs::read_to_string(under(root, &f.path)).is_ok_and(|t| t.starts_with(MARKER))
        })
        .map(|f| {
            let bytes = std::fs::read(under(root, &f.path)).unwrap_or_default();
            WrittenFile {
                path: f.path.clone(),
                sha256: sha(&bytes),
            }
        })
        .collect();
    Installed {
        mechanism: plan.mechanism,
        domain: plan.domain.clone(),
        resolver: plan.resolver,
        files,
        // Without the record, which directories devenv created is unknown: leave them.
        dirs: Vec::new(),
        commands: plan.commands.clone(),
        login: None,
    }
}

/// Resolve `name` through the host's own resolver (getaddrinfo), giving up after `timeout`.
/// `None` when it fails or takes longer.
pub fn system_lookup(name: &str, timeout: std::time::Duration) -> Option<Vec<IpAddr>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = name.to_string();
    // getaddrinfo has no timeout of its own; a thread left behind ends with the process.
    std::thread::spawn(move || {
        let r = (name.as_str(), 0)
            .to_socket_addrs()
            .map(|a| a.map(|s| s.ip()).collect::<Vec<_>>());
        let _ = tx.send(r.ok());
    });
    rx.recv_timeout(timeout).ok().flatten()
}

/// Whether the host sends the domain to devenv, found by resolving one of its names through
/// the system resolver and comparing with what the zone answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostCheck {
    /// The name resolved.
    pub name: String,
    /// The zone's addresses for it.
    pub expected: Vec<IpAddr>,
    /// The system resolver's, `None` when it gave no answer.
    pub system: Option<Vec<IpAddr>>,
    /// Whether the system's answer is the zone's.
    pub routed: bool,
}

/// The name [`check_host`] resolves: an infrastructure name, or with none the name server's.
pub fn check_host_name(config: &Config) -> String {
    config
        .services()
        .iter()
        .flat_map(|s| s.routes.iter().map(|r| r.hostname.clone()))
        .next()
        .unwrap_or_else(|| format!("ns.{}", config.domain))
}

/// Check whether the host routes `config`'s domain to devenv: resolve an infrastructure name
/// (or, with none, the name server's own) through the system and compare with `zone`.
pub fn check_host(config: &Config, zone: &Zone, timeout: std::time::Duration) -> HostCheck {
    let name = check_host_name(config);
    let expected: Vec<IpAddr> = {
        let mut n = Name::from_ascii(&name).unwrap_or_default();
        n.set_fqdn(true);
        zone.lookup(&n, RecordType::A, 0)
            .map(|a| a.answers.iter().filter_map(|r| r.data.ip_addr()).collect())
            .unwrap_or_default()
    };
    let system = system_lookup(&name, timeout);
    let routed = system
        .as_ref()
        .is_some_and(|ips| !ips.is_empty() && ips.iter().all(|ip| expected.contains(ip)));
    HostCheck {
        name,
        expected,
        system,
        routed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_resolved_and_network_manager_under_a_root() {
        let root = tempfile::tempdir().unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(detect(root.path()), None);
            std::fs::create_dir_all(root.path().join("run/systemd/resolve")).unwrap();
            assert_eq!(detect(root.path()), Some(Mechanism::SystemdResolved));
            std::fs::create_dir_all(root.path().join("etc/NetworkManager/conf.d")).unwrap();
            std::fs::write(
                root.path().join("etc/NetworkManager/conf.d/dns.conf"),
                "[main]\ndns = dnsmasq\n",
            )
            .unwrap();
            assert_eq!(detect(root.path()), Some(Mechanism::NetworkManager));
        }
    }

    #[test]
    fn install_writes_the_plan_and_undo_removes_exactly_it() {
        let root = tempfile::tempdir().unwrap();
        let p = plan(
            Mechanism::SystemdResolved,
            "macula.local",
            "127.0.0.1:20053".parse().unwrap(),
        );
        assert_eq!(
            p.files[0].contents,
            "# Written by `devenv dns install` for macula.local; `devenv dns uninstall` removes it.\n[Resolve]\nDNS=127.0.0.1:20053\nDomains=~macula.local\n"
        );
        let neighbour = root.path().join("etc/systemd/resolved.conf.d/other.conf");
        std::fs::create_dir_all(neighbour.parent().unwrap()).unwrap();
        std::fs::write(&neighbour, "[Resolve]\n").unwrap();
        let installed = apply(&p, root.path(), None).unwrap();
        let path = root
            .path()
            .join("etc/systemd/resolved.conf.d/devenv-macula.local.conf");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), p.files[0].contents);
        let removed = undo(&installed, root.path(), false).unwrap();
        assert_eq!(removed.removed.len(), 1);
        assert!(!path.exists());
        assert!(neighbour.exists());
        // A file devenv did not write is refused, not overwritten.
        std::fs::write(&path, "[Resolve]\nDNS=1.1.1.1\n").unwrap();
        assert!(apply(&p, root.path(), None).is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[Resolve]\nDNS=1.1.1.1\n"
        );
    }

    #[test]
    fn undo_removes_the_directories_install_created_when_empty() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        let p = plan(
            Mechanism::Macos,
            "macula.local",
            "127.0.0.1:20053".parse().unwrap(),
        );
        let installed = apply(&p, root.path(), None).unwrap();
        assert_eq!(installed.dirs, [PathBuf::from("/etc/resolver")]);
        // Re-installing over the unchanged file keeps the record of the directory.
        let again = apply(&p, root.path(), Some(&installed)).unwrap();
        assert_eq!(again.dirs, installed.dirs);
        let dry = undo(&again, root.path(), true).unwrap();
        assert_eq!(dry.dirs, [PathBuf::from("/etc/resolver")]);
        assert!(root.path().join("etc/resolver/macula.local").exists());
        let removed = undo(&again, root.path(), false).unwrap();
        assert_eq!(removed.dirs, [PathBuf::from("/etc/resolver")]);
        assert!(!root.path().join("etc/resolver").exists());
        assert!(root.path().join("etc").exists(), "not created by install");

        // A directory someone else has since put a file in stays.
        let installed = apply(&p, root.path(), None).unwrap();
        std::fs::write(
            root.path().join("etc/resolver/corp.example"),
            "nameserver 10.0.0.1\n",
        )
        .unwrap();
        for dry_run in [true, false] {
            let removed = undo(&installed, root.path(), dry_run).unwrap();
            assert_eq!(
                removed.removed,
                [PathBuf::from("/etc/resolver/macula.local")]
            );
            assert!(removed.dirs.is_empty(), "{removed:?}");
        }
        assert!(root.path().join("etc/resolver/corp.example").exists());
    }

    #[test]
    fn macos_file_names_the_port_and_warns_about_mdns() {
        let p = plan(
            Mechanism::Macos,
            "macula.local",
            "127.0.0.1:20053".parse().unwrap(),
        );
        assert!(
            p.files[0]
                .contents
                .ends_with("nameserver 127.0.0.1\nport 20053\n")
        );
        assert_eq!(p.files[0].path, PathBuf::from("/etc/resolver/macula.local"));
        assert_eq!(p.notes.len(), 1);
        assert!(p.notes[0].contains("multicast DNS (Bonjour) first"));
        let mdns = plan(
            Mechanism::Macos,
            "dev.test",
            "127.0.0.1:5353".parse().unwrap(),
        );
        assert!(
            mdns.notes[0].contains("port 5353 as multicast DNS"),
            "{:?}",
            mdns.notes
        );
        let w = plan(
            Mechanism::Windows,
            "macula.local",
            "127.0.0.1:53".parse().unwrap(),
        );
        assert_eq!(
            w.manual,
            ["Add-DnsClientNrptRule -Namespace \".macula.local\" -NameServers \"127.0.0.1\""]
        );
        assert!(w.files.is_empty());
    }
}
