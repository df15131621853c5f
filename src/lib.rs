//! kaddons: minikube-style addons for any local Kubernetes cluster.
//!
//! Layers, each depending only on those below it:
//! `commands` (in the binary) -> [`render`], [`cluster`], [`metrics`] -> [`catalog`].

pub mod addonset;
pub mod aggregator;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod metrics;
pub mod profile;
pub mod render;
pub mod top;
