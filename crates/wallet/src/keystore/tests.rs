use super::*;
use crate::key::{Scheme, WalletKey};

/// Sui's published known-answer vector: ed25519 with seed 32 × 0x01. A public test key, not a
/// secret; split so secret scanners do not mistake it for a leaked key.
const KAT_ADDRESS: &str = "0x29dfbf688abce7ab43bb8e70cae158ae961196e721440f515482f8ba1684390f";
const KAT_KEYSTORE_ENTRY: &str = "AAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB";
const KAT_BECH32: &str = concat!(
    "suiprivkey1",
    "qqqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszasa5uj"
);

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).expect("write");
    p
}

#[test]
fn known_answer_vector_both_encodings() {
    for secret in [KAT_KEYSTORE_ENTRY, KAT_BECH32] {
        let k = WalletKey::parse_secret(secret).expect("parse");
        assert_eq!(k.address().to_string(), KAT_ADDRESS);
        assert_eq!(k.scheme(), Scheme::Ed25519);
        assert_eq!(k.to_suiprivkey().expect("bech32"), KAT_BECH32);
        assert_eq!(k.keystore_entry(), KAT_KEYSTORE_ENTRY);
    }
}

#[test]
fn load_keystore_with_aliases_and_select() {
    let dir = tempfile::tempdir().expect("tempdir");
    let k1 = WalletKey::generate(Scheme::Secp256k1);
    let r1 = WalletKey::generate(Scheme::Secp256r1);
    let path = dir.path().join("sui.keystore");
    let kat = WalletKey::parse_secret(KAT_KEYSTORE_ENTRY).expect("kat");
    write_keystore(&path, &[kat, k1.clone(), r1.clone()]).expect("write");
    write(
        dir.path(),
        "sui.aliases",
        &format!(
            r#"[{{"alias":"main","public_key_base64":"{}"}},{{"alias":"k1","public_key_base64":"{}"}}]"#,
            WalletKey::parse_secret(KAT_BECH32)
                .expect("kat")
                .public_key_base64(),
            k1.public_key_base64()
        ),
    );
    let ks = Keystore::load(&path).expect("load");
    assert_eq!(ks.keys().len(), 3);
    assert_eq!(
        ks.select(Some("main"))
            .expect("alias")
            .address()
            .to_string(),
        KAT_ADDRESS
    );
    assert_eq!(
        ks.select(Some("k1")).expect("alias").address(),
        k1.address()
    );
    assert_eq!(ks.keys()[2].alias(), None);
    // by address, in upper-case hex too
    let upper = format!("0x{}", r1.address().to_string()[2..].to_uppercase());
    assert_eq!(
        ks.select(Some(&upper)).expect("address").scheme(),
        Scheme::Secp256r1
    );
    assert!(matches!(
        ks.select(None),
        Err(WalletError::Ambiguous { count: 3 })
    ));
    assert!(matches!(
        ks.select(Some("nobody")),
        Err(WalletError::NotFound(_))
    ));
}

#[test]
fn keystore_is_written_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nested/sui.keystore");
    write_keystore(&path, &[WalletKey::generate(Scheme::Ed25519)]).expect("write");
    let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let ks = Keystore::load(&path).expect("load");
    assert!(
        ks.select(None).is_ok(),
        "a single key is selected without --key"
    );
}

