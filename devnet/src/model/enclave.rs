//! `k3s_daas::enclave::register_enclave`, modelled after `move-contracts/sources/enclave.move`
//! line by line: the checks of `register_checked` in the same order, each abort raised from the
//! Move function that raises it, the same event and the same write of `Cluster.enclave`.

use daas_chain_types::abort::AbortCode;
use daas_chain_types::consts::{
    self, MAX_ATTESTATION_AGE_MS, MAX_CLOCK_SKEW_MS, MAX_ENDPOINT_LENGTH, USER_DATA_CA_OFFSET,
    USER_DATA_CLUSTER_OFFSET, USER_DATA_ENDPOINT_OFFSET, USER_DATA_MAGIC,
};
use daas_chain_types::events::EnclaveRegistered;
use daas_chain_types::objects::NitroAttestationDocument;
use daas_chain_types::{Address, Cluster, Enclave, Package, PackageEvent};

use super::{Args, CallCtx, Function, Kind, Loc, Param, cluster};
use crate::exec::Failure;
use crate::exec::runtime::Value;

const M: &str = daas_chain_types::package::MODULE_ENCLAVE;

// Declaration order of the functions in enclave.move (test-only functions excluded).
const REGISTER_CHECKED: Loc = Loc::pkg(M, "register_checked", 1);
const CHECK_NOT_DEBUG: Loc = Loc::pkg(M, "check_not_debug", 3);
const CHECK_PCRS: Loc = Loc::pkg(M, "check_pcrs", 4);
const CHECK_FRESHNESS: Loc = Loc::pkg(M, "check_freshness", 5);
const CHECK_NEWER: Loc = Loc::pkg(M, "check_newer", 6);
const CHECK_USER_DATA: Loc = Loc::pkg(M, "check_user_data", 8);
const CHECK_PUBLIC_KEY: Loc = Loc::pkg(M, "check_public_key", 10);
const CHECK_ENDPOINT: Loc = Loc::pkg(M, "check_endpoint", 11);

/// `enclave::register_enclave(&mut Cluster, NitroAttestationDocument, String, &Clock,
/// &TxContext)`.
pub(super) fn function(name: &str) -> Option<&'static Function> {
    static REGISTER_ENCLAVE_FN: Function = Function {
        params: &[
            Param::Mut(Kind::Cluster),
            Param::Val(Kind::NitroDocument),
            Param::String,
            Param::Ref(Kind::Clock),
        ],
        type_params: 0,
        handler: register_enclave,
    };
    (name == daas_chain_types::package::FN_REGISTER_ENCLAVE).then_some(&REGISTER_ENCLAVE_FN)
}

/// `register_enclave`: reads the document's fields, then `register_checked`.
fn register_enclave(ctx: &mut CallCtx<'_, '_>, args: &mut Args) -> Result<Vec<Value>, Failure> {
    let pkg = ctx.package;
    let mut cluster: Cluster = args.decode(0)?;
    let doc: NitroAttestationDocument = args.decode_struct(1)?;
    let endpoint = args.string(2)?;
    let pcr = |index| doc.pcr(index).map(<[u8]>::to_vec).unwrap_or_default();
    let fields = Fields {
        pcr0: pcr(0),
        pcr1: pcr(1),
        pcr2: pcr(2),
        attested_at_ms: doc.timestamp,
        user_data: doc.user_data.clone(),
        public_key: doc.public_key.clone(),
    };
    let event = register_checked(&pkg, &mut cluster, fields, endpoint, ctx.now_ms, ctx.sender)?;
    args.store(0, &cluster)?;
    ctx.emit(PackageEvent::EnclaveRegistered(event))?;
    Ok(Vec::new())
}

/// The document fields `register_enclave` passes to `register_checked` (`pcr_value` gives an
/// empty vector for an absent PCR).
struct Fields {
    pcr0: Vec<u8>,
    pcr1: Vec<u8>,
    pcr2: Vec<u8>,
    attested_at_ms: u64,
    user_data: Option<Vec<u8>>,
    public_key: Option<Vec<u8>>,
}

/// `register_checked`: every check, then the new `Enclave` in the cluster; returns the event.
fn register_checked(
    pkg: &Package,
    cluster: &mut Cluster,
    f: Fields,
    endpoint: String,
    now_ms: u64,
    sender: Address,
) -> Result<EnclaveRegistered, Failure> {
    cluster::assert_version(pkg, cluster)?;
    if sender != cluster.enclave_operator {
        return Err(REGISTER_CHECKED.abort(pkg, AbortCode::NotEnclaveOperator.code()));
    }
    check_endpoint(pkg, &endpoint)?;
    check_not_debug(pkg, &f.pcr0, &f.pcr1, &f.pcr2)?;
    check_pcrs(pkg, cluster, &f.pcr0, &f.pcr1, &f.pcr2)?;
    check_freshness(pkg, f.attested_at_ms, now_ms)?;
    if let Some(current) = &cluster.enclave {
        check_newer(pkg, f.attested_at_ms, current.attested_at_ms)?;
    }
    let ca_sha256 = check_user_data(pkg, f.user_data.as_deref(), cluster.id, &endpoint)?;
    let public_key = check_public_key(pkg, f.public_key.as_deref())?;

    let event = EnclaveRegistered {
        cluster_id: cluster.id,
        public_key: public_key.clone(),
        endpoint: endpoint.clone(),
        ca_sha256: ca_sha256.clone(),
        attested_at_ms: f.attested_at_ms,
        registered_at_ms: now_ms,
    };
    cluster.enclave = Some(Enclave {
        public_key,
        endpoint,
        ca_sha256,
        pcr0: f.pcr0,
        pcr1: f.pcr1,
        pcr2: f.pcr2,
        attested_at_ms: f.attested_at_ms,
        registered_at_ms: now_ms,
    });
    Ok(event)
}

