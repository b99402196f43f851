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
/// 4. the cluster has expected PCRs [EEnclaveNotConfigured] and PCR0/1/2 of the document equal them
///    [EPcrMismatch] (AWS leaves all-zero PCRs, i.e. debug-mode enclaves, out of the list: they never match);
/// 5. the document timestamp is at most 5 minutes old [EAttestationStale] and at most 1 minute ahead of the
///    clock [EAttestationFromFuture];
/// 6. it is newer than the currently registered enclave's attestation [EAttestationNotNewer] (no replay of
///    an older document);
/// 7. user_data is present [EMissingUserData] and equals `expected_user_data(cluster_id, endpoint)`, i.e.
///    the 32 bytes of the cluster object id followed by the UTF-8 bytes of `endpoint` [EUserDataMismatch]:
///    the enclave attests which cluster it serves and where;
/// 8. public_key is present and non-empty [EMissingPublicKey].
/// It then stores a `cluster::Enclave` in the cluster (replacing any previous one) and emits `EnclaveRegistered`.
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
/// user_data is not `cluster id bytes (32) || endpoint bytes`.
const EUserDataMismatch: u64 = 45;
/// The document has no (or an empty) public_key.
const EMissingPublicKey: u64 = 46;
/// Endpoint empty or longer than `MAX_ENDPOINT_LENGTH` bytes.
const EInvalidEndpoint: u64 = 47;
/// The sender is not the cluster's `enclave_operator`.
const ENotEnclaveOperator: u64 = 48;
/// The document is not newer than the registered enclave's attestation.
const EAttestationNotNewer: u64 = 49;

// ------------------------------------------------------------------------------------------------ events

/// An enclave was registered (or replaced) for the cluster. Everything here is public attestation data.
public struct EnclaveRegistered has copy, drop {
    cluster_id: ID,
    public_key: vector<u8>,
    endpoint: String,
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
    check_user_data(&user_data, &expected_user_data(object::id(cluster), &endpoint));
    let public_key = check_public_key(&public_key);

    event::emit(EnclaveRegistered {
        cluster_id: object::id(cluster),
        public_key,
        endpoint,
        attested_at_ms,
        registered_at_ms: now_ms,
    });
    cluster.set_enclave(
        cluster::new_enclave(public_key, endpoint, pcr0, pcr1, pcr2, attested_at_ms, now_ms),
    );
}

/// Value of PCR `index` in the document's list; empty if absent (AWS omits all-zero PCRs).
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

/// The user_data an enclave must put in its attestation to register for `cluster_id` at `endpoint`:
/// `object::id_to_bytes(&cluster_id)` (32 bytes) followed by the UTF-8 bytes of `endpoint` (no separator,
/// no length prefix; the id part has a fixed length).
public(package) fun expected_user_data(cluster_id: ID, endpoint: &String): vector<u8> {
    let mut bytes = object::id_to_bytes(&cluster_id);
    bytes.append(*endpoint.as_bytes());
    bytes
}

public(package) fun check_user_data(user_data: &Option<vector<u8>>, expected: &vector<u8>) {
    assert!(user_data.is_some(), EMissingUserData);
    assert!(user_data.borrow() == expected, EUserDataMismatch);
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
    attested_at_ms: u64,
    registered_at_ms: u64,
): EnclaveRegistered {
    EnclaveRegistered { cluster_id, public_key, endpoint, attested_at_ms, registered_at_ms }
}
