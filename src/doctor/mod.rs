//! `devenv doctor`: walk the whole chain — the host (Docker engine, kind, free ports, inotify
//! limits, loopback addresses), names (the resolver, the OS routing the domain to it, mDNS),
//! the services (health, the gateway answering each name, the registry, TLS trust) and the
//! cluster (API, nodes, ingress, names from a pod) — and say for each link ok, warning,
//! failure or skipped, with the fix for each that is not ok.
//!
//! A [`Check`] names what it needs (other checks, by name); the [`run`]ner starts every check at
//! once, each waits only for what it needs, and a check whose need failed or was skipped is
//! skipped with that reason instead of run. Each has its own timeout. Results come out in the
//! order the checks were listed, each as soon as it and those before it are done.
//!
//! The checks themselves live one group per file ([`host`], [`names`], [`services`],
//! [`cluster`]) and share what they observe through [`Facts`] (the engine is connected once,
//! the containers listed once). Not for: printing (the command does that) nor changing
//! anything: doctor only looks — except the registry round trip, which pushes one small fixed
//! blob, and the pod that resolves names in the cluster (deleted at once).

pub mod cluster;
pub mod facts;
pub mod host;
pub mod names;
pub mod services;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesOrdered;
use serde::Serialize;
use tokio::sync::watch;

pub use facts::Facts;

/// How a link of the chain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, but something is known to cause trouble (does not fail doctor).
    Warn,
    /// Broken: doctor exits 4.
    Fail,
    /// Not looked at, with the reason (a need that failed, a part that is switched off).
    Skip,
}

impl Status {
    /// The word of the human output: `ok`, `warn`, `FAIL`, `skip`.
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }

    /// Whether checks that need this one may run on it.
    fn usable(self) -> bool {
        matches!(self, Status::Ok | Status::Warn)
    }
}

/// What one check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub status: Status,
    /// What was seen (or why it was skipped).
    pub detail: String,
    /// What to do, for anything not ok.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(detail: impl Into<String>) -> Finding {
        Finding {
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn warn(detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            status: Status::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(detail: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding {
            status: Status::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn skip(reason: impl Into<String>) -> Finding {
        Finding {
            status: Status::Skip,
            detail: reason.into(),
            fix: None,
        }
    }
}

/// The groups checks are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Host,
    Names,
    Services,
    Cluster,
}

/// A check's work: runs once, when everything it needs is usable.
pub type Work<'a> =
    Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = Finding> + Send + 'a>> + Send + 'a>;

/// One link of the chain to look at.
pub struct Check<'a> {
    /// Unique; what other checks name in `needs`.
    pub name: String,
    pub group: Group,
    /// Checks listed before this one whose failure (or skip) makes this one pointless.
    pub needs: Vec<String>,
    /// How long the work may take before it counts as a failure.
    pub timeout: Duration,
    pub work: Work<'a>,
}

impl<'a> Check<'a> {
    /// A check with the default timeout and no needs.
    pub fn new<F>(name: impl Into<String>, group: Group, work: F) -> Check<'a>
    where
        F: Future<Output = Finding> + Send + 'a,
    {
        Check {
            name: name.into(),
            group,
            needs: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            work: Box::new(move || Box::pin(work)),
        }
    }

    /// This check needs `other` to be usable (ok or warn).
    pub fn needs(mut self, other: impl Into<String>) -> Self {
        self.needs.push(other.into());
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

/// The timeout of a check that sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// One check's result, as printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub name: String,
    pub group: Group,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

/// Every outcome, in the order the checks were listed.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub checks: Vec<Outcome>,
    /// No check failed (warnings do not count).
    pub ok: bool,
}

impl Report {
    /// The names of the failed checks.
    pub fn failed(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail)
            .map(|c| c.name.as_str())
            .collect()
    }

    /// How many checks ended in `status`.
    pub fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }
}

