//! Every environment variable devenv reads, in one place. Not for: what a variable means to
//! its reader (each reader documents that) nor the variables tests read (tests/support).

/// Path of devenv.yaml, as `--config`.
pub const CONFIG: &str = "DEVENV_CONFIG";
/// Overrides the state directory (secrets, rendered configs, locks). Default:
/// `$XDG_STATE_HOME/devenv/<name>` or `~/.local/state/devenv/<name>`.
pub const STATE_DIR: &str = "DEVENV_STATE_DIR";
/// XDG base directory for state.
pub const XDG_STATE_HOME: &str = "XDG_STATE_HOME";
/// XDG base directory for data: devenv's provisioned kind lives in `$XDG_DATA_HOME/devenv/bin`
/// (default `~/.local/share/devenv/bin`).
pub const XDG_DATA_HOME: &str = "XDG_DATA_HOME";
/// The kind binary to use (a path, or a name looked up on `PATH`), instead of `kind` on `PATH`
/// or devenv's provisioned copy. Tests point it at their fake kind.
pub const KIND: &str = "DEVENV_KIND";
/// Where programs are looked up (`kind`).
pub const PATH: &str = "PATH";
/// The user's home directory.
pub const HOME: &str = "HOME";
/// Windows: the user's profile directory, one of the homes kind and kubectl look under for
/// `.kube\config` (with [`HOMEDRIVE`]+[`HOMEPATH`] and [`HOME`]; see `cluster::home_dir`).
pub const USERPROFILE: &str = "USERPROFILE";
/// Windows: the drive of the user's home, joined with [`HOMEPATH`].
pub const HOMEDRIVE: &str = "HOMEDRIVE";
/// Windows: the user's home on [`HOMEDRIVE`].
pub const HOMEPATH: &str = "HOMEPATH";
/// Set by sudo: the user who ran `sudo devenv ...`, whose state directory `dns install`
/// records in (so that their own `dns status` and `dns uninstall` find it).
pub const SUDO_USER: &str = "SUDO_USER";
/// The kubeconfig the cluster's context goes into and is read from, as `--kubeconfig` (a
/// per-job file in CI). Default: where kind merges it — `KUBECONFIG`'s only file, or the first
/// of its files that exists (else its last), else `~/.kube/config`.
pub const KUBECONFIG_FILE: &str = "DEVENV_KUBECONFIG";
/// kubectl's and kind's kubeconfig search list.
pub const KUBECONFIG: &str = "KUBECONFIG";
/// `1`: when kind is missing, install the pinned release without asking (as `--install-kind`).
pub const INSTALL_KIND: &str = "DEVENV_INSTALL_KIND";
/// The Gateway API CRD bundle to install from, as `--gateway-crds`.
pub const GATEWAY_CRDS: &str = "DEVENV_GATEWAY_CRDS";
/// The SHA-256 the Gateway API CRD bundle must have instead of the pinned release's (a bundle
/// one has reviewed oneself, a company's build; tests, which install devenv's own test CRDs).
/// `up` says when it is in force. The bundle still comes from `--gateway-crds`, the cache or
/// the pinned URL, and must still hold only Gateway API CRDs serving what Traefik reads.
pub const GATEWAY_CRDS_SHA256: &str = "DEVENV_GATEWAY_CRDS_SHA256";
/// Disables colour (<https://no-color.org>).
pub const NO_COLOR: &str = "NO_COLOR";
/// Forces colour even when stderr is not a terminal.
pub const FORCE_COLOR: &str = "FORCE_COLOR";
/// Set by CI systems: a true value (see [`enabled`]) turns on CI mode, as `--ci` (no prompts,
/// no bars, plain lines).
pub const CI: &str = "CI";
/// The environment's name instead of devenv.yaml's `name:`, as `--name` (each CI job its own).
pub const NAME: &str = "DEVENV_NAME";
/// GitHub Actions' workflow run, its attempt and the job's ID: in CI mode the environment's
/// name is derived from them, so that parallel jobs on one runner share nothing.
pub const GITHUB_RUN_ID: &str = "GITHUB_RUN_ID";
pub const GITHUB_RUN_ATTEMPT: &str = "GITHUB_RUN_ATTEMPT";
pub const GITHUB_JOB: &str = "GITHUB_JOB";
/// GitLab CI's job ID, for the same.
pub const CI_JOB_ID: &str = "CI_JOB_ID";
/// `true` on GitHub Actions: a failing command also prints an `::error` workflow command.
pub const GITHUB_ACTIONS: &str = "GITHUB_ACTIONS";
/// GitHub Actions' step summary file: `up` appends a markdown summary to it.
pub const GITHUB_STEP_SUMMARY: &str = "GITHUB_STEP_SUMMARY";
/// Log filter for `-v` output (tracing's syntax), e.g. `devenv=debug`.
pub const LOG: &str = "DEVENV_LOG";
/// Where the Docker engine is (`unix://`, `tcp://`, `ssh://`).
pub const DOCKER_HOST: &str = "DOCKER_HOST";
/// The docker CLI's context; removed for kind, which then follows `DOCKER_HOST`.
pub const DOCKER_CONTEXT: &str = "DOCKER_CONTEXT";
/// kind's choice of node provider (docker, podman, nerdctl); set to docker for kind.
pub const KIND_EXPERIMENTAL_PROVIDER: &str = "KIND_EXPERIMENTAL_PROVIDER";
/// XDG runtime directory (rootless Docker's socket lives there).
pub const XDG_RUNTIME_DIR: &str = "XDG_RUNTIME_DIR";

/// The program `devenv dns install`/`uninstall` call as `systemctl` for the per-user login
/// service (`systemctl --user ...`), instead of `systemctl` on `PATH`. When set, it is called
/// also with `--root` (tests point it at a script that records its arguments).
pub const SYSTEMCTL: &str = "DEVENV_SYSTEMCTL";
/// As [`SYSTEMCTL`], for `launchctl` (macOS's launchd agent).
pub const LAUNCHCTL: &str = "DEVENV_LAUNCHCTL";
/// The CA bundle OpenSSL-based programs trust instead of the distribution's; `doctor` checks
/// devenv's CA against it when set.
pub const SSL_CERT_FILE: &str = "SSL_CERT_FILE";

/// Whether `name` is set to a non-empty value other than `0`.
pub fn flag(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Whether `name` is set to a true value: anything but empty, `0`, `false`, `no` or `off` (any
/// case). CI systems set `CI=true`, `CI=1` or their own name.
pub fn enabled(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| {
        let v = v.trim().to_ascii_lowercase();
        !matches!(v.as_str(), "" | "0" | "false" | "no" | "off")
    })
}
