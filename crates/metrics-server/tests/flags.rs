//! The binary takes every flag of upstream metrics-server v0.8.0 (tests/fixtures/upstream-flags.tsv,
//! from upstream's `--help`): given all of them, it gets past flag parsing, fails on the missing
//! kubeconfig, and logs one warning for each flag that has no effect here.

use std::collections::BTreeMap;
use std::process::Command;

/// `--flag=value` for every row of the fixture but `--version` (which prints and exits).
fn every_upstream_flag() -> Vec<String> {
    include_str!("fixtures/upstream-flags.tsv")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|cols| cols[0] != "version")
        .map(|cols| format!("--{}={}", cols[0], cols[2]))
        .collect()
}

#[test]
fn every_upstream_flag_gets_past_parsing_and_each_ignored_one_is_logged_once() {
    let args = every_upstream_flag();
    assert_eq!(args.len(), 100);
    let out = Command::new(env!("CARGO_BIN_EXE_kaddons-metrics-server"))
        .args(&args)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("reading kubeconfig /nonexistent/kubeconfig"),
        "should fail on the kubeconfig, after parsing: {stderr}"
    );

    // flag field of each warning -> how many times.
    let mut warned: BTreeMap<String, usize> = BTreeMap::new();
    for line in stderr.lines().filter(|l| l.contains(" WARN ")) {
        let Some(rest) = line.split(" flag=\"").nth(1) else {
            continue;
        };
        let flag = rest.split('"').next().unwrap_or_default();
        assert!(line.contains("has no effect"), "{line}");
        *warned.entry(flag.to_string()).or_default() += 1;
    }
    let ignored = [
        "--advertise-address",
        "--audit-log-path",
        "--audit-webhook-version",
        "--deprecated-kubelet-completely-insecure",
        "--feature-gates",
        "--profiling",
        "--tls-cipher-suites",
        "--tls-min-version",
        "--vmodule",
    ];
    for flag in ignored {
        assert_eq!(warned.get(flag), Some(&1), "{flag} warned once: {stderr}");
    }
    for honoured in [
        "--kubeconfig",
        "--secure-port",
        "--kubelet-insecure-tls",
        "--authentication-kubeconfig",
        "--requestheader-username-headers",
        "--v",
    ] {
        assert!(
            !warned.contains_key(honoured),
            "{honoured} warned: {stderr}"
        );
    }
    assert_eq!(warned.values().sum::<usize>(), 71, "{warned:?}");
    assert!(warned.values().all(|&n| n == 1), "{warned:?}");
}
