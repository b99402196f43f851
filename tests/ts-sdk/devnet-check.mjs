#!/usr/bin/env node
// Independent cross-check of the local development chain (k3s-daas-devnet) and of the
// transaction bytes our Rust client builds and signs, using the official Sui TypeScript SDK
// (@mysten/sui, pinned in ./package.json): its gRPC client (SuiGrpcClient, gRPC-Web over fetch),
// its BCS schemas, TransactionDataBuilder and verifyTransactionSignature.
//
// Usage: node tests/ts-sdk/devnet-check.mjs <input.json> <output.json>
//   (install once with: npm ci --prefix tests/ts-sdk; written and run by devnet/tests/ts_sdk.rs)
//
// Input (u64 values as decimal strings, u8 values as numbers, bytes as standard base64):
//   { "rpc": "http://127.0.0.1:PORT", "chain_id": "<base58>", "package": "0x…",
//     "reference_gas_price": "1000",
//     "stake": { "tx_digest", "checkpoint", "sender", "tx_bcs_b64", "signature_b64",
//                "record": { "id", "version", "digest", "owner", "type",
//                            "fields": { id, cluster_id, owner, role, node_name, balance, status,
//                                        token_epoch, staked_at_ms, unbond_requested_at_ms } },
//                "event": { cluster_id, record_id, owner, role, node_name, amount, staked_at_ms } },
//     "unexecuted": { "digest", "sender", "tx_bcs_b64", "signature_b64" } }
//
// Output: { "sdk_version": "...", "checks": [ { name, ok, detail } ] }; one line per check is
// also printed to stdout ("ok   <name>: …" or "FAIL <name>: …").
//
// Exit status: 0 every check passed, 1 some check failed (output still written), 2 bad usage,
// unreadable input, SDK not installed or internal error.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

class UsageError extends Error {}

// ---------------------------------------------------------------- input

function b64(value, where) {
  if (typeof value !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(value)) {
    throw new UsageError(`${where}: not a standard base64 string`);
  }
  return new Uint8Array(Buffer.from(value, 'base64'));
}

function need(obj, path) {
  let v = obj;
  for (const k of path.split('.')) {
    if (v === null || typeof v !== 'object' || !(k in v)) throw new UsageError(`input: missing "${path}"`);
    v = v[k];
  }
  return v;
}

