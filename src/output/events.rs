//! The record of a command's units of work — pipeline steps, services, pulls, cluster steps —
//! each a [`Span`] from start to finish, and, with `--output jsonl`, the JSON Lines event stream
//! of them on stdout: one object per line, flushed per line, ending with one `result` event.
//!
//! Every event has `ts` (RFC 3339, UTC), `event` (`start` | `finish` | `result`), `kind`
//! (`step` | `service` | `pull` | `cluster` | `result`), `name` and `id`; a start and its finish
//! share the `id`. A finish adds `outcome` (`ok` | `failed` | `skipped`) and `duration_ms`, and
//! where known `error`, `detail` and (pulls) `bytes`. Every start is finished exactly once: a
//! span dropped unfinished (an early return, a cancelled task) finishes as `failed`.
//!
//! Finished spans are also kept in memory ([`Events::finished`]) for summaries written after the
//! run (the GitHub step summary), whatever the output format.
//!
//! Not for: what humans see (bars and lines: [`super::progress`]) or deciding what a unit is
//! (converge does).

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde_json::Value;

/// What a unit of work is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A phase of the pipeline (`render`, `check`, `fetch`, `apply`, ...).
    Step,
    /// One service (the infrastructure's containers).
    Service,
    /// One image pull.
    Pull,
    /// The cluster, and each of its steps (`nodes`, `objects`, `wait-ingress`, ...).
    Cluster,
}

/// How a unit of work ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Failed,
    Skipped,
}

/// One finished span, as kept for summaries.
#[derive(Debug, Clone)]
pub struct Finished {
    pub kind: Kind,
    pub name: String,
    pub outcome: Outcome,
    pub duration: Duration,
}

/// The spans of one command: numbered, kept when finished, and written as JSON Lines on stdout
/// when the command runs with `--output jsonl`.
pub struct Events {
    /// Whether events go to stdout (`--output jsonl`).
    stream: bool,
    next_id: AtomicU64,
    started: Instant,
    finished: Mutex<Vec<Finished>>,
    /// The command's `-o json` document, carried by the `result` event.
    document: Mutex<Option<Value>>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl Events {
    /// A record; with `stream`, every event is also a line on stdout.
    pub fn new(stream: bool) -> Events {
        Events {
            stream,
            next_id: AtomicU64::new(1),
            started: Instant::now(),
            finished: Mutex::new(Vec::new()),
            document: Mutex::new(None),
        }
    }

    /// Whether events are written to stdout.
    pub fn streaming(&self) -> bool {
        self.stream
    }

    /// Start a span: a `start` event now, a `finish` when the span ends.
    pub fn start(self: &Arc<Self>, kind: Kind, name: &str) -> Span {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        self.write(&Event::new("start", kind_word(kind), name, id));
        Span {
            open: Some(Open {
                events: Arc::clone(self),
                id,
                kind,
                name: name.to_string(),
                started: Instant::now(),
                bytes: AtomicU64::new(0),
                detail: Mutex::new(None),
            }),
        }
    }

    /// The spans finished so far, in the order they finished.
    pub fn finished(&self) -> Vec<Finished> {
        self.finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Carry `document` (what `-o json` prints) in the `result` event's `data`.
    pub fn document(&self, document: Value) {
        *self.document.lock().unwrap_or_else(|e| e.into_inner()) = Some(document);
    }

    /// The last event of the stream: the command `name` ended `ok`, or failed with `error`
    /// (`message`, `hint`, `exit_code`). Written only when streaming.
    pub fn result(&self, name: &str, error: Option<(&str, Option<&str>, i32)>) {
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let mut e = Event::new("result", "result", name, id);
        e.outcome = Some(if error.is_some() {
            Outcome::Failed
        } else {
            Outcome::Ok
        });
        e.exit_code = Some(error.map_or(0, |(_, _, code)| code));
        e.duration_ms = Some(self.started.elapsed().as_millis() as u64);
        if let Some((message, hint, _)) = error {
            e.error = Some(message.to_string());
            e.hint = hint.map(str::to_string);
        }
        e.data = self
            .document
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        self.write(&e);
    }

    /// One line on stdout, flushed. A closed stdout loses the event, nothing else.
    fn write(&self, event: &Event<'_>) {
        if !self.stream {
            return;
        }
        let Ok(mut line) = serde_json::to_string(event) else {
            return;
        };
        line.push('\n');
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(line.as_bytes()).and_then(|()| out.flush());
    }
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Step => "step",
        Kind::Service => "service",
        Kind::Pull => "pull",
        Kind::Cluster => "cluster",
    }
}

/// One line of the stream: the fields every event has first, then those of finishes and the
/// result where they apply.
#[derive(Serialize)]
struct Event<'a> {
    ts: String,
    event: &'a str,
    kind: &'a str,
    name: &'a str,
    id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    outcome: Option<Outcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<Value>,
}

