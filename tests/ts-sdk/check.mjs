#!/usr/bin/env node
// Independent cross-check of K3s-DaaS Sui personal-message signatures against
// the official Sui TypeScript SDK (@mysten/sui, pinned in ./package.json).
//
// Usage: node tests/ts-sdk/check.mjs <input.json> <output.json>
//   (install once with: npm ci --prefix tests/ts-sdk)
//
// Input:
//   { "verify": [ { name, scheme, address, message_b64, signature_b64 } ],
//     "sign":   [ { name, scheme, suiprivkey, expected_address, message_b64 } ] }
//   scheme is one of "ed25519" | "secp256k1" | "secp256r1".
//
// Output:
//   { "sdk_version": "...",
//     "verify": [ { name, ok, tamper_rejected, wrong_address_rejected, error? } ],
//     "sign":   [ { name, address, address_matches, signature_b64, error? } ] }
//
// Exit status: 0 all checks passed, 1 some check failed (output still written),
// 2 bad usage, unreadable/invalid input, SDK not installed or internal error
// (no output written).
//
// Private keys are never printed or written: any error text is scrubbed of them.

import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

const SCHEMES = {
  ed25519: { sdkName: 'ED25519', flag: 0x00 },
  secp256k1: { sdkName: 'Secp256k1', flag: 0x01 },
  secp256r1: { sdkName: 'Secp256r1', flag: 0x02 },
};

const STD_B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const SUI_ADDRESS = /^0x[0-9a-fA-F]{64}$/;

class UsageError extends Error {}

function usage(msg) {
  throw new UsageError(msg);
}

// ---------------------------------------------------------------- input

function decodeStdBase64(value, where) {
  if (typeof value !== 'string' || !STD_B64.test(value)) {
    usage(`${where}: not a standard (padded) base64 string`);
  }
  return new Uint8Array(Buffer.from(value, 'base64'));
}

function requireString(entry, key, where, { allowEmpty = false } = {}) {
  const v = entry[key];
  if (typeof v !== 'string' || (v.length === 0 && !allowEmpty)) {
    usage(`${where}: missing, empty or non-string "${key}"`);
  }
  return v;
}

// The message may legitimately be empty ("" is valid base64 for zero bytes).
function requireMessage(entry, where) {
  return decodeStdBase64(requireString(entry, 'message_b64', where, { allowEmpty: true }), `${where}.message_b64`);
}

function requireScheme(entry, where) {
  const s = requireString(entry, 'scheme', where);
  if (!Object.hasOwn(SCHEMES, s)) {
    usage(`${where}: unknown scheme "${s}" (expected ${Object.keys(SCHEMES).join('|')})`);
  }
  return s;
}

function parseInput(path) {
  let raw;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (e) {
    usage(`cannot read input ${path}: ${e.message}`);
  }
  let doc;
  try {
    doc = JSON.parse(raw);
  } catch (e) {
    usage(`input ${path} is not valid JSON: ${e.message}`);
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) usage('input must be a JSON object');
  for (const key of ['verify', 'sign']) {
    if (doc[key] !== undefined && !Array.isArray(doc[key])) usage(`input "${key}" must be an array`);
  }
  const verify = (doc.verify ?? []).map((e, i) => {
    const where = `verify[${i}]`;
    if (e === null || typeof e !== 'object') usage(`${where}: must be an object`);
    const name = requireString(e, 'name', where);
    const w = `${where} (${name})`;
    return {
      name,
      scheme: requireScheme(e, w),
      address: requireString(e, 'address', w),
      message: requireMessage(e, w),
      // Passed to the SDK verbatim: its parsing is part of what is checked.
      signature: requireString(e, 'signature_b64', w),
    };
  });
  const sign = (doc.sign ?? []).map((e, i) => {
    const where = `sign[${i}]`;
    if (e === null || typeof e !== 'object') usage(`${where}: must be an object`);
    const name = requireString(e, 'name', where);
    const w = `${where} (${name})`;
    return {
      name,
      scheme: requireScheme(e, w),
      suiprivkey: requireString(e, 'suiprivkey', w),
      expectedAddress: requireString(e, 'expected_address', w),
      message: requireMessage(e, w),
    };
  });
  if (verify.length + sign.length === 0) usage('input has no "verify" or "sign" entries: nothing to check');
  return { verify, sign };
}

// ---------------------------------------------------------------- helpers

function errText(e) {
  return e instanceof Error ? e.message : String(e);
}

// Remove the given secret and anything that looks like a bech32 Sui private key.
function scrub(text, secret) {
  let out = String(text);
  if (secret) out = out.split(secret).join('<redacted>');
  return out.replace(/suiprivkey1[0-9a-z]*/gi, '<redacted>');
}

function tamperedMessage(msg) {
  if (msg.length === 0) return Uint8Array.of(0x00);
  const t = new Uint8Array(msg);
  t[0] ^= 0x01;
  return t;
}

function otherAddress(address) {
  const last = address.slice(-1).toLowerCase();
  return address.slice(0, -1) + (last === '0' ? '1' : '0');
}

async function rejects(promiseFn) {
  try {
    await promiseFn();
    return false;
  } catch {
    return true;
  }
}

// ---------------------------------------------------------------- checks

