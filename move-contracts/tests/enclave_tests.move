/// Tests of `k3s_daas::enclave`. `load_nitro_attestation` aborts in unit tests, so `register_enclave` itself
/// cannot run here; these tests cover the pure checks and `register_checked`, which is everything
/// `register_enclave` does after reading the document's fields.
#[test_only]
module k3s_daas::enclave_tests;

use k3s_daas::cluster::{Self, Cluster, AdminCap};
use k3s_daas::enclave;
use k3s_daas::test_common::{Self as tc, admin, bob, pcr, t0};
use std::string::String;
use std::unit_test::assert_eq;
use sui::event;
use sui::test_scenario::{Self as ts, Scenario};

const MIN_MS: u64 = 60_000;
const MAX_U64: u64 = 18_446_744_073_709_551_615;

fun endpoint(): String { b"https://master.example.com:6443".to_string() }

fun pubkey(): vector<u8> { x"0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20" }

/// SHA-256 of the enclave's CA certificate (any 32 bytes for these tests).
fun ca(): vector<u8> { x"ca0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1eca" }

/// user_data layout v1 for `cluster` at `endpoint()` with CA hash `ca()`.
fun user_data_for(cluster: &Cluster): vector<u8> {
    enclave::encode_user_data(object::id(cluster), ca(), &endpoint())
}

/// `register_checked` with valid PCRs, time and public key and the given user_data.
fun register_with_user_data(cluster: &mut Cluster, user_data: Option<vector<u8>>) {
    enclave::register_checked(
        cluster, pcr(1), pcr(2), pcr(3), t0(), user_data, option::some(pubkey()), endpoint(), t0(), admin(),
    );
}

/// Cluster from init with expected PCRs pcr(1), pcr(2), pcr(3); next tx as ADMIN (the enclave operator).
fun configured(): Scenario {
    let mut s = tc::begin();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_expected_pcrs(&cap, &mut cluster, pcr(1), pcr(2), pcr(3));
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.next_tx(admin());
    s
}

/// Registers with a valid document attested at `attested_at_ms`, at clock time `now_ms`, as `sender`.
fun register(cluster: &mut Cluster, attested_at_ms: u64, now_ms: u64, sender: address) {
    let user_data = user_data_for(cluster);
    enclave::register_checked(
        cluster,
        pcr(1),
        pcr(2),
        pcr(3),
        attested_at_ms,
        option::some(user_data),
        option::some(pubkey()),
        endpoint(),
        now_ms,
        sender,
    );
}

// ------------------------------------------------------------------------------------------------ register_checked

#[test]
fun register_stores_enclave_and_emits_event() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    register(&mut cluster, t0() - 1_000, t0(), admin());
    assert_eq!(event::events_by_type<enclave::EnclaveRegistered>().length(), 1);
    let e = cluster.enclave().borrow();
    assert_eq!(*e.enclave_public_key(), pubkey());
    assert_eq!(*e.enclave_endpoint(), endpoint());
    assert_eq!(*e.enclave_ca_sha256(), ca());
    assert_eq!(e.enclave_attested_at_ms(), t0() - 1_000);
    assert_eq!(e.enclave_registered_at_ms(), t0());
    ts::return_shared(cluster);
    s.end();
}

#[test]
fun newer_attestation_replaces_enclave() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    register(&mut cluster, t0(), t0(), admin());
    register(&mut cluster, t0() + 1, t0() + 10, admin());
    assert_eq!(cluster.enclave().borrow().enclave_attested_at_ms(), t0() + 1);
    ts::return_shared(cluster);
    s.end();
}

#[test, expected_failure(abort_code = enclave::EAttestationNotNewer)]
fun replaying_same_attestation_aborts() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    register(&mut cluster, t0(), t0(), admin());
    register(&mut cluster, t0(), t0() + 10, admin());
    abort 0xDEAD
}

#[test]
fun changing_pcrs_clears_enclave() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    register(&mut cluster, t0(), t0(), admin());
    assert!(cluster.enclave().is_some());
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_expected_pcrs(&cap, &mut cluster, pcr(4), pcr(5), pcr(6));
    assert!(cluster.enclave().is_none());
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.end();
}

#[test, expected_failure(abort_code = enclave::ENotEnclaveOperator)]
fun register_by_non_operator_aborts() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    register(&mut cluster, t0(), t0(), bob());
    abort 0xDEAD
}