impl<'a> Event<'a> {
    fn new(event: &'a str, kind: &'a str, name: &'a str, id: u64) -> Event<'a> {
        Event {
            ts: timestamp(SystemTime::now()),
            event,
            kind,
            name,
            id,
            outcome: None,
            exit_code: None,
            duration_ms: None,
            bytes: None,
            detail: None,
            error: None,
            hint: None,
            data: None,
        }
    }
}

/// RFC 3339 in UTC with milliseconds: `2026-05-09T21:40:01.123Z`.
pub fn timestamp(at: SystemTime) -> String {
    let nanos = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128);
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// One unit of work between its `start` and its `finish`. Finish it with [`Span::finish`] or
/// [`Span::end`]; dropped unfinished, it finishes as `failed` ("did not finish"). A span of a
/// reporter that records nothing ([`Span::none`]) does nothing.
#[must_use = "a span finishes when it is ended or dropped"]
pub struct Span {
    open: Option<Open>,
}

struct Open {
    events: Arc<Events>,
    id: u64,
    kind: Kind,
    name: String,
    started: Instant,
    /// Bytes transferred so far (pulls).
    bytes: AtomicU64,
    /// What the finish says besides the outcome (`kept`, `created`).
    detail: Mutex<Option<String>>,
}

impl Span {
    /// A span that records nothing.
    pub fn none() -> Span {
        Span { open: None }
    }

    /// Bytes transferred so far (a pull); the finish carries the last value.
    pub fn bytes(&self, done: u64) {
        if let Some(o) = &self.open {
            o.bytes.store(done, Ordering::Relaxed);
        }
    }

    /// A word the finish carries as `detail` (`created`, `kept`).
    pub fn detail(&self, text: &str) {
        if let Some(o) = &self.open {
            *o.detail.lock().unwrap_or_else(|e| e.into_inner()) = Some(text.to_string());
        }
    }

    /// Finish with `outcome`, and `error` when it failed.
    pub fn finish(mut self, outcome: Outcome, error: Option<String>) {
        if let Some(o) = self.open.take() {
            o.finish(outcome, error);
        }
    }

    /// Finish as `result` says — `ok`, or `failed` with the error — and hand it on.
    pub fn end<T>(self, result: anyhow::Result<T>) -> anyhow::Result<T> {
        match &result {
            Ok(_) => self.finish(Outcome::Ok, None),
            Err(e) => self.finish(Outcome::Failed, Some(format!("{e:#}"))),
        }
        result
    }
}

impl Drop for Span {
    fn drop(&mut self) {
        if let Some(o) = self.open.take() {
            o.finish(Outcome::Failed, Some("did not finish".into()));
        }
    }
}

impl Open {
    fn finish(self, outcome: Outcome, error: Option<String>) {
        let duration = self.started.elapsed();
        let mut e = Event::new("finish", kind_word(self.kind), &self.name, self.id);
        e.outcome = Some(outcome);
        e.duration_ms = Some(duration.as_millis() as u64);
        if self.kind == Kind::Pull {
            e.bytes = Some(self.bytes.load(Ordering::Relaxed));
        }
        e.detail = self.detail.lock().unwrap_or_else(|e| e.into_inner()).take();
        e.error = error;
        self.events.write(&e);
        self.events
            .finished
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Finished {
                kind: self.kind,
                name: self.name,
                outcome,
                duration,
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc_with_milliseconds() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_778_362_801_123);
        assert_eq!(timestamp(at), "2026-05-09T21:40:01.123Z");
        assert_eq!(
            timestamp(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn every_span_finishes_once_also_when_dropped() {
        let events = Arc::new(Events::new(false));
        let ok = events.start(Kind::Step, "render");
        let dropped = events.start(Kind::Service, "registry");
        let failed = events.start(Kind::Pull, "busybox");
        failed.bytes(42);
        let _ = ok.end(anyhow::Ok(()));
        drop(dropped);
        let _ = failed.end::<()>(Err(anyhow::anyhow!("no registry")));
        let done: Vec<(String, Outcome)> = events
            .finished()
            .into_iter()
            .map(|f| (f.name, f.outcome))
            .collect();
        assert_eq!(
            done,
            [
                ("render".to_string(), Outcome::Ok),
                ("registry".to_string(), Outcome::Failed),
                ("busybox".to_string(), Outcome::Failed),
            ]
        );
    }

    #[test]
    fn a_span_of_nothing_records_nothing() {
        let span = Span::none();
        span.bytes(1);
        span.finish(Outcome::Ok, None);
    }
}
