//! The addon version is chosen from the real `/version` of a Kubernetes v1.34.4 control plane:
//! `render` and `enable --dry-run` take metrics-server v0.9.0 (0.9.x needs 1.34+), and a pin
//! the cluster supports is taken as asked. Dry runs only: nothing is left in the cluster.

use super::{exclusive, kaddons};

fn deployment_image(yaml: &str) -> String {
    crate::util::parse_docs(yaml)
        .into_iter()
        .find(|o| o["kind"] == "Deployment")
        .and_then(|d| {
            d["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_string)
        })
        .expect("a Deployment with an image")
}

#[test]
fn render_and_enable_dry_run_choose_v0_9_0_from_the_real_version() {
    let cp = kaddons_testkit::control_plane!();
    let _guard = cp.failure_guard();

    let r = kaddons(cp, &["render", "metrics-server", "--profile", "kubeadm"]).expect(0);
    assert!(
        deployment_image(&r.stdout).ends_with("/metrics-server:v0.9.0"),
        "{}",
        r.stdout
    );
    assert!(
        r.stderr.contains("newest supporting Kubernetes 1.34"),
        "{}",
        r.stderr
    );

    let _one = exclusive();
    let r = kaddons(
        cp,
        &[
            "enable",
            "metrics-server",
            "--profile",
            "kubeadm",
            "--dry-run",
            "-o",
            "json",
        ],
    )
    .expect(0);
    assert!(
        r.stderr
            .contains("metrics-server v0.9.0: newest supporting Kubernetes 1.34"),
        "{}",
        r.stderr
    );

    // A pin inside the range is taken; the render says so.
    let r = kaddons(
        cp,
        &[
            "render",
            "metrics-server",
            "--profile",
            "kubeadm",
            "--addon-version",
            "v0.8.1",
        ],
    )
    .expect(0);
    assert!(deployment_image(&r.stdout).ends_with(":v0.8.1"));
}
