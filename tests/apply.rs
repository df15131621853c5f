//! `kaddons apply -f`: the addon set file, its plan and its execution. Cluster semantics
//! (enable, update, prune, idempotence) through the library against kube-fake-client, as
//! tests/cluster.rs does; parse errors through the binary, since what users see is the
//! message and the exit code.

use kaddons::addonset::{self, Action, Checked, Defaults, ExecOptions};
use kaddons::catalog::{labels, Catalog, Profile};
use kaddons::cluster::apply::{self, Change, EnableOptions};
use kaddons::cluster::status::State;
use kaddons::render::{self, Request};
use serde_json::{json, Value};

use crate::cluster::fake;
use crate::util::kaddons;

const FILE: &str = "apiVersion: kaddons.io/v1alpha1
kind: AddonSet
addons:
  - name: metrics-server
    profile: generic
    set: {kubeletInsecureTLS: true, metricResolution: 30s}
";

const EMPTY: &str = "apiVersion: kaddons.io/v1alpha1\nkind: AddonSet\naddons: []\n";

fn catalog() -> Catalog {
    Catalog::builtin().unwrap()
}

/// Plans and executes `text` like `kaddons apply` does; returns the plan's actions and the
/// results.
async fn apply_file(
    conn: &kaddons::cluster::client::Connection,
    text: &str,
    prune: bool,
    dry_run: bool,
) -> (Vec<(String, Action, State)>, Vec<addonset::AddonResult>) {
    let catalog = catalog();
    let file = Checked::parse(text, "addons.yaml", &catalog).unwrap();
    let states = addonset::current_states(conn, &catalog).await.unwrap();
    let steps = addonset::plan(&file.set, &states, prune);
    let results = addonset::execute(
        conn,
        &catalog,
        &file,
        &steps,
        &Defaults::default(),
        Profile::Kind,
        ExecOptions {
            dry_run,
            force: false,
            kube: None,
        },
    )
    .await
    .unwrap();
    let plan = steps
        .into_iter()
        .map(|s| (s.addon, s.action, s.state))
        .collect();
    (plan, results)
}

async fn managed(conn: &kaddons::cluster::client::Connection) -> Vec<Value> {
    let c = catalog();
    apply::managed_objects(conn, c.get("metrics-server").unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn apply_enables_with_the_files_values_then_changes_nothing() {
    let conn = fake(vec![]).await;
    let (plan, results) = apply_file(&conn, FILE, false, false).await;
    assert_eq!(
        plan,
        [(
            "metrics-server".to_string(),
            Action::Enable,
            State::Disabled
        )]
    );
    let r = &results[0];
    assert_eq!(r.profile, Some(Profile::Generic));
    assert!(r.changes.iter().all(|c| c.change == Change::Created));
    assert_eq!(r.changes.len(), 9);
    let objects = managed(&conn).await;
    assert_eq!(objects.len(), 9);
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--kubelet-insecure-tls"), "{args}");
    assert!(args.contains("--metric-resolution=30s"), "{args}");
    assert_eq!(
        deployment["metadata"]["annotations"][labels::PROFILE],
        "generic"
    );

    // Idempotent: the second run re-applies and nothing changes.
    let (plan, results) = apply_file(&conn, FILE, true, false).await;
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].1, Action::Update);
    assert!(results[0].unchanged(), "{:?}", results[0].changes);
    assert_eq!(managed(&conn).await.len(), 9);
}

#[tokio::test]
async fn apply_with_other_values_updates_in_place() {
    let conn = fake(vec![]).await;
    apply_file(&conn, FILE, false, false).await;
    let (plan, results) = apply_file(&conn, &FILE.replace("30s", "45s"), false, false).await;
    assert_eq!(plan[0].1, Action::Update);
    // Every object carries the values digest, so every object is re-configured.
    assert!(
        results[0]
            .changes
            .iter()
            .all(|c| c.change == Change::Configured),
        "{:?}",
        results[0].changes
    );
    let objects = managed(&conn).await;
    assert_eq!(objects.len(), 9);
    let deployment = objects.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
    assert!(args.contains("--metric-resolution=45s"), "{args}");
}