#[test]
fun register_by_new_operator() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    let cap = s.take_from_sender<AdminCap>();
    cluster::set_enclave_operator(&cap, &mut cluster, bob());
    register(&mut cluster, t0(), t0(), bob());
    assert!(cluster.enclave().is_some());
    s.return_to_sender(cap);
    ts::return_shared(cluster);
    s.end();
}

#[test, expected_failure(abort_code = enclave::EEnclaveNotConfigured)]
fun register_without_expected_pcrs_aborts() {
    let mut s = tc::begin(); // no set_expected_pcrs
    let mut cluster = s.take_shared<Cluster>();
    register(&mut cluster, t0(), t0(), admin());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = enclave::EPcrMismatch)]
fun register_with_wrong_pcr_aborts() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    let user_data = user_data_for(&cluster);
    enclave::register_checked(
        &mut cluster, pcr(1), pcr(9), pcr(3), t0(), option::some(user_data), option::some(pubkey()),
        endpoint(), t0(), admin(),
    );
    abort 0xDEAD
}

#[test, expected_failure(abort_code = enclave::EAttestationStale)]
fun register_with_stale_attestation_aborts() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    register(&mut cluster, t0() - 5 * MIN_MS - 1, t0(), admin());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = enclave::EUserDataEndpointMismatch)]
fun register_with_user_data_for_other_endpoint_aborts() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    let user_data = enclave::encode_user_data(object::id(&cluster), ca(), &b"https://evil.example".to_string());
    register_with_user_data(&mut cluster, option::some(user_data));
    abort 0xDEAD
}

#[test, expected_failure(abort_code = enclave::EUserDataWrongCluster)]
fun register_with_user_data_for_other_cluster_aborts() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    let user_data = enclave::encode_user_data(object::id_from_address(@0xC1), ca(), &endpoint());
    register_with_user_data(&mut cluster, option::some(user_data));
    abort 0xDEAD
}

#[test, expected_failure(abort_code = enclave::EMissingUserData)]
fun register_without_user_data_aborts() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    register_with_user_data(&mut cluster, option::none());
    abort 0xDEAD
}

#[test, expected_failure(abort_code = enclave::EUserDataBadMagic)]
fun register_with_old_layout_user_data_aborts() {
    // The pre-v1 layout (cluster id bytes then endpoint) has no magic.
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    let mut old = object::id_to_bytes(&object::id(&cluster));
    old.append(ca());
    old.append(*endpoint().as_bytes());
    register_with_user_data(&mut cluster, option::some(old));
    abort 0xDEAD
}

#[test, expected_failure(abort_code = enclave::EDebugAttestation)]
fun register_debug_document_aborts() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    let user_data = user_data_for(&cluster);
    enclave::register_checked(
        &mut cluster, pcr(0), pcr(0), pcr(0), t0(), option::some(user_data), option::some(pubkey()),
        endpoint(), t0(), admin(),
    );
    abort 0xDEAD
}

#[test, expected_failure(abort_code = enclave::EDebugAttestation)]
fun debug_document_is_refused_before_the_pcr_configuration_check() {
    let mut s = tc::begin(); // no expected PCRs: the debug check comes first
    let mut cluster = s.take_shared<Cluster>();
    let user_data = user_data_for(&cluster);
    enclave::register_checked(
        &mut cluster, pcr(0), pcr(0), pcr(0), t0(), option::some(user_data), option::some(pubkey()),
        endpoint(), t0(), admin(),
    );
    abort 0xDEAD
}

#[test, expected_failure(abort_code = enclave::EMissingPublicKey)]
fun register_without_public_key_aborts() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    let user_data = user_data_for(&cluster);
    enclave::register_checked(
        &mut cluster, pcr(1), pcr(2), pcr(3), t0(), option::some(user_data), option::none(),
        endpoint(), t0(), admin(),
    );
    abort 0xDEAD
}

#[test, expected_failure(abort_code = enclave::EInvalidEndpoint)]
fun register_with_empty_endpoint_aborts() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    let user_data = enclave::encode_user_data(object::id(&cluster), ca(), &b"".to_string());
    enclave::register_checked(
        &mut cluster, pcr(1), pcr(2), pcr(3), t0(), option::some(user_data), option::some(pubkey()),
        b"".to_string(), t0(), admin(),
    );
    abort 0xDEAD
}

#[test, expected_failure(abort_code = cluster::EWrongVersion)]
fun register_refuses_other_cluster_version() {
    let mut s = configured();
    let mut cluster = s.take_shared<Cluster>();
    cluster.set_version_for_testing(0);
    register(&mut cluster, t0(), t0(), admin());
    abort 0xDEAD
}