function parseInput(path) {
  let doc;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read input ${path}: ${e.message}`);
  }
  for (const p of [
    'rpc', 'chain_id', 'package', 'reference_gas_price',
    'stake.tx_digest', 'stake.checkpoint', 'stake.sender', 'stake.tx_bcs_b64', 'stake.signature_b64',
    'stake.record.id', 'stake.record.version', 'stake.record.digest', 'stake.record.owner',
    'stake.record.type', 'stake.record.fields', 'stake.event',
    'unexecuted.digest', 'unexecuted.sender', 'unexecuted.tx_bcs_b64', 'unexecuted.signature_b64',
  ]) need(doc, p);
  doc.stake.txBytes = b64(doc.stake.tx_bcs_b64, 'stake.tx_bcs_b64');
  doc.unexecuted.txBytes = b64(doc.unexecuted.tx_bcs_b64, 'unexecuted.tx_bcs_b64');
  b64(doc.stake.signature_b64, 'stake.signature_b64');
  b64(doc.unexecuted.signature_b64, 'unexecuted.signature_b64');
  return doc;
}

// ---------------------------------------------------------------- helpers

const errText = (e) => (e instanceof Error ? `${e.name === 'RpcError' ? `RpcError ${e.code}: ` : ''}${e.message}` : String(e));
const hex = (bytes) => Buffer.from(bytes ?? []).toString('hex');
const sameBytes = (a, b) => a !== undefined && b !== undefined && Buffer.from(a).equals(Buffer.from(b));
const str = (v) => (v === undefined || v === null ? String(v) : v.toString());

/** Differences between two flat records, compared as strings ("field: got X, want Y"). */
function diff(got, want) {
  const out = [];
  for (const k of Object.keys(want)) {
    if (str(got?.[k]) !== str(want[k])) out.push(`${k}: got ${JSON.stringify(str(got?.[k]))}, want ${JSON.stringify(str(want[k]))}`);
  }
  for (const k of Object.keys(got ?? {})) if (!(k in want)) out.push(`${k}: unexpected field`);
  return out;
}

/** A byte flipped in the gas budget: still a well-formed TransactionData, different content. */
function tamperBudget(bcs, bytes) {
  const data = bcs.TransactionData.parse(bytes);
  if (data.V1?.expiration?.$kind !== 'None') throw new Error(`expected no expiration, got ${JSON.stringify(data.V1?.expiration)}`);
  // layout ends with gas budget (u64 LE) then expiration None (one 0x00 byte)
  const t = new Uint8Array(bytes);
  t[t.length - 9] ^= 0x01;
  const parsed = bcs.TransactionData.parse(t);
  if (parsed.V1.gasData.budget === data.V1.gasData.budget) throw new Error('tampering did not change the gas budget');
  return t;
}

// ---------------------------------------------------------------- checks

async function runChecks(sdk, input) {
  const { bcs, SuiGrpcClient, TransactionDataBuilder, Transaction, verifyTransactionSignature } = sdk;
  const results = [];
  const check = async (name, fn) => {
    let ok = false;
    let detail;
    try {
      detail = await fn();
      ok = true;
    } catch (e) {
      detail = errText(e);
    }
    results.push({ name, ok, detail: detail ?? '' });
    console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: ${detail ?? ''}`);
  };
  const expect = (cond, msg) => {
    if (!cond) throw new Error(msg);
  };
  const expectNoDiff = (what, d) => {
    if (d.length) throw new Error(`${what} differ: ${d.join('; ')}`);
  };

  // Mirrors of the k3s_daas Move structs, written independently from the Rust ones.
  const StakeRecord = bcs.struct('StakeRecord', {
    id: bcs.Address,
    cluster_id: bcs.Address,
    owner: bcs.Address,
    role: bcs.u8(),
    node_name: bcs.string(),
    balance: bcs.u64(),
    status: bcs.u8(),
    token_epoch: bcs.u64(),
    staked_at_ms: bcs.u64(),
    unbond_requested_at_ms: bcs.u64(),
  });
  const Staked = bcs.struct('Staked', {
    cluster_id: bcs.Address,
    record_id: bcs.Address,
    owner: bcs.Address,
    role: bcs.u8(),
    node_name: bcs.string(),
    amount: bcs.u64(),
    staked_at_ms: bcs.u64(),
  });
  // sui_types::object::Object (what the gRPC `Object.bcs` field holds). Only the Move-object
  // arm with a non-coin struct type is modelled: a stake record is one.
  const SuiObject = bcs.struct('Object', {
    data: bcs.enum('Data', {
      Move: bcs.struct('MoveObject', {
        type: bcs.enum('MoveObjectType', { Other: bcs.StructTag }),
        has_public_transfer: bcs.bool(),
        version: bcs.u64(),
        contents: bcs.vector(bcs.u8()),
      }),
    }),
    owner: bcs.Owner,
    previous_transaction: bcs.ObjectDigest,
    storage_rebate: bcs.u64(),
  });

  const client = new SuiGrpcClient({ network: 'localnet', baseUrl: input.rpc });
  const rec = input.stake.record;
  const recordType = rec.type;
  const stakedType = `${input.package}::staking::Staked`;

  await check('service-info.chain-id', async () => {
    const { response } = await client.ledgerService.getServiceInfo({});
    expect(response.chainId === input.chain_id, `GetServiceInfo.chain_id ${response.chainId} != client.json chain_id ${input.chain_id}`);
    return `${response.chainId} (chain ${response.chain}, epoch ${str(response.epoch)}, height ${str(response.checkpointHeight)})`;
  });

  await check('reference-gas-price', async () => {
    // The SDK's own call: GetEpoch without a read mask (the server's default mask must cover it).
    const { referenceGasPrice } = await client.core.getReferenceGasPrice();
    if (referenceGasPrice !== input.reference_gas_price) {
      // Diagnose: the same RPC with an explicit mask.
      const masked = await client.ledgerService
        .getEpoch({ readMask: { paths: ['reference_gas_price'] } })
        .then((r) => str(r.response.epoch?.referenceGasPrice), errText);
      throw new Error(
        `core.getReferenceGasPrice() = ${referenceGasPrice}, Rust read ${input.reference_gas_price} ` +
          `(the SDK sends GetEpoch without read_mask; with read_mask [reference_gas_price] the server answers ${masked})`,
      );
    }
    const gasPrice = bcs.TransactionData.parse(input.stake.txBytes).V1.gasData.price;
    expect(gasPrice === referenceGasPrice, `the stake transaction's gas price ${gasPrice} != reference ${referenceGasPrice}`);
    return `${referenceGasPrice} MIST/gas (also the stake transaction's gas price)`;
  });

  let contents;
  await check('stake-record.get-object', async () => {
    const { response } = await client.ledgerService.getObject({
      objectId: rec.id,
      readMask: { paths: ['object_id', 'version', 'digest', 'owner', 'object_type', 'contents', 'has_public_transfer', 'previous_transaction'] },
    });
    const o = response.object;
    expect(o, 'GetObject returned no object');
    expectNoDiff('object metadata', diff(
      { id: o.objectId, version: o.version, digest: o.digest, owner_kind: o.owner?.kind, owner: o.owner?.address, type: o.objectType },
      { id: rec.id, version: rec.version, digest: rec.digest, owner_kind: 1 /* ADDRESS */, owner: rec.owner, type: recordType },
    ));
    expect(o.contents?.value, 'GetObject with read mask "contents" returned no contents');
    contents = o.contents.value;
    expectNoDiff('StakeRecord fields', diff(StakeRecord.parse(contents), rec.fields));
    expect(sameBytes(StakeRecord.serialize(rec.fields).toBytes(), contents), 'contents are not the canonical BCS of the expected fields');
    return `${rec.id} v${str(o.version)} owner ${o.owner.address}, ${contents.length} content bytes decode to the Rust fields`;
  });

  await check('stake-record.core-get-object', async () => {
    // core.getObject goes through BatchGetObjects and returns the whole-object BCS as `content`.
    const { object } = await client.core.getObject({ objectId: rec.id });
    expectNoDiff('core object', diff(
      { id: object.id, version: object.version, digest: object.digest, owner: object.owner?.AddressOwner, type: object.type },
      { id: rec.id, version: rec.version, digest: rec.digest, owner: rec.owner, type: recordType },
    ));
    const whole = await object.content;
    expect(whole?.length, 'BatchGetObjects returned no `bcs` for read mask "bcs"');
    const parsed = SuiObject.parse(whole);
    const move = parsed.data.Move;
    const st = move.type.Other;
    expectNoDiff('whole-object BCS', diff(
      {
        type: `${st.address}::${st.module}::${st.name}`, version: move.version, owner: parsed.owner.AddressOwner,
        contents: hex(move.contents), previous_transaction: parsed.previous_transaction,
      },
      { type: recordType, version: rec.version, owner: rec.owner, contents: hex(contents), previous_transaction: input.stake.tx_digest },
    ));
    return `version ${object.version}, whole-object BCS (${whole.length} bytes) holds the same contents, owner and previous transaction`;
  });

  await check('stake-record.owned-objects', async () => {
    const { objects } = await client.core.getOwnedObjects({ address: rec.owner, type: recordType });
    const mine = objects.filter((o) => o.id === rec.id);
    expect(mine.length === 1, `ListOwnedObjects(owner, type) returned ${objects.length} objects, ${mine.length} of them ${rec.id}`);
    expectNoDiff('listed object', diff({ version: mine[0].version, digest: mine[0].digest, type: mine[0].type }, { version: rec.version, digest: rec.digest, type: recordType }));
    return `${objects.length} StakeRecord(s) listed for ${rec.owner}, including ${rec.id} at v${mine[0].version}`;
  });

  let executed;
  await check('stake-tx.get-transaction', async () => {
    const { response } = await client.ledgerService.getTransaction({
      digest: input.stake.tx_digest,
      readMask: { paths: ['digest', 'transaction', 'signatures', 'effects', 'events', 'checkpoint'] },
    });
    executed = response.transaction;
    const t = executed;
    expect(t, 'GetTransaction returned no transaction');
    expect(t.digest === input.stake.tx_digest, `digest ${t.digest} != ${input.stake.tx_digest}`);
    expect(t.effects?.status?.success === true, `effects.status is not success: ${JSON.stringify(t.effects?.status)}`);
    expect(str(t.checkpoint) === input.stake.checkpoint, `checkpoint ${str(t.checkpoint)} != Rust's ${input.stake.checkpoint}`);
    expect(sameBytes(t.transaction?.bcs?.value, input.stake.txBytes), 'transaction.bcs differs from the bytes Rust signed');
    expect(t.signatures.length === 1 && sameBytes(t.signatures[0].bcs?.value, b64(input.stake.signature_b64, 'sig')),
      `signatures (${t.signatures.length}) differ from the Rust signature`);
    expect(t.effects.transactionDigest === input.stake.tx_digest,
      `effects.transaction_digest ${t.effects.transactionDigest} != ${input.stake.tx_digest}`);
    const created = t.effects.changedObjects.filter((c) => c.objectId === rec.id);
    expect(created.length === 1, `effects.changed_objects has ${created.length} entries for the record`);
    expectNoDiff('changed object', diff(
      { id_operation: created[0].idOperation, output_version: created[0].outputVersion, output_digest: created[0].outputDigest, output_owner: created[0].outputOwner?.address },
      { id_operation: 2 /* CREATED */, output_version: rec.version, output_digest: rec.digest, output_owner: rec.owner },
    ));
    return `${t.digest}: success, checkpoint ${str(t.checkpoint)}, same bytes and signature, record created at v${rec.version}`;
  });

  await check('stake-tx.effects-bcs', async () => {
    // The effects BCS decoded with the SDK's schema must agree with Rust and with the structured fields.
    expect(executed, 'no transaction (GetTransaction failed)');
    const raw = executed.effects?.bcs?.value;
    expect(raw?.length, 'GetTransaction with read mask "effects" returned no effects.bcs');
    const fx = bcs.TransactionEffects.parse(raw);
    expect(fx.$kind === 'V2', `effects are ${fx.$kind}, not V2`);
    const v2 = fx.V2;
    const change = v2.changedObjects.filter(([id]) => id === rec.id).map(([, c]) => c);
    expect(change.length === 1, `effects BCS lists the record ${change.length} times`);
    const c = change[0];
    const g = executed.effects.gasUsed ?? {};
    expectNoDiff('effects BCS', diff(
      {
        status: v2.status.$kind, transaction_digest: v2.transactionDigest, lamport_version: v2.lamportVersion,
        has_events_digest: v2.eventsDigest !== null, record_input: c.inputState.$kind, record_output: c.outputState.$kind,
        record_digest: c.outputState.ObjectWrite?.[0], record_owner: c.outputState.ObjectWrite?.[1]?.AddressOwner,
        record_id_operation: c.idOperation.$kind,
        computation_cost: v2.gasUsed.computationCost, storage_cost: v2.gasUsed.storageCost, storage_rebate: v2.gasUsed.storageRebate,
      },
      {
        status: 'Success', transaction_digest: input.stake.tx_digest, lamport_version: rec.version,
        has_events_digest: true, record_input: 'NotExist', record_output: 'ObjectWrite',
        record_digest: rec.digest, record_owner: rec.owner, record_id_operation: 'Created',
        computation_cost: str(g.computationCost), storage_cost: str(g.storageCost), storage_rebate: str(g.storageRebate),
      },
    ));
    expect(str(executed.effects.lamportVersion) === v2.lamportVersion, `structured lamport_version ${str(executed.effects.lamportVersion)} != BCS ${v2.lamportVersion}`);
    return `V2, ${v2.changedObjects.length} changed objects, lamport ${v2.lamportVersion}, gas used matches the structured fields`;
  });

  await check('stake-tx.staked-event', async () => {
    expect(executed, 'no transaction (GetTransaction failed)');
    const events = executed.events?.events ?? [];
    const staked = events.filter((e) => e.eventType === stakedType);
    expect(staked.length === 1, `${staked.length} events of type ${stakedType} among [${events.map((e) => e.eventType).join(', ')}]`);
    const e = staked[0];
    expectNoDiff('event envelope', diff(
      { package_id: e.packageId, module: e.module, sender: e.sender },
      { package_id: input.package, module: 'staking', sender: input.stake.sender },
    ));
    expect(e.contents?.value, 'event has no contents');
    expectNoDiff('Staked fields', diff(Staked.parse(e.contents.value), input.stake.event));
    return `${stakedType} { record_id ${input.stake.event.record_id}, amount ${input.stake.event.amount} }`;
  });

  await check('stake-tx.rust-bytes', async () => {
    const bytes = input.stake.txBytes;
    const digest = await TransactionDataBuilder.fromBytes(bytes).getDigest();
    expect(digest === input.stake.tx_digest, `TS digest of the Rust bytes ${digest} != executed digest ${input.stake.tx_digest}`);
    const pk = await verifyTransactionSignature(bytes, input.stake.signature_b64, { address: input.stake.sender });
    expect(pk.toSuiAddress() === input.stake.sender, `signer ${pk.toSuiAddress()} != ${input.stake.sender}`);
    return `digest ${digest}, signature by ${input.stake.sender} verifies`;
  });

  const u = input.unexecuted;
  await check('unexecuted-tx.digest', async () => {
    const digest = await TransactionDataBuilder.fromBytes(u.txBytes).getDigest();
    expect(digest === u.digest, `TS digest ${digest} != Rust digest ${u.digest}`);
    const data = bcs.TransactionData.parse(u.txBytes).V1;
    expect(data.sender === u.sender, `sender ${data.sender} != ${u.sender}`);
    const rebuilt = await Transaction.from(u.txBytes).build();
    expect(sameBytes(rebuilt, u.txBytes), 'Transaction.from(bytes).build() does not reproduce the Rust bytes');
    return `${digest}; Transaction.from(bytes).build() is byte-identical`;
  });

  await check('unexecuted-tx.signature', async () => {
    const pk = await verifyTransactionSignature(u.txBytes, u.signature_b64, { address: u.sender });
    expect(pk.toSuiAddress() === u.sender, `signer ${pk.toSuiAddress()} != ${u.sender}`);
    const other = u.sender.slice(0, -1) + (u.sender.endsWith('0') ? '1' : '0');
    const wrongAddress = await verifyTransactionSignature(u.txBytes, u.signature_b64, { address: other }).then(() => false, () => true);
    expect(wrongAddress, 'the signature also verified for another address');
    return `Rust signature verifies for ${u.sender} and not for another address`;
  });

  await check('unexecuted-tx.tampered', async () => {
    const tampered = tamperBudget(bcs, u.txBytes);
    const digest = await TransactionDataBuilder.fromBytes(tampered).getDigest();
    expect(digest !== u.digest, 'a changed gas budget kept the digest');
    const rejected = await verifyTransactionSignature(tampered, u.signature_b64, { address: u.sender }).then(() => false, () => true);
    expect(rejected, 'the signature verified over tampered bytes');
    return `gas budget byte flipped: digest ${digest}, signature rejected`;
  });

  await check('unexecuted-tx.unknown-to-chain', async () => {
    const outcome = await client.ledgerService.getTransaction({ digest: u.digest, readMask: { paths: ['digest'] } }).then(
      (r) => `found: ${r.response.transaction?.digest}`,
      (e) => e,
    );
    expect(outcome instanceof Error && outcome.code === 'NOT_FOUND', `GetTransaction of a never-executed digest: expected NOT_FOUND, got ${outcome instanceof Error ? errText(outcome) : outcome}`);
    return 'GetTransaction answers NOT_FOUND';
  });

  return results;
}

