//! One file per subcommand, each a short script over the library modules: resolve settings,
//! call one library operation, print. This is where parsed arguments, the environment and
//! devenv.yaml become settings. No command imports another; nothing imports `commands`.

mod completions;
mod config;
mod dns;
mod down;
mod init;
mod logs;
mod render;
mod routes;
mod status;
mod trust;
mod up;

use std::path::{Path, PathBuf};

use crate::cli::{Cli, Command, GlobalArgs};
use crate::config::{DEFAULT_FILE, LoadedConfig};
use crate::output::{Printer, resolve_color};

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
        }
    }

    /// Load and validate devenv.yaml (or the defaults).
    pub fn load_config(&self) -> anyhow::Result<LoadedConfig> {
        crate::config::load(self.config_path.as_deref())
    }
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
        Command::Logs(args) => logs::run(&settings, args),
    }
}
