use std::os::unix::fs::MetadataExt;

use super::*;

const ARN: &str = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn entry(byte: u8) -> WrappedKey {
    WrappedKey {
        id: DataKey::from_bytes([byte; KEY_LEN]).id().to_string(),
        ciphertext_blob: Base64::encode_string(&[byte; 40]),
    }
}

fn single() -> WrappedKeys {
    WrappedKeys::new_single(entry(1), ARN, "eu-west-1").expect("valid file")
}

#[test]
fn new_single_makes_its_entry_active_and_checks_it() {
    let keys = single();
    assert_eq!(keys.active, entry(1).id);
    assert_eq!(keys.keys, vec![entry(1)]);
    let check = |entry: WrappedKey, key_id: &str, region: &str, expected: &str| {
        let err = WrappedKeys::new_single(entry, key_id, region).expect_err("refused");
        assert!(err.to_string().contains(expected), "{err}");
    };
    let mut bad_id = entry(1);
    bad_id.id = "1A2B3C4D".into();
    check(bad_id, ARN, "eu-west-1", "is not a key id");
    let mut empty_blob = entry(1);
    empty_blob.ciphertext_blob = String::new();
    check(empty_blob, ARN, "eu-west-1", "is 0 bytes");
    check(entry(1), " ", "eu-west-1", "key_id is empty");
    check(entry(1), ARN, "EU_WEST", "is not an AWS region name");
}

#[test]
fn push_and_set_active_check_and_leave_the_file_unchanged_on_error() {
    let mut keys = single();
    keys.push(entry(2)).expect("second key");
    assert_eq!(keys.active, entry(1).id, "push does not activate");
    let before = keys.clone();
    let err = keys.push(entry(2)).expect_err("duplicate");
    assert!(err.to_string().contains("listed twice"), "{err}");
    assert_eq!(keys, before);
    let unlisted = DataKey::from_bytes([9; KEY_LEN]).id();
    let err = keys.set_active(unlisted).expect_err("not listed");
    assert!(err.to_string().contains("is not listed"), "{err}");
    assert_eq!(keys, before);
    keys.set_active(DataKey::from_bytes([2; KEY_LEN]).id())
        .expect("listed");
    assert_eq!(keys.active, entry(2).id);
    // At most 64 keys.
    for byte in 3..=64 {
        keys.push(entry(byte)).expect("up to 64");
    }
    let err = keys.push(entry(65)).expect_err("65th");
    assert!(err.to_string().contains("1 to 64 accepted"), "{err}");
    assert_eq!(keys.keys.len(), 64);
}

#[test]
fn written_files_are_0600_read_back_equal_and_not_overwritten_unasked() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("wrapped-keys.json");
    let keys = single();
    keys.write(&path, WriteMode::CreateNew).expect("written");
    let mode = std::fs::metadata(&path).expect("metadata").mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(WrappedKeys::from_file(&path).expect("read back"), keys);

    let mut rotated = keys.clone();
    rotated.push(entry(2)).expect("push");
    let err = rotated
        .write(&path, WriteMode::CreateNew)
        .expect_err("exists");
    assert!(
        matches!(&err, KmsError::KeysFileExists { path: p } if p == &path),
        "{err:?}"
    );
    assert!(err.to_string().contains("refusing to overwrite"), "{err}");
    assert_eq!(WrappedKeys::from_file(&path).expect("unchanged"), keys);

    // Replace is atomic and leaves the file 0600 even if it was wider before.
    std::fs::set_permissions(&path, Permissions::from_mode(0o644)).expect("chmod");
    rotated.write(&path, WriteMode::Replace).expect("replaced");
    assert_eq!(WrappedKeys::from_file(&path).expect("read back"), rotated);
    let mode = std::fs::metadata(&path).expect("metadata").mode() & 0o777;
    assert_eq!(mode, 0o600);
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("wrapped-keys.json")]);
}

#[test]
fn an_invalid_file_is_not_written_and_a_symlink_is_not_replaced_unasked() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("keys.json");
    let mut keys = single();
    keys.active = "00000000".into();
    assert!(matches!(
        keys.write(&path, WriteMode::CreateNew),
        Err(KmsError::KeysFile(_))
    ));
    assert!(!path.exists());
    // A dangling symlink counts as an existing file.
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), &path).expect("symlink");
    assert!(matches!(
        single().write(&path, WriteMode::CreateNew),
        Err(KmsError::KeysFileExists { .. })
    ));
    // A missing directory is a write error naming the file.
    let missing = dir.path().join("no-such-dir").join("keys.json");
    let err = single()
        .write(&missing, WriteMode::CreateNew)
        .expect_err("no directory");
    assert!(matches!(err, KmsError::KeysFileWrite { .. }), "{err:?}");
}

#[test]
fn json_round_trips() {
    let keys = single();
    assert_eq!(
        WrappedKeys::from_json(&keys.to_json()).expect("parses"),
        keys
    );
}
