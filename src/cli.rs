//! The command line, as clap sees it: global flags and one enum of commands. Parsed arguments
//! are turned into settings by `commands`; nothing else reads these structs. Not for: defaults
//! that depend on the environment or devenv.yaml (settings resolve those).

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  devenv up                      bring the whole platform up (no devenv.yaml needed)
  devenv status -o json          what runs, healthy or not (exit 4 if not), for CI
  devenv doctor                  walk the whole chain and say where it breaks, with the fix
  devenv dns serve               resolve *.macula.local on 127.0.0.1:20053 in the foreground
  devenv up --ci -o jsonl        CI: no prompts or spinners, one JSON event per line
  devenv dns query grafana.macula.local
  devenv down --purge --yes      remove everything devenv made, data and secrets included
  devenv ci -- make test         a throwaway environment around one command (CI jobs)
  devenv init --yes              write a devenv.yaml with the defaults
  devenv render --out .          write kind/ and compose/ for the current devenv.yaml
  devenv render --check          exit non-zero when the committed files have drifted
  devenv config validate         check devenv.yaml and name every problem
  devenv config schema > devenv.schema.json";

/// `devenv --version`: the version, and which devenv this is (devenv.sh, the Nix-based tool,
/// has the same command name).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (the local platform: KinD, infrastructure, DNS; not devenv.sh)"
);

/// One command for a whole local development platform: a KinD cluster, the infrastructure
/// around it (registry, PowerDNS, observability, data services), local DNS and routing.
#[derive(Debug, Parser)]
#[command(name = "devenv", version = VERSION, about, after_help = EXAMPLES, propagate_version = true)]
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
    /// Output format of data on stdout (`jsonl`: the event stream of `up` and `down`).
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = OutputArg::Human)]
    pub output: OutputArg,
    /// CI mode: never prompt (each question has a flag), no spinners or bars, plain lines
    /// [default: on when CI is set to a true value]
    #[arg(long, global = true)]
    pub ci: bool,
    /// Print only errors and the data asked for.
    #[arg(long, short = 'q', global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// More detail on stderr (-vv for debug logs).
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// When to colour output.
    #[arg(long, global = true, value_enum, default_value_t = ColorArg::Auto, value_name = "WHEN")]
    pub color: ColorArg,
    /// The kubeconfig the cluster's context goes into and is read from (a per-job file in CI)
    /// [default: as kind: the one file of KUBECONFIG, or its first existing file (else its
    /// last), else ~/.kube/config]
    #[arg(long, global = true, env = "DEVENV_KUBECONFIG", value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The environment's name instead of devenv.yaml's `name:` (made a DNS label): its
    /// cluster, network, containers, volumes and state directory [default in CI: derived
    /// from the job]
    // Its own id: subcommands have arguments called `name` (`routes add NAME`, `dns query
    // NAME`), which clap would otherwise take for this one.
    #[arg(
        id = "environment_name",
        long = "name",
        global = true,
        env = "DEVENV_NAME",
        value_name = "NAME"
    )]
    pub name: Option<String>,
}

/// For arguments clap refused: whether they ask for the JSON Lines stream (`-o jsonl`,
/// `-ojsonl`, `--output jsonl`, `--output=jsonl`, before any `--`), so that the refusal still
/// ends the stream with its `result` event; and the subcommand named, if one was (the event's
/// name). Read from the raw words, since clap produced no [`Cli`].
pub fn refused_stream(args: &[std::ffi::OsString]) -> Option<String> {
    let words: Vec<&str> = args
        .iter()
        .skip(1)
        .map(|a| a.to_str().unwrap_or(""))
        .take_while(|a| *a != "--")
        .collect();
    let jsonl = words.iter().enumerate().any(|(i, w)| {
        let next = words.get(i + 1).copied();
        matches!(*w, "-ojsonl" | "--output=jsonl" | "-o=jsonl")
            || (matches!(*w, "-o" | "--output") && next == Some("jsonl"))
    });
    if !jsonl {
        return None;
    }
    // The first word that is neither a flag nor a global flag's value is the subcommand.
    let command = <Cli as clap::CommandFactory>::command();
    let takes_value = ["-c", "--config", "-o", "--output", "--color", "--name"];
    let mut rest = words.iter();
    let mut named = "devenv";
    while let Some(w) = rest.next() {
        if takes_value.contains(w) {
            rest.next();
        } else if !w.starts_with('-') {
            if command.find_subcommand(w).is_some() {
                named = w;
            }
            break;
        }
    }
    Some(named.to_string())
}

