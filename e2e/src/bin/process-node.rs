//! `process-node`: **test-only tooling** for reverie's end-to-end suite. Never ship it.
//!
//! The local control plane used by the e2e tests (etcd + kube-apiserver +
//! kube-controller-manager, see `e2e/cluster/`) has neither a scheduler nor a kubelet, so
//! pods would stay `Pending` forever. This binary is the cluster's one and only node: it
//! registers a `Node`, keeps it `Ready`, binds every pending pod to itself and runs each
//! container as a plain local process (in a private mount namespace carrying the pod's
//! volumes and service-account token), reporting pod status back through the API so the
//! real Job / ReplicaSet / Deployment controllers see pods run, succeed and fail.
//!
//! It is deliberately *not* a container runtime: there is no image pull, no network, PID
//! or user namespace, no resource limits and no probes. See `process_node/mod.rs` for the
//! full list of what is and is not emulated.

#[path = "../process_node/mod.rs"]
mod process_node;

fn main() -> std::process::ExitCode {
    process_node::main()
}
