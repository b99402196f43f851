//! `nautilus-master attestation verify`: check a Nitro attestation document offline with the
//! same code (`daas-attestation`) the control plane and the agents use.
//!
//! Prints the decoded document as JSON on stdout and exits 0, or names the failed check on
//! stderr (`chain.expired`, `cose.signature`, `policy.debug`, ...) and exits 1.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use daas_attestation::policy::{self, ExpectedPcrs, Policy};
use daas_attestation::{AWS_NITRO_ROOT_G1_SHA256, RootKind, TrustAnchor, UnixMillis};

/// `nautilus-master attestation …`
#[derive(Subcommand, Debug)]
pub(crate) enum AttestationCommand {
    /// Verify an attestation document (raw COSE_Sign1 bytes, as the NSM returns them).
    Verify(VerifyArgs),
}

/// `nautilus-master attestation verify FILE`
#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The document: raw COSE_Sign1 bytes (not hex or base64).
    file: PathBuf,
    /// When to check certificate validity: `now` (the default), `document` (the document's
    /// own timestamp, for archived documents), or an RFC 3339 time.
    #[arg(long, default_value = "now")]
    at: String,
    /// Trust this root (PEM) instead of the AWS Nitro Enclaves Root-G1. It counts as a DEV root
    /// unless its fingerprint is the AWS root's.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Also accept the document's own bundled root (`cabundle[0]`) as a DEV root: for dev
    /// documents whose root certificate you do not have. Proves nothing about a TEE.
    #[arg(long)]
    dev_root: bool,
    /// Expected PCR0/1/2 (JSON: `{"PCR0":"hex",…}` or nitro-cli's `{"Measurements":{…}}`).
    #[arg(long)]
    expect_pcrs: Option<PathBuf>,
    /// Accept debug-mode documents (PCR0/1/2 all zero). Never for production.
    #[arg(long)]
    allow_debug: bool,
}

/// Run an `attestation` subcommand.
pub(crate) fn run(command: AttestationCommand) -> Result<()> {
    match command {
        AttestationCommand::Verify(args) => verify(args),
    }
}

fn verify(args: VerifyArgs) -> Result<()> {
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let at = match args.at.as_str() {
        "document" => {
            daas_attestation::parse(&bytes)
                .map_err(|e| failed(e.check(), Some(e.sui_abort_code()), &e))?
                .timestamp_ms
        }
        "now" => now_ms()?,
        other => {
            let t = humantime::parse_rfc3339_weak(other).with_context(|| {
                format!("--at {other:?}: expected `now`, `document` or an RFC 3339 time")
            })?;
            millis(t)?
        }
    };

    let mut anchors = vec![match &args.root {
        Some(path) => root_from_file(path)?,
        None => TrustAnchor::aws_nitro_root_g1(),
    }];
    if args.dev_root
        && let Ok(doc) = daas_attestation::parse(&bytes)
        && let Some(bundled) = doc.cabundle.first()
        && bundled.as_slice() != anchors[0].der()
    {
        match TrustAnchor::from_der(bundled.clone(), RootKind::Dev) {
            Ok(anchor) => anchors.push(anchor),
            Err(e) => tracing::warn!("--dev-root: the bundled root is unusable: {e}"),
        }
    }

    let verified = daas_attestation::verify(&bytes, &anchors, at)
        .map_err(|e| failed(e.check(), Some(e.sui_abort_code()), &e))?;
    let anchor = anchors
        .iter()
        .find(|a| a.kind() == verified.root)
        .unwrap_or(&anchors[0]);
    if verified.root == RootKind::Dev {
        tracing::warn!(
            "document chains to a DEV root ({}): no TEE stands behind it",
            hex::encode(anchor.fingerprint())
        );
    }

    let expected = match &args.expect_pcrs {
        Some(path) => Some(read_expected_pcrs(path)?),
        None => None,
    };
    match &expected {
        Some(expected_pcrs) => {
            let policy = Policy {
                expected_pcrs: expected_pcrs.clone(),
                allow_debug: args.allow_debug,
                now: at,
                // Offline check: certificate validity at `at` is the freshness bound.
                max_age_ms: u64::MAX,
                max_future_skew_ms: u64::MAX,
                nonce: None,
                binding: None,
            };
            policy::check(&verified, &policy).map_err(|e| failed(e.check(), None, &e))?;
        }
        None if verified.document.is_debug() && !args.allow_debug => {
            let e = policy::PolicyError::DebugDocument;
            return Err(failed(e.check(), None, &e));
        }
        None => {}
    }

    let out = serde_json::json!({
        "verified": true,
        "root": verified.root,
        "root_fingerprint": hex::encode(anchor.fingerprint()),
        "checked_at_ms": at,
        "debug": verified.document.is_debug(),
        "pcrs_checked": expected.is_some(),
        "document": verified.document,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// The error `main` prints: the check's stable name first, then the details.
fn failed(check: &str, sui_abort: Option<u64>, e: &dyn std::fmt::Display) -> anyhow::Error {
    match sui_abort {
        Some(code) => anyhow!("attestation check `{check}` failed (Sui would abort {code}): {e}"),
        None => anyhow!("attestation check `{check}` failed: {e}"),
    }
}

fn root_from_file(path: &Path) -> Result<TrustAnchor> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading --root {}", path.display()))?;
    let probe = TrustAnchor::from_pem(&pem, RootKind::Dev)
        .with_context(|| format!("--root {}", path.display()))?;
    if probe.fingerprint() == AWS_NITRO_ROOT_G1_SHA256 {
        return Ok(TrustAnchor::aws_nitro_root_g1());
    }
    tracing::warn!(
        "--root {} is not the AWS Nitro Enclaves root (fingerprint {}); treating it as a DEV root",
        path.display(),
        hex::encode(probe.fingerprint())
    );
    Ok(probe)
}

/// `{"PCR0": "hex", "PCR1": …, "PCR2": …}` or nitro-cli's `{"Measurements": {…}}`.
fn read_expected_pcrs(path: &Path) -> Result<ExpectedPcrs> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --expect-pcrs {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("--expect-pcrs {}: not JSON", path.display()))?;
    let map = json.get("Measurements").unwrap_or(&json);
    let pcr = |name: &str| -> Result<Vec<u8>> {
        let hex_str = map
            .get(name)
            .and_then(serde_json::Value::as_str)
            .with_context(|| format!("--expect-pcrs {}: no {name} string", path.display()))?;
        let bytes = hex::decode(hex_str.trim())
            .with_context(|| format!("--expect-pcrs {}: {name} is not hex", path.display()))?;
        if bytes.len() != policy::PCR_LEN {
            bail!(
                "--expect-pcrs {}: {name} is {} bytes, expected 48",
                path.display(),
                bytes.len()
            );
        }
        Ok(bytes)
    };
    Ok(ExpectedPcrs {
        pcr0: pcr("PCR0")?,
        pcr1: pcr("PCR1")?,
        pcr2: pcr("PCR2")?,
    })
}

/// The one clock read of this command (`--at now`).
fn now_ms() -> Result<UnixMillis> {
    millis(SystemTime::now())
}

fn millis(t: SystemTime) -> Result<UnixMillis> {
    let d = t.duration_since(UNIX_EPOCH).context("time before 1970")?;
    u64::try_from(d.as_millis()).context("time out of range")
}
