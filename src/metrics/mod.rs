//! The built-in metrics server: kubelet `/metrics/resource` decoding, the point store, the
//! scraper and the `metrics.k8s.io/v1beta1` API. Nothing in here depends on CLI code.

pub mod api;
pub mod decode;
pub mod model;
pub mod reviews;
pub mod scrape;
pub mod source;
pub mod store;
