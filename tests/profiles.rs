//! Each profile differs from `generic` only by its documented patches.

use kaddons::catalog::{Catalog, Profile};
use serde_json::Value;

use crate::util::{diff_paths, key, render_with, strip_kaddons};

/// (object key + JSON pointer) of every difference between two renders, kaddons metadata aside.
fn differences(a: &[Value], b: &[Value]) -> Vec<String> {
    assert_eq!(a.len(), b.len(), "same number of objects");
    let mut out = Vec::new();
    for (x, y) in a.iter().zip(b) {
        assert_eq!(key(x), key(y));
        let mut paths = Vec::new();
        diff_paths(
            &strip_kaddons(x.clone()),
            &strip_kaddons(y.clone()),
            String::new(),
            &mut paths,
        );
        out.extend(paths.into_iter().map(|p| format!("{}{p}", key(x))));
    }
    out
}

fn args(objects: &[Value]) -> Vec<String> {
    let d = objects
        .iter()
        .find(|o| o["kind"] == "Deployment")
        .expect("deployment");
    d["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().unwrap_or_default().to_string())
        .collect()
}

const ARGS_PATH: &str =
    "Deployment/kube-system/metrics-server/spec/template/spec/containers/0/args";

#[test]
fn self_signed_kubelet_distributions_only_add_kubelet_insecure_tls() {
    let generic = render_with(Profile::Generic, &[]).objects;
    for profile in [
        Profile::Kind,
        Profile::Minikube,
        Profile::Kubeadm,
        Profile::DockerDesktop,
        Profile::Orbstack,
        Profile::Microk8s,
    ] {
        let ours = render_with(profile, &[]).objects;
        // The args list grows by one, so the difference is at the list itself.
        assert_eq!(differences(&generic, &ours), [ARGS_PATH], "{profile}");
        let mut expected = args(&generic);
        expected.push("--kubelet-insecure-tls".into());
        assert_eq!(args(&ours), expected, "{profile}");
    }
}

#[test]
fn every_builtin_profile_patch_changes_the_render() {
    // A patch that changes nothing is either dead data or a template that ignores a value.
    let catalog = Catalog::builtin().unwrap();
    let addon = catalog.get("metrics-server").unwrap();
    let generic = render_with(Profile::Generic, &[]).objects;
    for (profile, overlay) in &addon.def.profiles {
        let ours = render_with(*profile, &[]).objects;
        let diffs = differences(&generic, &ours);
        assert_eq!(
            overlay.patches.is_empty(),
            diffs.is_empty(),
            "{profile}: {diffs:?}"
        );
    }
}

#[test]
fn profile_changes_are_overridable_by_the_user() {
    let ours = render_with(Profile::Kind, &["kubeletInsecureTLS=false"]).objects;
    assert!(!args(&ours).contains(&"--kubelet-insecure-tls".to_string()));
}

#[test]
fn host_network_moves_the_secure_port_off_the_kubelets() {
    let ours = render_with(Profile::Generic, &["hostNetwork.enabled=true"]).objects;
    let d = ours.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let spec = &d["spec"]["template"]["spec"];
    assert_eq!(spec["hostNetwork"], true);
    assert_eq!(spec["dnsPolicy"], "ClusterFirstWithHostNet");
    assert_eq!(spec["containers"][0]["ports"][0]["containerPort"], 4443);
    assert!(args(&ours).contains(&"--secure-port=4443".to_string()));
}

#[test]
fn settings_reach_their_flags() {
    let ours = render_with(
        Profile::Generic,
        &[
            "metricResolution=30s",
            "kubeletPreferredAddressTypes=InternalIP",
            "kubeletUseNodeStatusPort=false",
            "securePort=8443",
            "extraArgs=--v=2",
        ],
    )
    .objects;
    let a = args(&ours);
    assert!(a.contains(&"--metric-resolution=30s".to_string()), "{a:?}");
    assert!(a.contains(&"--kubelet-preferred-address-types=InternalIP".to_string()));
    assert!(!a.contains(&"--kubelet-use-node-status-port".to_string()));
    assert!(a.contains(&"--secure-port=8443".to_string()));
    assert_eq!(a.last().map(String::as_str), Some("--v=2"));
}

#[test]
fn builtin_implementation_swaps_only_the_image() {
    let upstream = render_with(Profile::Kind, &[]).objects;
    let builtin = render_with(Profile::Kind, &["implementation=builtin"]).objects;
    assert_eq!(
        differences(&upstream, &builtin),
        ["Deployment/kube-system/metrics-server/spec/template/spec/containers/0/image"]
    );
    let d = builtin.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let image = d["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .unwrap();
    // The image scripts/build-metrics-server-image.sh builds and loads by default.
    let script = std::fs::read_to_string(crate::util::repo_path(
        "scripts/build-metrics-server-image.sh",
    ))
    .unwrap();
    let default = script
        .lines()
        .find_map(|l| l.strip_prefix("image=${IMAGE:-"))
        .and_then(|l| l.strip_suffix('}'))
        .expect("the script sets a default image");
    assert_eq!(image, format!("docker.io/{default}"));
}

/// The built-in server takes upstream's flag names, so the same args serve both
/// implementations; every arg every profile renders must parse.
#[test]
fn every_rendered_arg_is_a_flag_of_the_builtin_server() {
    let home = tempfile::tempdir().unwrap();
    let server =
        kaddons_testkit::bins::workspace_bin("kaddons-metrics-server", "kaddons-metrics-server");
    for profile in Profile::ALL {
        for extra in [&[][..], &["hostNetwork.enabled=true"]] {
            let mut sets = vec!["implementation=builtin"];
            sets.extend_from_slice(extra);
            let objects = render_with(profile, &sets).objects;
            let out = std::process::Command::new(&server)
                .args(args(&objects))
                .arg("--kubeconfig")
                .arg(home.path().join("missing-kubeconfig"))
                .env("HOME", home.path())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success());
            assert!(
                err.contains("missing-kubeconfig"),
                "{profile} {extra:?}: the server should get past flag parsing to the kubeconfig: {err}"
            );
        }
    }
}

#[test]
fn k3s_and_its_derivatives_keep_upstream_defaults_and_say_how_to_hand_over_theirs() {
    // k3s signs kubelet serving certificates with its server CA (node IPs as SANs), and its
    // own metrics-server runs without --kubelet-insecure-tls: nothing to patch.
    let generic = render_with(Profile::Generic, &[]).objects;
    let catalog = Catalog::builtin().unwrap();
    let addon = catalog.get("metrics-server").unwrap();
    for profile in [
        Profile::K3s,
        Profile::K3d,
        Profile::RancherDesktop,
        Profile::Colima,
    ] {
        let ours = render_with(profile, &[]).objects;
        assert!(differences(&generic, &ours).is_empty(), "{profile}");
        let bundled = addon.def.profiles[&profile]
            .bundled
            .as_ref()
            .unwrap_or_else(|| panic!("{profile} installs metrics-server itself"));
        assert!(bundled.by_default, "{profile}");
        assert!(bundled
            .manager
            .contains("Addon kube-system/metrics-server-deployment"));
        assert!(
            bundled.turn_off.contains("--disable=") && bundled.turn_off.contains("metrics-server"),
            "{profile}: {}",
            bundled.turn_off
        );
    }
}

#[test]
fn every_profile_is_described_for_metrics_server_with_sources() {
    let catalog = Catalog::builtin().unwrap();
    let addon = catalog.get("metrics-server").unwrap();
    for profile in Profile::ALL {
        let overlay = addon
            .def
            .profiles
            .get(&profile)
            .unwrap_or_else(|| panic!("metrics-server has no {profile} profile"));
        let sources = overlay
            .patches
            .iter()
            .map(|p| p.source.as_deref())
            .chain(overlay.notes.iter().map(|n| Some(n.source.as_str())))
            .chain(overlay.bundled.iter().map(|b| Some(b.source.as_str())));
        for source in sources {
            let source = source.unwrap_or_else(|| panic!("{profile}: a patch without a source"));
            assert!(source.starts_with("https://"), "{profile}: {source}");
        }
    }
}
