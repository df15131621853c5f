//! The one integration-test binary; each module is one area.

mod util;

mod apply;
mod cli;
mod cli_http;
mod cluster;
mod e2e;
mod hostile;
mod polish;
mod profiles;
mod real;
mod snapshots;
mod top;
mod upstream;
