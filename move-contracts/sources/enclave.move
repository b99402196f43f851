/// Registration of the cluster's enclave (the TEE-hosted control plane) from an AWS Nitro attestation.
///
/// One PTB: `0x2::nitro_attestation::load_nitro_attestation(attestation_bytes, 0x6)` (the framework parses
/// the document and verifies its certificate chain against the clock), then
/// `k3s_daas::enclave::register_enclave(cluster, <result>, endpoint, 0x6)`.
///
/// `register_enclave` checks, in this order (abort code in brackets):
/// 1. the cluster is at this package's version [cluster::EWrongVersion];
/// 2. the sender is the cluster's `enclave_operator` [ENotEnclaveOperator]; without this, anyone running the
///    (public) approved image could register their own instance for this cluster and redirect workers;
/// 3. the endpoint is 1..=256 bytes [EInvalidEndpoint];
/// 4. none of PCR0, PCR1 and PCR2 of the document is all zero [EDebugAttestation]: a debug-mode enclave
///    (whose memory and console the host can read) reports zero image PCRs; refused before any comparison;
/// 5. the cluster has expected PCRs [EEnclaveNotConfigured] and PCR0/1/2 of the document equal them
///    [EPcrMismatch]; a PCR missing from the document reads as empty and never matches;
/// 6. the document timestamp is at most 5 minutes old [EAttestationStale] and at most 1 minute ahead of the
///    clock [EAttestationFromFuture];
/// 7. it is newer than the currently registered enclave's attestation [EAttestationNotNewer] (no replay of
///    an older document);
/// 8. user_data is present [EMissingUserData] and follows layout v1 (below): long enough for the fixed
///    header [EUserDataTooShort], magic `K3SDAAS` [EUserDataBadMagic], version 1
///    [EUserDataUnsupportedVersion], this cluster's id [EUserDataWrongCluster], and an endpoint equal to the
///    `endpoint` argument [EUserDataEndpointMismatch]: the enclave attests which cluster it serves, where,
///    and which CA its TLS certificates chain to;
/// 9. public_key is present and non-empty [EMissingPublicKey] (the enclave puts its CA's
///    SubjectPublicKeyInfo DER there).
/// It then stores a `cluster::Enclave` (with the attested CA hash) in the cluster, replacing any previous
/// one, and emits `EnclaveRegistered`.
///
/// user_data layout v1 (72 + endpoint bytes; Sui accepts at most 512, so the endpoint limit of 256 fits):
/// | offset | length | content |
/// |---|---|---|
/// | 0 | 8 | `b"K3SDAAS\x01"`: magic `K3SDAAS` and layout version 1 |
/// | 8 | 32 | `object::id_to_bytes(&cluster_id)` |
/// | 40 | 32 | SHA-256 of the DER of the enclave's CA certificate (`ca_sha256`) |
/// | 72 | rest | the endpoint, UTF-8, no length prefix (it runs to the end) |
///
/// PCRs are looked up by index, never by position. The NSM always reports all 16 PCRs (0-15, plus locked
/// application PCRs 16+). How many of them Sui's `load_nitro_attestation` returns depends on protocol flags:
/// the current parsing always includes the required PCRs 0-4 and 8 (even when zero) plus every other
/// non-zero one, sorted by index, so PCR0-2 of a debug document are present as zeros; an older parsing mode
/// dropped all-zero PCRs. Both are handled: zero values abort with EDebugAttestation, absent ones with
/// EPcrMismatch.
///
/// `load_nitro_attestation` cannot run in Move unit tests (its native is unavailable there), so every check
/// is a function over plain values, and `register_checked` does everything after field extraction.
module k3s_daas::enclave;

use k3s_daas::cluster::{Self, Cluster};
use std::string::String;
use sui::clock::Clock;
use sui::event;
use sui::nitro_attestation::{NitroAttestationDocument, PCREntry};

// ------------------------------------------------------------------------------------------------ constants

/// An attestation document may be at most 300_000 ms (5 minutes) old at registration.
const MAX_ATTESTATION_AGE_MS: u64 = 300_000;
/// An attestation document may be at most 60_000 ms (1 minute) ahead of the on-chain clock.
const MAX_CLOCK_SKEW_MS: u64 = 60_000;
/// Maximum endpoint length in bytes.
const MAX_ENDPOINT_LENGTH: u64 = 256;

/// user_data layout v1: the first 7 bytes.
const USER_DATA_MAGIC: vector<u8> = b"K3SDAAS";
/// user_data layout v1: byte 7, the layout version.
const USER_DATA_VERSION: u8 = 1;
/// user_data layout v1: offset of the cluster id (32 bytes).
const USER_DATA_CLUSTER_OFFSET: u64 = 8;
/// user_data layout v1: offset of the CA certificate's SHA-256 (32 bytes).
const USER_DATA_CA_OFFSET: u64 = 40;
/// user_data layout v1: offset of the endpoint, which runs to the end; also the fixed header's length.
const USER_DATA_ENDPOINT_OFFSET: u64 = 72;

// ------------------------------------------------------------------------------------------------ abort codes

