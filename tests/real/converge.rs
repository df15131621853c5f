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
    // The kill time adapts: later when a kill came before the first apply, earlier when it
    // came after the last, and onwards by a tenth of the run after a kill that interrupted,
    // so the rounds land between different requests whatever the machine's load.
    let mut partial_enables = 0;
    let mut ms = whole / 2;
    let mut rounds = Vec::new();
    for _ in 0..10 {
        let at = ms;
        rounds.push(at);
        killed_after(&slow, &enable, Duration::from_millis(at));
        let seen = labelled_objects(cp);
        if seen.is_empty() {
            ms = ms * 4 / 3 + 10;
        } else if seen.len() == complete.len() {
            ms = ms * 2 / 3;
        } else {
            partial_enables += 1;
            ms += whole / 10;
        }
        kaddons(cp, &enable).expect(0);
        assert_eq!(labelled_objects(cp), complete, "after a kill at {at} ms");
        // And a third run finds nothing to do.
        let again = super::enable(cp, &["-o", "json"]).expect(0).json();
        assert!(
            again["changes"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["change"] == "unchanged"),
            "after a kill at {at} ms: {again}"
        );

        killed_after(
            &slow,
            &["disable", "metrics-server"],
            Duration::from_millis(at),
        );
        kaddons(cp, &["disable", "metrics-server"]).expect(0);
        assert!(
            labelled_objects(cp).is_empty(),
            "after a killed disable at {at} ms"
        );
    }
    // The kills really interrupted something (else this test proves nothing).
    assert!(
        partial_enables >= 2,
        "only {partial_enables} kills left a partial addon"
    );
}
