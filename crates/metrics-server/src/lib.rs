//! The built-in metrics server: kubelet `/metrics/resource` decoding, the point store, the
//! scraper and the `metrics.k8s.io/v1beta1` API. Nothing in here depends on CLI code.

pub mod api;
pub mod decode;
pub mod reviews;
pub mod scrape;
pub mod source;
pub mod store;

/// Makes ring rustls' process-wide crypto provider. Test builds link a second provider
/// (aws-lc-rs, through dev-dependencies), and then rustls cannot pick one by itself.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
