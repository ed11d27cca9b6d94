//! The command line, as clap sees it: global flags and one enum of commands. Parsed arguments
//! are turned into settings by `commands`; nothing else reads these structs.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  devenv up                      bring the whole platform up (no devenv.yaml needed)
  devenv init --yes              write a devenv.yaml with the defaults
  devenv render --out .          write kind/ and compose/ for the current devenv.yaml
  devenv render --check          exit non-zero when the committed files have drifted
  devenv config validate         check devenv.yaml and name every problem
  devenv config schema > devenv.schema.json";

/// One command for a whole local development platform: a KinD cluster, the infrastructure
/// around it (registry, PowerDNS, observability, data services), local DNS and routing.
#[derive(Debug, Parser)]
#[command(name = "devenv", version, about, after_help = EXAMPLES, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// The devenv.yaml to use [default: ./devenv.yaml if present, else the built-in defaults]
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "DEVENV_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Output format of data on stdout.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputArg::Human)]
    pub output: OutputArg,
    /// Print only errors and the data asked for.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr (-vv for debug logs).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// When to colour output.
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto, value_name = "WHEN")]
    pub color: ColorArg,
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    Human,
    Json,
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorArg {
    Auto,
    Always,
    Never,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a devenv.yaml (asks on a terminal; --yes takes the defaults).
    Init(InitArgs),
    /// Render the KinD config, the compose file and the services' configs.
    Render(RenderArgs),
    /// Inspect devenv.yaml.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

/// `devenv init`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  devenv init\n  devenv init --yes --domain dev.local --routing ports --no-tier tools"
)]
pub struct InitArgs {
    /// Take the defaults (and the flags below) without asking.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Overwrite an existing file.
    #[arg(long)]
    pub force: bool,
    /// Where to write [default: ./devenv.yaml, or --config].
    #[arg(long, value_name = "FILE")]
    pub path: Option<PathBuf>,
    /// Environment name.
    #[arg(long)]
    pub name: Option<String>,
    /// Local DNS domain.
    #[arg(long)]
    pub domain: Option<String>,
    /// How application URLs reach the cluster.
    #[arg(long, value_enum)]
    pub routing: Option<RoutingArg>,
    /// Switch a tier off (repeatable): core, observability, data, tools.
    #[arg(long = "no-tier", value_enum, value_name = "TIER")]
    pub no_tier: Vec<TierArg>,
}

/// `--routing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoutingArg {
    /// Applications on 127.0.0.2:80/443 (clean URLs).
    SplitIp,
    /// Applications on 127.0.0.1:8080/8443.
    Ports,
}

/// A tier name on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TierArg {
    Core,
    Observability,
    Data,
    Tools,
}

/// `devenv render`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  devenv render --out .\n  devenv render --check --out .")]
pub struct RenderArgs {
    /// Directory to write kind/ and compose/ under.
    #[arg(long, default_value = ".", value_name = "DIR")]
    pub out: PathBuf,
    /// Write nothing; exit 4 and show the differences when the files under --out differ.
    #[arg(long)]
    pub check: bool,
}

/// `devenv config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check devenv.yaml; exit 2 naming every problem.
    Validate,
    /// Print the JSON Schema of devenv.yaml (for editors).
    Schema,
    /// Print the effective configuration, defaults filled in.
    Show,
}

/// `devenv completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
