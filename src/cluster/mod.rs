//! Everything that talks to (or about) a cluster: kubeconfig handling today; the kube-rs
//! client, server-side apply, prune and watch-based waits as the cluster commands arrive.

pub mod kubeconfig;
