//! One file per subcommand, each a short script over the library modules: resolve settings,
//! call one library operation, print. This is where parsed arguments, the environment and
//! devenv.yaml become settings. No command imports another; nothing imports `commands`.

mod completions;
mod config;
mod dns;
mod doctor;
mod down;
mod init;
mod logs;
mod render;
mod routes;
mod status;
mod trust;
mod up;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::config::{DEFAULT_FILE, LoadedConfig};
use crate::converge;
use crate::docker::Engine;
use crate::env;
use crate::error::Failure;
use crate::output::{Printer, resolve_color};
use crate::state::Owner;

/// What every command gets: how to print, where devenv.yaml is, and the async runtime.
#[derive(Debug, Clone)]
pub struct Settings {
    pub printer: Printer,
    /// The one runtime, built at the edge (`main`), that commands run their async bodies on.
    pub runtime: tokio::runtime::Handle,
    /// The devenv.yaml in force: `--config`/`DEVENV_CONFIG`, else ./devenv.yaml if present,
    /// else none (built-in defaults).
    pub config_path: Option<PathBuf>,
    /// Whether `--config` named it explicitly (a missing explicit file is an error).
    pub config_explicit: bool,
    /// `--kubeconfig`/`DEVENV_KUBECONFIG`, when given.
    pub kubeconfig: Option<PathBuf>,
}

impl Settings {
    fn from_arguments(global: &GlobalArgs, runtime: tokio::runtime::Handle) -> Settings {
        let printer = Printer {
            format: global.output.into(),
            quiet: global.quiet,
            color: resolve_color(global.color.into()),
        };
        let (config_path, config_explicit) = match &global.config {
            Some(p) => (Some(p.clone()), true),
            None => {
                let default = Path::new(DEFAULT_FILE);
                (default.is_file().then(|| default.to_path_buf()), false)
            }
        };
        Settings {
            printer,
            runtime,
            config_path,
            config_explicit,
            kubeconfig: global.kubeconfig.clone(),
        }
    }

    /// The kubeconfig file the cluster's context goes into and is read from.
    pub fn kubeconfig(&self) -> anyhow::Result<PathBuf> {
        crate::cluster::kubeconfig(self.kubeconfig.as_deref())
    }

    /// Before acting on environment `project` as `me`: when another devenv.yaml or state
    /// directory made its containers (and, with `volumes`, its volumes), say so and go on only
    /// with `force` or a yes on a terminal. Off a terminal without `force`: exit 2.
    fn confirm_owner(
        &self,
        project: &str,
        me: &Owner,
        volumes: bool,
        force: bool,
    ) -> anyhow::Result<()> {
        let others = self.runtime.block_on(async {
            let engine = Engine::connect().await?;
            converge::owner::others(&engine, project, me, volumes).await
        })?;
        if others.is_empty() {
            return Ok(());
        }
        let text = converge::owner::describe(project, me, &others);
        if force {
            self.printer.status(format!("{text}; going on (--force)"));
            return Ok(());
        }
        let hint = "run devenv from that checkout, give this one another `name:` in devenv.yaml, or pass --force to act on it anyway".to_string();
        if !interactive() {
            return Err(Failure::bad_input(text, hint).into());
        }
        self.printer.status(text);
        if confirm(&format!("Act on `{project}` anyway?"), false)? {
            Ok(())
        } else {
            Err(Failure::bad_input("cancelled; nothing was changed", hint).into())
        }
    }

    /// Load and validate devenv.yaml (or the defaults).
    pub fn load_config(&self) -> anyhow::Result<LoadedConfig> {
        crate::config::load(self.config_path.as_deref())
    }
}

/// Whether devenv may ask the person running it: stdin and stderr are terminals, and this is
/// not CI (where every question has a flag instead).
pub(crate) fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal() && !env::flag(env::CI)
}

/// Ask a yes/no question on the terminal (only after [`interactive`]).
pub(crate) fn confirm(prompt: &str, default: bool) -> anyhow::Result<bool> {
    dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(default)
        .interact()
        .context("asking for confirmation")
}

/// Dispatch a parsed command line; async work runs on `runtime`.
pub fn run(cli: Cli, runtime: tokio::runtime::Handle) -> anyhow::Result<()> {
    let settings = Settings::from_arguments(&cli.global, runtime);
    match cli.command {
        Command::Init(args) => init::run(&settings, args),
        Command::Routes(args) => routes::run(&settings, args),
        Command::Trust(args) => trust::run(&settings, args),
        Command::Render(args) => render::run(&settings, args),
        Command::Config(cmd) => config::run(&settings, cmd),
        Command::Completions(args) => completions::run(args),
        Command::Dns(args) => dns::run(&settings, args),
        Command::Up(args) => up::run(&settings, args),
        Command::Down(args) => down::run(&settings, args),
        Command::Status => status::run(&settings),
        Command::Doctor => doctor::run(&settings),
        Command::Logs(args) => logs::run(&settings, args),
    }
}
