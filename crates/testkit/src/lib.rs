//! Dev-only helpers shared by the tests, benches and examples of every kaddons crate: nothing
//! here is compiled into a release binary (only `[dev-dependencies]` name this crate).
//!
//! - [`pki`]: a throwaway CA, leaf certificates and an HTTPS GET client for loopback servers;
//! - [`auth`]: stand-in token reviewers and authorizers for the metrics server;
//! - [`fleet`]: the kubelet fleet simulator (`/metrics/resource` and `/stats/summary` over HTTPS);
//! - [`cluster`]: a real control plane (etcd, kube-apiserver, kube-controller-manager) built
//!   from the Go modules in `k8s/`;
//! - [`node`]: a real node (kubelet, kube-proxy, containerd, runc, CNI) joined to such a
//!   control plane, all in a network namespace of its own;
//! - [`bins`]: binaries of the other workspace packages.

pub mod aggregation;
pub mod auth;
pub mod bins;
pub mod cluster;
pub mod fleet;
pub mod node;
pub mod pki;
pub mod standin;
