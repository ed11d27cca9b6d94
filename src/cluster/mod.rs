//! The cluster driver: the kind CLI wrapper and the kube-rs operations on the cluster it made.
//!
//! Not for: building Kubernetes objects (that is `render`), or Docker operations on node
//! containers (that is `docker`).

pub mod kube;
