//! kaddons: minikube-style addons for any local Kubernetes cluster.

pub mod metrics;
