//! `nautilus-master attestation verify` on the public Nitro vectors and on dev documents:
//! exit codes, JSON fields, and the names of failed checks.

use std::path::PathBuf;
use std::process::{Command, Output};

use daas_attestation::AttestationRequest;
use daas_attestation::dev::{DevAttester, DevRoot, dev_pcrs};

fn vectors() -> PathBuf {
    std::env::var_os("DAAS_VECTORS_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/vectors/nitro"),
        PathBuf::from,
    )
}

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nautilus-master"))
        .arg("attestation")
        .arg("verify")
        .args(args)
        .env("DAAS_LOG", "warn")
        .output()
        .expect("run nautilus-master")
}

fn vector(name: &str) -> String {
    vectors().join(name).to_string_lossy().into_owned()
}

fn ok_json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}, stderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

fn failed_check(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "stdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn real_documents_at_their_own_time() {
    let json = ok_json(&run(&[
        &vector("evervault-prod-2022-10-13.cose"),
        "--at",
        "document",
    ]));
    assert_eq!(json["verified"], true);
    assert_eq!(json["root"], "aws");
    assert_eq!(
        json["root_fingerprint"],
        "641a0321a3e244efe456463195d606317ed7cdcc3c1756e09893f3c68f79bb5b"
    );
    assert_eq!(json["debug"], false);
    assert_eq!(json["document"]["timestamp_ms"], 1_665_651_482_136u64);
    assert_eq!(json["checked_at_ms"], 1_665_651_482_136u64);
    assert_eq!(json["document"]["nonce"].as_str().map(str::len), Some(512));

    let json = ok_json(&run(&[
        &vector("fastcrypto-pcr16-2025-11-10.cose"),
        "--at",
        "2025-11-10T18:00:00Z",
    ]));
    assert_eq!(
        json["document"]["pcrs"]["16"].as_str().map(str::len),
        Some(96)
    );
}

#[test]
fn expired_now_and_at_a_given_time() {
    let stderr = failed_check(&run(&[&vector("evervault-prod-2022-10-13.cose")]));
    assert!(stderr.contains("`chain.expired`"), "{stderr}");
    assert!(stderr.contains("Sui would abort 2"), "{stderr}");
    let stderr = failed_check(&run(&[
        &vector("evervault-prod-2022-10-13.cose"),
        "--at",
        "2026-12-01T00:00:00Z",
    ]));
    assert!(stderr.contains("`chain.expired`"), "{stderr}");
    let stderr = failed_check(&run(&[
        &vector("evervault-prod-2022-10-13.cose"),
        "--at",
        "2022-10-13T08:57:58Z",
    ]));
    assert!(stderr.contains("`chain.not_yet_valid`"), "{stderr}");
}

#[test]
fn debug_documents_need_allow_debug() {
    let file = vector("sui-debug-2024-11-14.cose");
    let stderr = failed_check(&run(&[&file, "--at", "document"]));
    assert!(stderr.contains("`policy.debug`"), "{stderr}");
    let json = ok_json(&run(&[&file, "--at", "document", "--allow-debug"]));
    assert_eq!(json["debug"], true);
}

