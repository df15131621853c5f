//! The binary as the shell sees it: the kubectl plugin name and shell completions.

use crate::util::{home, kaddons, stdout};

// --- kubectl plugin ---------------------------------------------------------------------------

#[cfg(unix)]
#[test]
fn as_kubectl_kaddons_the_help_says_kubectl_kaddons() {
    let h = home();
    let link = h.path().join("kubectl-kaddons");
    std::os::unix::fs::symlink(assert_cmd::cargo::cargo_bin("kaddons"), &link).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&link)
            .args(args)
            .env_clear()
            .env("HOME", h.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let help = run(&["--help"]);
    assert!(help.contains("Usage: kubectl kaddons "), "{help}");
    assert!(help.contains("  kubectl kaddons list"), "{help}");
    let sub = run(&["render", "--help"]);
    assert!(sub.contains("Usage: kubectl kaddons render "), "{sub}");
    // And it still works as the plugin.
    assert!(run(&["list"]).contains("metrics-server"));
    // Under its own name, the help says kaddons.
    let plain = stdout(kaddons(h.path()).arg("--help"));
    assert!(plain.contains("Usage: kaddons "), "{plain}");
    assert!(!plain.contains("kubectl kaddons"), "{plain}");
}

// --- completions ------------------------------------------------------------------------------

#[test]
fn completion_scripts_have_the_commands_and_the_addon_names() {
    let h = home();
    for shell in ["bash", "zsh", "fish"] {
        let script = stdout(kaddons(h.path()).args(["completion", shell]));
        for word in [
            "enable",
            "disable",
            "render",
            "apply",
            "config",
            "metrics-server",
        ] {
            assert!(script.contains(word), "{shell} script lacks {word}");
        }
    }
    let bash = stdout(kaddons(h.path()).args(["completion", "bash"]));
    assert!(bash.contains("complete -F _kaddons"), "{bash}");
}

#[test]
fn completion_of_an_unknown_shell_is_a_usage_error() {
    let h = home();
    kaddons(h.path())
        .args(["completion", "tcsh"])
        .assert()
        .code(2);
}
