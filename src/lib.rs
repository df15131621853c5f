//! kaddons: minikube-style addons for any local Kubernetes cluster.
//!
//! Layers, each depending only on those below it:
//! `commands` (in the binary) -> [`render`], [`cluster`] -> [`catalog`]. The built-in metrics
//! server is its own crate (`crates/metrics-server`); what both share is in `kaddons-model`.

pub mod addonset;
pub mod aggregator;
pub mod catalog;
pub mod cluster;
pub mod config;
pub mod image;
pub mod profile;
pub mod render;
pub mod top;
