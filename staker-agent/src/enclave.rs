//! `staker-agent admin set-pcrs` and `admin register-enclave`: the enclave's registration on
//! chain. Both check what the chain would refuse before anything is signed, so that a mistake
//! costs no gas: all-zero or malformed PCRs; a document the chain's `register_enclave` would
//! abort on (debug mode, other PCRs, user_data for another cluster or endpoint, too old).

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use daas_attestation::binding::Binding;
use daas_chain::{Chain, GrpcChain, tx};
use daas_chain_types::{Cluster, PackageEvent, consts};
use daas_wallet::WalletKey;
use serde_json::{Value, json};

use crate::chain::{block_on, connect, event, held_admin_cap, key, now_ms, print, submit};
use crate::cli::{Global, RegisterEnclaveArgs, SetPcrsArgs};

/// Largest PCR file read (a nitro-cli measurement file is well under 1 KiB).
const MAX_PCR_FILE: u64 = 64 * 1024;
/// Largest document file read: a COSE document is at most ~16 KiB (hex doubles that).
const MAX_DOCUMENT_FILE: u64 = 64 * 1024;

/// Expected PCR0, PCR1, PCR2 (48 bytes each, none all zero).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pcrs(pub(crate) [Vec<u8>; 3]);

/// Parses a PCR file: `{"PCR0": hex, "PCR1": hex, "PCR2": hex}` or nitro-cli's
/// `{"Measurements": {"PCR0": …}}`; hex may carry a `0x` prefix. Refuses values that are not
/// 48 bytes or are all zero (a debug-mode enclave's PCRs).
pub(crate) fn parse_pcrs(text: &str) -> Result<Pcrs> {
    let json: Value = serde_json::from_str(text).context("the PCR file is not JSON")?;
    let map = json.get("Measurements").unwrap_or(&json);
    if !map.is_object() {
        bail!("the PCR file must be a JSON object with PCR0, PCR1 and PCR2");
    }
    let one = |name: &str| -> Result<Vec<u8>> {
        let text = map
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("the PCR file has no {name} (a hex string)"))?;
        let text = text.trim();
        let hex_digits = text.strip_prefix("0x").unwrap_or(text);
        let bytes =
            hex::decode(hex_digits).with_context(|| format!("{name} is not hex: {text:?}"))?;
        if bytes.len() != consts::PCR_LENGTH {
            bail!(
                "{name} is {} bytes; a PCR is {} bytes (96 hex digits, SHA-384)",
                bytes.len(),
                consts::PCR_LENGTH
            );
        }
        if consts::is_zero_pcr(&bytes) {
            bail!(
                "{name} is all zero: that is what a debug-mode enclave reports, and such an \
                 enclave must never be approved (its memory and console are open to the host)"
            );
        }
        Ok(bytes)
    };
    Ok(Pcrs([one("PCR0")?, one("PCR1")?, one("PCR2")?]))
}

fn read_bounded(path: &Path, max: u64, what: &str) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading the {what} {}", path.display()))?
        .len();
    if len > max {
        bail!(
            "the {what} {} is {len} bytes; at most {max} expected",
            path.display()
        );
    }
    std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
}

/// The document bytes of a file: raw COSE, or hex text of it.
pub(crate) fn document_bytes(file: &[u8]) -> Vec<u8> {
    match std::str::from_utf8(file).map(str::trim) {
        Ok(text) if !text.is_empty() && text.bytes().all(|b| b.is_ascii_hexdigit()) => {
            hex::decode(text).unwrap_or_else(|_| file.to_vec())
        }
        _ => file.to_vec(),
    }
}

/// `admin set-pcrs --pcrs FILE`.
pub(crate) fn set_pcrs(global: &Global, args: SetPcrsArgs) -> Result<()> {
    let text = read_bounded(&args.pcrs, MAX_PCR_FILE, "PCR file")?;
    let text = String::from_utf8(text).context("the PCR file is not UTF-8")?;
    let pcrs = parse_pcrs(&text).with_context(|| format!("PCR file {}", args.pcrs.display()))?;
    block_on(async {
        let key = key(global)?;
        let chain = connect(&args.chain).await?;
        let cap = held_admin_cap(&chain, &key, args.admin_cap).await?;
        let cluster_id = chain.config().cluster;
        let gas = chain.gas_for(key.address(), 0).await?;
        let [p0, p1, p2] = &pcrs.0;
        let t = tx::set_expected_pcrs(chain.config(), &gas, cap.object, [p0, p1, p2])?;
        let executed = submit(&chain, &key, "admin set-pcrs", t).await?;
        let changed = event(&executed, "PcrsChanged", |e| match e {
            PackageEvent::PcrsChanged(c) => Some(c.clone()),
            _ => None,
        })?;
        if [&changed.pcr0, &changed.pcr1, &changed.pcr2] != [p0, p1, p2] {
            bail!("the transaction's PcrsChanged event names other PCRs than requested");
        }
        let cleared = if changed.enclave_cleared {
            "\nThe registered enclave was removed: it must register again (admin register-enclave)."
        } else {
            ""
        };
        print(
            global,
            json!({
                "cluster": cluster_id.to_string(),
                "pcr0": hex::encode(p0), "pcr1": hex::encode(p1), "pcr2": hex::encode(p2),
                "enclave_cleared": changed.enclave_cleared,
                "digest": executed.digest.to_string(), "checkpoint": executed.checkpoint,
            }),
            format!(
                "Set the expected enclave PCRs of cluster {cluster_id}:\nPCR0  {}\nPCR1  {}\nPCR2  {}{cleared}\ntransaction   {}",
                hex::encode(p0),
                hex::encode(p1),
                hex::encode(p2),
                executed.digest
            ),
        );
        Ok(())
    })
}