#[test]
fn expected_pcrs_in_both_formats() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let pcr0 = "3aa0e6e6ed7d8301655fced7e6ddcc443a3e57bf62f070caa6becf337069e859c0f03d68136440ff1cab8adefd20634c";
    let pcr1 = "b0d319fa64f9c2c9d7e9187bc21001ddacfab4077e737957fa1b8b97cc993bed43a79019aebfd40ee5f6f213147909f8";
    let pcr2 = "fdb2295dc5d9b67a653ed5f3ead5fc8166ec3cae1de1c7c6f31c3b43b2eb26ab5d063f414f3d2b93163426805dfe057e";
    let flat = tmp.path().join("flat.json");
    std::fs::write(
        &flat,
        format!(r#"{{"PCR0":"{pcr0}","PCR1":"{pcr1}","PCR2":"{pcr2}"}}"#),
    )
    .expect("write");
    let nitro_cli = tmp.path().join("nitro-cli.json");
    std::fs::write(
        &nitro_cli,
        format!(
            r#"{{"Measurements":{{"HashAlgorithm":"Sha384 {{ ... }}","PCR0":"{pcr0}","PCR1":"{pcr1}","PCR2":"{pcr2}"}}}}"#
        ),
    )
    .expect("write");
    let wrong = tmp.path().join("wrong.json");
    std::fs::write(
        &wrong,
        format!(r#"{{"PCR0":"{pcr1}","PCR1":"{pcr1}","PCR2":"{pcr2}"}}"#),
    )
    .expect("write");
    let file = vector("fastcrypto-pcr16-2025-11-10.cose");
    for pcrs in [&flat, &nitro_cli] {
        let p = pcrs.to_string_lossy();
        let json = ok_json(&run(&[&file, "--at", "document", "--expect-pcrs", &p]));
        assert_eq!(json["pcrs_checked"], true);
    }
    let stderr = failed_check(&run(&[
        &file,
        "--at",
        "document",
        "--expect-pcrs",
        &wrong.to_string_lossy(),
    ]));
    assert!(stderr.contains("`policy.pcrs`"), "{stderr}");
}

#[test]
fn roots_dev_documents_and_corruption() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = DevRoot::generate().expect("dev root");
    let root_pem = tmp.path().join("dev-root.pem");
    std::fs::write(&root_pem, root.certificate_pem()).expect("write");
    let attester = DevAttester::new(root, dev_pcrs(b"image")).expect("attester");
    let doc = attester
        .attest_at(&AttestationRequest::default(), 1_796_083_200_000)
        .expect("attest");
    let dev_doc = tmp.path().join("dev.cose");
    std::fs::write(&dev_doc, &doc).expect("write");
    let dev_doc = dev_doc.to_string_lossy();
    let root_pem = root_pem.to_string_lossy();

    // A dev document fails under the AWS root, passes with its root given or --dev-root.
    let stderr = failed_check(&run(&[&dev_doc, "--at", "document"]));
    assert!(stderr.contains("`chain.untrusted_root`"), "{stderr}");
    let json = ok_json(&run(&[&dev_doc, "--at", "document", "--root", &root_pem]));
    assert_eq!(json["root"], "dev");
    assert!(
        json["document"]["module_id"]
            .as_str()
            .is_some_and(|m| m.starts_with("dev-"))
    );
    assert!(
        String::from_utf8_lossy(&run(&[&dev_doc, "--at", "document", "--root", &root_pem]).stderr)
            .contains("DEV")
    );
    let json = ok_json(&run(&[&dev_doc, "--at", "document", "--dev-root"]));
    assert_eq!(json["root"], "dev");

    // A real document under the dev root fails; under the AWS PEM given as --root it passes as aws.
    let real = vector("evervault-prod-2022-10-13.cose");
    let stderr = failed_check(&run(&[&real, "--at", "document", "--root", &root_pem]));
    assert!(stderr.contains("`chain.untrusted_root`"), "{stderr}");
    let aws_pem = vector("aws-nitro-root-g1.pem");
    let json = ok_json(&run(&[&real, "--at", "document", "--root", &aws_pem]));
    assert_eq!(json["root"], "aws");
    // --dev-root does not make a real document a dev one.
    let json = ok_json(&run(&[&real, "--at", "document", "--dev-root"]));
    assert_eq!(json["root"], "aws");

    // A flipped signature byte, trailing bytes, an unreadable file.
    let mut bytes = std::fs::read(&real).expect("read");
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    let flipped = tmp.path().join("flipped.cose");
    std::fs::write(&flipped, &bytes).expect("write");
    let stderr = failed_check(&run(&[&flipped.to_string_lossy(), "--at", "document"]));
    assert!(stderr.contains("`cose.signature`"), "{stderr}");
    bytes[n - 1] ^= 1;
    bytes.push(0);
    let trailing = tmp.path().join("trailing.cose");
    std::fs::write(&trailing, &bytes).expect("write");
    let stderr = failed_check(&run(&[&trailing.to_string_lossy(), "--at", "document"]));
    assert!(stderr.contains("`cbor.trailing_bytes`"), "{stderr}");
    assert!(stderr.contains("Sui would abort 1"), "{stderr}");
    let missing = tmp.path().join("missing.cose");
    assert_eq!(run(&[&missing.to_string_lossy()]).status.code(), Some(1));
}
