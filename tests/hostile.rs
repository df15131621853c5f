//! Hostile values must never change the structure of the output: the same objects come out,
//! each value lands verbatim where it belongs, and a real Go YAML parser (kubectl kustomize)
//! reads the same thing our parser reads.

use kaddons::catalog::{Catalog, Profile};
use kaddons::render::{self, Request};
use serde_json::{json, Value};

use crate::util::{kaddons, key, kubectl, parse_docs};

fn hostile() -> Vec<String> {
    let mut v: Vec<String> = [
        "line1\nline2",
        "a: b",
        "# comment",
        "x #y",
        "{{values.ha}}",
        "{{{raw}}}",
        "\"double\" and 'single'",
        "- item",
        "---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: injected",
        "...",
        "key: [1, 2]",
        "{a: b}",
        "&anchor *alias !!binary %TAG ? | >",
        "yes",
        "on",
        "~",
        "null",
        "0x1F",
        "1e3",
        "日本語 ✓ 🚀 \u{200b}",
        "tab\tand\rcr",
        "nul\u{0}del\u{7f}c1\u{85}ls\u{2028}bom\u{feff}",
        "\\n not a newline",
        " leading and trailing ",
        "",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push("long ".repeat(20_000));
    v
}

fn render_values(values: Value) -> Vec<Value> {
    let catalog = Catalog::builtin().unwrap();
    // The templates must stay YAML-safe even for values the schema would refuse (an
    // --addons-dir catalog may have no schema): test them without it.
    let mut addon = catalog.get("metrics-server").unwrap().clone();
    addon.values_schema = None;
    let addon = &addon;
    let mut req = Request::new(Profile::Generic);
    req.values_files.push(("hostile.yaml".into(), values));
    let r = render::render(addon, &req).unwrap();
    // Go through text and back, as a user of `kaddons render` would.
    parse_docs(&render::to_yaml(&r.objects).unwrap())
}

fn values_for(s: &str) -> Value {
    json!({
        "metricResolution": s,
        "priorityClassName": s,
        "imagePullPolicy": s,
        "extraArgs": [s, "--last"],
        "nodeSelector": {s: s},
    })
}

/// A hostile value, shortened for failure messages.
fn short(s: &str) -> String {
    format!("{:?}", s.chars().take(60).collect::<String>())
}

fn check(objects: &[Value], baseline: &[Value], s: &str) {
    let keys: Vec<String> = objects.iter().map(key).collect();
    let expected: Vec<String> = baseline.iter().map(key).collect();
    assert_eq!(keys, expected, "objects changed for value {}", short(s));
    let d = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let pod = &d["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(pod["priorityClassName"], s);
    assert_eq!(c["imagePullPolicy"], s);
    assert_eq!(pod["nodeSelector"][s], s);
    assert_eq!(pod["nodeSelector"].as_object().map(|m| m.len()), Some(2));
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(args.contains(&format!("--metric-resolution={s}").as_str()));
    assert_eq!(&args[args.len() - 2..], [s, "--last"]);
    // Nothing else in the pod spec moved.
    let fields: Vec<&String> = pod.as_object().unwrap().keys().collect();
    let base_pod =
        &baseline.iter().find(|o| o["kind"] == "Deployment").unwrap()["spec"]["template"]["spec"];
    assert_eq!(
        fields,
        base_pod.as_object().unwrap().keys().collect::<Vec<_>>()
    );
}

#[test]
fn hostile_values_keep_structure_and_land_verbatim() {
    let baseline = render_values(json!({}));
    for s in hostile() {
        let objects = render_values(values_for(&s));
        check(&objects, &baseline, &s);
    }
}

#[test]
fn hostile_set_values_through_the_binary_keep_structure() {
    let home = tempfile::tempdir().unwrap();
    let base = kaddons(home.path())
        .args(["render", "metrics-server", "--profile", "generic"])
        .output()
        .unwrap();
    let baseline = parse_docs(&String::from_utf8(base.stdout).unwrap());
    for s in hostile().into_iter().filter(|s| !s.contains('\0')) {
        let out = kaddons(home.path())
            .args(["render", "metrics-server", "--profile", "generic"])
            // Free-form strings only: priorityClassName and metricResolution are refused by
            // the values schema now (tests/values_schema.rs).
            .arg(format!("--set=nodeSelector.k={s}"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            short(&s),
            String::from_utf8_lossy(&out.stderr)
        );
        let objects = parse_docs(&String::from_utf8(out.stdout).unwrap());
        assert_eq!(
            objects.iter().map(key).collect::<Vec<_>>(),
            baseline.iter().map(key).collect::<Vec<_>>()
        );
        let pod = &objects.iter().find(|o| o["kind"] == "Deployment").unwrap()["spec"]["template"]
            ["spec"];
        assert_eq!(pod["nodeSelector"]["k"], s.as_str());
    }
}

/// kubectl's YAML parser (Go, YAML 1.1 habits: `yes`/`on` are booleans when unquoted) must
/// read our output exactly as we meant it.
#[test]
fn kubectl_reads_hostile_renders_the_same_way() {
    let Some(kubectl) = kubectl() else { return };
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::builtin().unwrap();
    // Without the values schema, as in render_values: this checks the templates.
    let mut addon = catalog.get("metrics-server").unwrap().clone();
    addon.values_schema = None;
    let addon = &addon;
    // Go's YAML library refuses C0/C1 control characters other than tab, LF and CR in any
    // YAML text, quoted or not, so those values cannot go through kubectl as YAML at all
    // (kaddons itself sends JSON to the API server, where they are legal).
    let go_yaml_can_carry = |s: &str| {
        !s.chars()
            .any(|c| (c.is_control() && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{feff}')
    };
    for (i, s) in hostile()
        .into_iter()
        .filter(|s| go_yaml_can_carry(s))
        .enumerate()
    {
        let mut req = Request::new(Profile::Generic);
        let mut values = values_for(&s);
        // Kubernetes label keys are at most 317 characters; Go's YAML emitter cannot round-trip
        // mapping keys over 1024 (our own parser handles them: see the test above).
        if s.len() > 1000 {
            values["nodeSelector"] = json!({"k": s});
        }
        req.values_files.push(("hostile.yaml".into(), values));
        let r = render::render(addon, &req).unwrap();
        let case = dir.path().join(format!("case{i}"));
        std::fs::create_dir_all(&case).unwrap();
        std::fs::write(case.join("all.yaml"), render::to_yaml(&r.objects).unwrap()).unwrap();
        std::fs::write(case.join("kustomization.yaml"), "resources:\n- all.yaml\n").unwrap();
        let out = std::process::Command::new(&kubectl)
            .arg("kustomize")
            .arg(&case)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl kustomize failed for {}: {}",
            short(&s),
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(2000)
                .collect::<String>()
        );
        let mut theirs = parse_docs(&String::from_utf8(out.stdout).unwrap());
        let mut ours = r.objects.clone();
        theirs.sort_by_key(key);
        ours.sort_by_key(key);
        assert!(theirs == ours, "kubectl read {} differently", short(&s));
    }
}
