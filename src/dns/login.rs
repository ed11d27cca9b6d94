//! The per-user service that starts the resolver when its user logs in, so that names keep
//! resolving after a reboot without `devenv up`: a systemd user unit (Linux, enabled with
//! `systemctl --user`), a launchd agent (macOS, loaded with `launchctl bootstrap gui/<uid>`),
//! or, on Windows, the steps for a scheduled task, printed and not run. `dns install` writes
//! and enables it, `dns uninstall` stops and removes exactly it, from the record `os` keeps.
//!
//! Files are written relative to a root directory, as in `os`; the service manager is called
//! through a program `DEVENV_SYSTEMCTL` / `DEVENV_LAUNCHCTL` may replace (tests record the
//! calls). Under sudo, the service is the invoking user's: in their home, owned by them, in
//! their service manager.
//!
//! Not for: the resolver itself (`dns serve`), the OS's routing of the domain (`os`), or the
//! background resolver `up` starts (`service`).

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use super::os::{self, FileChange, Removed, User, WrittenFile};

/// The first line of a unit devenv writes (a comment, so systemd ignores it).
const MARKER: &str = "# Written by `devenv dns install`";

/// Which service manager runs the resolver at login.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Manager {
    /// The user's systemd instance (`systemctl --user`).
    Systemd,
    /// launchd, in the user's GUI domain.
    Launchd,
    /// The Task Scheduler (steps printed, not run).
    Windows,
}

impl Manager {
    /// A short human name.
    pub fn describe(self) -> &'static str {
        match self {
            Manager::Systemd => "systemd user unit",
            Manager::Launchd => "launchd agent",
            Manager::Windows => "Windows scheduled task",
        }
    }

    /// The program that manages it, and the variable that replaces it.
    fn program(self) -> Option<(&'static str, &'static str)> {
        match self {
            Manager::Systemd => Some(("systemctl", crate::env::SYSTEMCTL)),
            Manager::Launchd => Some(("launchctl", crate::env::LAUNCHCTL)),
            Manager::Windows => None,
        }
    }
}

/// The service manager of this host, looking under `root`: `None` on a Linux host not booted
/// with systemd.
pub fn detect(root: &Path) -> Option<Manager> {
    if cfg!(target_os = "macos") {
        return Some(Manager::Launchd);
    }
    if cfg!(windows) {
        return Some(Manager::Windows);
    }
    // sd_booted(3): systemd creates this directory when it runs as the init system.
    os::under(root, Path::new("/run/systemd/system"))
        .is_dir()
        .then_some(Manager::Systemd)
}

/// What the service runs: `devenv [--config FILE] dns serve` for one environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolver {
    /// The environment's name (names the unit).
    pub name: String,
    pub domain: String,
    /// The devenv binary, absolute.
    pub exe: PathBuf,
    /// The devenv.yaml it follows, absolute, if any.
    pub config: Option<PathBuf>,
    /// The environment's state directory (run file, log).
    pub state_dir: PathBuf,
}

impl Resolver {
    fn arguments(&self) -> Vec<String> {
        let mut args = vec![self.exe.display().to_string()];
        if let Some(config) = &self.config {
            args.push("--config".into());
            args.push(config.display().to_string());
        }
        args.extend(["--color", "never", "dns", "serve"].map(String::from));
        args
    }
}

/// One call to the service manager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The program's usual name first (`systemctl`), then its arguments.
    pub args: Vec<String>,
    /// Whether a failure stops the install (else it is only reported).
    pub check: bool,
}

/// Exactly what installing the service changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub manager: Manager,
    /// The unit's name, or the agent's label.
    pub unit: String,
    pub files: Vec<FileChange>,
    /// After writing the files: load and start it.
    pub start: Vec<Call>,
    /// Before removing them: stop and unload it.
    pub stop: Vec<Call>,
    /// After removing them.
    pub forget: Vec<Call>,
    /// Steps the user runs (Windows), printed instead of run.
    pub manual: Vec<String>,
    /// The user it belongs to.
    #[serde(skip)]
    pub owner: Option<(u32, u32)>,
}

