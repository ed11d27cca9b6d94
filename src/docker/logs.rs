//! A container's output: followed as a stream (for `devenv logs`), or its last lines as text
//! (for failure messages).
//!
//! Not for: choosing the container or printing the output (the caller does both).

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions;
use futures_util::{Stream, StreamExt};

use super::Engine;

/// One chunk of a container's output, as the container wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Written to stdout (or to the console of a container with a TTY).
    Stdout(Vec<u8>),
    /// Written to stderr.
    Stderr(Vec<u8>),
}

impl Engine {
    /// The output of container `id` (named `name` in errors): the last `tail` lines (`all` or
    /// a number), and then, with `follow`, everything it writes until it stops.
    pub fn logs<'a>(
        &'a self,
        id: &'a str,
        name: &'a str,
        follow: bool,
        tail: &str,
    ) -> impl Stream<Item = anyhow::Result<Output>> + 'a {
        self.docker
            .logs(
                id,
                Some(LogsOptions {
                    follow,
                    stdout: true,
                    stderr: true,
                    tail: tail.to_string(),
                    ..Default::default()
                }),
            )
            .filter_map(move |item| async move {
                match item {
                    Err(e) => Some(Err(anyhow::anyhow!(
                        "reading the logs of container {name}: {e}"
                    ))),
                    Ok(LogOutput::StdErr { message }) => Some(Ok(Output::Stderr(message.to_vec()))),
                    Ok(LogOutput::StdOut { message } | LogOutput::Console { message }) => {
                        Some(Ok(Output::Stdout(message.to_vec())))
                    }
                    Ok(LogOutput::StdIn { .. }) => None,
                }
            })
    }

    /// The last `lines` lines of a container's output (stdout and stderr interleaved).
    pub async fn last_logs(&self, id: &str, lines: usize) -> String {
        let mut stream = self.docker.logs(
            id,
            Some(LogsOptions {
                stdout: true,
                stderr: true,
                tail: lines.to_string(),
                ..Default::default()
            }),
        );
        let mut out = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            out.push_str(&String::from_utf8_lossy(&chunk.into_bytes()));
        }
        out
    }
}
