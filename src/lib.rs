//! kaddons: minikube-style addons for any local Kubernetes cluster.
//!
//! Layers, each depending only on those below it:
//! `commands` (in the binary) -> [`render`], [`cluster`], [`metrics`] -> [`catalog`].

pub mod aggregator;
pub mod catalog;
pub mod cluster;
pub mod metrics;
pub mod profile;
pub mod render;
pub mod top;
