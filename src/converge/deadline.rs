//! A hard deadline around `up`: when it passes, whatever was running is stopped and named.
//! [`Watch`] is a [`Reporter`] in front of the real one that remembers which tasks run and the
//! last step, so that the failure says where `up` was.
//!
//! Not for: the waits' own timeouts (each wait has its own), nor tearing anything down (a
//! timed-out `up` leaves what it made; `devenv ci` tears it down).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::error::Failure;
use crate::output::events::{Kind, Span};
use crate::output::progress::{Reporter, Task};

/// How long past `--timeout` a run of `up` may go on: its waits (health, nodes, rollouts) each
/// get `--timeout` and, when they fail, report what they waited for with its last log lines;
/// the deadline catches what has no wait of its own (a pull, kind, the engine not answering).
pub const REPORTING: Duration = Duration::from_secs(5);

/// A reporter that passes everything on to `inner` and remembers what runs.
pub struct Watch {
    inner: Arc<dyn Reporter>,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Default)]
struct Seen {
    /// Tasks started and not finished, in start order, each with what it said last.
    running: Vec<(String, Option<String>)>,
    /// The last finished step.
    last: Option<String>,
}

impl Watch {
    /// In front of `inner`.
    pub fn new(inner: Arc<dyn Reporter>) -> Arc<Watch> {
        Arc::new(Watch {
            inner,
            seen: Arc::default(),
        })
    }

    /// What was running, in words: the tasks, else the last step, else the checks.
    pub fn running(&self) -> String {
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.running.is_empty() {
            let tasks: Vec<String> = seen
                .running
                .iter()
                .map(|(name, said)| match said {
                    Some(said) => format!("{name} ({said})"),
                    None => name.clone(),
                })
                .collect();
            return tasks.join(", ");
        }
        match &seen.last {
            Some(last) => format!("the step after `{last}`"),
            None => "the checks (connecting, observing, preflight)".into(),
        }
    }
}

impl Reporter for Watch {
    fn step(&self, word: &str, text: &str) {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).last = Some(format!("{word} {text}"));
        self.inner.step(word, text);
    }

    fn task(&self, name: &str) -> Box<dyn Task> {
        self.watched(name.to_string(), self.inner.task(name))
    }

    fn transfer(&self, word: &str, what: &str) -> Box<dyn Task> {
        self.watched(format!("{word} {what}"), self.inner.transfer(word, what))
    }

    // The event stream and the record of spans are the inner reporter's.
    fn start(&self, kind: Kind, name: &str) -> Span {
        self.inner.start(kind, name)
    }
}

impl Watch {
    fn watched(&self, name: String, inner: Box<dyn Task>) -> Box<dyn Task> {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .running
            .push((name.clone(), None));
        Box::new(Watched {
            inner,
            name,
            seen: Arc::clone(&self.seen),
        })
    }
}

/// One task of a [`Watch`]: forgotten when it finishes (or is dropped).
struct Watched {
    inner: Box<dyn Task>,
    name: String,
    seen: Arc<Mutex<Seen>>,
}

impl Watched {
    fn done(&self) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = seen.running.iter().position(|(n, _)| *n == self.name) {
            seen.running.remove(i);
        }
    }

    /// Remember what the task said last.
    fn said(&self, text: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, said)) = seen.running.iter_mut().find(|(n, _)| *n == self.name) {
            *said = Some(text.to_string());
        }
    }
}

impl Task for Watched {
    fn note(&self, text: &str) {
        self.said(text);
        self.inner.note(text);
    }
    fn step(&self, word: &str) {
        self.said(word);
        self.inner.step(word);
    }
    fn bytes(&self, done: u64, total: u64) {
        self.inner.bytes(done, total);
    }
    fn finish(&self, word: &str, detail: &str) {
        self.done();
        self.inner.finish(word, detail);
    }
    fn clear(&self) {
        self.done();
        self.inner.clear();
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        self.done();
    }
}

/// The failure of a run stopped by its deadline `after` while `running` (exit 3).
pub fn expired(after: Duration, running: &str) -> anyhow::Error {
    Failure::environment(
        format!(
            "timed out after {} while running: {running}",
            humanize(after)
        ),
        Some("give it more time with --timeout (e.g. `--timeout 10m`), or look at what it was waiting for with `devenv status` and `devenv logs SERVICE`".to_string()),
    )
    .into()
}

/// `work` until `deadline` (the end of `limit`, as the failure says); past it, `work` is
/// dropped (stopping its tasks) and the failure names what `watch` saw running.
pub async fn within<T>(
    deadline: Instant,
    limit: Duration,
    watch: &Watch,
    work: impl Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<T> {
    let mut work = std::pin::pin!(work);
    tokio::select! {
        result = &mut work => result,
        // Named before `work` is dropped: its tasks are still there.
        () = tokio::time::sleep_until(deadline) => Err(expired(limit, &watch.running())),
    }
}

/// `90s`, `10m`, `1h30m` — as `--timeout` takes it.
pub fn humanize(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        return format!("{}ms", d.as_millis());
    }
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::progress::Silent;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_names_the_tasks_that_were_running() {
        let watch = Watch::new(Arc::new(Silent));
        let w = Arc::clone(&watch);
        let limit = Duration::from_secs(5);
        let e = within(Instant::now() + limit, limit, &watch, async move {
            w.step("created", "network x-infra");
            let done = w.task("registry");
            done.finish("healthy", "");
            let gateway = w.task("gateway");
            gateway.note("waiting for registry");
            let _pdns = w.task("pdns");
            tokio::time::sleep(Duration::from_secs(60)).await;
            anyhow::Ok(())
        })
        .await
        .unwrap_err();
        let failure = crate::error::failure(&e).unwrap();
        assert_eq!(failure.exit_code(), crate::error::exit::ENVIRONMENT);
        assert_eq!(
            failure.message,
            "timed out after 5s while running: gateway (waiting for registry), pdns"
        );
        assert_eq!(watch.running(), "the step after `created network x-infra`");
    }

    #[test]
    fn durations_read_as_typed() {
        assert_eq!(humanize(Duration::from_secs(90)), "1m30s");
        assert_eq!(humanize(Duration::from_secs(3600)), "1h");
        assert_eq!(humanize(Duration::from_millis(500)), "500ms");
    }
}