/// The cluster has no expected PCRs yet (admin must call `cluster::set_expected_pcrs`).
const EEnclaveNotConfigured: u64 = 40;
/// PCR0, PCR1 or PCR2 of the document differs from the cluster's expected value (or is missing).
const EPcrMismatch: u64 = 41;
/// The document is more than `MAX_ATTESTATION_AGE_MS` older than the clock.
const EAttestationStale: u64 = 42;
/// The document is more than `MAX_CLOCK_SKEW_MS` ahead of the clock.
const EAttestationFromFuture: u64 = 43;
/// The document has no user_data.
const EMissingUserData: u64 = 44;
/// user_data names another cluster (bytes 8..40 are not this cluster's id).
const EUserDataWrongCluster: u64 = 45;
/// The document has no (or an empty) public_key.
const EMissingPublicKey: u64 = 46;
/// Endpoint empty or longer than `MAX_ENDPOINT_LENGTH` bytes.
const EInvalidEndpoint: u64 = 47;
/// The sender is not the cluster's `enclave_operator`.
const ENotEnclaveOperator: u64 = 48;
/// The document is not newer than the registered enclave's attestation.
const EAttestationNotNewer: u64 = 49;
/// PCR0, PCR1 or PCR2 of the document is all zero: a debug-mode enclave.
const EDebugAttestation: u64 = 50;
/// user_data is shorter than the 72-byte header of layout v1.
const EUserDataTooShort: u64 = 51;
/// user_data does not start with the magic `K3SDAAS`.
const EUserDataBadMagic: u64 = 52;
/// user_data has the magic but a layout version other than 1.
const EUserDataUnsupportedVersion: u64 = 53;
/// The endpoint in user_data differs from the `endpoint` argument.
const EUserDataEndpointMismatch: u64 = 54;

// ------------------------------------------------------------------------------------------------ events

/// An enclave was registered (or replaced) for the cluster. Everything here is public attestation data.
public struct EnclaveRegistered has copy, drop {
    cluster_id: ID,
    public_key: vector<u8>,
    endpoint: String,
    /// SHA-256 of the enclave CA certificate's DER, from user_data.
    ca_sha256: vector<u8>,
    attested_at_ms: u64,
    registered_at_ms: u64,
}

// ------------------------------------------------------------------------------------------------ entry point

/// Registers the enclave whose verified attestation document is `doc` (see the module comment for the
/// checks). Only the cluster's `enclave_operator` may call it.
public fun register_enclave(
    cluster: &mut Cluster,
    doc: NitroAttestationDocument,
    endpoint: String,
    clock: &Clock,
    ctx: &TxContext,
) {
    let pcrs = doc.pcrs();
    register_checked(
        cluster,
        pcr_value(pcrs, 0),
        pcr_value(pcrs, 1),
        pcr_value(pcrs, 2),
        *doc.timestamp(),
        *doc.user_data(),
        *doc.public_key(),
        endpoint,
        clock.timestamp_ms(),
        ctx.sender(),
    );
}

// ------------------------------------------------------------------------------------------------ checks

/// Everything `register_enclave` does after reading the document's fields.
public(package) fun register_checked(
    cluster: &mut Cluster,
    pcr0: vector<u8>,
    pcr1: vector<u8>,
    pcr2: vector<u8>,
    attested_at_ms: u64,
    user_data: Option<vector<u8>>,
    public_key: Option<vector<u8>>,
    endpoint: String,
    now_ms: u64,
    sender: address,
) {
    cluster.assert_version();
    assert!(sender == cluster.enclave_operator(), ENotEnclaveOperator);
    check_endpoint(&endpoint);
    check_not_debug(&pcr0, &pcr1, &pcr2);
    check_pcrs(
        &pcr0,
        &pcr1,
        &pcr2,
        cluster.expected_pcr0(),
        cluster.expected_pcr1(),
        cluster.expected_pcr2(),
    );
    check_freshness(attested_at_ms, now_ms);
    let current = cluster.enclave();
    if (current.is_some()) {
        check_newer(attested_at_ms, current.borrow().enclave_attested_at_ms());
    };
    let ca_sha256 = check_user_data(&user_data, object::id(cluster), &endpoint);
    let public_key = check_public_key(&public_key);

    event::emit(EnclaveRegistered {
        cluster_id: object::id(cluster),
        public_key,
        endpoint,
        ca_sha256,
        attested_at_ms,
        registered_at_ms: now_ms,
    });
    cluster.set_enclave(
        cluster::new_enclave(public_key, endpoint, ca_sha256, pcr0, pcr1, pcr2, attested_at_ms, now_ms),
    );
}

/// Value of PCR `index` in the document's list, looked up by index (the list is sorted by index but its
/// length depends on Sui's parsing mode); empty if absent.
fun pcr_value(pcrs: &vector<PCREntry>, index: u8): vector<u8> {
    let mut i = 0;
    let n = pcrs.length();
    while (i < n) {
        let entry = &pcrs[i];
        if (entry.index() == index) return *entry.value();
        i = i + 1;
    };
    vector[]
}

