//! One file per subcommand, each a short script over the library modules: resolve settings,
//! call one library operation, print. This is where parsed arguments, the environment and
//! devenv.yaml become settings. No command imports another; nothing imports `commands`.

mod ci;
mod completions;
mod config;
mod dns;
mod doctor;
mod down;
mod init;
mod logs;
mod render;
mod routes;
mod snapshot;
mod status;
mod trust;
mod up;

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;

use crate::cli::{Cli, Command, GlobalArgs};
use crate::config::{DEFAULT_FILE, LoadedConfig};
use crate::converge;
use crate::docker::Engine;
use crate::env;
use crate::error::Failure;
use crate::output::events::Events;
use crate::output::{Format, Printer, github, resolve_ci, resolve_color};
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
    /// `--name`/`DEVENV_NAME` as given: the environment's name instead of devenv.yaml's.
    pub name: Option<String>,
    /// CI mode (`--ci`, or `CI` true): no prompts (a question without its flag is exit 2), no
    /// bars, plain lines.
    pub ci: bool,
    /// On GitHub Actions (`GITHUB_ACTIONS=true`): a failure is also an `::error` annotation.
    pub github_actions: bool,
    /// GitHub Actions' step summary file, when it names one (`up` appends to it).
    pub step_summary: Option<PathBuf>,
}

impl Settings {
    fn from_arguments(global: &GlobalArgs, runtime: tokio::runtime::Handle) -> Settings {
        let ci = resolve_ci(global.ci);
        let format: Format = global.output.into();
        let printer = Printer {
            format,
            quiet: global.quiet,
            color: resolve_color(global.color.into(), ci),
            ci,
            events: Arc::new(Events::new(format == Format::Jsonl)),
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
            name: global.name.clone(),
            ci,
            github_actions: std::env::var(env::GITHUB_ACTIONS).is_ok_and(|v| v == "true"),
            step_summary: std::env::var_os(env::GITHUB_STEP_SUMMARY)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from),
        }
    }

    /// Whether devenv may ask the person running it: stdin and stderr are terminals, and this
    /// is not CI mode (where every question has a flag instead).
    pub(crate) fn interactive(&self) -> bool {
        !self.ci && std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
    }

    /// The kubeconfig file the cluster's context of `config` goes into and is read from:
    /// `--kubeconfig`, else in CI mode a file of the job's own in the state directory, else
    /// where kind puts it.
    pub fn kubeconfig(&self, config: &crate::config::Config) -> anyhow::Result<PathBuf> {
        if self.ci && self.kubeconfig.is_none() {
            return Ok(crate::state::dir(&config.name)?.join(KUBECONFIG_FILE));
        }
        let found = crate::cluster::kubeconfig(self.kubeconfig.as_deref());
        if config.cluster.provider == crate::config::ClusterProvider::None {
            // Never read without a cluster: an unresolvable default (no HOME) is no error.
            return found.or_else(|_| Ok(crate::state::dir(&config.name)?.join(KUBECONFIG_FILE)));
        }
        found
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
        if !self.interactive() {
            return Err(Failure::bad_input(text, hint).into());
        }
        self.printer.status(text);
        if confirm(&format!("Act on `{project}` anyway?"), false)? {
            Ok(())
        } else {
            Err(Failure::bad_input("cancelled; nothing was changed", hint).into())
        }
    }

    /// Load and validate devenv.yaml (or the defaults), named `--name` when given.
    pub fn load_config(&self) -> anyhow::Result<LoadedConfig> {
        let mut loaded = crate::config::load(self.config_path.as_deref())?;
        if let Some(given) = &self.name {
            let name = crate::ci::sanitize(given);
            if name.is_empty() {
                return Err(Failure::bad_input(
                    format!(
                        "--name (or {}) `{given}` has no letter or digit to name an environment by",
                        env::NAME
                    ),
                    "give a name of lowercase letters, digits and `-`".to_string(),
                )
                .into());
            }
            loaded.config.name = name;
        }
        Ok(loaded)
    }

    /// Load devenv.yaml to act on the environment itself (up, down, status, logs): in CI mode
    /// without `--name`, the environment of this job (named after it; with `random`, a new
    /// one when no CI system names the job), with the ports and subnet recorded when it was
    /// brought up.
    pub fn load_environment(&self, random: bool) -> anyhow::Result<LoadedConfig> {
        let mut loaded = self.load_config()?;
        if !self.ci {
            return Ok(loaded);
        }
        if self.name.is_none() {
            let job = crate::ci::job(|k| std::env::var(k).ok())
                .or_else(|| random.then(crate::ci::random_job));
            if let Some(job) = job {
                loaded.config.name = crate::ci::job_name(&loaded.config.name, &job);
            }
        }
        if let Some(recorded) =
            crate::ci::Assignment::load(&crate::state::dir(&loaded.config.name)?)?
        {
            recorded.apply(&mut loaded.config);
        }
        Ok(loaded)
    }

    /// In CI mode, when the environment has no recorded assignment yet: free host ports for
    /// everything `loaded` publishes and, unless devenv.yaml fixes it, a subnet no network on
    /// the engine uses; applied onto `loaded`. The caller records it once the environment is up.
    pub async fn assign(
        &self,
        loaded: &mut LoadedConfig,
    ) -> anyhow::Result<Option<crate::ci::Assignment>> {
        let config = &mut loaded.config;
        if !self.ci || crate::ci::Assignment::load(&crate::state::dir(&config.name)?)?.is_some() {
            return Ok(None);
        }
        let mut assignment = crate::ci::Assignment::choose(config)?;
        if !loaded.fixed_subnet {
            let engine = Engine::connect().await?;
            let observed = engine.observe().await?;
            let taken = crate::subnets::in_use(&observed.networks, &config.network_name());
            assignment.subnet = Some(
                crate::subnets::free_ci_subnet(&taken, &config.name).ok_or_else(|| {
                    Failure::environment(
                        format!(
                            "no /24 in {} is free of the engine's networks",
                            crate::subnets::CI_RANGE
                        ),
                        "set `network.subnet` in devenv.yaml to a free range".to_string(),
                    )
                })?,
            );
        }
        assignment.apply(config);
        Ok(Some(assignment))
    }
}

