//! Everything that talks to (or about) a cluster: the kube-rs client, kubeconfig handling,
//! server-side apply, prune, status and watch-based waits, and the diagnosis of failures.

pub mod apply;
pub mod client;
pub mod kubeconfig;
pub mod resources;
pub mod wait;
