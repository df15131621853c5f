//! An enable or disable killed mid-way (SIGKILL, as a closed laptop lid or Ctrl-C twice would)
//! converges on the next run: enable ends with every object, disable with none. The killed run
//! goes through a proxy that delays each request by 40 ms, so the kills, spread over its
//! length, land between different requests and phases; the claim must hold for every one.

use std::time::Duration;

use kaddons_testkit::cluster::SlowProxy;

use super::{disabled, exclusive, kaddons, kaddons_command, labelled_objects};

fn killed_after(kubeconfig: &std::path::Path, args: &[&str], after: Duration) {
    let mut child = kaddons_command(kubeconfig)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting kaddons");
    std::thread::sleep(after);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_killed_enable_or_disable_converges_when_run_again() {
    let cp = kaddons_testkit::control_plane!();
    let _guard = cp.failure_guard();
    let _one = exclusive();
    disabled(cp);
    let enable = [
        "enable",
        "metrics-server",
        "--profile",
        "kubeadm",
        "--no-wait",
    ];
    kaddons(cp, &enable).expect(0);
    let complete = labelled_objects(cp);
    assert_eq!(complete.len(), 9, "{complete:?}");
    disabled(cp);

    let proxy = SlowProxy::start(cp.port, Duration::from_millis(40));
    let slow = cp.admin_kubeconfig_via(proxy.port);
    // How long a whole enable takes through the proxy; the kills are spread over it.
    let t0 = std::time::Instant::now();
    super::kaddons_with(&slow, &enable).expect(0);
    let whole = t0.elapsed().as_millis() as u64;
    disabled(cp);
    let mut partial_enables = 0;
    let rounds: Vec<u64> = (1..=7).map(|k| whole * k / 8).collect();
    for ms in rounds.iter().copied() {
        killed_after(&slow, &enable, Duration::from_millis(ms));
        let seen = labelled_objects(cp);
        if !seen.is_empty() && seen.len() < complete.len() {
            partial_enables += 1;
        }
        kaddons(cp, &enable).expect(0);
        assert_eq!(labelled_objects(cp), complete, "after a kill at {ms} ms");
        // And a third run finds nothing to do.
        let again = kaddons(
            cp,
            &[
                "enable",
                "metrics-server",
                "--profile",
                "kubeadm",
                "--no-wait",
                "-o",
                "json",
            ],
        )
        .expect(0)
        .json();
        assert!(
            again["changes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["change"] == "unchanged"),
            "after a kill at {ms} ms: {again}"
        );

        killed_after(
            &slow,
            &["disable", "metrics-server"],
            Duration::from_millis(ms),
        );
        kaddons(cp, &["disable", "metrics-server"]).expect(0);
        assert!(
            labelled_objects(cp).is_empty(),
            "after a killed disable at {ms} ms"
        );
    }
    // The kills really interrupted something (else this test proves nothing).
    assert!(
        partial_enables >= 2,
        "only {partial_enables} kills left a partial addon"
    );
}