/// The kubeconfig's file name in a CI environment's state directory.
const KUBECONFIG_FILE: &str = "kubeconfig";

/// Ask a yes/no question on the terminal (only after [`Settings::interactive`]).
pub(crate) fn confirm(prompt: &str, default: bool) -> anyhow::Result<bool> {
    dialoguer::Confirm::new()
        .with_prompt(prompt)
        .default(default)
        .interact()
        .context("asking for confirmation")
}

/// Dispatch a parsed command line; async work runs on `runtime`. Then, for CI: the `result`
/// event that ends the `--output jsonl` stream, and on GitHub Actions the `::error` annotation
/// of a failure.
pub fn run(cli: Cli, runtime: tokio::runtime::Handle) -> anyhow::Result<()> {
    let settings = Settings::from_arguments(&cli.global, runtime);
    let name = name(&cli.command);
    if settings.printer.format == Format::Jsonl && !streams_events(&cli.command) {
        return Err(Failure::bad_input(
            format!("`devenv {name}` prints one document, not an event stream: --output jsonl is for `up`, `down` and `ci`"),
            "use --output json".to_string(),
        )
        .into());
    }
    let result = dispatch(&settings, cli.command);
    report_end(&settings, name, &result);
    result
}

/// The commands whose work comes in steps, and so have an `--output jsonl` event stream.
fn streams_events(command: &Command) -> bool {
    matches!(command, Command::Up(_) | Command::Down(_) | Command::Ci(_))
}

/// The command's name, as the user typed it (for the `result` event and annotations).
fn name(command: &Command) -> &'static str {
    match command {
        Command::Up(_) => "up",
        Command::Down(_) => "down",
        Command::Status => "status",
        Command::Logs(_) => "logs",
        Command::Doctor => "doctor",
        Command::Ci(_) => "ci",
        Command::Dns(_) => "dns",
        Command::Routes(_) => "routes",
        Command::Snapshot(_) => "snapshot",
        Command::Trust(_) => "trust",
        Command::Init(_) => "init",
        Command::Render(_) => "render",
        Command::Config(_) => "config",
        Command::Completions(_) => "completions",
    }
}

/// What CI hears at the end of command `name`: the `result` event (jsonl), and on GitHub
/// Actions an `::error` annotation of a failure — on stdout for human output, on stderr when
/// stdout carries JSON (the runner reads workflow commands from both; see `output::github`).
fn report_end(settings: &Settings, name: &str, result: &anyhow::Result<()>) {
    let err = match result {
        Err(e) if crate::error::is_broken_pipe(e) => return,
        Err(e) => Some(crate::error::describe(e)),
        Ok(()) => None,
    };
    let p = &settings.printer;
    p.events.result(
        name,
        err.as_ref()
            .map(|(message, hint, code)| (message.as_str(), hint.as_deref(), *code)),
    );
    if let (Some((message, _, _)), true) = (&err, settings.github_actions) {
        let line = github::error_annotation(&format!("devenv {name}"), message);
        if p.format == Format::Human {
            let _ = p.data(line);
        } else {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}

fn dispatch(settings: &Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Init(args) => init::run(settings, args),
        Command::Routes(args) => routes::run(settings, args),
        Command::Snapshot(cmd) => snapshot::run(settings, cmd),
        Command::Trust(args) => trust::run(settings, args),
        Command::Render(args) => render::run(settings, args),
        Command::Config(cmd) => config::run(settings, cmd),
        Command::Completions(args) => completions::run(args),
        Command::Dns(args) => dns::run(settings, args),
        Command::Up(args) => up::run(settings, args),
        Command::Down(args) => down::run(settings, args),
        Command::Status => status::run(settings),
        Command::Doctor => doctor::run(settings),
        Command::Logs(args) => logs::run(settings, args),
        Command::Ci(args) => ci::run(settings, args),
    }
}