/// `--output`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputArg {
    Human,
    Json,
    /// JSON Lines: one event per line (start/finish of each step, service, pull and cluster
    /// step, then the result).
    Jsonl,
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
    /// Bring the platform up — the infrastructure and the KinD cluster side by side: render,
    /// check, create what is missing, wait until healthy.
    Up(UpArgs),
    /// Stop the cluster's nodes and remove devenv's containers and network; the cluster and named
    /// volumes (data) stay unless --purge.
    Down(DownArgs),
    /// Each service's state, health, ports and URL, and the cluster's nodes, ingress, registry
    /// wiring and names; exit 4 when one is missing or unhealthy.
    Status,
    /// Walk the whole chain — engine, kind, ports, inotify, loopback, resolver, OS routing,
    /// mDNS, services, gateway names, registry, TLS trust, cluster — and say for each link ok,
    /// warn, FAIL or skip, with the fix; exit 4 when one fails.
    Doctor,
    /// Print a service's logs, or the cluster's ingress controller's (`ingress`).
    Logs(LogsArgs),
    /// The built-in resolver for the local domain: serve, query, OS split-DNS install, status.
    Dns(DnsArgs),
    /// Names for processes on this host (a dev server), served by the gateway on :80 and :443.
    Routes(RoutesArgs),
    /// Save the environment's data volumes to a snapshot, restore one, list or remove them.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Trust devenv's CA in the OS store and browsers (install, uninstall, status).
    Trust(TrustArgs),
    /// Write a devenv.yaml (asks on a terminal; --yes takes the defaults).
    Init(InitArgs),
    /// Render the KinD config, the compose file and the services' configs.
    Render(RenderArgs),
    /// Inspect devenv.yaml.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Bring a throwaway environment up, run CMD in it, and always tear it down afterwards
    /// (as `down --purge --yes`): on success, failure, SIGINT/SIGTERM and timeout.
    Ci(CiArgs),
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
    /// Where to write [default: ./devenv.yaml, or --config]. The environment's name is the
    /// global --name.
    #[arg(long, value_name = "FILE")]
    pub path: Option<PathBuf>,
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

/// `--pull`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PullArg {
    /// Pull images that are not present.
    Missing,
    /// Pull every image (refreshes moved tags).
    Always,
    /// Never pull; a missing image fails the preflight.
    Never,
}

/// `devenv up`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  devenv up\n  devenv up --only grafana,prometheus --timeout 2m\n  devenv up --only cluster --recreate\n  devenv up --kubeconfig ./kubeconfig --install-kind --output json"
)]
pub struct UpArgs {
    /// Only these services (comma-separated), and what they depend on; `cluster` names the
    /// Kubernetes cluster.
    #[arg(long, value_delimiter = ',', value_name = "SERVICE,...")]
    pub only: Vec<String>,
    /// How long `up` waits for another `up` holding the lock, and for services, nodes and
    /// rollouts to become ready (each failure named with its last log lines); the whole run
    /// stops 5s after it at the latest, naming the step that was running (exit 3). `90s`,
    /// `10m`, `1h30m`; a bare number is seconds.
    #[arg(long, default_value = "5m", value_parser = duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// When to pull images.
    #[arg(long, value_enum, default_value_t = PullArg::Missing)]
    pub pull: PullArg,
    /// Delete and re-create the cluster when it was made from another KinD config (its
    /// workloads are lost; the infrastructure's data is not).
    #[arg(long)]
    pub recreate: bool,
    /// When kind is missing, install the pinned release into devenv's own directory without
    /// asking (verified against the checksum devenv carries).
    #[arg(long, env = "DEVENV_INSTALL_KIND")]
    pub install_kind: bool,
    /// The Gateway API CRD bundle (the pinned release's standard-install.yaml) from this file
    /// instead of its download, for machines without the network; verified against the same
    /// checksum, and cached for later runs.
    #[arg(long, env = "DEVENV_GATEWAY_CRDS", value_name = "FILE")]
    pub gateway_crds: Option<std::path::PathBuf>,
    /// Act on the environment even when another devenv.yaml or state directory made it.
    #[arg(long)]
    pub force: bool,
}

