//! The metrics server's integration-test binary; each module is one area.

mod auth_cache;
mod flags;
mod metrics_api;
mod metrics_faults;
mod metrics_server;