/// The service `manager` needs to run `resolver` at `user`'s login.
pub fn plan(manager: Manager, resolver: &Resolver, user: &User) -> Plan {
    let unit;
    let mut files = Vec::new();
    let (mut start, mut stop, mut forget, mut manual) = (vec![], vec![], vec![], vec![]);
    let call = |check: bool, args: &[&str]| Call {
        args: args.iter().map(|a| a.to_string()).collect(),
        check,
    };
    match manager {
        Manager::Systemd => {
            unit = format!("devenv-dns-{}.service", resolver.name);
            files.push(FileChange {
                path: user.home.join(".config/systemd/user").join(&unit),
                contents: systemd_unit(resolver),
            });
            // Under sudo, the invoking user's manager, not root's (systemd 248 and later).
            let machine = user.sudo.as_ref().map(|u| format!("--machine={u}@"));
            let systemctl = |check: bool, rest: &[&str]| {
                let mut args = vec!["systemctl", "--user"];
                args.extend(machine.as_deref());
                args.extend(rest);
                call(check, &args)
            };
            start.push(systemctl(true, &["daemon-reload"]));
            start.push(systemctl(true, &["enable", &unit]));
            // Restart, not start: a re-install with another binary or file takes effect.
            start.push(systemctl(true, &["restart", &unit]));
            stop.push(systemctl(false, &["disable", "--now", &unit]));
            forget.push(systemctl(false, &["daemon-reload"]));
        }
        Manager::Launchd => {
            unit = format!("dev.devenv.dns.{}", resolver.name);
            let path = user
                .home
                .join("Library/LaunchAgents")
                .join(format!("{unit}.plist"));
            files.push(FileChange {
                path: path.clone(),
                contents: launchd_agent(&unit, resolver),
            });
            let domain = format!("gui/{}", user.uid);
            let target = format!("{domain}/{unit}");
            let plist = path.display().to_string();
            // An agent loaded already (a re-install) must be unloaded before it loads again.
            start.push(call(false, &["launchctl", "bootout", &target]));
            start.push(call(true, &["launchctl", "bootstrap", &domain, &plist]));
            stop.push(call(false, &["launchctl", "bootout", &target]));
        }
        Manager::Windows => {
            unit = windows_task(&resolver.name);
            let run: Vec<String> = resolver
                .arguments()
                .iter()
                .map(|a| windows_quote(a))
                .collect();
            manual.push(format!(
                "schtasks /Create /TN \"{unit}\" /SC ONLOGON /RL LIMITED /F /TR '{}'",
                run.join(" ")
            ));
            manual.push(format!("schtasks /Run /TN \"{unit}\""));
        }
    }
    Plan {
        manager,
        unit,
        files,
        start,
        stop,
        forget,
        manual,
        owner: user.sudo.as_ref().map(|_| (user.uid, user.gid)),
    }
}

/// The scheduled task's name for environment `name`.
fn windows_task(name: &str) -> String {
    format!("devenv-dns-{name}")
}

/// The steps that undo a Windows install for environment `name`.
pub fn windows_uninstall(name: &str) -> String {
    format!("schtasks /Delete /TN \"{}\" /F", windows_task(name))
}

/// `arg` for a Windows command line: quoted when it has a space.
fn windows_quote(arg: &str) -> String {
    if arg.contains(' ') {
        format!("\"{arg}\"")
    } else {
        arg.to_string()
    }
}

/// `arg` as one word of a systemd command line or assignment: quoted, with `\`, `"` escaped
/// and `%` (specifiers) and `$` (variables) doubled.
fn systemd_quote(arg: &str) -> String {
    let mut out = String::from("\"");
    for c in arg.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn systemd_unit(r: &Resolver) -> String {
    let exec: Vec<String> = r.arguments().iter().map(|a| systemd_quote(a)).collect();
    let state = systemd_quote(&format!(
        "{}={}",
        crate::env::STATE_DIR,
        r.state_dir.display()
    ));
    format!(
        "{MARKER} for {name}; `devenv dns uninstall` removes it.\n\
         [Unit]\n\
         Description=devenv resolver for {domain} ({name})\n\
         \n\
         [Service]\n\
         Type=simple\n\
         Environment={state}\n\
         WorkingDirectory={dir}\n\
         ExecStart={exec}\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        name = r.name,
        domain = r.domain,
        dir = systemd_quote(&r.state_dir.display().to_string()),
        exec = exec.join(" "),
    )
}

/// `text` escaped for XML character data.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn launchd_agent(label: &str, r: &Resolver) -> String {
    let args: String = r
        .arguments()
        .iter()
        .map(|a| format!("    <string>{}</string>\n", xml(a)))
        .collect();
    let state = xml(&r.state_dir.display().to_string());
    let log = xml(&r
        .state_dir
        .join(super::service::LOG_FILE)
        .display()
        .to_string());
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
         <!-- Written by `devenv dns install` for {name}; `devenv dns uninstall` removes it. -->\n\
         <plist version=\"1.0\">\n\
         <dict>\n  <key>Label</key>\n  <string>{label}</string>\n\
         \x20 <key>ProgramArguments</key>\n  <array>\n{args}  </array>\n\
         \x20 <key>EnvironmentVariables</key>\n  <dict>\n    <key>{var}</key>\n    <string>{state}</string>\n  </dict>\n\
         \x20 <key>WorkingDirectory</key>\n  <string>{state}</string>\n\
         \x20 <key>RunAtLoad</key>\n  <true/>\n\
         \x20 <key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>\n\
         \x20 <key>StandardOutPath</key>\n  <string>{log}</string>\n\
         \x20 <key>StandardErrorPath</key>\n  <string>{log}</string>\n\
         </dict>\n</plist>\n",
        name = xml(&r.name),
        label = xml(label),
        var = crate::env::STATE_DIR,
    )
}

