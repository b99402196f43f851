//! Unit tests of the pure parts: checksum lines, the URL policy, redirects, versions,
//! architectures and cache paths (progress steps: `client.rs`).

#![allow(clippy::unwrap_used)]

use http::{HeaderValue, Uri};

use super::client::{check_url, display_url, redirect_target};
use super::*;

const HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn check(text: &str, asset: &'static str) -> Result<String, String> {
    expected_sha256(text.as_bytes(), "sha256sum-amd64.txt", asset).map_err(|e| e.to_string())
}

#[test]
fn checksum_lines() {
    let listing = format!(
        "{} k3s-airgap-images-amd64.tar\n{HASH}  k3s\nffff  other\n",
        HASH.replace('0', "f")
    );
    let cases: Vec<(String, &'static str, Result<&str, &str>)> = vec![
        (listing.clone(), "k3s", Ok(HASH)),
        (format!("{HASH} *k3s\n"), "k3s", Ok(HASH)),
        (format!("{}  k3s\r\n", HASH.to_uppercase()), "k3s", Ok(HASH)),
        (
            listing.clone(),
            "k3s-arm64",
            Err("has no SHA-256 line for k3s-arm64"),
        ),
        (
            format!("{HASH}  k3s.sig\n"),
            "k3s",
            Err("has no SHA-256 line for k3s"),
        ),
        (
            "abcd  k3s\n".into(),
            "k3s",
            Err("line 1: the hash is not 64 hex digits"),
        ),
        (
            format!("{HASH}  k3s\n{}  k3s\n", HASH.replace('1', "2")),
            "k3s",
            Err("line 2: a second, different hash"),
        ),
        (format!("{HASH}  k3s\n{HASH}  k3s\n"), "k3s", Ok(HASH)),
        (String::new(), "k3s", Err("has no SHA-256 line")),
    ];
    for (text, asset, want) in cases {
        let got = check(&text, asset);
        match (&got, want) {
            (Ok(h), Ok(w)) => assert_eq!(h, w, "{text:?}"),
            (Err(e), Err(w)) => assert!(e.contains(w), "{text:?}: {e}"),
            _ => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }
    let not_utf8 = expected_sha256(&[0xff, 0xfe], "f", "k3s").unwrap_err();
    assert!(not_utf8.to_string().contains("not UTF-8"));
}

#[test]
fn url_policy() {
    let u = |s: &str| s.parse::<Uri>().unwrap();
    let ok = |s: &str, from: Option<&str>| check_url(&u(s), from.map(u).as_ref());
    assert!(ok("https://github.com/k3s-io/k3s/releases/download/", None).is_ok());
    assert!(ok("http://127.0.0.1:8080/", None).is_ok());
    assert!(ok("http://[::1]:8080/", None).is_ok());
    assert!(ok("http://localhost/", None).is_ok());
    assert!(ok("http://127.0.0.1/b", Some("http://127.0.0.1/a")).is_ok());
    for (url, from, why) in [
        ("http://github.com/", None, "loopback"),
        ("ftp://127.0.0.1/", None, "only https"),
        ("https://user:pw@github.com/", None, "user information"),
        ("/relative", None, "no host"),
        (
            "http://127.0.0.1/",
            Some("https://github.com/"),
            "https to plain http",
        ),
    ] {
        let e = ok(url, from).unwrap_err().to_string();
        assert!(e.contains(why), "{url}: {e}");
    }
}

#[test]
fn redirects_resolve_against_the_current_url() {
    let cur: Uri = "https://github.com/a/b/c?x=1".parse().unwrap();
    let loc = |s: &str| redirect_target(&cur, Some(&HeaderValue::from_str(s).unwrap()));
    assert_eq!(
        loc("https://objects.example/o?sig=1").unwrap().to_string(),
        "https://objects.example/o?sig=1"
    );
    assert_eq!(loc("/z").unwrap().to_string(), "https://github.com/z");
    assert_eq!(loc("d").unwrap().to_string(), "https://github.com/a/b/d");
    assert_eq!(
        loc("//h.example/p").unwrap().to_string(),
        "https://h.example/p"
    );
    assert!(redirect_target(&cur, None).is_err());
    assert_eq!(
        display_url(&"https://o.example/p?X-Amz-Signature=s".parse().unwrap()),
        "https://o.example/p"
    );
}

#[test]
fn versions_arches_and_cache_dirs() {
    assert!(check_version(K3S_VERSION).is_ok());
    for bad in ["1.36.4", "v1.36/../x", "v1..2", "v1 2", "", "v1%2F"] {
        assert!(check_version(bad).is_err(), "{bad}");
    }
    assert_eq!(Arch::from_rust("x86_64").unwrap().asset(), "k3s");
    assert_eq!(Arch::from_rust("aarch64").unwrap().asset(), "k3s-arm64");
    assert_eq!(Arch::Arm64.checksum_file(), "sha256sum-arm64.txt");
    let e = Arch::from_rust("riscv64").unwrap_err().to_string();
    assert!(e.contains("riscv64") && e.contains("K3S_BIN"), "{e}");
    let os = |s: &str| Some(std::ffi::OsString::from(s));
    assert_eq!(
        cache_dir_from(os("/x"), os("/h")).unwrap(),
        PathBuf::from("/x/k3s-daas/k3s")
    );
    assert_eq!(
        cache_dir_from(os("rel"), os("/h")).unwrap(),
        PathBuf::from("/h/.cache/k3s-daas/k3s")
    );
    assert!(cache_dir_from(None, None).is_err());
    let mut config = DownloadConfig::new("/c", Arch::Amd64);
    assert_eq!(
        config.cache_slot(),
        PathBuf::from(format!("/c/{K3S_VERSION}/amd64"))
    );
    assert_eq!(
        config.base_url().unwrap(),
        format!("{RELEASE_URL}{K3S_VERSION}/")
    );
    config.release_url = "http://example.com/r".into();
    assert!(config.check().is_err());
    config.release_url = "http://127.0.0.1:1/r".into();
    assert_eq!(
        config.base_url().unwrap(),
        format!("http://127.0.0.1:1/r/{K3S_VERSION}/")
    );
}

/// The enclave image (deploy-ec2/enclave/Dockerfile) pins the same K3s release as `dev`.
#[test]
fn the_enclave_image_pins_the_k3s_release_dev_uses() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy-ec2/enclave/Dockerfile");
    let dockerfile = std::fs::read_to_string(&path).expect("read the Dockerfile");
    let want = format!("ARG K3S_VERSION={K3S_VERSION}\n");
    assert!(
        dockerfile.contains(&want),
        "the Dockerfile should say {want:?}"
    );
}