#[tokio::test]
async fn prune_disables_unlisted_kaddons_addons_only_when_asked() {
    let conn = fake(vec![]).await;
    apply_file(&conn, FILE, false, false).await;

    // Without --prune an unlisted addon stays.
    let (plan, results) = apply_file(&conn, EMPTY, false, false).await;
    assert!(plan.is_empty() && results.is_empty());
    assert_eq!(managed(&conn).await.len(), 9);

    // A dry run says what would be pruned and deletes nothing.
    let (plan, results) = apply_file(&conn, EMPTY, true, true).await;
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].1, Action::Prune);
    assert_eq!(results[0].changes.len(), 9);
    assert!(results[0]
        .changes
        .iter()
        .all(|c| c.change == Change::Deleted));
    assert_eq!(managed(&conn).await.len(), 9);

    let (_, results) = apply_file(&conn, EMPTY, true, false).await;
    assert_eq!(results[0].action, Action::Prune);
    assert!(managed(&conn).await.is_empty());

    // Pruning again is a no-op.
    let (plan, _) = apply_file(&conn, EMPTY, true, false).await;
    assert!(plan.is_empty());
}

#[tokio::test]
async fn prune_never_touches_an_install_by_someone_else() {
    // metrics-server's ServiceAccount, installed by kubectl (no kaddons labels).
    let sa = json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "metrics-server", "namespace": "kube-system"}
    });
    let conn = fake(vec![sa]).await;
    let states = addonset::current_states(&conn, &catalog()).await.unwrap();
    assert_eq!(states["metrics-server"], State::Unmanaged);
    let (plan, _) = apply_file(&conn, EMPTY, true, false).await;
    assert!(plan.is_empty(), "{plan:?}");
}

#[tokio::test]
async fn a_listed_addon_installed_by_someone_else_needs_force() {
    let catalog = catalog();
    let addon = catalog.get("metrics-server").unwrap();
    let mut objs = render::render(addon, &Request::new(Profile::Generic))
        .unwrap()
        .objects;
    // Strip kaddons' labels: as if `kubectl apply` had installed it.
    for o in &mut objs {
        o["metadata"].as_object_mut().unwrap().remove("labels");
    }
    let conn = fake(vec![]).await;
    apply::enable(&conn, addon, &objs[..1], EnableOptions::default())
        .await
        .unwrap();
    let file = Checked::parse(FILE, "addons.yaml", &catalog).unwrap();
    let states = addonset::current_states(&conn, &catalog).await.unwrap();
    let steps = addonset::plan(&file.set, &states, false);
    let err = addonset::execute(
        &conn,
        &catalog,
        &file,
        &steps,
        &Defaults::default(),
        Profile::Generic,
        ExecOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("--force"), "{err}");
}

#[test]
fn apply_result_json_shape() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let results = rt.block_on(async {
        let conn = fake(vec![]).await;
        apply_file(&conn, FILE, false, true).await.1
    });
    insta::with_settings!({snapshot_path => "snapshots", prepend_module_to_snapshot => false}, {
        insta::assert_json_snapshot!("json-apply-addons", results);
    });
}

// ---------------------------------------------------------------------------------------------
// Through the binary: errors in the file name the line and exit 2, before any cluster is asked.
// ---------------------------------------------------------------------------------------------

fn apply_error(text: &str) -> String {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("addons.yaml");
    std::fs::write(&path, text).unwrap();
    let out = kaddons(home.path())
        .args(["apply", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    String::from_utf8(out.stderr).unwrap()
}

#[test]
fn misspelt_field_is_named_with_its_line() {
    let err = apply_error(&FILE.replace("    set:", "    sett:"));
    assert!(err.contains("addons.yaml"), "{err}");
    assert!(err.contains("unknown field `sett`"), "{err}");
    assert!(err.contains("line 6"), "{err}");
}

#[test]
fn unknown_addon_is_named_with_its_line_and_a_suggestion() {
    let err = apply_error(&FILE.replace("name: metrics-server", "name: metric-server"));
    assert!(err.contains("addons.yaml:4: addons[0].name"), "{err}");
    assert!(err.contains("did you mean \"metrics-server\""), "{err}");
}

#[test]
fn wrong_kind_and_bad_profile_are_rejected() {
    let err = apply_error(&FILE.replace("kind: AddonSet", "kind: AddonList"));
    assert!(err.contains("addons.yaml:2: kind"), "{err}");
    let err = apply_error(&FILE.replace("profile: generic", "profile: kidn"));
    assert!(err.contains("line 5"), "{err}");
}

#[test]
fn the_example_file_parses() {
    let path = crate::util::repo_path("examples/addons.yaml");
    Checked::load(&path, &catalog()).unwrap();
}