// ------------------------------------------------------------------------------------------------ pure: PCRs

#[test]
fun pcrs_equal_to_expected_pass() {
    enclave::check_pcrs(&pcr(1), &pcr(2), &pcr(3), &pcr(1), &pcr(2), &pcr(3));
}

#[test, expected_failure(abort_code = enclave::EPcrMismatch)]
fun pcr0_mismatch_aborts() {
    enclave::check_pcrs(&pcr(7), &pcr(2), &pcr(3), &pcr(1), &pcr(2), &pcr(3));
}

#[test, expected_failure(abort_code = enclave::EPcrMismatch)]
fun pcr1_mismatch_aborts() {
    enclave::check_pcrs(&pcr(1), &pcr(7), &pcr(3), &pcr(1), &pcr(2), &pcr(3));
}

#[test, expected_failure(abort_code = enclave::EPcrMismatch)]
fun pcr2_mismatch_aborts() {
    enclave::check_pcrs(&pcr(1), &pcr(2), &pcr(7), &pcr(1), &pcr(2), &pcr(3));
}

#[test, expected_failure(abort_code = enclave::EPcrMismatch)]
fun missing_pcr_aborts() {
    // A PCR absent from the document's list (an older Sui parsing mode dropped all-zero PCRs) reads as empty.
    enclave::check_pcrs(&pcr(1), &vector[], &pcr(3), &pcr(1), &pcr(2), &pcr(3));
}

#[test, expected_failure(abort_code = enclave::EEnclaveNotConfigured)]
fun unconfigured_pcrs_abort_even_if_equal() {
    enclave::check_pcrs(&vector[], &vector[], &vector[], &vector[], &vector[], &vector[]);
}

// ------------------------------------------------------------------------------------------------ pure: time

#[test]
fun freshness_window_bounds_pass() {
    let now = t0();
    enclave::check_freshness(now, now);
    enclave::check_freshness(now - 5 * MIN_MS, now); // exactly 5 minutes old
    enclave::check_freshness(now + MIN_MS, now); // exactly 1 minute ahead
    enclave::check_freshness(0, 0);
}

#[test, expected_failure(abort_code = enclave::EAttestationStale)]
fun stale_timestamp_aborts() {
    enclave::check_freshness(t0() - 5 * MIN_MS - 1, t0());
}

#[test, expected_failure(abort_code = enclave::EAttestationStale)]
fun ancient_timestamp_aborts_without_overflow() {
    enclave::check_freshness(0, MAX_U64);
}

#[test, expected_failure(abort_code = enclave::EAttestationFromFuture)]
fun future_timestamp_aborts() {
    enclave::check_freshness(t0() + MIN_MS + 1, t0());
}

#[test, expected_failure(abort_code = enclave::EAttestationFromFuture)]
fun far_future_timestamp_aborts_without_overflow() {
    enclave::check_freshness(MAX_U64, t0());
}

#[test]
fun newer_check() {
    enclave::check_newer(2, 1);
}

#[test, expected_failure(abort_code = enclave::EAttestationNotNewer)]
fun older_attestation_aborts() {
    enclave::check_newer(1, 2);
}

// ------------------------------------------------------------------------------------------------ pure: debug PCRs

#[test]
fun non_zero_pcrs_are_not_debug() {
    enclave::check_not_debug(&pcr(1), &pcr(2), &pcr(3));
    // Absent PCRs are not "debug" here; they fail the comparison instead.
    enclave::check_not_debug(&vector[], &vector[], &vector[]);
}

#[test, expected_failure(abort_code = enclave::EDebugAttestation)]
fun zero_pcr0_is_debug() {
    enclave::check_not_debug(&pcr(0), &pcr(2), &pcr(3));
}

#[test, expected_failure(abort_code = enclave::EDebugAttestation)]
fun zero_pcr1_is_debug() {
    enclave::check_not_debug(&pcr(1), &pcr(0), &pcr(3));
}

#[test, expected_failure(abort_code = enclave::EDebugAttestation)]
fun zero_pcr2_is_debug() {
    enclave::check_not_debug(&pcr(1), &pcr(2), &pcr(0));
}

// ------------------------------------------------------------------------------------------------ pure: user data

fun cid(): ID { object::id_from_address(@0x42) }