/// Refuses a debug-mode document: PCR0, PCR1 or PCR2 all zero (see `cluster::is_zero_pcr`).
public(package) fun check_not_debug(pcr0: &vector<u8>, pcr1: &vector<u8>, pcr2: &vector<u8>) {
    assert!(
        !cluster::is_zero_pcr(pcr0) && !cluster::is_zero_pcr(pcr1) && !cluster::is_zero_pcr(pcr2),
        EDebugAttestation,
    );
}

/// The expected PCRs must be configured, and PCR0/1/2 must equal them byte for byte.
public(package) fun check_pcrs(
    pcr0: &vector<u8>,
    pcr1: &vector<u8>,
    pcr2: &vector<u8>,
    expected0: &vector<u8>,
    expected1: &vector<u8>,
    expected2: &vector<u8>,
) {
    assert!(!expected0.is_empty() && !expected1.is_empty() && !expected2.is_empty(), EEnclaveNotConfigured);
    assert!(pcr0 == expected0 && pcr1 == expected1 && pcr2 == expected2, EPcrMismatch);
}

/// `now - 5 min <= attested_at <= now + 1 min` (written without overflow).
public(package) fun check_freshness(attested_at_ms: u64, now_ms: u64) {
    assert!(attested_at_ms <= now_ms || attested_at_ms - now_ms <= MAX_CLOCK_SKEW_MS, EAttestationFromFuture);
    assert!(attested_at_ms >= now_ms || now_ms - attested_at_ms <= MAX_ATTESTATION_AGE_MS, EAttestationStale);
}

/// A replacement must carry a strictly newer attestation than the registered one.
public(package) fun check_newer(attested_at_ms: u64, registered_attested_at_ms: u64) {
    assert!(attested_at_ms > registered_attested_at_ms, EAttestationNotNewer);
}

/// The user_data (layout v1, see the module comment) an enclave puts in its attestation to register for
/// `cluster_id` at `endpoint` with the CA certificate whose DER hashes to `ca_sha256` (32 bytes).
public(package) fun encode_user_data(cluster_id: ID, ca_sha256: vector<u8>, endpoint: &String): vector<u8> {
    let mut bytes = USER_DATA_MAGIC;
    bytes.push_back(USER_DATA_VERSION);
    bytes.append(object::id_to_bytes(&cluster_id));
    bytes.append(ca_sha256);
    bytes.append(*endpoint.as_bytes());
    bytes
}

/// Checks user_data against layout v1 for `cluster_id` and `endpoint`; returns the attested `ca_sha256`.
public(package) fun check_user_data(
    user_data: &Option<vector<u8>>,
    cluster_id: ID,
    endpoint: &String,
): vector<u8> {
    assert!(user_data.is_some(), EMissingUserData);
    let bytes = user_data.borrow();
    let n = bytes.length();
    assert!(n >= USER_DATA_ENDPOINT_OFFSET, EUserDataTooShort);
    assert!(slice(bytes, 0, USER_DATA_CLUSTER_OFFSET - 1) == USER_DATA_MAGIC, EUserDataBadMagic);
    assert!(bytes[USER_DATA_CLUSTER_OFFSET - 1] == USER_DATA_VERSION, EUserDataUnsupportedVersion);
    assert!(
        slice(bytes, USER_DATA_CLUSTER_OFFSET, USER_DATA_CA_OFFSET) == object::id_to_bytes(&cluster_id),
        EUserDataWrongCluster,
    );
    assert!(slice(bytes, USER_DATA_ENDPOINT_OFFSET, n) == *endpoint.as_bytes(), EUserDataEndpointMismatch);
    slice(bytes, USER_DATA_CA_OFFSET, USER_DATA_ENDPOINT_OFFSET)
}

/// `bytes[from..to]` (the caller keeps `from <= to <= bytes.length()`).
fun slice(bytes: &vector<u8>, from: u64, to: u64): vector<u8> {
    let mut out = vector[];
    let mut i = from;
    while (i < to) {
        out.push_back(bytes[i]);
        i = i + 1;
    };
    out
}

/// Returns the public key bytes; aborts if absent or empty.
public(package) fun check_public_key(public_key: &Option<vector<u8>>): vector<u8> {
    assert!(public_key.is_some() && !public_key.borrow().is_empty(), EMissingPublicKey);
    *public_key.borrow()
}

public(package) fun check_endpoint(endpoint: &String) {
    let n = endpoint.length();
    assert!(n > 0 && n <= MAX_ENDPOINT_LENGTH, EInvalidEndpoint);
}

// ------------------------------------------------------------------------------------------------ tests

#[test_only]
/// Event constructor for the golden BCS vectors (`tests/golden_tests.move`); events can only be packed here.
public fun enclave_registered_for_testing(
    cluster_id: ID,
    public_key: vector<u8>,
    endpoint: String,
    ca_sha256: vector<u8>,
    attested_at_ms: u64,
    registered_at_ms: u64,
): EnclaveRegistered {
    EnclaveRegistered { cluster_id, public_key, endpoint, ca_sha256, attested_at_ms, registered_at_ms }
}
