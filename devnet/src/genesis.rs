//! Genesis: the `k3s_daas` package, the shared `Cluster` (initial shared version 1) with its
//! `AdminCap`, the `Clock` (0x6), and funded accounts, as the single transaction of checkpoint 0.
//!
//! Object ids are derived from a seed digest over the genesis parameters and the genesis time,
//! so two chains initialised from the same file differ (as two networks would) while every id is
//! a proper Sui object id.
//!
//! Genesis file (`--genesis genesis.json`; every field but `admin` optional):
//! ```json
//! {
//!   "admin": "0x…",
//!   "accounts": [ { "address": "0x…", "mist": 100000000000, "coins": 4 } ],
//!   "faucet": { "mist": 1000000000000000, "coins": 100 },
//!   "cluster": { "name": "k3s-daas", "min_stake_worker": 1000000000, "min_stake_user": 500000000,
//!                "min_stake_admin": 10000000000, "unbonding_period_ms": 86400000,
//!                "enclave_operator": "0x…" }
//! }
//! ```
//! `faucet: null` funds no faucet. Without a genesis file the devnet generates an admin key and a
//! faucet key (Sui keystores `admin.keystore` and `faucet.keystore`, mode 0600) and funds both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sui_sdk_types::hash::Hasher;
use sui_sdk_types::{
    Address, ChangedObject, Event, ExecutionStatus, GasCostSummary, GasPayment, GenesisObject,
    GenesisTransaction, IdOperation, MovePackage, MoveStruct, Object, ObjectData, ObjectIn,
    ObjectOut, Owner, StructTag, Transaction, TransactionEffects, TransactionEffectsV2,
    TransactionEvents, TransactionExpiration, TransactionKind,
};

use daas_chain_types::events::ClusterCreated;
use daas_chain_types::package::{
    MODULE_CLUSTER, MODULE_ENCLAVE, MODULE_STAKING, clock_type, identifier,
};
use daas_chain_types::{AdminCap, Cluster, Coin, Package, PackageEvent, Table, consts};
use daas_wallet::{Scheme, WalletKey, write_keystore};

use crate::client_config::ClientConfig;
use crate::error::DevnetError;
use crate::exec::effects_balance_changes;
use crate::exec::{REFERENCE_GAS_PRICE, storage_cost};
use crate::model;
use crate::state::{ChainInfo, Ledger, TxRecord};
use crate::store;

/// Keystore file of the generated admin key.
pub const ADMIN_KEYSTORE: &str = "admin.keystore";
/// Keystore file of the generated faucet key.
pub const FAUCET_KEYSTORE: &str = "faucet.keystore";
/// The effective genesis parameters, written for reference.
pub const GENESIS_FILE: &str = "genesis.json";

/// Version of every genesis object.
const GENESIS_VERSION: u64 = 1;

/// Funds of one account: `mist` split evenly over `coins` `Coin<SUI>` objects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funds {
    pub mist: u64,
    #[serde(default = "one")]
    pub coins: u32,
}

fn one() -> u32 {
    1
}

/// A funded account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub address: Address,
    pub mist: u64,
    #[serde(default = "one")]
    pub coins: u32,
}

/// Initial `Cluster` parameters (defaults: the Move source's constants).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterParams {
    pub name: String,
    pub min_stake_worker: u64,
    pub min_stake_user: u64,
    pub min_stake_admin: u64,
    pub unbonding_period_ms: u64,
    /// Defaults to the admin (the publisher), as `cluster::init` does.
    pub enclave_operator: Option<Address>,
}

impl Default for ClusterParams {
    fn default() -> Self {
        ClusterParams {
            name: "k3s-daas".to_owned(),
            min_stake_worker: consts::DEFAULT_MIN_STAKE_WORKER,
            min_stake_user: consts::DEFAULT_MIN_STAKE_USER,
            min_stake_admin: consts::DEFAULT_MIN_STAKE_ADMIN,
            unbonding_period_ms: consts::DEFAULT_UNBONDING_PERIOD_MS,
            enclave_operator: None,
        }
    }
}