/// `check_not_debug`: none of PCR0/1/2 is all zero (`cluster::is_zero_pcr`).
fn check_not_debug(pkg: &Package, pcr0: &[u8], pcr1: &[u8], pcr2: &[u8]) -> Result<(), Failure> {
    if [pcr0, pcr1, pcr2].into_iter().any(consts::is_zero_pcr) {
        return Err(CHECK_NOT_DEBUG.abort(pkg, AbortCode::DebugAttestation.code()));
    }
    Ok(())
}

/// `check_pcrs`: the expected PCRs are configured and PCR0/1/2 equal them.
fn check_pcrs(
    pkg: &Package,
    cluster: &Cluster,
    pcr0: &[u8],
    pcr1: &[u8],
    pcr2: &[u8],
) -> Result<(), Failure> {
    let (e0, e1, e2) = (
        &cluster.expected_pcr0,
        &cluster.expected_pcr1,
        &cluster.expected_pcr2,
    );
    if e0.is_empty() || e1.is_empty() || e2.is_empty() {
        return Err(CHECK_PCRS.abort(pkg, AbortCode::EnclaveNotConfigured.code()));
    }
    if pcr0 != e0.as_slice() || pcr1 != e1.as_slice() || pcr2 != e2.as_slice() {
        return Err(CHECK_PCRS.abort(pkg, AbortCode::PcrMismatch.code()));
    }
    Ok(())
}

/// `check_freshness`: `now - 5 min <= attested_at <= now + 1 min`.
fn check_freshness(pkg: &Package, attested_at_ms: u64, now_ms: u64) -> Result<(), Failure> {
    if attested_at_ms > now_ms && attested_at_ms - now_ms > MAX_CLOCK_SKEW_MS {
        return Err(CHECK_FRESHNESS.abort(pkg, AbortCode::AttestationFromFuture.code()));
    }
    if attested_at_ms < now_ms && now_ms - attested_at_ms > MAX_ATTESTATION_AGE_MS {
        return Err(CHECK_FRESHNESS.abort(pkg, AbortCode::AttestationStale.code()));
    }
    Ok(())
}

/// `check_newer`: strictly newer than the registered enclave's attestation.
fn check_newer(pkg: &Package, attested_at_ms: u64, registered: u64) -> Result<(), Failure> {
    if attested_at_ms <= registered {
        return Err(CHECK_NEWER.abort(pkg, AbortCode::AttestationNotNewer.code()));
    }
    Ok(())
}

/// `check_user_data`: layout v1 for `cluster_id` and `endpoint`; returns the CA hash.
fn check_user_data(
    pkg: &Package,
    user_data: Option<&[u8]>,
    cluster_id: Address,
    endpoint: &str,
) -> Result<Vec<u8>, Failure> {
    let abort = |code: AbortCode| CHECK_USER_DATA.abort(pkg, code.code());
    let Some(bytes) = user_data else {
        return Err(abort(AbortCode::MissingUserData));
    };
    if bytes.len() < USER_DATA_ENDPOINT_OFFSET {
        return Err(abort(AbortCode::UserDataTooShort));
    }
    let version_at = USER_DATA_CLUSTER_OFFSET - 1;
    if bytes[..version_at] != USER_DATA_MAGIC[..version_at] {
        return Err(abort(AbortCode::UserDataBadMagic));
    }
    if bytes[version_at] != USER_DATA_MAGIC[version_at] {
        return Err(abort(AbortCode::UserDataUnsupportedVersion));
    }
    if bytes[USER_DATA_CLUSTER_OFFSET..USER_DATA_CA_OFFSET] != *cluster_id.as_bytes() {
        return Err(abort(AbortCode::UserDataWrongCluster));
    }
    if bytes[USER_DATA_ENDPOINT_OFFSET..] != *endpoint.as_bytes() {
        return Err(abort(AbortCode::UserDataEndpointMismatch));
    }
    Ok(bytes[USER_DATA_CA_OFFSET..USER_DATA_ENDPOINT_OFFSET].to_vec())
}

/// `check_public_key`: present and non-empty.
fn check_public_key(pkg: &Package, public_key: Option<&[u8]>) -> Result<Vec<u8>, Failure> {
    match public_key {
        Some(key) if !key.is_empty() => Ok(key.to_vec()),
        _ => Err(CHECK_PUBLIC_KEY.abort(pkg, AbortCode::MissingPublicKey.code())),
    }
}

/// `check_endpoint`: 1..=256 bytes.
fn check_endpoint(pkg: &Package, endpoint: &str) -> Result<(), Failure> {
    if endpoint.is_empty() || endpoint.len() > MAX_ENDPOINT_LENGTH {
        return Err(CHECK_ENDPOINT.abort(pkg, AbortCode::InvalidEndpoint.code()));
    }
    Ok(())
}