/// Whether `text` is a file devenv wrote (a unit, or an agent).
fn ours(text: &str) -> bool {
    text.starts_with(MARKER)
        || text
            .lines()
            .nth(2)
            .is_some_and(|l| l.contains(&MARKER[2..]))
}

/// What installing the service did, kept in the install record for `uninstall`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installed {
    pub manager: Manager,
    pub unit: String,
    pub files: Vec<WrittenFile>,
    /// Directories created for the files, the outermost first.
    pub dirs: Vec<PathBuf>,
    pub stop: Vec<Call>,
    pub forget: Vec<Call>,
}

/// What one call to the service manager did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ran {
    pub command: String,
    /// `None` when it succeeded, else why not.
    pub failed: Option<String>,
}

/// Whether calls are made: on the real root, or when a test names the program.
fn calls_made(manager: Manager, root: &Path) -> bool {
    root == Path::new("/")
        || manager
            .program()
            .is_some_and(|(_, var)| std::env::var_os(var).is_some())
}

/// Make `call`, with `DEVENV_SYSTEMCTL`/`DEVENV_LAUNCHCTL` standing in for the program when set.
fn make(manager: Manager, call: &Call) -> anyhow::Result<Ran> {
    let Some((name, rest)) = call.args.split_first() else {
        anyhow::bail!("an empty command");
    };
    let program = manager
        .program()
        .and_then(|(_, var)| std::env::var_os(var))
        .unwrap_or_else(|| name.into());
    let command = call.args.join(" ");
    let failed = match std::process::Command::new(&program).args(rest).output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )),
        Err(e) => Some(e.to_string()),
    };
    if call.check
        && let Some(why) = &failed
    {
        return Err(crate::error::Failure::environment(
            format!("`{command}` failed ({why})"),
            Some("`devenv dns install --no-login-service` routes the domain without the login service; `devenv up` starts the resolver".to_string()),
        )
        .into());
    }
    Ok(Ran { command, failed })
}

/// Write the plan's files under `root` (for the user it belongs to) and load and start the
/// service. `previous` is the earlier install's record, whose directories stay recorded.
pub fn apply(
    plan: &Plan,
    root: &Path,
    previous: Option<&Installed>,
) -> anyhow::Result<(Installed, Vec<Ran>)> {
    let created = previous
        .filter(|p| p.manager == plan.manager && p.unit == plan.unit)
        .map(|p| p.dirs.clone())
        .unwrap_or_default();
    let (files, dirs) = os::write_files(&plan.files, root, created, plan.owner, ours)?;
    let mut ran = Vec::new();
    if calls_made(plan.manager, root) {
        for call in &plan.start {
            ran.push(make(plan.manager, call)?);
        }
    }
    Ok((
        Installed {
            manager: plan.manager,
            unit: plan.unit.clone(),
            files,
            dirs,
            stop: plan.stop.clone(),
            forget: plan.forget.clone(),
        },
        ran,
    ))
}

