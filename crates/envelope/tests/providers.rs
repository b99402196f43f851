//! Key providers against real files in temporary directories: the key ring directory life
//! cycle (init, rotate, retire, load) and every way its files can be unsafe or wrong.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use daas_envelope::{
    DataKey, DecryptError, EnvKey, KeyFile, KeyId, KeyProvider, KeyRingDir, ProviderError,
    parse_key_text,
};

const ETCD_KEY: &[u8] = b"/registry/configmaps/default/x";

/// A fresh, initialised key ring directory (inside a 0700 temporary directory).
fn initialised() -> (tempfile::TempDir, KeyRingDir, KeyId) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = KeyRingDir::new(tmp.path().join("keys"));
    let id = dir.init().expect("init");
    (tmp, dir, id)
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

fn key_file(dir: &KeyRingDir, id: KeyId) -> PathBuf {
    dir.path().join(format!("{id}.key"))
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn sorted<const N: usize>(mut names: [String; N]) -> Vec<String> {
    names.sort();
    names.to_vec()
}

#[test]
fn init_creates_a_private_directory_with_one_active_key() {
    let (_tmp, dir, id) = initialised();
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&key_file(&dir, id)), 0o600);
    assert_eq!(fs::read(key_file(&dir, id)).expect("key").len(), 32);
    assert_eq!(
        fs::read_to_string(dir.path().join("active")).expect("active"),
        format!("{id}\n")
    );
    assert_eq!(
        file_names(dir.path()),
        sorted(["active".into(), format!("{id}.key")])
    );

    let ring = dir.load().expect("load");
    assert_eq!(ring.active_id(), id);
    assert_eq!(ring.ids().collect::<Vec<_>>(), [id]);
    // The file holds the key that has that id.
    let bytes: [u8; 32] = fs::read(key_file(&dir, id))
        .expect("key")
        .try_into()
        .expect("32 bytes");
    assert_eq!(DataKey::from_bytes(bytes).id(), id);
    assert!(dir.describe().contains(&dir.path().display().to_string()));
}

#[test]
fn init_twice_is_refused_and_changes_nothing() {
    let (_tmp, dir, id) = initialised();
    let before = file_names(dir.path());
    assert!(matches!(
        dir.init(),
        Err(ProviderError::AlreadyInitialised { .. })
    ));
    assert_eq!(file_names(dir.path()), before);
    assert_eq!(dir.load().expect("load").active_id(), id);
}

#[test]
fn init_accepts_an_existing_empty_private_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    chmod(tmp.path(), 0o700);
    let id = KeyRingDir::new(tmp.path()).init().expect("init");
    assert_eq!(
        KeyRingDir::new(tmp.path())
            .load()
            .expect("load")
            .active_id(),
        id
    );
}

#[test]
fn init_refuses_an_open_directory() {
    let tmp = tempfile::tempdir().expect("tempdir");
    chmod(tmp.path(), 0o755);
    let err = KeyRingDir::new(tmp.path()).init().expect_err("0755");
    assert!(
        matches!(err, ProviderError::InsecureMode { mode: 0o755, .. }),
        "{err}"
    );
    assert!(file_names(tmp.path()).is_empty());
}