// ---------------------------------------------------------------- main

async function loadSdk() {
  const pkgPath = join(HERE, 'node_modules', '@mysten', 'sui', 'package.json');
  let version;
  try {
    version = JSON.parse(readFileSync(pkgPath, 'utf8')).version;
  } catch {
    throw new UsageError(`@mysten/sui not installed (${pkgPath} missing); run: npm ci --prefix tests/ts-sdk`);
  }
  const [{ bcs }, { SuiGrpcClient }, { TransactionDataBuilder, Transaction }, { verifyTransactionSignature }] = await Promise.all([
    import('@mysten/sui/bcs'),
    import('@mysten/sui/grpc'),
    import('@mysten/sui/transactions'),
    import('@mysten/sui/verify'),
  ]);
  return { version, bcs, SuiGrpcClient, TransactionDataBuilder, Transaction, verifyTransactionSignature };
}

async function main(argv) {
  if (argv.length !== 2) throw new UsageError('usage: node tests/ts-sdk/devnet-check.mjs <input.json> <output.json>');
  const [inputPath, outputPath] = argv;
  const input = parseInput(inputPath);
  const sdk = await loadSdk();
  const checks = await runChecks(sdk, input);
  try {
    writeFileSync(outputPath, JSON.stringify({ sdk_version: sdk.version, checks }, null, 2) + '\n');
  } catch (e) {
    throw new UsageError(`cannot write output ${outputPath}: ${e.message}`);
  }
  const failed = checks.filter((c) => !c.ok);
  console.log(`devnet-check (@mysten/sui ${sdk.version}): ${checks.length - failed.length}/${checks.length} checks passed`);
  for (const c of failed) console.error(`devnet-check: FAIL ${c.name}: ${c.detail}`);
  return failed.length ? 1 : 0;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  console.error(`devnet-check: ${e instanceof UsageError ? e.message : `internal error: ${e instanceof Error ? e.stack : e}`}`);
  process.exitCode = 2;
}