/// The genesis file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisConfig {
    /// Receives the `AdminCap` (the package "publisher").
    pub admin: Address,
    #[serde(default)]
    pub accounts: Vec<Account>,
    /// Funds of a generated faucet key (`null`: no faucet).
    #[serde(default = "default_faucet")]
    pub faucet: Option<Funds>,
    #[serde(default)]
    pub cluster: ClusterParams,
}

/// Funds of the generated admin key in the default genesis: 10 000 SUI in 10 coins.
pub const DEFAULT_ADMIN_FUNDS: Funds = Funds {
    mist: 10_000 * consts::MIST_PER_SUI,
    coins: 10,
};

fn default_faucet() -> Option<Funds> {
    // 1 000 000 SUI in 100 coins, so that concurrent faucet requests rarely share a coin.
    Some(Funds {
        mist: 1_000_000 * consts::MIST_PER_SUI,
        coins: 100,
    })
}

impl GenesisConfig {
    /// The default genesis for `admin`: funds for the admin and a faucet.
    pub fn default_for(admin: Address) -> GenesisConfig {
        GenesisConfig {
            admin,
            accounts: vec![Account {
                address: admin,
                mist: DEFAULT_ADMIN_FUNDS.mist,
                coins: DEFAULT_ADMIN_FUNDS.coins,
            }],
            faucet: default_faucet(),
            cluster: ClusterParams::default(),
        }
    }

