//! The real control plane of the cluster tier (tests/support/controlplane.rs: etcd,
//! kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2, and the node agent that
//! plays the kubelet), held up for a benchmark: prints the admin kubeconfig's path on its first
//! line, `READY` on the next, and runs until killed.
//!
//! Usage: cargo run --example controlplane   (driven by bench/cluster-noop.sh; needs
//! `tests/support/controlplane/build.sh` to have built the binaries, and etcd)

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

fn main() {
    let Some(plane) = support::controlplane::control_plane() else {
        eprintln!("the control plane is not built: run tests/support/controlplane/build.sh");
        std::process::exit(3);
    };
    println!("{}", plane.kubeconfig.display());
    println!("READY");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
