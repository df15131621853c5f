//! The one integration-test binary; each module is one area.

mod util;

mod cli;
mod cluster;
mod hostile;
mod metrics_api;
mod profiles;
mod snapshots;
mod upstream;
