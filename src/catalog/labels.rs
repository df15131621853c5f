//! The labels and annotations kaddons puts on every object it creates. They make the cluster
//! itself the record of which addons are enabled, with which profile and values.

/// `app.kubernetes.io/managed-by: kaddons`.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "kaddons";
/// `kaddons.io/addon: <addon name>`.
pub const ADDON: &str = "kaddons.io/addon";
/// Version of kaddons that applied the object.
pub const VERSION: &str = "kaddons.io/version";
/// The addon's own version (addon.yaml `version`).
pub const ADDON_VERSION: &str = "kaddons.io/addon-version";
/// Profile the object was rendered with.
pub const PROFILE: &str = "kaddons.io/profile";
/// Digest of the effective values and images.
pub const VALUES_DIGEST: &str = "kaddons.io/values-digest";