/// What `devenv ci --help` says after the options: the variables CMD gets (the list
/// `ci::coordinates` makes) and the exit codes.
const CI_HELP: &str = "\
CMD gets the environment's coordinates as variables:
  DEVENV_NAME, DEVENV_STATE_DIR, DEVENV_DOMAIN   the environment
  KUBECONFIG                 a kubeconfig of its own, in the state directory (with a cluster)
  DEVENV_REGISTRY            the registry, host:port (push to $DEVENV_REGISTRY/app:tag)
  DEVENV_INGRESS_URL, DEVENV_INGRESS_HTTPS_URL   the cluster's ingress (send the app's Host)
  DEVENV_DNS                 where the resolver for the domain listens, host:port
  for each published service SVC (upper case, - as _; e.g. GRAFANA, REGISTRY_UI, GATEWAY):
  DEVENV_SVC_HOST, DEVENV_SVC_PORT   its address and main port
  DEVENV_SVC_URL             http://host:port, where it speaks HTTP
  DEVENV_SVC_<PORT>_PORT     every published port by name (DEVENV_TEMPO_OTLP_GRPC_PORT)
Every host port is chosen free, and applications are reached through the ingress's ports
(`ports` routing): two jobs on one machine share nothing.

Exit code: CMD's (128+N when signal N killed it; 127 when CMD does not exist), or devenv's
own when the environment could not be brought up (2 bad input, 3 missing or timed out,
4 unhealthy); the environment is torn down first in every case but --keep.

Examples:
  devenv ci -- make test
  devenv ci --timeout 20m -- ./scripts/e2e.sh --verbose
  devenv ci --name pr-42 --keep -- kubectl get pods -A";

/// `devenv ci`.
#[derive(Debug, Args)]
#[command(after_help = CI_HELP)]
pub struct CiArgs {
    /// Leave the environment up afterwards (for debugging) and print the command that
    /// removes it.
    #[arg(long)]
    pub keep: bool,
    /// A hard limit on the whole run (up, then CMD): past it CMD is stopped (SIGTERM, then
    /// SIGKILL), the environment torn down, and devenv exits 3 naming the step that was
    /// running. `90s`, `10m`, `1h`; a bare number is seconds.
    #[arg(long, default_value = "30m", value_parser = duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// When kind is missing, install the pinned release into devenv's own directory
    /// (verified against the checksum devenv carries).
    #[arg(long, env = "DEVENV_INSTALL_KIND")]
    pub install_kind: bool,
    /// The Gateway API CRD bundle from this file instead of its download (as `up`).
    #[arg(long, env = "DEVENV_GATEWAY_CRDS", value_name = "FILE")]
    pub gateway_crds: Option<std::path::PathBuf>,
    /// The command to run and its arguments, after `--` (every flag there is CMD's).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<OsString>,
}

/// A duration as `--timeout` takes it: `90s`, `10m`, `1h30m`, `500ms`; a bare number is
/// seconds.
fn duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("`{text}` is not a duration: write e.g. `90s`, `10m` or `1h30m`");
    let t = text.trim();
    let parsed = if let Ok(secs) = t.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let mut total = Duration::ZERO;
        let mut rest = t;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let each = match &rest[..unit] {
                "ms" => Duration::from_millis(1),
                "s" => Duration::from_secs(1),
                "m" => Duration::from_secs(60),
                "h" => Duration::from_secs(3600),
                _ => return Err(bad()),
            };
            total += each * u32::try_from(n).map_err(|_| bad())?;
            rest = &rest[unit..];
        }
        total
    };
    if parsed.is_zero() {
        return Err(format!(
            "`{text}` is no time at all: give a positive duration"
        ));
    }
    Ok(parsed)
}

/// `devenv down`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  devenv down\n  devenv down --purge --yes\n  devenv down --purge --yes --snapshots"
)]
pub struct DownArgs {
    /// Also remove the named volumes (all data) and the generated secrets.
    #[arg(long)]
    pub purge: bool,
    /// Do not ask before --purge (needed off a terminal and in CI).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// With --purge, also delete the environment's snapshots; without it they are kept
    /// (a terminal is asked).
    #[arg(long, requires = "purge")]
    pub snapshots: bool,
    /// Act on the environment even when another devenv.yaml or state directory made it.
    #[arg(long)]
    pub force: bool,
}