#[test]
fn rotate_then_retire() {
    let (_tmp, dir, k1) = initialised();
    let old_value = dir.load().expect("load").encrypt(ETCD_KEY, b"old", 1);

    let k2 = dir.rotate().expect("rotate");
    assert_ne!(k1, k2);
    assert_eq!(mode(&key_file(&dir, k2)), 0o600);
    let ring = dir.load().expect("load");
    assert_eq!(ring.active_id(), k2);
    assert!(ring.contains(k1));
    let out = ring.decrypt(ETCD_KEY, &old_value).expect("old key kept");
    assert_eq!((out.key_id, out.stale), (k1, true));
    let new_value = ring.encrypt(ETCD_KEY, b"new", 2);
    assert_eq!(daas_envelope::KeyRing::key_id_of(&new_value), Ok(k2));

    // No temporary files are left behind.
    assert_eq!(
        file_names(dir.path()),
        sorted(["active".into(), format!("{k1}.key"), format!("{k2}.key")])
    );

    assert!(matches!(dir.retire(k2), Err(ProviderError::RetireActive(id)) if id == k2));
    assert!(matches!(
        dir.retire(KeyId(k1.0 ^ k2.0 ^ 1)),
        Err(ProviderError::NoSuchKey { .. })
    ));
    dir.retire(k1).expect("retire the old key");
    assert!(!key_file(&dir, k1).exists());
    let ring = dir.load().expect("load");
    assert_eq!(ring.ids().collect::<Vec<_>>(), [k2]);
    assert_eq!(
        ring.decrypt(ETCD_KEY, &old_value),
        Err(DecryptError::UnknownKey(k1))
    );
    assert!(ring.decrypt(ETCD_KEY, &new_value).is_ok());

    // The retired key is archived, not deleted: private, never loaded by default.
    let archive = dir.path().join("archive");
    assert_eq!(mode(&archive), 0o700);
    assert_eq!(mode(&archive.join(format!("{k1}.key"))), 0o600);
    assert_eq!(file_names(&archive), [format!("{k1}.key")]);
    assert_eq!(dir.archived_ids().expect("archive"), [k1]);
    assert_eq!(
        file_names(dir.path()),
        sorted(["active".into(), "archive".into(), format!("{k2}.key")])
    );
    // Retiring it again finds nothing to retire.
    assert!(matches!(
        dir.retire(k1),
        Err(ProviderError::NoSuchKey { .. })
    ));
}

#[test]
fn archived_keys_read_backups_on_request_and_can_be_unretired() {
    let (_tmp, dir, k1) = initialised();
    let backup = dir
        .load()
        .expect("load")
        .encrypt(ETCD_KEY, b"in a backup", 1);
    let k2 = dir.rotate().expect("rotate");
    dir.retire(k1).expect("retire");

    // With archived keys: the backup reads (decrypt-only), the active key is unchanged.
    let with = dir.clone().with_archived();
    assert!(with.describe().contains("with archived keys"));
    let ring = with.load().expect("load with archived keys");
    assert_eq!(ring.active_id(), k2);
    assert!(ring.contains(k1));
    let out = ring.decrypt(ETCD_KEY, &backup).expect("archived key reads");
    assert_eq!(
        (out.plaintext.as_slice(), out.stale),
        (&b"in a backup"[..], true)
    );
    // The default provider still does not load it.
    assert!(!dir.load().expect("load").contains(k1));

    // A key left in both places (crash inside retire) is loaded once.
    fs::hard_link(
        dir.path().join("archive").join(format!("{k1}.key")),
        key_file(&dir, k1),
    )
    .expect("link");
    assert!(with.load().expect("duplicate tolerated").contains(k1));
    fs::remove_file(key_file(&dir, k1)).expect("unlink");

    // Unretire moves it back into the ring (not active).
    assert!(matches!(
        dir.unretire(KeyId(k1.0 ^ 1)),
        Err(ProviderError::NoSuchKey { .. })
    ));
    dir.unretire(k1).expect("unretire");
    let ring = dir.load().expect("load");
    assert_eq!(ring.active_id(), k2);
    assert!(ring.decrypt(ETCD_KEY, &backup).is_ok());
    assert!(dir.archived_ids().expect("archive").is_empty());
    assert_eq!(mode(&key_file(&dir, k1)), 0o600);
}

#[test]
fn an_open_archive_is_refused() {
    let (_tmp, dir, k1) = initialised();
    dir.rotate().expect("rotate");
    dir.retire(k1).expect("retire");
    let archive = dir.path().join("archive");
    chmod(&archive, 0o755);
    assert!(matches!(
        dir.clone().with_archived().load(),
        Err(ProviderError::InsecureMode { mode: 0o755, .. })
    ));
    // The default provider never reads the archive.
    assert!(dir.load().is_ok());
}

