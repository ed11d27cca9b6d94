//! What the checks look at, observed once and shared: the environment's settings, and the
//! engine connection, the containers and the cluster's API handle, each made on first use
//! by whichever check asks first. A check that reports on one of them (`docker-engine`,
//! `cluster-api`) and those that merely use it see the same result.
//!
//! Not for: judging what was seen (the checks do).

use std::path::PathBuf;

use tokio::sync::OnceCell;

use crate::cluster::kube::Kube;
use crate::config::{ClusterProvider, Config};
use crate::converge::{self, Row};
use crate::docker::Engine;
use crate::docker::observed::Observed;

/// A failure to observe something, as the message and the hint of the error.
#[derive(Debug, Clone)]
pub struct Unreachable {
    pub message: String,
    pub hint: Option<String>,
}

impl Unreachable {
    fn of(err: &anyhow::Error) -> Unreachable {
        match crate::error::failure(err) {
            Some(f) => Unreachable {
                message: f.message.clone(),
                hint: f.hint.clone(),
            },
            None => Unreachable {
                message: format!("{err:#}"),
                hint: None,
            },
        }
    }
}

/// The environment doctor looks at.
pub struct Facts {
    pub config: Config,
    /// The environment's state directory (the resolver's run file, the CA, the routes).
    pub state_dir: PathBuf,
    /// The kubeconfig the cluster's context is read from.
    pub kubeconfig: PathBuf,
    engine: OnceCell<Result<Engine, Unreachable>>,
    observed: OnceCell<Result<Observed, Unreachable>>,
    rows: OnceCell<Result<Vec<Row>, Unreachable>>,
    kube: OnceCell<Result<Kube, Unreachable>>,
}

impl Facts {
    pub fn new(config: Config, state_dir: PathBuf, kubeconfig: PathBuf) -> Facts {
        Facts {
            config,
            state_dir,
            kubeconfig,
            engine: OnceCell::new(),
            observed: OnceCell::new(),
            rows: OnceCell::new(),
            kube: OnceCell::new(),
        }
    }

    /// The Docker engine, connected once.
    pub async fn engine(&self) -> Result<&Engine, &Unreachable> {
        self.engine
            .get_or_init(|| async { Engine::connect().await.map_err(|e| Unreachable::of(&e)) })
            .await
            .as_ref()
    }

    /// Every container, network and volume of the engine, listed once.
    pub async fn observed(&self) -> Result<&Observed, Unreachable> {
        let engine = self.engine().await.map_err(Clone::clone)?;
        self.observed
            .get_or_init(|| async { engine.observe().await.map_err(|e| Unreachable::of(&e)) })
            .await
            .as_ref()
            .map_err(Clone::clone)
    }

    /// The services' rows as `devenv status` shows them (state, health), made once.
    pub async fn rows(&self) -> Result<&[Row], Unreachable> {
        let engine = self.engine().await.map_err(Clone::clone)?;
        self.rows
            .get_or_init(|| async {
                converge::summary::status(engine, &self.config.name, &self.config.services())
                    .await
                    .map_err(|e| Unreachable::of(&e))
            })
            .await
            .as_ref()
            .map(Vec::as_slice)
            .map_err(Clone::clone)
    }

    /// The cluster's API, connected once (`None` with `cluster.provider: none`).
    pub async fn kube(&self) -> Option<Result<&Kube, &Unreachable>> {
        let context = converge::cluster::context(&self.config)?;
        Some(
            self.kube
                .get_or_init(|| async {
                    Kube::connect(&self.kubeconfig, &context)
                        .await
                        .map_err(|e| Unreachable::of(&e))
                })
                .await
                .as_ref(),
        )
    }

    /// The reason cluster checks do not apply, when they do not.
    pub fn no_cluster(&self) -> Option<String> {
        (self.config.cluster.provider == ClusterProvider::None)
            .then(|| "cluster.provider is `none` in devenv.yaml: there is no cluster".to_string())
    }
}