/// `devenv snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Copy every named volume (databases, registry, MinIO, Grafana, Prometheus, Loki, Tempo,
    /// your services') into a snapshot, each with its service stopped for the copy.
    #[command(
        after_help = "Examples:\n  devenv snapshot save before-migration\n  devenv snapshot save --only timescaledb"
    )]
    Save(SnapshotSaveArgs),
    /// Put a snapshot's volumes back (checked first; all or nothing), then bring the services
    /// that ran back up.
    #[command(
        after_help = "Examples:\n  devenv snapshot restore before-migration\n  devenv snapshot restore before-migration --only pdns-db"
    )]
    Restore(SnapshotRestoreArgs),
    /// The snapshots, newest last, with their size and services.
    List(SnapshotDirArgs),
    /// Delete a snapshot.
    Rm(SnapshotRmArgs),
}

/// Where the snapshots are (every `snapshot` subcommand).
#[derive(Debug, Args, Default)]
pub struct SnapshotDirArgs {
    /// The directory of the snapshots [default: `snapshots` in the state directory].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// What `snapshot save` and `restore` share: they stop and start services.
#[derive(Debug, Args)]
pub struct SnapshotChangeArgs {
    /// Only these services' volumes.
    #[arg(long, value_delimiter = ',', value_name = "SERVICE,...")]
    pub only: Vec<String>,
    #[command(flatten)]
    pub dir: SnapshotDirArgs,
    /// How long the services get to become healthy again.
    #[arg(long, default_value = "5m", value_parser = duration, value_name = "DURATION")]
    pub timeout: Duration,
    /// Act on the environment even when another devenv.yaml or state directory made it.
    #[arg(long)]
    pub force: bool,
}

/// `devenv snapshot save`.
#[derive(Debug, Args)]
pub struct SnapshotSaveArgs {
    /// The snapshot's name [default: the time, UTC, e.g. 20261207-130501].
    pub name: Option<String>,
    #[command(flatten)]
    pub change: SnapshotChangeArgs,
}

/// `devenv snapshot restore`.
#[derive(Debug, Args)]
pub struct SnapshotRestoreArgs {
    /// The snapshot (`devenv snapshot list`).
    pub name: String,
    #[command(flatten)]
    pub change: SnapshotChangeArgs,
}

/// `devenv snapshot rm`.
#[derive(Debug, Args)]
pub struct SnapshotRmArgs {
    /// The snapshot.
    pub name: String,
    #[command(flatten)]
    pub dir: SnapshotDirArgs,
}

/// `devenv logs`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  devenv logs grafana --tail 50\n  devenv logs pdns -f\n  devenv logs ingress -f"
)]
pub struct LogsArgs {
    /// The service (`grafana`, `pdns`, ...), or `ingress` for the cluster's ingress controller.
    pub service: String,
    /// Keep printing new output.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
}

/// `devenv routes` (alone: the list).
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  devenv routes add api --to 127.0.0.1:3000        https://api.macula.local -> your dev server
  devenv routes add web --to 127.0.0.1:5173 --host shop
  devenv routes list --check -o json
  devenv routes rm api")]
pub struct RoutesArgs {
    #[command(subcommand)]
    pub command: Option<RoutesCommand>,
}

/// `devenv routes ...`.
#[derive(Debug, Subcommand)]
pub enum RoutesCommand {
    /// Add a route NAME to a process on this host; the running gateway serves it at once.
    Add(RoutesAddArgs),
    /// Remove the route NAME.
    Rm(RoutesRmArgs),
    /// Every name with its URLs: the infrastructure's and your routes.
    List(RoutesListArgs),
}

/// `devenv routes add`.
#[derive(Debug, Args)]
pub struct RoutesAddArgs {
    /// The route's name (a DNS label); also its host name unless --host.
    pub name: String,
    /// Where the process listens: host:port (listen on 0.0.0.0 on Linux, see the README).
    #[arg(long, value_name = "HOST:PORT")]
    pub to: String,
    /// The host name: a label, or a name one label under the domain [default: NAME].
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
}

/// `devenv routes rm`.
#[derive(Debug, Args)]
pub struct RoutesRmArgs {
    /// The route's name.
    pub name: String,
}

/// `devenv routes list`.
#[derive(Debug, Args, Default)]
pub struct RoutesListArgs {
    /// Probe each name through the gateway: status and latency; exit 4 when one fails.
    #[arg(long)]
    pub check: bool,
}

