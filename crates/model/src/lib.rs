//! What the kaddons CLI and its metrics server share, written once: the usage model
//! ([`usage`]), Kubernetes quantities ([`quantity`]) and Go durations ([`duration`]) in the exact
//! text forms clients compare, the `metrics.k8s.io/v1beta1` wire types ([`wire`]), and secret files
//! created 0600 ([`files`]).

pub mod duration;
pub mod files;
pub mod quantity;
pub mod usage;
pub mod wire;