/// What `register_enclave` would refuse, checked off chain against `cluster` at local time
/// `now_ms` (the chain uses its own clock; the two agree within seconds on a healthy network).
pub(crate) fn precheck_document(
    document: &[u8],
    cluster: &Cluster,
    endpoint: &str,
    sender: daas_chain_types::Address,
    now_ms: u64,
) -> Result<Binding> {
    if sender != cluster.enclave_operator {
        bail!(
            "only the cluster's enclave operator {} may register the enclave, not your key {sender}: select its key with --keystore/--key (or have the AdminCap holder change the operator)",
            cluster.enclave_operator
        );
    }
    if endpoint.is_empty() || endpoint.len() > consts::MAX_ENDPOINT_LENGTH {
        bail!(
            "the endpoint must be 1 to {} bytes",
            consts::MAX_ENDPOINT_LENGTH
        );
    }
    let expected = [
        &cluster.expected_pcr0,
        &cluster.expected_pcr1,
        &cluster.expected_pcr2,
    ];
    if expected.iter().any(|p| p.is_empty()) {
        bail!(
            "cluster {} has no expected PCRs yet: the AdminCap holder sets them first (admin set-pcrs)",
            cluster.id
        );
    }
    let doc = daas_attestation::parse(document)
        .context("the document is not a valid Nitro attestation document")?;
    for (i, want) in expected.iter().enumerate() {
        let got = doc.pcr(i as u8).unwrap_or_default();
        if consts::is_zero_pcr(got) {
            bail!(
                "the document comes from a debug-mode enclave (PCR{i} is all zero); the chain refuses it"
            );
        }
        if got != want.as_slice() {
            bail!(
                "PCR{i} of the document ({}) differs from the cluster's expected PCR{i} ({})",
                hex::encode(got),
                hex::encode(want)
            );
        }
    }
    let user_data = doc
        .user_data
        .as_deref()
        .ok_or_else(|| anyhow!("the document has no user_data (the K3s-DaaS binding)"))?;
    let binding = Binding::decode(user_data)
        .map_err(|e| anyhow!("the document's user_data is not a K3s-DaaS v1 binding: {e}"))?;
    if binding.cluster_id != *cluster.id.as_bytes() {
        bail!(
            "the document is bound to cluster 0x{}, not {}",
            hex::encode(binding.cluster_id),
            cluster.id
        );
    }
    if binding.endpoint != endpoint {
        bail!(
            "the document is bound to endpoint {:?}, not {endpoint:?}",
            binding.endpoint
        );
    }
    if doc.public_key.as_deref().is_none_or(<[u8]>::is_empty) {
        bail!("the document carries no public key (the enclave CA's public key)");
    }
    let t = doc.timestamp_ms;
    if t > now_ms && t - now_ms > consts::MAX_CLOCK_SKEW_MS {
        bail!(
            "the document is {} s ahead of this machine's clock; the chain accepts at most 60 s",
            (t - now_ms) / 1000
        );
    }
    if t < now_ms && now_ms - t > consts::MAX_ATTESTATION_AGE_MS {
        bail!(
            "the document is {} s old; the chain accepts at most 5 minutes: fetch a fresh one",
            (now_ms - t) / 1000
        );
    }
    if let Some(current) = &cluster.enclave
        && t <= current.attested_at_ms
    {
        bail!("the document is not newer than the registered enclave's attestation");
    }
    Ok(binding)
}

/// `admin register-enclave (--document FILE --endpoint URL | --master URL)`.
pub(crate) fn register(global: &Global, args: RegisterEnclaveArgs) -> Result<()> {
    let from_file = match &args.document {
        Some(path) => Some(document_bytes(&read_bounded(
            path,
            MAX_DOCUMENT_FILE,
            "attestation document",
        )?)),
        None => None,
    };
    block_on(async {
        let document = match (from_file, &args.master) {
            (Some(document), _) => document,
            (None, Some(master)) => fetch_document(master).await?,
            (None, None) => bail!("give --document FILE or --master URL"),
        };
        let endpoint = match &args.endpoint {
            Some(e) => e.clone(),
            None => bound_endpoint(&document)?,
        };
        let key = key(global)?;
        let chain = connect(&args.chain).await?;
        let cluster = chain.cluster().await?.value.cluster;
        precheck_document(&document, &cluster, &endpoint, key.address(), now_ms())?;
        register_checked(global, &chain, &key, &document, &endpoint).await
    })
}