/// Run `checks` all at once, each as soon as what it needs is done; call `each` with every
/// outcome in list order, as soon as it and all before it are known.
///
/// A need must name a check listed earlier (so there are no cycles); anything else is a bug
/// in the list and panics.
pub async fn run<'a>(checks: Vec<Check<'a>>, mut each: impl FnMut(&Outcome)) -> Report {
    let mut done: HashMap<String, watch::Receiver<Option<Status>>> = HashMap::new();
    let mut ordered = FuturesOrdered::new();
    for check in checks {
        let needs: Vec<(String, watch::Receiver<Option<Status>>)> = check
            .needs
            .iter()
            .map(|n| {
                let rx = done.get(n).unwrap_or_else(|| {
                    panic!(
                        "check {} needs {n}, which is not listed before it",
                        check.name
                    )
                });
                (n.clone(), rx.clone())
            })
            .collect();
        let (tx, rx) = watch::channel(None);
        assert!(
            done.insert(check.name.clone(), rx).is_none(),
            "two checks are named {}",
            check.name
        );
        ordered.push_back(async move {
            let finding = match unusable(needs).await {
                Some(reason) => Finding::skip(reason),
                None => match tokio::time::timeout(check.timeout, (check.work)()).await {
                    Ok(finding) => finding,
                    Err(_) => Finding::fail(
                        format!("no result within {}s", check.timeout.as_secs_f32()),
                        "run `devenv doctor -v` to see where it stops",
                    ),
                },
            };
            let _ = tx.send(Some(finding.status));
            Outcome {
                name: check.name,
                group: check.group,
                status: finding.status,
                detail: finding.detail,
                fix: finding.fix,
            }
        });
    }
    let mut checks = Vec::new();
    while let Some(outcome) = ordered.next().await {
        each(&outcome);
        checks.push(outcome);
    }
    let ok = checks.iter().all(|c| c.status != Status::Fail);
    Report { checks, ok }
}

/// Wait for every need; the reason to skip when one is not usable.
async fn unusable(needs: Vec<(String, watch::Receiver<Option<Status>>)>) -> Option<String> {
    let mut not = Vec::new();
    for (name, mut rx) in needs {
        let status = rx.wait_for(Option::is_some).await.ok().and_then(|s| *s);
        match status {
            Some(s) if s.usable() => {}
            Some(Status::Fail) => not.push(format!("{name}, which failed")),
            _ => not.push(format!("{name}, which was skipped")),
        }
    }
    (!not.is_empty()).then(|| format!("needs {}", not.join(" and ")))
}

/// The human line(s) of an outcome: `ok    name  detail`, then `fix:` indented; names padded
/// to `width`.
pub fn line(outcome: &Outcome, width: usize) -> String {
    let mut text = format!(
        "{:<4}  {:<width$}  {}",
        outcome.status.word(),
        outcome.name,
        outcome.detail
    );
    if let Some(fix) = &outcome.fix {
        text.push_str(&format!("\n{:<4}  {:<width$}  fix: {fix}", "", ""));
    }
    text
}

