use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kube::config::Kubeconfig;

use super::*;
use crate::merge::MergeOptions;

const EXISTING: &str = "apiVersion: v1
kind: Config
clusters:
- name: other
  cluster:
    server: https://other.example:6443
users:
- name: other
  user:
    token: other-secret-token
contexts:
- name: other
  context:
    cluster: other
    user: other
current-context: other
";

const GENERATED: &str = "apiVersion: v1
kind: Config
clusters:
- name: k3s-daas
  cluster:
    server: https://203.0.113.7:8080
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
";

fn parse(yaml: &str) -> Kubeconfig {
    Kubeconfig::from_yaml(yaml).expect("fixture parses")
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// Names of the entries in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn write_private_is_0600_and_does_not_clobber() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("new/sub/config");
    write_private(&path, &parse(GENERATED), false).expect("write");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("new")), 0o700);
    assert_eq!(mode(&dir.path().join("new/sub")), 0o700);

    let err = write_private(&path, &parse(EXISTING), false).expect_err("exists");
    assert!(matches!(err, FileError::Exists { .. }), "{err:?}");
    assert!(err.to_string().contains("--force"));
    assert_eq!(
        read_kubeconfig(&path).expect("read").contexts[0].name,
        "k3s-daas",
        "untouched"
    );

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    write_private(&path, &parse(EXISTING), true).expect("overwrite");
    assert_eq!(
        read_kubeconfig(&path).expect("read").contexts[0].name,
        "other"
    );
    assert_eq!(
        mode(&path),
        0o600,
        "the replacement is 0600 whatever the old mode"
    );
    assert_eq!(
        listing(&dir.path().join("new/sub")),
        ["config"],
        "no temporaries left"
    );
}

#[test]
fn merge_creates_a_missing_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(".kube/config");
    let outcome = merge_into_file(&path, parse(GENERATED), MergeOptions::default()).expect("merge");
    assert_eq!(outcome, MergeOutcome::Created);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join(".kube")), 0o700);
    assert_eq!(
        listing(&dir.path().join(".kube")),
        ["config"],
        "no lock or backup left"
    );
    let kc = read_kubeconfig(&path).expect("read");
    assert_eq!(kc.contexts[0].name, "k3s-daas");
    assert_eq!(kc.current_context, None, "not selected without set_current");
}

#[test]
fn merge_updates_with_a_backup_and_skips_no_ops() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config");
    fs::write(&path, EXISTING).expect("existing");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");

    let outcome = merge_into_file(&path, parse(GENERATED), MergeOptions::default()).expect("merge");
    let backup = dir.path().join("config.bak");
    assert_eq!(
        outcome,
        MergeOutcome::Updated {
            backup: backup.clone()
        }
    );
    assert_eq!(fs::read_to_string(&backup).expect("backup"), EXISTING);
    assert_eq!(mode(&backup), 0o600);
    assert_eq!(mode(&path), 0o600);
    let kc = read_kubeconfig(&path).expect("read");
    let names: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["other", "k3s-daas"]);
    assert_eq!(kc.current_context.as_deref(), Some("other"));

    // Same entries again: nothing to write, the backup stays the original.
    let written = fs::read(&path).expect("merged");
    let outcome = merge_into_file(&path, parse(GENERATED), MergeOptions::default()).expect("again");
    assert_eq!(outcome, MergeOutcome::Unchanged);
    assert_eq!(fs::read(&path).expect("merged"), written);
    assert_eq!(fs::read_to_string(&backup).expect("backup"), EXISTING);
    assert_eq!(listing(dir.path()), ["config", "config.bak"]);
}

#[test]
fn a_conflict_leaves_the_file_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config");
    fs::write(&path, EXISTING).expect("existing");
    let clash = GENERATED.replace("k3s-daas", "other");
    let err = merge_into_file(&path, parse(&clash), MergeOptions::default()).expect_err("conflict");
    assert!(
        matches!(
            err,
            FileError::Merge {
                source: MergeError::Conflict(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(fs::read_to_string(&path).expect("file"), EXISTING);
    assert_eq!(listing(dir.path()), ["config"]);

    let forced = MergeOptions {
        force: true,
        set_current: true,
    };
    merge_into_file(&path, parse(&clash), forced).expect("forced");
    let kc = read_kubeconfig(&path).expect("read");
    let server = kc.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone());
    assert_eq!(server.as_deref(), Some("https://203.0.113.7:8080"));
    assert_eq!(kc.clusters.len(), 1);
}

#[test]
fn an_existing_lock_is_respected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config");
    fs::write(&path, EXISTING).expect("existing");
    fs::write(dir.path().join("config.lock"), "").expect("lock");
    let err =
        merge_into_file(&path, parse(GENERATED), MergeOptions::default()).expect_err("locked");
    assert!(matches!(err, FileError::Locked { .. }), "{err:?}");
    assert_eq!(fs::read_to_string(&path).expect("file"), EXISTING);
    assert!(
        dir.path().join("config.lock").exists(),
        "someone else's lock stays"
    );
}

#[test]
fn a_symlinked_kubeconfig_is_updated_through_the_link() {
    let dir = tempfile::tempdir().expect("tempdir");
    let real = dir.path().join("dotfiles/kubeconfig");
    fs::create_dir(dir.path().join("dotfiles")).expect("dir");
    fs::write(&real, EXISTING).expect("existing");
    let link = dir.path().join("config");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    merge_into_file(&link, parse(GENERATED), MergeOptions::default()).expect("merge");
    assert!(
        fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink()
    );
    assert_eq!(read_kubeconfig(&real).expect("read").contexts.len(), 2);
    assert!(dir.path().join("dotfiles/kubeconfig.bak").exists());
}

#[test]
fn parse_errors_give_a_position_but_not_the_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("config");
    fs::write(
        &path,
        "users:\n- name: me\n  user:\n    token: leaked-secret-token\n  [broken\n",
    )
    .expect("write");
    let err = read_kubeconfig(&path).expect_err("invalid");
    let mut chain = format!("{err} {err:?}");
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&s.to_string());
        source = s.source();
    }
    assert!(chain.contains("not a valid kubeconfig"), "{chain}");
    assert!(chain.contains("line "), "{chain}");
    assert!(!chain.contains("leaked-secret-token"), "{chain}");
}

#[test]
fn yaml_round_trip_keeps_unknown_fields() {
    let text = format!("{EXISTING}x-tool:\n  setting: 1\n");
    let kc = parse_kubeconfig(&text, Path::new("test")).expect("parse");
    let back = parse_kubeconfig(&to_yaml(&kc).expect("yaml"), Path::new("test")).expect("reparse");
    assert_eq!(
        serde_json::to_value(&back).expect("json"),
        serde_json::to_value(&kc).expect("json")
    );
    assert_eq!(
        serde_json::to_value(&back).expect("json")["x-tool"]["setting"],
        1
    );
}