/// A fresh document from the master's `GET /attestation` (for a random nonce). Nothing in it
/// is trusted here: the chain verifies it in the registration transaction.
async fn fetch_document(master: &str) -> Result<Vec<u8>> {
    use base64ct::Encoding;
    let endpoint = daas_verify_master::Endpoint::parse(master)?;
    let mut nonce = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
    let (answer, _) = daas_verify_master::fetch_attestation(&endpoint, &nonce).await?;
    base64ct::Base64::decode_vec(&answer.document)
        .map_err(|_| anyhow!("the master's document is not base64"))
}

/// The endpoint a document's user_data (layout v1) binds.
fn bound_endpoint(document: &[u8]) -> Result<String> {
    let doc = daas_attestation::parse(document)
        .context("the document is not a valid Nitro attestation document")?;
    let user_data = doc
        .user_data
        .ok_or_else(|| anyhow!("the document has no user_data (the K3s-DaaS binding)"))?;
    Ok(daas_attestation::binding::Binding::decode(&user_data)
        .map_err(|e| anyhow!("the document's user_data is not a K3s-DaaS v1 binding: {e}"))?
        .endpoint)
}

async fn register_checked(
    global: &Global,
    chain: &GrpcChain,
    key: &WalletKey,
    document: &[u8],
    endpoint: &str,
) -> Result<()> {
    let cluster_id = chain.config().cluster;
    let gas = chain.gas_for(key.address(), 0).await?;
    let t = tx::register_enclave(chain.config(), &gas, document, endpoint)?;
    let executed = submit(chain, key, "admin register-enclave", t).await?;
    let registered = event(&executed, "EnclaveRegistered", |e| match e {
        PackageEvent::EnclaveRegistered(r) => Some(r.clone()),
        _ => None,
    })?;
    if registered.endpoint != endpoint || registered.cluster_id != cluster_id {
        bail!("the transaction's EnclaveRegistered event names another cluster or endpoint");
    }
    print(
        global,
        json!({
            "cluster": cluster_id.to_string(), "endpoint": registered.endpoint,
            "ca_sha256": hex::encode(&registered.ca_sha256),
            "attested_at_ms": registered.attested_at_ms,
            "registered_at_ms": registered.registered_at_ms,
            "digest": executed.digest.to_string(), "checkpoint": executed.checkpoint,
        }),
        format!(
            "Registered the enclave of cluster {cluster_id} at {}.\nCA sha256     {}\nattested at   {} ms\ntransaction   {}",
            registered.endpoint,
            hex::encode(&registered.ca_sha256),
            registered.attested_at_ms,
            executed.digest
        ),
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex48(b: u8) -> String {
        hex::encode([b; 48])
    }

    #[test]
    fn pcr_files_in_both_formats() {
        let plain = format!(
            r#"{{"PCR0":"{}","PCR1":"0x{}","PCR2":"{}"}}"#,
            hex48(1),
            hex48(2),
            hex48(3)
        );
        let nitro_cli = format!(
            r#"{{"Measurements":{{"HashAlgorithm":"Sha384 {{ ... }}","PCR0":"{}","PCR1":"{}","PCR2":"{}"}}}}"#,
            hex48(1),
            hex48(2),
            hex48(3)
        );
        let want = Pcrs([vec![1; 48], vec![2; 48], vec![3; 48]]);
        assert_eq!(parse_pcrs(&plain).expect("plain"), want);
        assert_eq!(parse_pcrs(&nitro_cli).expect("nitro-cli"), want);
    }

    #[test]
    fn bad_pcr_files_are_refused_with_the_reason() {
        let cases = [
            (
                format!(
                    r#"{{"PCR0":"{}","PCR1":"{}","PCR2":"{}"}}"#,
                    hex48(0),
                    hex48(2),
                    hex48(3)
                ),
                "PCR0 is all zero",
            ),
            (
                format!(r#"{{"PCR0":"{}","PCR1":"{}"}}"#, hex48(1), hex48(2)),
                "no PCR2",
            ),
            (
                format!(
                    r#"{{"PCR0":"{}","PCR1":"abcd","PCR2":"{}"}}"#,
                    hex48(1),
                    hex48(3)
                ),
                "PCR1 is 2 bytes",
            ),
            (
                format!(
                    r#"{{"PCR0":"zz","PCR1":"{}","PCR2":"{}"}}"#,
                    hex48(2),
                    hex48(3)
                ),
                "PCR0 is not hex",
            ),
            ("[1,2]".to_owned(), "JSON object"),
            ("not json".to_owned(), "not JSON"),
        ];
        for (text, want) in cases {
            let err = format!("{:#}", parse_pcrs(&text).expect_err(want));
            assert!(err.contains(want), "{want}: {err}");
        }
    }

    #[test]
    fn documents_are_read_raw_or_as_hex() {
        assert_eq!(document_bytes(&[0x84, 0x44, 0xa1]), vec![0x84, 0x44, 0xa1]);
        assert_eq!(document_bytes(b"8444a1\n"), vec![0x84, 0x44, 0xa1]);
    }
}