#[test]
fn bad_files_name_the_problem_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("absent.keystore");
    assert!(matches!(
        Keystore::load(&missing),
        Err(WalletError::Read { .. })
    ));
    let not_json = write(dir.path(), "a.keystore", "{ not json");
    assert!(matches!(
        Keystore::load(&not_json),
        Err(WalletError::NotAKeystore { .. })
    ));
    let secret_looking = "AAEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ"; // truncated entry
    let bad = write(
        dir.path(),
        "b.keystore",
        &format!(r#"["{KAT_KEYSTORE_ENTRY}", "{secret_looking}"]"#),
    );
    let err = Keystore::load(&bad).expect_err("second entry is bad");
    assert!(
        matches!(err, WalletError::BadEntry { index: 1, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(secret_looking));
    // unknown flag byte (0x05 zkLogin) in an entry
    let zk = write(
        dir.path(),
        "c.keystore",
        r#"["BQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEB"]"#,
    );
    assert!(matches!(
        Keystore::load(&zk),
        Err(WalletError::BadEntry { index: 0, .. })
    ));
    let empty = write(dir.path(), "d.keystore", "[]");
    assert!(matches!(
        Keystore::load(&empty).expect("loads").select(None),
        Err(WalletError::Empty { .. })
    ));
    // a broken aliases file is reported, not ignored
    let sub = dir.path().join("x");
    fs::create_dir_all(&sub).expect("mkdir");
    let ks = write(
        &sub,
        "sui.keystore",
        &format!(r#"["{KAT_KEYSTORE_ENTRY}"]"#),
    );
    write(&sub, "sui.aliases", "[1,2]");
    assert!(matches!(
        Keystore::load(&ks),
        Err(WalletError::NotAnAliasesFile { .. })
    ));
}

#[test]
fn debug_shows_no_secret() {
    let k = WalletKey::parse_secret(KAT_KEYSTORE_ENTRY).expect("kat");
    let dbg = format!("{k:?}");
    assert!(dbg.contains("29dfbf68"));
    assert!(!dbg.contains(KAT_KEYSTORE_ENTRY));
    assert!(!dbg.contains("suiprivkey"));
}

#[test]
fn schemes_parse() {
    assert_eq!(
        "secp256r1".parse::<Scheme>().expect("scheme"),
        Scheme::Secp256r1
    );
    assert!(matches!(
        "bls".parse::<Scheme>(),
        Err(WalletError::UnknownScheme(_))
    ));
}

#[test]
fn exposed_key_files_are_flagged() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sui.keystore");
    write_keystore(&path, &[WalletKey::generate(Scheme::Ed25519)]).expect("write");
    assert_eq!(Keystore::load(&path).expect("load").exposed_mode(), None);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    let ks = Keystore::load(&path).expect("an exposed file still loads");
    assert_eq!(ks.exposed_mode(), Some(0o644));
}

#[test]
fn rewriting_an_exposed_keystore_makes_it_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), "sui.keystore", "[]");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).expect("chmod");
    write_keystore(&path, &[WalletKey::generate(Scheme::Ed25519)]).expect("write");
    assert_eq!(
        fs::metadata(&path).expect("meta").permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(Keystore::load(&path).expect("load").keys().len(), 1);
    let leftovers: Vec<_> = fs::read_dir(dir.path())
        .expect("ls")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left behind");
}

#[test]
fn selection_prefers_exact_addresses_and_hides_secret_like_selectors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = WalletKey::generate(Scheme::Ed25519);
    let b = WalletKey::generate(Scheme::Ed25519);
    let path = dir.path().join("sui.keystore");
    write_keystore(&path, &[a.clone(), b.clone()]).expect("write");
    // key `a` is aliased with `b`'s address: an exact address still selects `b`
    write(
        dir.path(),
        "sui.aliases",
        &format!(
            r#"[{{"alias":"{}","public_key_base64":"{}"}}]"#,
            b.address(),
            a.public_key_base64()
        ),
    );
    let ks = Keystore::load(&path).expect("load");
    assert_eq!(
        ks.select(Some(&b.address().to_string()))
            .expect("address")
            .address(),
        b.address()
    );
    // short hex without 0x is not an address
    let short = b.address().to_string()[2..10].to_owned();
    assert!(matches!(
        ks.select(Some(&short)),
        Err(WalletError::NotFound(_))
    ));
    // a pasted private key is never echoed
    let secret = a.to_suiprivkey().expect("bech32");
    let err = ks.select(Some(&secret)).expect_err("not a selector");
    assert!(!err.to_string().contains(&secret[10..]), "{err}");
}
