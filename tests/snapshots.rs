//! Snapshots of every addon × profile render (and the main options), so that any change to
//! the output is seen in review.

use kaddons::catalog::{Catalog, Profile};
use kaddons::render::{self, Request};

/// Snapshots without kaddons' own version, which changes with every release.
fn snapshot(name: &str, yaml: &str) {
    let yaml = yaml.replace(
        &format!("kaddons.io/version: {}", env!("CARGO_PKG_VERSION")),
        "kaddons.io/version: '[VERSION]'",
    );
    insta::with_settings!({
        snapshot_path => "snapshots",
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, yaml);
    });
}

#[test]
fn every_addon_and_profile() {
    let catalog = Catalog::builtin().unwrap();
    for addon in catalog.addons() {
        for profile in Profile::ALL {
            let r = render::render(addon, &Request::new(profile)).unwrap();
            snapshot(
                &format!("{}-{profile}", addon.name()),
                &render::to_yaml(&r.objects).unwrap(),
            );
        }
    }
}

#[test]
fn metrics_server_options() {
    let catalog = Catalog::builtin().unwrap();
    let addon = catalog.get("metrics-server").unwrap();
    let cases: [(&str, &[&str]); 2] = [
        ("metrics-server-ha", &["ha=true"]),
        ("metrics-server-hostnetwork", &["hostNetwork.enabled=true"]),
    ];
    for (name, sets) in cases {
        let mut req = Request::new(Profile::Generic);
        req.sets = sets.iter().map(|s| s.to_string()).collect();
        let r = render::render(addon, &req).unwrap();
        snapshot(name, &render::to_yaml(&r.objects).unwrap());
    }
}