#[test]
fun user_data_v1_layout() {
    let ud = enclave::encode_user_data(cid(), ca(), &b"h:1".to_string());
    let mut want = b"K3SDAAS";
    want.push_back(1);
    want.append(x"0000000000000000000000000000000000000000000000000000000000000042");
    want.append(ca());
    want.append(b"h:1");
    assert_eq!(ud, want);
    assert_eq!(ud.length(), 75);
    assert_eq!(*ud.borrow(7), 1);
}

#[test]
fun matching_user_data_returns_the_ca_hash() {
    let ud = enclave::encode_user_data(cid(), ca(), &endpoint());
    assert_eq!(enclave::check_user_data(&option::some(ud), cid(), &endpoint()), ca());
}

#[test, expected_failure(abort_code = enclave::EMissingUserData)]
fun missing_user_data_aborts() {
    enclave::check_user_data(&option::none(), cid(), &endpoint());
}

#[test, expected_failure(abort_code = enclave::EUserDataTooShort)]
fun empty_user_data_aborts() {
    enclave::check_user_data(&option::some(vector[]), cid(), &endpoint());
}

#[test, expected_failure(abort_code = enclave::EUserDataTooShort)]
fun user_data_one_byte_short_of_the_header_aborts() {
    let mut ud = enclave::encode_user_data(cid(), ca(), &b"".to_string());
    assert_eq!(ud.length(), 72);
    ud.pop_back();
    enclave::check_user_data(&option::some(ud), cid(), &endpoint());
}

#[test, expected_failure(abort_code = enclave::EUserDataEndpointMismatch)]
fun header_only_user_data_has_no_endpoint() {
    let ud = enclave::encode_user_data(cid(), ca(), &b"".to_string());
    enclave::check_user_data(&option::some(ud), cid(), &endpoint());
}

#[test, expected_failure(abort_code = enclave::EUserDataBadMagic)]
fun wrong_magic_aborts() {
    let mut ud = enclave::encode_user_data(cid(), ca(), &endpoint());
    *&mut ud[0] = 0x6b; // "k3SDAAS"
    enclave::check_user_data(&option::some(ud), cid(), &endpoint());
}

#[test, expected_failure(abort_code = enclave::EUserDataUnsupportedVersion)]
fun version_2_aborts() {
    let mut ud = enclave::encode_user_data(cid(), ca(), &endpoint());
    *&mut ud[7] = 2;
    enclave::check_user_data(&option::some(ud), cid(), &endpoint());
}

#[test, expected_failure(abort_code = enclave::EUserDataUnsupportedVersion)]
fun version_0_aborts() {
    let mut ud = enclave::encode_user_data(cid(), ca(), &endpoint());
    *&mut ud[7] = 0;
    enclave::check_user_data(&option::some(ud), cid(), &endpoint());
}

#[test, expected_failure(abort_code = enclave::EUserDataWrongCluster)]
fun wrong_cluster_aborts() {
    let ud = enclave::encode_user_data(object::id_from_address(@0x43), ca(), &endpoint());
    enclave::check_user_data(&option::some(ud), cid(), &endpoint());
}

#[test, expected_failure(abort_code = enclave::EUserDataEndpointMismatch)]
fun endpoint_with_a_suffix_aborts() {
    let mut ud = enclave::encode_user_data(cid(), ca(), &endpoint());
    ud.push_back(0x2f); // "/"
    enclave::check_user_data(&option::some(ud), cid(), &endpoint());
}

#[test, expected_failure(abort_code = enclave::EUserDataEndpointMismatch)]
fun truncated_endpoint_aborts() {
    let mut ud = enclave::encode_user_data(cid(), ca(), &endpoint());
    ud.pop_back();
    enclave::check_user_data(&option::some(ud), cid(), &endpoint());
}

// ------------------------------------------------------------------------------------------------ pure: public key, endpoint

#[test]
fun public_key_present_is_returned() {
    assert_eq!(enclave::check_public_key(&option::some(pubkey())), pubkey());
}

#[test, expected_failure(abort_code = enclave::EMissingPublicKey)]
fun missing_public_key_aborts() {
    enclave::check_public_key(&option::none());
}

#[test, expected_failure(abort_code = enclave::EMissingPublicKey)]
fun empty_public_key_aborts() {
    enclave::check_public_key(&option::some(vector[]));
}

#[test]
fun endpoint_bounds() {
    enclave::check_endpoint(&b"h".to_string());
    enclave::check_endpoint(&tc::repeat(0x61, 256));
}

#[test, expected_failure(abort_code = enclave::EInvalidEndpoint)]
fun endpoint_too_long_aborts() {
    enclave::check_endpoint(&tc::repeat(0x61, 257));
}
