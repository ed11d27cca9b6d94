//! The milestones board: named facts one step publishes (`registry` is healthy) and others
//! wait for, within a driver (a service waits for those it depends on) and across drivers (the
//! cluster waits for the registry before wiring it into its nodes).
//!
//! Not for: ordering within one task, or passing data (a milestone is reached or it failed).

use std::collections::BTreeMap;

use tokio::sync::watch;

/// Every milestone of one run, declared before apply starts.
#[derive(Debug)]
pub struct Ready {
    /// Each milestone's outcome: `None` until published.
    milestones: BTreeMap<String, watch::Sender<Option<bool>>>,
}

impl Ready {
    /// A board for `names` (duplicates are one milestone), none of them reached yet.
    pub fn new(names: impl IntoIterator<Item = String>) -> Ready {
        Ready {
            milestones: names
                .into_iter()
                .map(|n| (n, watch::Sender::new(None)))
                .collect(),
        }
    }

    /// Whether `name` was declared for this run.
    pub fn declared(&self, name: &str) -> bool {
        self.milestones.contains_key(name)
    }

    /// Publish the outcome of `name`: reached (`true`) or failed. Once per run; an undeclared
    /// name is ignored.
    pub fn publish(&self, name: &str, reached: bool) {
        if let Some(tx) = self.milestones.get(name) {
            tx.send_replace(Some(reached));
        }
    }

    /// A promise to publish `name`: kept with [`Promise::keep`]; broken (published as failed)
    /// when dropped unkept, so that a task that ends early never leaves waiters hanging.
    pub fn promise<'a>(&'a self, name: &str) -> Promise<'a> {
        Promise {
            ready: self,
            name: name.to_string(),
            kept: false,
        }
    }

    /// Wait until `name` is published; whether it was reached. A name nobody declared is not
    /// reached, at once.
    pub async fn wait(&self, name: &str) -> bool {
        let Some(tx) = self.milestones.get(name) else {
            return false;
        };
        let mut rx = tx.subscribe();
        rx.wait_for(Option::is_some)
            .await
            .is_ok_and(|v| *v == Some(true))
    }
}

/// See [`Ready::promise`].
#[derive(Debug)]
pub struct Promise<'a> {
    ready: &'a Ready,
    name: String,
    kept: bool,
}

impl Promise<'_> {
    /// Publish the outcome.
    pub fn keep(mut self, reached: bool) {
        self.ready.publish(&self.name, reached);
        self.kept = true;
    }
}

impl Drop for Promise<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.ready.publish(&self.name, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waiters_hear_the_published_outcome_and_undeclared_names_are_not_reached() {
        let ready = Ready::new(["a".to_string(), "b".to_string()]);
        let waiting = async { (ready.wait("a").await, ready.wait("b").await) };
        let publishing = async {
            tokio::task::yield_now().await;
            ready.publish("a", true);
            ready.publish("b", false);
        };
        let ((a, b), ()) = tokio::join!(waiting, publishing);
        assert!(a && !b);
        assert!(!ready.wait("c").await);
        assert!(!ready.declared("c") && ready.declared("a"));
    }

    #[tokio::test]
    async fn a_promise_dropped_unkept_publishes_a_failure() {
        let ready = Ready::new(["a".to_string()]);
        drop(ready.promise("a"));
        assert!(!ready.wait("a").await);
    }
}
