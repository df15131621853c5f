//! Everything that talks to (or about) a cluster: the kube-rs client, kubeconfig handling,
//! server-side apply, prune, status and watch-based waits, and the diagnosis of failures.

pub mod apply;
pub mod client;
pub mod diagnose;
pub mod doctor;
pub mod facts;
pub mod kubeconfig;
pub mod observe;
pub mod resources;
pub mod status;
pub mod tls;
pub mod top;
pub mod wait;