/// Every check of the chain for the environment `facts` describes, in the order shown.
pub fn checks(facts: &Facts) -> Vec<Check<'_>> {
    let mut all = host::checks(facts);
    all.extend(names::checks(facts));
    all.extend(services::checks(facts));
    all.extend(cluster::checks(facts));
    all
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn fixed(name: &str, finding: Finding) -> Check<'static> {
        Check::new(name, Group::Host, async move { finding })
    }

    #[tokio::test]
    async fn a_failed_need_skips_its_dependents_and_their_dependents_with_the_reason() {
        let checks = vec![
            fixed("engine", Finding::fail("down", "start it")),
            fixed("kind", Finding::warn("old", "upgrade")),
            fixed("service", Finding::ok("up")).needs("engine"),
            fixed("gateway", Finding::ok("up")).needs("service"),
            fixed("cluster", Finding::ok("up")).needs("kind"),
            fixed("skipped", Finding::skip("off")),
            fixed("after-skip", Finding::ok("up")).needs("skipped"),
        ];
        let report = run(checks, |_| {}).await;
        let got: Vec<(&str, Status, &str)> = report
            .checks
            .iter()
            .map(|c| (c.name.as_str(), c.status, c.detail.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("engine", Status::Fail, "down"),
                ("kind", Status::Warn, "old"),
                ("service", Status::Skip, "needs engine, which failed"),
                ("gateway", Status::Skip, "needs service, which was skipped"),
                // A warning is usable.
                ("cluster", Status::Ok, "up"),
                ("skipped", Status::Skip, "off"),
                (
                    "after-skip",
                    Status::Skip,
                    "needs skipped, which was skipped"
                ),
            ]
        );
        assert!(!report.ok);
        assert_eq!(report.failed(), ["engine"]);
    }

    #[tokio::test]
    async fn warnings_and_skips_do_not_fail_the_report() {
        let report = run(
            vec![
                fixed("a", Finding::warn("w", "f")),
                fixed("b", Finding::skip("s")),
                fixed("c", Finding::ok("o")),
            ],
            |_| {},
        )
        .await;
        assert!(report.ok);
        assert_eq!(
            (report.count(Status::Ok), report.count(Status::Warn)),
            (1, 1)
        );
    }

    /// Two checks that each wait for the other to have started can only finish when they run
    /// at the same time; run one after the other, both would hit their timeout.
    #[tokio::test(start_paused = true)]
    async fn independent_checks_run_at_the_same_time() {
        let barrier = Arc::new(tokio::sync::Barrier::new(2));
        let meet = |name: &str| {
            let b = Arc::clone(&barrier);
            Check::new(name, Group::Host, async move {
                b.wait().await;
                Finding::ok("met")
            })
        };
        let report = run(vec![meet("a"), meet("b")], |_| {}).await;
        assert!(
            report.checks.iter().all(|c| c.status == Status::Ok),
            "{:?}",
            report.checks
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_does_not_finish_fails_at_its_timeout_and_others_go_on() {
        let stuck = Check::new("stuck", Group::Names, std::future::pending::<Finding>())
            .timeout(Duration::from_secs(3));
        let after = fixed("after", Finding::ok("fine")).needs("stuck");
        let free = fixed("free", Finding::ok("fine"));
        let report = run(vec![stuck, after, free], |_| {}).await;
        assert_eq!(report.checks[0].status, Status::Fail);
        assert_eq!(report.checks[0].detail, "no result within 3s");
        assert_eq!(report.checks[1].detail, "needs stuck, which failed");
        assert_eq!(report.checks[2].status, Status::Ok);
    }

    /// Outcomes come in list order although a later check finishes first.
    #[tokio::test(start_paused = true)]
    async fn outcomes_come_in_list_order() {
        let slow = Check::new("slow", Group::Host, async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            Finding::ok("slow")
        });
        let fast = fixed("fast", Finding::ok("fast"));
        let mut seen = Vec::new();
        run(vec![slow, fast], |o| seen.push(o.name.clone())).await;
        assert_eq!(seen, ["slow", "fast"]);
    }

    #[test]
    #[should_panic(expected = "not listed before it")]
    fn a_need_on_a_later_check_is_a_bug_in_the_list() {
        let checks = vec![
            fixed("a", Finding::ok("")).needs("b"),
            fixed("b", Finding::ok("")),
        ];
        futures_util::FutureExt::now_or_never(run(checks, |_| {}));
    }

    #[test]
    fn the_human_line_pads_names_and_puts_the_fix_under_the_detail() {
        let outcome = Outcome {
            name: "resolver".into(),
            group: Group::Names,
            status: Status::Fail,
            detail: "not running".into(),
            fix: Some("devenv dns serve".into()),
        };
        assert_eq!(
            line(&outcome, 10),
            "FAIL  resolver    not running\n                  fix: devenv dns serve"
        );
    }
}
