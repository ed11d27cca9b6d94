//! The few failures whose exit code differs from an internal error's, and how any error maps
//! to an exit code and a `hint:` line.
//!
//! Everything else is an `anyhow::Error` with context; this is not a general error enum.

use std::fmt;

/// Exit codes devenv promises to scripts and CI.
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// An internal error: a bug, or an I/O failure devenv did not anticipate.
    pub const INTERNAL: i32 = 1;
    /// Bad input: a malformed devenv.yaml, a wrong flag value. Nothing was changed.
    pub const BAD_INPUT: i32 = 2;
    /// Something devenv needs is missing: the Docker engine, the kind binary, a free port.
    pub const ENVIRONMENT: i32 = 3;
    /// A check found a difference or an unhealthy service (`render --check`, `status`).
    pub const CHECK_FAILED: i32 = 4;
}

/// What kind of failure, which decides the exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    BadInput,
    Environment,
    CheckFailed,
}

/// A failure the user can act on: a message, and what to do next.
#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub hint: Option<String>,
}

impl Failure {
    /// Bad input (exit 2).
    pub fn bad_input(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        Failure {
            kind: FailureKind::BadInput,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A missing part of the environment (exit 3).
    pub fn environment(message: impl Into<String>, hint: impl Into<Option<String>>) -> Self {
        Failure {
            kind: FailureKind::Environment,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// A check that did not pass (exit 4). The details were already printed.
    pub fn check_failed(message: impl Into<String>) -> Self {
        Failure {
            kind: FailureKind::CheckFailed,
            message: message.into(),
            hint: None,
        }
    }

    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            FailureKind::BadInput => exit::BAD_INPUT,
            FailureKind::Environment => exit::ENVIRONMENT,
            FailureKind::CheckFailed => exit::CHECK_FAILED,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Another program's exit code, passed on as devenv's own (`devenv ci` ends with its
/// command's); devenv adds no message of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassedOn(pub i32);

impl fmt::Display for PassedOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the command exited with {}", self.0)
    }
}

impl std::error::Error for PassedOn {}

/// The exit code for an error: a [`PassedOn`] code, else that of the first [`Failure`] in its
/// chain, else internal.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if let Some(PassedOn(code)) = passed_on(err) {
        return code;
    }
    failure(err).map_or(exit::INTERNAL, Failure::exit_code)
}

/// The [`PassedOn`] exit code at the root of an error, if that is what it is.
pub fn passed_on(err: &anyhow::Error) -> Option<PassedOn> {
    err.downcast_ref::<PassedOn>().copied()
}

/// The first [`Failure`] in an error's chain.
pub fn failure(err: &anyhow::Error) -> Option<&Failure> {
    err.chain().find_map(|e| e.downcast_ref::<Failure>())
}

/// What an error says to the person or program that ran devenv: the message (context above the
/// first [`Failure`] leads, then the failure's own message; else the whole chain), its hint, and
/// the exit code.
pub fn describe(err: &anyhow::Error) -> (String, Option<String>, i32) {
    let code = exit_code(err);
    match failure(err) {
        Some(f) => {
            let mut chain: Vec<String> = Vec::new();
            for e in err.chain() {
                if e.downcast_ref::<Failure>().is_some() {
                    break;
                }
                chain.push(e.to_string());
            }
            chain.push(f.message.clone());
            (chain.join(": "), f.hint.clone(), code)
        }
        None => {
            let chain: Vec<String> = err.chain().map(ToString::to_string).collect();
            (chain.join(": "), None, code)
        }
    }
}

/// Whether the error is, at bottom, a closed pipe on stdout (not an error for a CLI).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
