//! The real control plane of the cluster tier (tests/support/controlplane.rs: etcd,
//! kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2, and the node agent that
//! plays the kubelet), held up for a benchmark: prints the admin kubeconfig's path on its first
//! line, then `export NAME='VALUE'` lines that point fake kind at it (`--fake-kind`: and the
//! lookup pods run for real), `READY` last, and runs until killed.
//!
//! Usage: cargo run --example controlplane [-- --fake-kind]   (driven by bench/cluster-noop.sh
//! and bench/cluster-kind-real.sh; needs `tests/support/controlplane/build.sh` to have built the
//! binaries, and etcd; `--fake-kind` also the real-program images and busybox-static)

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

fn main() {
    let Some(plane) = support::controlplane::control_plane() else {
        eprintln!("the control plane is not built: run tests/support/controlplane/build.sh");
        std::process::exit(3);
    };
    println!("{}", plane.kubeconfig.display());
    if std::env::args().any(|a| a == "--fake-kind") {
        if plane.run_lookup_pods().is_none() {
            eprintln!("the lookup pods cannot run: the named or busybox image is missing");
            std::process::exit(3);
        }
        for (name, value) in plane.fake_kind_env() {
            println!("export {name}='{}'", value.to_string_lossy());
        }
    }
    println!("READY");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