/// Stop and unload the service of `installed`, then remove exactly its files (and the
/// directories made for them, when empty). `dry_run` only reports.
pub fn undo(
    installed: &Installed,
    root: &Path,
    dry_run: bool,
) -> anyhow::Result<(Removed, Vec<Ran>)> {
    let mut ran = Vec::new();
    let calls = !dry_run && calls_made(installed.manager, root);
    if calls {
        for call in &installed.stop {
            ran.push(make(installed.manager, call)?);
        }
    }
    let removed = os::remove_files(&installed.files, &installed.dirs, root, dry_run)
        .context("removing the login service")?;
    if calls {
        for call in &installed.forget {
            ran.push(make(installed.manager, call)?);
        }
    }
    Ok((removed, ran))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolver() -> Resolver {
        Resolver {
            name: "macula".into(),
            domain: "macula.local".into(),
            exe: "/opt/dev env/devenv".into(),
            config: Some("/home/ada/src/devenv.yaml".into()),
            state_dir: "/home/ada/.local/state/devenv/macula".into(),
        }
    }

    fn user(sudo: Option<&str>) -> User {
        User {
            sudo: sudo.map(String::from),
            home: "/home/ada".into(),
            uid: 1000,
            gid: 1000,
        }
    }

    #[test]
    fn a_systemd_unit_runs_the_absolute_binary_with_its_config_and_state() {
        let p = plan(Manager::Systemd, &resolver(), &user(None));
        assert_eq!(
            p.files[0].path,
            PathBuf::from("/home/ada/.config/systemd/user/devenv-dns-macula.service")
        );
        assert_eq!(
            p.files[0].contents,
            "# Written by `devenv dns install` for macula; `devenv dns uninstall` removes it.\n\
             [Unit]\nDescription=devenv resolver for macula.local (macula)\n\n\
             [Service]\nType=simple\n\
             Environment=\"DEVENV_STATE_DIR=/home/ada/.local/state/devenv/macula\"\n\
             WorkingDirectory=\"/home/ada/.local/state/devenv/macula\"\n\
             ExecStart=\"/opt/dev env/devenv\" \"--config\" \"/home/ada/src/devenv.yaml\" \"--color\" \"never\" \"dns\" \"serve\"\n\
             Restart=on-failure\nRestartSec=5\n\n\
             [Install]\nWantedBy=default.target\n"
        );
        let args: Vec<String> = p.start.iter().map(|c| c.args.join(" ")).collect();
        assert_eq!(
            args,
            [
                "systemctl --user daemon-reload",
                "systemctl --user enable devenv-dns-macula.service",
                "systemctl --user restart devenv-dns-macula.service"
            ]
        );
        assert_eq!(p.owner, None);
        // Under sudo: the invoking user's manager, and files that are theirs.
        let p = plan(Manager::Systemd, &resolver(), &user(Some("ada")));
        assert_eq!(
            p.stop[0].args.join(" "),
            "systemctl --user --machine=ada@ disable --now devenv-dns-macula.service"
        );
        assert_eq!(p.owner, Some((1000, 1000)));
    }

    #[test]
    fn specifiers_and_variables_in_paths_are_escaped_for_systemd() {
        assert_eq!(
            systemd_quote("/a b/100%/$HOME\\\""),
            "\"/a b/100%%/$$HOME\\\\\\\"\""
        );
    }

    #[test]
    fn a_launchd_agent_runs_at_load_and_is_kept_alive_on_failure() {
        let p = plan(Manager::Launchd, &resolver(), &user(None));
        assert_eq!(
            p.files[0].path,
            PathBuf::from("/home/ada/Library/LaunchAgents/dev.devenv.dns.macula.plist")
        );
        let text = &p.files[0].contents;
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"));
        assert!(ours(text), "{text}");
        for part in [
            "<string>dev.devenv.dns.macula</string>",
            "<string>/opt/dev env/devenv</string>\n    <string>--config</string>",
            "<key>RunAtLoad</key>\n  <true/>",
            "<key>SuccessfulExit</key>\n    <false/>",
            "<string>/home/ada/.local/state/devenv/macula/dns.log</string>",
        ] {
            assert!(text.contains(part), "{part} missing:\n{text}");
        }
        let args: Vec<String> = p.start.iter().map(|c| c.args.join(" ")).collect();
        assert_eq!(
            args,
            [
                "launchctl bootout gui/1000/dev.devenv.dns.macula",
                "launchctl bootstrap gui/1000 /home/ada/Library/LaunchAgents/dev.devenv.dns.macula.plist"
            ]
        );
    }

    #[test]
    fn windows_gets_printed_steps_and_no_files() {
        let p = plan(Manager::Windows, &resolver(), &user(None));
        assert!(p.files.is_empty() && p.start.is_empty());
        assert_eq!(
            p.manual[0],
            "schtasks /Create /TN \"devenv-dns-macula\" /SC ONLOGON /RL LIMITED /F /TR '\"/opt/dev env/devenv\" --config /home/ada/src/devenv.yaml --color never dns serve'"
        );
        assert_eq!(
            windows_uninstall("macula"),
            "schtasks /Delete /TN \"devenv-dns-macula\" /F"
        );
    }
}
