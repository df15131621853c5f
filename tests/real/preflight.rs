//! The seed's do-it-yourself cluster: a kube-apiserver started without the aggregation flags,
//! then with exactly the flags `kaddons aggregator certs` prints.

use kaddons_testkit::cluster::{ControlPlane, FrontProxy, Options};

use super::{enable, kaddons};

const SEVEN_FLAGS: [&str; 7] = [
    "--requestheader-client-ca-file",
    "--requestheader-allowed-names=front-proxy-client",
    "--requestheader-extra-headers-prefix=X-Remote-Extra-",
    "--requestheader-group-headers=X-Remote-Group",
    "--requestheader-username-headers=X-Remote-User",
    "--proxy-client-cert-file",
    "--proxy-client-key-file",
];

#[test]
fn without_the_aggregation_layer_enable_stops_then_the_printed_flags_fix_it() {
    let Some(off) = ControlPlane::own(Options {
        front_proxy: FrontProxy::Off,
        controller_manager: false,
        ..Options::default()
    }) else {
        return;
    };
    let _guard = off.failure_guard();
    let r = enable(&off, &[]);
    assert_eq!(r.code, Some(2), "{}\n{}", r.stdout, r.stderr);
    for flag in SEVEN_FLAGS {
        assert!(r.stderr.contains(flag), "{flag} missing from: {}", r.stderr);
    }
    let sa = off.kubectl_ok(&[
        "get",
        "serviceaccount",
        "-n",
        "kube-system",
        "metrics-server",
        "--ignore-not-found",
        "-o",
        "name",
    ]);
    assert!(sa.trim().is_empty(), "pre-flight applied something");
    // doctor says the same, with the evidence.
    let doctor = kaddons(&off, &["doctor"]);
    assert_eq!(doctor.code, Some(1), "{}\n{}", doctor.stdout, doctor.stderr);
    assert!(
        doctor.stdout.contains("--requestheader-client-ca-file"),
        "{}",
        doctor.stdout
    );
    drop(_guard);
    drop(off);

    // The recipe: `kaddons aggregator certs`, then kube-apiserver restarted with exactly the
    // flags it printed (FrontProxy::Kaddons runs the built binary and passes them verbatim).
    let Some(on) = ControlPlane::own(Options {
        front_proxy: FrontProxy::Kaddons,
        controller_manager: false,
        ..Options::default()
    }) else {
        return;
    };
    let auth = on.kubectl_ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "extension-apiserver-authentication",
        "-o",
        "jsonpath={.data.requestheader-allowed-names}",
    ]);
    assert_eq!(auth, r#"["front-proxy-client"]"#);
    let _guard = on.failure_guard();
    enable(&on, &[]).expect(0);
}
