use kube::config::Kubeconfig;
use serde_json::Value;

use super::*;

/// A kubeconfig someone already has: another cluster, selected, with preferences, extensions
/// and a field kube does not model.
const EXISTING: &str = r#"
apiVersion: v1
kind: Config
preferences:
  colors: true
clusters:
- name: other
  cluster:
    server: https://other.example:6443
    certificate-authority: ca.crt
users:
- name: other-admin
  user:
    token: other-secret-token
contexts:
- name: other
  context:
    cluster: other
    user: other-admin
current-context: other
extensions:
- name: tool.example/settings
  extension:
    mode: fast
x-unmodelled: kept
"#;

/// What `kubeconfig generate` writes (token mode).
const GENERATED: &str = r#"
apiVersion: v1
kind: Config
clusters:
- name: k3s-daas
  cluster:
    server: https://203.0.113.7:8080
    certificate-authority-data: UEVN
users:
- name: k3s-daas
  user:
    token: daas-secret-token
contexts:
- name: k3s-daas
  context:
    cluster: k3s-daas
    user: k3s-daas
current-context: k3s-daas
"#;

fn parse(yaml: &str) -> Kubeconfig {
    Kubeconfig::from_yaml(yaml).expect("fixture parses")
}

fn value(kc: &Kubeconfig) -> Value {
    serde_json::to_value(kc).expect("json")
}

fn names(v: &Value, list: &str) -> Vec<String> {
    v[list]
        .as_array()
        .expect("list")
        .iter()
        .map(|e| e["name"].as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn disjoint_entries_are_added_and_the_rest_is_untouched() {
    let before = value(&parse(EXISTING));
    let merged = merge(parse(EXISTING), parse(GENERATED), MergeOptions::default()).expect("merge");
    let v = value(&merged);
    assert_eq!(names(&v, "clusters"), ["other", "k3s-daas"]);
    assert_eq!(names(&v, "users"), ["other-admin", "k3s-daas"]);
    assert_eq!(names(&v, "contexts"), ["other", "k3s-daas"]);
    assert_eq!(v["current-context"], "other", "current context kept");
    for key in [
        "preferences",
        "extensions",
        "x-unmodelled",
        "apiVersion",
        "kind",
    ] {
        assert_eq!(v[key], before[key], "{key} kept");
    }
    for list in ["clusters", "users", "contexts"] {
        assert_eq!(
            v[list][0], before[list][0],
            "existing {list} entry kept as is"
        );
    }
    assert_eq!(
        v["clusters"][0]["cluster"]["certificate-authority"],
        "ca.crt"
    );
}

#[test]
fn identical_entries_merge_cleanly() {
    let once = merge(parse(EXISTING), parse(GENERATED), MergeOptions::default()).expect("first");
    let twice = merge(once.clone(), parse(GENERATED), MergeOptions::default()).expect("again");
    assert_eq!(value(&twice), value(&once));
    assert_eq!(twice.clusters.len(), 2);
}

#[test]
fn differing_entries_conflict_by_name() {
    let changed = GENERATED
        .replace("203.0.113.7", "198.51.100.9")
        .replace("daas-secret-token", "new-secret-token");
    let into = merge(parse(EXISTING), parse(GENERATED), MergeOptions::default()).expect("first");
    let err = merge(into, parse(&changed), MergeOptions::default()).expect_err("conflict");
    let MergeError::Conflict(conflicts) = &err else {
        panic!("conflict expected, got {err:?}")
    };
    assert_eq!(
        conflicts,
        &Conflicts {
            clusters: vec!["k3s-daas".to_owned()],
            users: vec!["k3s-daas".to_owned()],
            contexts: vec![],
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains(r#"clusters "k3s-daas"; users "k3s-daas""#),
        "{msg}"
    );
    assert!(!format!("{msg} {err:?}").contains("secret-token"));
}

#[test]
fn force_replaces_in_place() {
    let changed = GENERATED.replace("203.0.113.7", "198.51.100.9");
    let into = merge(parse(GENERATED), parse(EXISTING), MergeOptions::default()).expect("first");
    let forced = MergeOptions {
        force: true,
        ..MergeOptions::default()
    };
    let v = value(&merge(into, parse(&changed), forced).expect("forced"));
    assert_eq!(
        names(&v, "clusters"),
        ["k3s-daas", "other"],
        "same position"
    );
    assert_eq!(
        v["clusters"][0]["cluster"]["server"],
        "https://198.51.100.9:8080"
    );
    assert_eq!(
        v["clusters"][1]["cluster"]["server"],
        "https://other.example:6443"
    );
    assert_eq!(v["current-context"], "k3s-daas");
}

#[test]
fn set_current_selects_the_merged_context() {
    let set = MergeOptions {
        set_current: true,
        ..MergeOptions::default()
    };
    let merged = merge(parse(EXISTING), parse(GENERATED), set).expect("merge");
    assert_eq!(merged.current_context.as_deref(), Some("k3s-daas"));

    // Without its own current-context, the only context is taken.
    let no_current = GENERATED.replace("current-context: k3s-daas", "");
    let merged = merge(parse(EXISTING), parse(&no_current), set).expect("merge");
    assert_eq!(merged.current_context.as_deref(), Some("k3s-daas"));

    // Nothing to choose from.
    let empty = Kubeconfig::default();
    let err = merge(parse(EXISTING), empty, set).expect_err("no context");
    assert!(matches!(err, MergeError::NoCurrentContext), "{err:?}");

    let dangling = GENERATED.replace("current-context: k3s-daas", "current-context: nowhere");
    let err = merge(parse(EXISTING), parse(&dangling), set).expect_err("unknown");
    assert!(matches!(err, MergeError::UnknownCurrentContext(ref n) if n == "nowhere"));
}

#[test]
fn into_an_empty_kubeconfig() {
    let merged = merge(
        Kubeconfig::default(),
        parse(GENERATED),
        MergeOptions::default(),
    )
    .expect("merge");
    let v = value(&merged);
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["kind"], "Config");
    assert_eq!(names(&v, "contexts"), ["k3s-daas"]);
    assert_eq!(
        v.get("current-context"),
        None,
        "not set without set_current"
    );
}

#[test]
fn duplicate_names_in_the_input_are_refused() {
    let mut from = parse(GENERATED);
    let mut second = from.clusters[0].clone();
    second.cluster.as_mut().expect("cluster").server = Some("https://x.example".to_owned());
    from.clusters.push(second);
    let err = merge(parse(EXISTING), from, MergeOptions::default()).expect_err("duplicate");
    assert!(
        matches!(err, MergeError::Duplicate { kind: "clusters", ref name } if name == "k3s-daas"),
        "{err:?}"
    );
}

#[test]
fn conflicts_display() {
    let c = Conflicts {
        clusters: vec!["a".into(), "b".into()],
        users: vec![],
        contexts: vec!["c".into()],
    };
    assert_eq!(c.to_string(), r#"clusters "a", "b"; contexts "c""#);
    assert!(Conflicts::default().is_empty() && !c.is_empty());
}