async function runVerify(sdk, entry) {
  const { verifyPersonalMessageSignature } = sdk;
  const result = { name: entry.name, ok: false, tamper_rejected: false, wrong_address_rejected: false };
  const errors = [];

  if (!SUI_ADDRESS.test(entry.address)) {
    errors.push(`address ${JSON.stringify(entry.address)} is not 0x + 64 hex digits`);
  }

  // (a) genuine message, genuine address
  try {
    const pk = await verifyPersonalMessageSignature(entry.message, entry.signature, {
      address: entry.address,
    });
    const want = SCHEMES[entry.scheme];
    const derived = pk.toSuiAddress();
    if (pk.flag() !== want.flag) {
      errors.push(`signature flag ${pk.flag()} does not match scheme ${entry.scheme} (flag ${want.flag})`);
    } else if (derived !== entry.address) {
      errors.push(`public key address ${derived} != ${entry.address}`);
    } else {
      result.ok = true;
    }
  } catch (e) {
    errors.push(`verify failed: ${errText(e)}`);
  }

  // (b) first message byte flipped must be rejected
  result.tamper_rejected = await rejects(() =>
    verifyPersonalMessageSignature(tamperedMessage(entry.message), entry.signature, {
      address: entry.address,
    }),
  );
  if (!result.tamper_rejected) errors.push('tampered message was accepted');

  // (c) correct message, different address must be rejected
  result.wrong_address_rejected = await rejects(() =>
    verifyPersonalMessageSignature(entry.message, entry.signature, {
      address: otherAddress(entry.address),
    }),
  );
  if (!result.wrong_address_rejected) errors.push('wrong address was accepted');

  if (errors.length) result.error = errors.join('; ');
  return result;
}

async function runSign(sdk, entry) {
  const { decodeSuiPrivateKey, keypairClasses } = sdk;
  const result = { name: entry.name, address: '', address_matches: false, signature_b64: '' };
  try {
    let decoded;
    try {
      decoded = decodeSuiPrivateKey(entry.suiprivkey);
    } catch (e) {
      // bech32 errors quote the key and its checksum: report only the kind of failure.
      const kind = /checksum/i.test(errText(e)) ? 'bad checksum' : 'not a bech32 suiprivkey string';
      throw new Error(`cannot decode suiprivkey: ${kind}`);
    }
    const want = SCHEMES[entry.scheme];
    if (decoded.scheme !== want.sdkName) {
      throw new Error(`suiprivkey encodes scheme ${decoded.scheme}, entry says ${entry.scheme}`);
    }
    const keypair = keypairClasses[entry.scheme].fromSecretKey(decoded.secretKey);
    result.address = keypair.toSuiAddress();
    result.address_matches = result.address === entry.expectedAddress;
    const { signature } = await keypair.signPersonalMessage(entry.message);
    result.signature_b64 = signature;
    if (!result.address_matches) {
      result.error = `derived address ${result.address} != expected ${entry.expectedAddress}`;
    }
  } catch (e) {
    result.error = scrub(errText(e), entry.suiprivkey);
  }
  return result;
}

// ---------------------------------------------------------------- main

async function loadSdk() {
  const pkgPath = join(HERE, 'node_modules', '@mysten', 'sui', 'package.json');
  let version;
  try {
    version = JSON.parse(readFileSync(pkgPath, 'utf8')).version;
  } catch {
    usage(`@mysten/sui not installed (${pkgPath} missing); run: npm ci --prefix tests/ts-sdk`);
  }
  const [verify, cryptography, ed25519, secp256k1, secp256r1] = await Promise.all([
    import('@mysten/sui/verify'),
    import('@mysten/sui/cryptography'),
    import('@mysten/sui/keypairs/ed25519'),
    import('@mysten/sui/keypairs/secp256k1'),
    import('@mysten/sui/keypairs/secp256r1'),
  ]);
  return {
    version,
    verifyPersonalMessageSignature: verify.verifyPersonalMessageSignature,
    decodeSuiPrivateKey: cryptography.decodeSuiPrivateKey,
    keypairClasses: {
      ed25519: ed25519.Ed25519Keypair,
      secp256k1: secp256k1.Secp256k1Keypair,
      secp256r1: secp256r1.Secp256r1Keypair,
    },
  };
}

async function main(argv) {
  if (argv.length !== 2) usage('usage: node tests/ts-sdk/check.mjs <input.json> <output.json>');
  const [inputPath, outputPath] = argv;
  const input = parseInput(inputPath);
  const sdk = await loadSdk();

  const verify = [];
  for (const entry of input.verify) verify.push(await runVerify(sdk, entry));
  const sign = [];
  for (const entry of input.sign) sign.push(await runSign(sdk, entry));

  const output = { sdk_version: sdk.version, verify, sign };
  try {
    writeFileSync(outputPath, JSON.stringify(output, null, 2) + '\n');
  } catch (e) {
    usage(`cannot write output ${outputPath}: ${e.message}`);
  }

  const verifyPassed = verify.filter((r) => r.ok && r.tamper_rejected && r.wrong_address_rejected);
  const signPassed = sign.filter((r) => r.address_matches && r.signature_b64 && !r.error);
  for (const r of verify) if (!verifyPassed.includes(r)) console.error(`ts-sdk: verify ${r.name}: FAIL: ${r.error}`);
  for (const r of sign) if (!signPassed.includes(r)) console.error(`ts-sdk: sign ${r.name}: FAIL: ${r.error}`);
  console.error(
    `ts-sdk (@mysten/sui ${sdk.version}): verify ${verifyPassed.length}/${verify.length} ok, ` +
      `sign ${signPassed.length}/${sign.length} ok`,
  );
  return verifyPassed.length === verify.length && signPassed.length === sign.length ? 0 : 1;
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  if (e instanceof UsageError) {
    console.error(`ts-sdk: ${e.message}`);
    process.exitCode = 2;
  } else {
    console.error(`ts-sdk: internal error: ${scrub(e instanceof Error ? e.stack : e)}`);
    process.exitCode = 2;
  }
}