    pub fn load(path: &Path) -> Result<GenesisConfig, DevnetError> {
        let text = std::fs::read_to_string(path).map_err(|source| DevnetError::Read {
            path: path.to_owned(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| DevnetError::GenesisFile {
            path: path.to_owned(),
            source,
        })
    }

    /// The checks `cluster.move` applies to the same parameters, plus sane funding.
    fn validate(&self) -> Result<(), DevnetError> {
        let c = &self.cluster;
        let bad = |m: String| Err(DevnetError::Genesis(m));
        if !consts::is_valid_dns_label(&c.name) {
            return bad(format!("cluster name {:?} is not a DNS label", c.name));
        }
        if c.min_stake_worker == 0 || c.min_stake_user == 0 || c.min_stake_admin == 0 {
            return bad("role minimums must be above 0 MIST".to_owned());
        }
        if c.unbonding_period_ms > consts::MAX_UNBONDING_PERIOD_MS {
            return bad(format!(
                "unbonding period {} ms is above the maximum {} ms",
                c.unbonding_period_ms,
                consts::MAX_UNBONDING_PERIOD_MS
            ));
        }
        let funds = self
            .accounts
            .iter()
            .map(|a| (a.address.to_string(), a.mist, a.coins))
            .chain(
                self.faucet
                    .iter()
                    .map(|f| ("faucet".to_owned(), f.mist, f.coins)),
            );
        let mut total: u64 = 0;
        for (who, mist, coins) in funds {
            if coins == 0 || coins > 10_000 {
                return bad(format!("{who}: coins must be 1..=10000"));
            }
            if mist < u64::from(coins) {
                return bad(format!("{who}: {mist} MIST cannot fill {coins} coins"));
            }
            total = total
                .checked_add(mist)
                .ok_or_else(|| DevnetError::Genesis("total funds overflow u64".to_owned()))?;
        }
        Ok(())
    }
}

/// Creates a chain in `data_dir` (which must not hold one yet) and writes `client.json` with
/// `rpc` as the endpoint. Without `config`, generates the admin key and uses the default genesis.
pub fn init(
    data_dir: &Path,
    config: Option<GenesisConfig>,
    rpc: &str,
) -> Result<ClientConfig, DevnetError> {
    if store::exists(data_dir) {
        return Err(DevnetError::AlreadyInitialised(data_dir.to_owned()));
    }
    store::create_private_dir(data_dir)?;
    let mut admin_keystore = None;
    let mut config = match config {
        Some(config) => config,
        None => {
            let key = WalletKey::generate(Scheme::Ed25519);
            let path = data_dir.join(ADMIN_KEYSTORE);
            write_keystore(&path, std::slice::from_ref(&key))?;
            admin_keystore = Some(path);
            GenesisConfig::default_for(key.address())
        }
    };
    config.validate()?;
    let mut faucet = None;
    if let Some(funds) = &config.faucet {
        let key = WalletKey::generate(Scheme::Ed25519);
        let path = data_dir.join(FAUCET_KEYSTORE);
        write_keystore(&path, std::slice::from_ref(&key))?;
        config.accounts.push(Account {
            address: key.address(),
            mist: funds.mist,
            coins: funds.coins,
        });
        faucet = Some((key.address(), path));
    }
    let now_ms = crate::node::now_ms();
    let ledger = build(&config, faucet.as_ref().map(|f| f.0), now_ms)?;
    store::save(data_dir, &store::encode(&ledger)?)?;
    let mut genesis_text =
        serde_json::to_string_pretty(&config).map_err(|e| DevnetError::Genesis(e.to_string()))?;
    genesis_text.push('\n');
    store::write_private_file(&data_dir.join(GENESIS_FILE), genesis_text.as_bytes())?;

    let info = ledger.info();
    let client = ClientConfig {
        rpc: rpc.to_owned(),
        chain_id: ledger.chain_id().to_owned(),
        package: info.package,
        cluster: info.cluster,
        cluster_initial_shared_version: info.cluster_initial_shared_version,
        admin_cap: info.admin_cap,
        admin: Some(info.admin),
        admin_keystore: admin_keystore.map(absolute),
        faucet: faucet.as_ref().map(|f| f.0),
        faucet_keystore: faucet.map(|f| absolute(f.1)),
    };
    client.save(&ClientConfig::path(data_dir))?;
    tracing::info!(
        chain_id = %client.chain_id,
        package = %client.package,
        cluster = %client.cluster,
        admin = %info.admin,
        "devnet genesis created"
    );
    Ok(client)
}

fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// Builds the genesis ledger.
pub(crate) fn build(
    config: &GenesisConfig,
    faucet: Option<Address>,
    now_ms: u64,
) -> Result<Ledger, DevnetError> {
    let mut seed = Hasher::new();
    seed.update(b"k3s-daas-devnet genesis");
    seed.update(serde_json::to_vec(config).map_err(|e| DevnetError::Genesis(e.to_string()))?);
    seed.update(now_ms.to_le_bytes());
    let seed = seed.finalize();
    let mut counter = 0u64;
    let mut next_id = || {
        let id = Address::derive_id(seed, counter);
        counter += 1;
        id
    };

    let package = Package::new(next_id());
    let cluster_id = next_id();
    let table_id = next_id();
    let cap_id = next_id();
    let grants_id = next_id();
    let params = &config.cluster;

    let mut objects: Vec<(ObjectData, Owner)> = Vec::new();
    let modules: BTreeMap<_, _> = [MODULE_CLUSTER, MODULE_ENCLAVE, MODULE_STAKING]
        .into_iter()
        // The devnet does not run Move: the package object carries no bytecode.
        .map(|m| (identifier(m), Vec::new()))
        .collect();
    objects.push((
        ObjectData::Package(MovePackage {
            id: package.id,
            version: GENESIS_VERSION,
            modules,
            type_origin_table: Vec::new(),
            linkage_table: BTreeMap::new(),
        }),
        Owner::Immutable,
    ));
    let cluster = Cluster {
        id: cluster_id,
        version: consts::VERSION,
        name: params.name.clone(),
        min_stake_worker: params.min_stake_worker,
        min_stake_user: params.min_stake_user,
        min_stake_admin: params.min_stake_admin,
        unbonding_period_ms: params.unbonding_period_ms,
        expected_pcr0: Vec::new(),
        expected_pcr1: Vec::new(),
        expected_pcr2: Vec::new(),
        enclave_operator: params.enclave_operator.unwrap_or(config.admin),
        enclave: None,
        treasury: 0,
        slashed: Table {
            id: table_id,
            size: 0,
        },
        grants: Table {
            id: grants_id,
            size: 0,
        },
    };
    objects.push((
        move_struct(&package, package.cluster_type(), &cluster)?,
        Owner::Shared(GENESIS_VERSION),
    ));
    let cap = AdminCap {
        id: cap_id,
        cluster_id,
    };
    objects.push((
        move_struct(&package, package.admin_cap_type(), &cap)?,
        Owner::Address(config.admin),
    ));
    let clock = daas_chain_types::objects::Clock {
        id: daas_chain_types::package::CLOCK_ID,
        timestamp_ms: now_ms,
    };
    objects.push((
        move_struct(&package, clock_type(), &clock)?,
        Owner::Shared(daas_chain_types::package::CLOCK_INITIAL_SHARED_VERSION),
    ));
    for account in &config.accounts {
        let coins = u64::from(account.coins);
        let each = account.mist / coins;
        for i in 0..coins {
            let id = next_id();
            let balance = if i == 0 {
                each + account.mist % coins
            } else {
                each
            };
            objects.push((
                move_struct(&package, StructTag::gas_coin(), &Coin { id, balance })?,
                Owner::Address(account.address),
            ));
        }
    }

    let transaction = Transaction {
        kind: TransactionKind::Genesis(GenesisTransaction {
            objects: objects
                .iter()
                .map(|(data, owner)| GenesisObject::new(data.clone(), *owner))
                .collect(),
        }),
        sender: Address::ZERO,
        gas_payment: GasPayment {
            objects: Vec::new(),
            owner: Address::ZERO,
            price: 0,
            budget: 0,
        },
        expiration: TransactionExpiration::None,
    };
    let digest = transaction.digest();
    let outputs: Vec<Object> = objects
        .into_iter()
        .map(|(data, owner)| {
            let unpriced = Object::new(data.clone(), owner, digest, 0);
            Object::new(data, owner, digest, storage_cost(&unpriced))
        })
        .collect();

    let event = PackageEvent::ClusterCreated(ClusterCreated {
        cluster_id,
        admin_cap_id: cap_id,
        admin: config.admin,
    });
    let events = TransactionEvents(vec![Event {
        package_id: package.id,
        module: identifier(MODULE_CLUSTER),
        sender: config.admin,
        type_: event.struct_tag(&package),
        contents: event.contents()?,
    }]);
    let mut changed: Vec<ChangedObject> = outputs
        .iter()
        .map(|o| ChangedObject {
            object_id: o.object_id(),
            input_state: ObjectIn::NotExist,
            output_state: match o.data() {
                ObjectData::Package(_) => ObjectOut::PackageWrite {
                    version: o.version(),
                    digest: o.digest(),
                },
                ObjectData::Struct(_) => ObjectOut::ObjectWrite {
                    digest: o.digest(),
                    owner: *o.owner(),
                },
            },
            id_operation: IdOperation::Created,
        })
        .collect();
    changed.sort_by_key(|c| c.object_id);
    let effects = TransactionEffects::V2(Box::new(TransactionEffectsV2 {
        status: ExecutionStatus::Success,
        epoch: 0,
        gas_used: GasCostSummary::default(),
        transaction_digest: digest,
        gas_object_index: None,
        events_digest: Some(events.digest()),
        dependencies: Vec::new(),
        lamport_version: GENESIS_VERSION,
        changed_objects: changed,
        unchanged_consensus_objects: Vec::new(),
        auxiliary_data_digest: None,
    }));
    let balance_changes = effects_balance_changes(&[], &outputs);
    let record = TxRecord {
        transaction,
        signatures: Vec::new(),
        effects,
        events: Some(events),
        input_objects: Vec::new(),
        output_objects: outputs,
        balance_changes,
        error_description: None,
        checkpoint: 0,
        timestamp_ms: now_ms,
    };
    let info = ChainInfo {
        package: package.id,
        cluster: cluster_id,
        cluster_initial_shared_version: GENESIS_VERSION,
        admin_cap: cap_id,
        admin: config.admin,
        faucet,
        reference_gas_price: REFERENCE_GAS_PRICE,
    };
    Ok(Ledger::from_genesis(info, record, now_ms))
}

fn move_struct<T: Serialize>(
    package: &Package,
    type_: StructTag,
    value: &T,
) -> Result<ObjectData, DevnetError> {
    let contents = bcs::to_bytes(value)?;
    let has_public_transfer = model::has_store(package, &type_);
    MoveStruct::new(type_, has_public_transfer, GENESIS_VERSION, contents)
        .map(ObjectData::Struct)
        .ok_or_else(|| DevnetError::Genesis("object contents shorter than an id".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"{
        "admin": "0xad",
        "accounts": [ { "address": "0xb0b", "mist": 1000000000001, "coins": 4 } ],
        "faucet": null,
        "cluster": { "name": "prod", "min_stake_worker": 5, "unbonding_period_ms": 60000 }
    }"#;

    #[test]
    fn a_genesis_file_sets_accounts_and_cluster_parameters() {
        let config: GenesisConfig = serde_json::from_str(FILE).expect("genesis file");
        assert_eq!(config.faucet, None);
        let ledger = build(&config, None, 42).expect("genesis");
        let bob = Address::from_static("0xb0b");
        let coins: Vec<u64> = ledger
            .owned_by(&bob)
            .filter_map(crate::exec::validate::sui_coin_balance)
            .collect();
        assert_eq!(coins.len(), 4);
        assert_eq!(coins.iter().sum::<u64>(), 1_000_000_000_001);
        let info = ledger.info();
        let cluster = ledger.object(&info.cluster).expect("cluster");
        assert_eq!(*cluster.owner(), Owner::Shared(1));
        let c: Cluster =
            bcs::from_bytes(cluster.as_struct().expect("struct").contents()).expect("layout");
        assert_eq!(
            (c.name.as_str(), c.min_stake_worker, c.min_stake_user),
            ("prod", 5, consts::DEFAULT_MIN_STAKE_USER)
        );
        assert_eq!(
            (c.unbonding_period_ms, c.enclave_operator, c.version),
            (60_000, Address::from_static("0xad"), consts::VERSION)
        );
        let cap = ledger.object(&info.admin_cap).expect("cap");
        assert_eq!(*cap.owner(), Owner::Address(Address::from_static("0xad")));
        let clock = ledger
            .object(&daas_chain_types::package::CLOCK_ID)
            .expect("clock");
        assert_eq!(*clock.owner(), Owner::Shared(1));
        assert!(
            ledger
                .object(&info.package)
                .is_some_and(|p| p.as_struct().is_none())
        );
        // Checkpoint 0 holds the genesis transaction and names the chain.
        assert_eq!(ledger.tip(), 0);
        assert_eq!(
            ledger.chain_id(),
            ledger
                .checkpoint(0)
                .expect("genesis")
                .summary
                .digest()
                .to_base58()
        );
        let genesis = ledger
            .checkpoint_transactions(ledger.checkpoint(0).expect("cp"))
            .count();
        assert_eq!(genesis, 1);
    }

    #[test]
    fn genesis_parameters_follow_the_move_rules() {
        let mut config: GenesisConfig = serde_json::from_str(FILE).expect("genesis file");
        config.cluster.name = "Prod".to_owned();
        assert!(matches!(config.validate(), Err(DevnetError::Genesis(_))));
        config.cluster.name = "prod".to_owned();
        config.cluster.unbonding_period_ms = consts::MAX_UNBONDING_PERIOD_MS + 1;
        assert!(config.validate().is_err());
        config.cluster.unbonding_period_ms = 0;
        config.cluster.min_stake_admin = 0;
        assert!(config.validate().is_err());
        config.cluster.min_stake_admin = 1;
        config.accounts[0].coins = 0;
        assert!(config.validate().is_err());
        config.accounts[0].coins = 1;
        assert!(config.validate().is_ok());
    }

    #[test]
    fn init_writes_private_keys_and_refuses_a_second_chain() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("d");
        let client = init(&data, None, "http://127.0.0.1:1").expect("init");
        assert!(client.admin_keystore.as_deref().is_some_and(Path::is_file));
        assert!(client.faucet_keystore.as_deref().is_some_and(Path::is_file));
        assert_eq!(
            ClientConfig::load(&ClientConfig::path(&data)).expect("client.json"),
            client
        );
        assert!(matches!(
            init(&data, None, "x"),
            Err(DevnetError::AlreadyInitialised(_))
        ));
        let ledger = store::load(&data).expect("snapshot");
        assert_eq!(ledger.chain_id(), client.chain_id);
        assert_eq!(ledger.info().faucet, client.faucet);
    }
}
