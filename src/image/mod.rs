//! Container images without Docker: the image archive of kaddons' own metrics server
//! ([`archive`], [`rootfs`]), and the pre-flight that makes sure every image an addon deploys
//! can be had by the nodes before anything is applied ([`nodes`], [`registry`]).

pub mod archive;
pub mod nodes;
pub mod registry;
pub mod rootfs;

pub use archive::{Arch, Archive, Entry, ImageConfig};