/// `devenv trust` (alone: this help).
#[derive(Debug, Args)]
#[command(
    arg_required_else_help = true,
    after_help = "Examples:
  devenv trust install --dry-run     show what would change
  sudo devenv trust install          add devenv's CA to the OS store (and NSS databases)
  devenv trust status -o json
  sudo devenv trust uninstall        remove exactly what install added"
)]
pub struct TrustArgs {
    #[command(subcommand)]
    pub command: TrustCommand,
}

/// `devenv trust ...`.
#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Add devenv's CA to the OS store, and to the NSS databases when certutil is there.
    Install(TrustInstallArgs),
    /// Undo exactly what `install` did.
    Uninstall(TrustInstallArgs),
    /// Whether the CA is installed, and where.
    Status,
}

/// `devenv trust install` / `uninstall`.
#[derive(Debug, Args)]
pub struct TrustInstallArgs {
    /// Print exactly what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply under this directory instead of / (for tests and image builds); runs only
    /// commands that take their directories (update-ca-certificates).
    #[arg(long, value_name = "DIR", hide = true, default_value = "/")]
    pub root: PathBuf,
}

/// `devenv dns` (alone: this help).
#[derive(Debug, Args)]
#[command(
    arg_required_else_help = true,
    after_help = "Examples:
  devenv dns serve                        answer *.macula.local on 127.0.0.1:20053
  devenv dns query grafana.macula.local   ask the running resolver (or answer in-process)
  devenv dns install --dry-run            show what would route the domain to devenv
  sudo devenv dns install                 route only the domain to devenv at the OS level,
                                          and start the resolver at login
  devenv dns status --output json"
)]
pub struct DnsArgs {
    #[command(subcommand)]
    pub command: DnsCommand,
}

/// `devenv dns ...`.
#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Run the resolver in the foreground until SIGINT/SIGTERM (follows devenv.yaml edits).
    Serve(DnsServeArgs),
    /// Ask the running resolver (or answer in-process when none runs) and print the answer.
    Query(DnsQueryArgs),
    /// Route only the domain to devenv at the OS level (needs root; see --dry-run), and
    /// start the resolver at login (a per-user service).
    Install(DnsInstallOnlyArgs),
    /// Undo exactly what `install` did.
    Uninstall(DnsInstallArgs),
    /// Whether the resolver runs, where, its records and upstreams, and whether the host
    /// sends the domain to it; exit 4 when it does not run.
    Status,
}

/// `devenv dns serve`.
#[derive(Debug, Args, Default)]
#[command(after_help = "Examples:
  devenv dns serve
  devenv dns serve --port 5454 --no-forward
  devenv dns serve --port 0 --upstream 127.0.0.1:5300")]
pub struct DnsServeArgs {
    /// Address to listen on [default: dns.address, 127.0.0.1].
    #[arg(long, value_name = "IP")]
    pub address: Option<std::net::IpAddr>,
    /// Port to listen on, UDP and TCP [default: dns.port, 20053]; 0 picks a free one.
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Answer names outside the domain with REFUSED instead of forwarding them.
    #[arg(long)]
    pub no_forward: bool,
    /// Upstream resolver for names outside the domain (repeatable) [default: dns.upstreams,
    /// else the system's resolvers].
    #[arg(long = "upstream", value_name = "IP:PORT")]
    pub upstreams: Vec<std::net::SocketAddr>,
}

/// `devenv dns query`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  devenv dns query grafana.macula.local
  devenv dns query shop --type AAAA
  devenv dns query example.com --server 127.0.0.1:20053 --output json")]
pub struct DnsQueryArgs {
    /// The name (a bare label means one under the domain).
    pub name: String,
    /// Record type.
    #[arg(long = "type", short = 't', default_value = "A", value_name = "TYPE")]
    pub record_type: String,
    /// Ask this resolver [default: the running `devenv dns serve`, else in-process].
    #[arg(long, value_name = "IP:PORT")]
    pub server: Option<std::net::SocketAddr>,
}