#[test]
fn group_or_other_readable_key_file_is_rejected_with_path_and_mode() {
    for bad_mode in [0o644, 0o640, 0o604, 0o660] {
        let (_tmp, dir, id) = initialised();
        let path = key_file(&dir, id);
        chmod(&path, bad_mode);
        let err = dir.load().expect_err("open key file");
        match &err {
            ProviderError::InsecureMode {
                path: p,
                mode,
                want,
            } => {
                assert_eq!((p, *mode, *want), (&path, bad_mode, 0o600));
            }
            other => panic!("unexpected {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains(&format!("{bad_mode:04o}")), "{text}");
        assert!(text.contains("chmod 600"), "{text}");
    }
    // Stricter than 0600 is fine.
    let (_tmp, dir, id) = initialised();
    chmod(&key_file(&dir, id), 0o400);
    assert_eq!(dir.load().expect("0400 is fine").active_id(), id);
}

#[test]
fn open_directory_is_rejected() {
    let (_tmp, dir, _id) = initialised();
    for bad_mode in [0o755, 0o750, 0o701] {
        chmod(dir.path(), bad_mode);
        let err = dir.load().expect_err("open directory");
        assert!(
            matches!(&err, ProviderError::InsecureMode { path, mode, want: 0o700 }
                if path == dir.path() && *mode == bad_mode),
            "{err:?}"
        );
        assert!(err.to_string().contains("chmod 700"), "{err}");
        assert!(matches!(
            dir.rotate(),
            Err(ProviderError::InsecureMode { .. })
        ));
    }
}

#[test]
fn key_file_of_wrong_length_is_rejected() {
    for len in [0usize, 31, 33, 64] {
        let (_tmp, dir, id) = initialised();
        let path = key_file(&dir, id);
        fs::write(&path, vec![7u8; len]).expect("write");
        let err = dir.load().expect_err("bad length");
        assert!(
            matches!(&err, ProviderError::BadLength { path: p, len: l } if *p == path && *l == len as u64),
            "{err:?}"
        );
        assert!(err.to_string().contains(&path.display().to_string()));
    }
}

#[test]
fn key_file_whose_name_is_not_its_id_is_rejected() {
    let (_tmp, dir, id) = initialised();
    let wrong = KeyId(id.0 ^ 0x0101_0101);
    fs::rename(key_file(&dir, id), key_file(&dir, wrong)).expect("rename");
    fs::write(dir.path().join("active"), format!("{wrong}\n")).expect("active");
    let err = dir.load().expect_err("id mismatch");
    assert!(
        matches!(&err, ProviderError::IdMismatch { path, actual } if *path == key_file(&dir, wrong) && *actual == id),
        "{err:?}"
    );
}

#[test]
fn badly_named_key_files_are_rejected_and_other_files_ignored() {
    for name in [
        "ABCDEF01.key",
        "abc.key",
        ".key",
        "0000000g.key",
        "00000000a.key",
    ] {
        let (_tmp, dir, _id) = initialised();
        let path = dir.path().join(name);
        fs::write(&path, [0u8; 32]).expect("write");
        chmod(&path, 0o600);
        let err = dir.load().expect_err(name);
        assert!(
            matches!(&err, ProviderError::BadKeyFileName { path: p } if *p == path),
            "{name}: {err:?}"
        );
    }
    let (_tmp, dir, id) = initialised();
    fs::write(dir.path().join("README"), "not a key").expect("write");
    fs::write(dir.path().join("0000.key.bak"), "old").expect("write");
    assert_eq!(dir.load().expect("load").active_id(), id);
}

#[test]
fn missing_active_is_rejected() {
    let (_tmp, dir, _id) = initialised();
    fs::remove_file(dir.path().join("active")).expect("rm");
    let err = dir.load().expect_err("no active");
    assert!(
        matches!(&err, ProviderError::NoActive { path } if path.ends_with("active")),
        "{err:?}"
    );
}

#[test]
fn garbage_active_is_rejected() {
    for content in [
        &b""[..],
        b"\n",
        b"hello",
        b"0000000",
        b"ABCDEF01\n",
        b" 00000000",
        b"00000000\n00000000\n",
        b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8",
        &[b'0'; 100],
    ] {
        let (_tmp, dir, _id) = initialised();
        fs::write(dir.path().join("active"), content).expect("write");
        let err = dir.load().expect_err("garbage active");
        assert!(
            matches!(err, ProviderError::BadActive { .. }),
            "{content:?}: {err:?}"
        );
    }
}

#[test]
fn active_naming_an_absent_key_is_rejected() {
    let (_tmp, dir, id) = initialised();
    let absent = KeyId(!id.0);
    fs::write(dir.path().join("active"), format!("{absent}")).expect("write");
    let err = dir.load().expect_err("absent");
    assert!(
        matches!(err, ProviderError::ActiveKeyMissing { id, .. } if id == absent),
        "{err:?}"
    );
}

#[test]
fn missing_directory_is_an_io_error_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let missing = tmp.path().join("nope");
    let err = KeyRingDir::new(&missing).load().expect_err("missing");
    assert!(
        matches!(&err, ProviderError::Io { path, .. } if *path == missing),
        "{err:?}"
    );
    assert!(err.to_string().contains(&missing.display().to_string()));
}

#[test]
fn key_file_provider_enforces_mode_and_length() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("etcd.key");
    let bytes = [0x42u8; 32];
    fs::write(&path, bytes).expect("write");
    chmod(&path, 0o600);
    let provider = KeyFile::new(&path);
    let ring = provider.load().expect("load");
    assert_eq!(ring.active_id(), DataKey::from_bytes(bytes).id());
    assert!(provider.describe().contains("etcd.key"));

    chmod(&path, 0o640);
    assert!(matches!(
        provider.load(),
        Err(ProviderError::InsecureMode { mode: 0o640, .. })
    ));
    chmod(&path, 0o600);
    fs::write(&path, [0x42u8; 31]).expect("write");
    assert!(matches!(
        provider.load(),
        Err(ProviderError::BadLength { len: 31, .. })
    ));
    assert!(matches!(
        KeyFile::new(tmp.path()).load(),
        Err(ProviderError::NotAFile { .. })
    ));
}

