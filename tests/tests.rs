//! The one integration-test binary; each module is one area.

mod pki;
mod util;

mod apply;
mod cli;
mod cli_http;
mod cluster;
mod e2e;
mod hostile;
mod metrics_api;
mod metrics_faults;
mod metrics_server;
mod polish;
mod profiles;
mod snapshots;
mod top;
mod upstream;
