//! The one integration-test binary; each module is one area.

mod util;

mod apply;
mod cli;
mod cli_http;
mod cluster;
mod config_file;
mod e2e;
mod hostile;
mod image;
mod image_registry;
mod output;
mod profiles;
mod real;
mod shell;
mod snapshots;
mod top;
mod upstream;
mod values_schema;
mod versions;