#[test]
fn key_text_accepts_hex_and_base64_of_32_bytes_only() {
    let id = DataKey::from_bytes([0xab; 32]).id();
    let hex_lower = "ab".repeat(32);
    let hex_upper = "AB".repeat(32);
    // base64 of 32 × 0xab, from Python: base64.b64encode(b"\xab" * 32)
    let b64 = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=";
    for text in [
        hex_lower.as_str(),
        &hex_upper,
        b64,
        &format!("  {hex_lower}\n"),
        &format!("{b64}\n"),
    ] {
        assert_eq!(parse_key_text(text).map(|k| k.id()), Some(id), "{text:?}");
    }
    let too_short_b64 = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urqw=="; // 31 bytes
    let too_long_b64 = "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6ur"; // 33 bytes
    for text in [
        "",
        &hex_lower[..62],
        &format!("{hex_lower}ab"),
        &"zz".repeat(32),
        too_short_b64,
        too_long_b64,
        "q6urq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s", // unpadded
        "q6-rq6urq6urq6urq6urq6urq6urq6urq6urq6urq6s=", // url-safe alphabet
    ] {
        assert!(parse_key_text(text).is_none(), "{text:?}");
    }
}

#[test]
fn env_key_reports_missing_and_invalid_variables() {
    let missing = EnvKey::new("DAAS_TEST_SURELY_UNSET_ENVELOPE_KEY_VARIABLE");
    assert!(matches!(
        missing.load(),
        Err(ProviderError::EnvMissing { var }) if var == "DAAS_TEST_SURELY_UNSET_ENVELOPE_KEY_VARIABLE"
    ));
    assert!(missing.describe().contains("development only"));
    // PATH is set in any test environment and is not a key; the error must not echo it.
    let path_var = EnvKey::new("PATH");
    let err = path_var.load().expect_err("PATH is not a key");
    assert!(matches!(&err, ProviderError::EnvInvalid { var } if var == "PATH"));
    let path_value = std::env::var("PATH").expect("PATH set");
    assert!(!err.to_string().contains(&path_value));
}