/// `devenv dns install` / `uninstall`.
#[derive(Debug, Args)]
pub struct DnsInstallArgs {
    /// Print exactly what would change, change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The mechanism to configure [default: detected].
    #[arg(long, value_enum)]
    pub mechanism: Option<MechanismArg>,
    /// Only route the domain: no per-user service that starts the resolver at login
    /// (`devenv up` still starts it in the background).
    #[arg(long)]
    pub no_login_service: bool,
    /// Apply under this directory instead of / (for tests and image builds); runs no commands
    /// (the login service's `systemctl`/`launchctl` only when DEVENV_SYSTEMCTL/DEVENV_LAUNCHCTL
    /// name one).
    #[arg(long, value_name = "DIR", hide = true, default_value = "/")]
    pub root: PathBuf,
}

/// `devenv dns install`: [`DnsInstallArgs`] and what only installing needs.
#[derive(Debug, Args)]
pub struct DnsInstallOnlyArgs {
    #[command(flatten)]
    pub args: DnsInstallArgs,
    /// Install even for a domain that takes names from the real DNS (a public suffix or a name
    /// under one, such as `dev` or `example.com`) or the whole `local` of mDNS.
    #[arg(long)]
    pub force: bool,
}

/// `--mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MechanismArg {
    SystemdResolved,
    NetworkManager,
    Macos,
    Windows,
}

// The clap enums above mirror domain enums so that `--help` and completions can describe each
// value; these are the only places they turn into the domain's own (the DNS ones excepted,
// which `commands::dns` maps).

impl From<OutputArg> for crate::output::Format {
    fn from(arg: OutputArg) -> Self {
        match arg {
            OutputArg::Human => Self::Human,
            OutputArg::Json => Self::Json,
            OutputArg::Jsonl => Self::Jsonl,
        }
    }
}

impl From<ColorArg> for crate::output::ColorChoice {
    fn from(arg: ColorArg) -> Self {
        match arg {
            ColorArg::Auto => Self::Auto,
            ColorArg::Always => Self::Always,
            ColorArg::Never => Self::Never,
        }
    }
}

impl From<RoutingArg> for crate::config::RoutingMode {
    fn from(arg: RoutingArg) -> Self {
        match arg {
            RoutingArg::SplitIp => Self::SplitIp,
            RoutingArg::Ports => Self::Ports,
        }
    }
}

impl From<TierArg> for crate::config::Tier {
    fn from(arg: TierArg) -> Self {
        match arg {
            TierArg::Core => Self::Core,
            TierArg::Observability => Self::Observability,
            TierArg::Data => Self::Data,
            TierArg::Tools => Self::Tools,
        }
    }
}

impl From<PullArg> for crate::preflight::PullPolicy {
    fn from(arg: PullArg) -> Self {
        match arg {
            PullArg::Missing => Self::Missing,
            PullArg::Always => Self::Always,
            PullArg::Never => Self::Never,
        }
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn refused_words_that_ask_for_the_stream_name_their_subcommand() {
        let words = |w: &[&str]| -> Vec<std::ffi::OsString> {
            std::iter::once("devenv")
                .chain(w.iter().copied())
                .map(Into::into)
                .collect()
        };
        assert_eq!(
            refused_stream(&words(&["-o", "jsonl", "up", "--bogus"])).as_deref(),
            Some("up")
        );
        assert_eq!(
            refused_stream(&words(&["down", "--output=jsonl", "-x"])).as_deref(),
            Some("down")
        );
        assert_eq!(
            refused_stream(&words(&["-ojsonl", "nosuch"])).as_deref(),
            Some("devenv")
        );
        assert_eq!(
            refused_stream(&words(&["--name", "ci", "-o", "jsonl", "up", "--bogus"])).as_deref(),
            Some("up"),
            "a global flag's value is not the subcommand"
        );
        assert_eq!(refused_stream(&words(&["up", "--bogus"])), None);
        assert_eq!(refused_stream(&words(&["-o", "json", "up", "-x"])), None);
        // After `--` the words are CMD's (`devenv ci -- tool -o jsonl`).
        assert_eq!(
            refused_stream(&words(&["ci", "--bogus", "--", "tool", "-o", "jsonl"])),
            None
        );
    }
    use super::*;

    #[test]
    fn durations_take_units_and_bare_seconds() {
        assert_eq!(duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(duration("0s").is_err());
        assert!(
            duration("10x")
                .unwrap_err()
                .contains("`10x` is not a duration")
        );
        assert!(duration("m").is_err());
        assert!(duration("").is_err());
    }
}
