//! Offline builders for the package's transactions.
//!
//! Every builder takes explicit gas ([`Gas`]) and returns an unsigned
//! `sui_sdk_types::Transaction` built with `TransactionBuilder::try_build` — no server
//! simulation or gas selection, so the same code works against any Sui node and the devnet.
//! Stake amounts are split off the gas coin; the gas coins must therefore cover amount + budget.

use daas_chain_types::package::{
    self as pkg, CLOCK_ID, CLOCK_INITIAL_SHARED_VERSION, MODULE_CLUSTER, MODULE_ENCLAVE,
    MODULE_STAKING,
};
use sui_sdk_types::{Address, Transaction};
use sui_transaction_builder::{Function, ObjectInput, TransactionBuilder};

use crate::{ChainConfig, ChainError, ObjectRef};

/// Default gas budget: 0.05 SUI. Generous for these small transactions; unused gas is not
/// charged.
pub const DEFAULT_GAS_BUDGET: u64 = 50_000_000;

/// Who pays and how much: sender, gas coins (merged into the first by the node), price, budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gas {
    pub sender: Address,
    pub coins: Vec<ObjectRef>,
    pub price: u64,
    pub budget: u64,
}

struct Builder<'a> {
    tx: TransactionBuilder,
    config: &'a ChainConfig,
}

impl<'a> Builder<'a> {
    fn new(config: &'a ChainConfig, gas: &Gas) -> Result<Self, ChainError> {
        if gas.coins.is_empty() {
            return Err(ChainError::Build("no gas coin given".into()));
        }
        let mut tx = TransactionBuilder::new();
        tx.set_sender(gas.sender);
        tx.set_gas_price(gas.price);
        tx.set_gas_budget(gas.budget);
        tx.add_gas_objects(
            gas.coins
                .iter()
                .map(|c| ObjectInput::owned(c.id, c.version, c.digest)),
        );
        Ok(Builder { tx, config })
    }

    fn cluster(&mut self, mutable: bool) -> sui_transaction_builder::Argument {
        self.tx.object(ObjectInput::shared(
            self.config.cluster,
            self.config.cluster_initial_shared_version,
            mutable,
        ))
    }

    fn clock(&mut self) -> sui_transaction_builder::Argument {
        self.tx.object(ObjectInput::shared(
            CLOCK_ID,
            CLOCK_INITIAL_SHARED_VERSION,
            false,
        ))
    }

    fn owned(&mut self, object: ObjectRef) -> sui_transaction_builder::Argument {
        self.tx
            .object(ObjectInput::owned(object.id, object.version, object.digest))
    }

    fn call(
        &mut self,
        module: &str,
        function: &str,
        args: Vec<sui_transaction_builder::Argument>,
    ) -> sui_transaction_builder::Argument {
        self.tx.move_call(
            Function::new(
                self.config.package,
                pkg::identifier(module),
                pkg::identifier(function),
            ),
            args,
        )
    }

    fn build(self) -> Result<Transaction, ChainError> {
        self.tx
            .try_build()
            .map_err(|e| ChainError::Build(e.to_string()))
    }
}

/// `staking::stake(cluster, coin, role, node_name, clock)` with `amount` split off the gas coin.
pub fn stake(
    config: &ChainConfig,
    gas: &Gas,
    amount: u64,
    role: u8,
    node_name: &str,
) -> Result<Transaction, ChainError> {
    let mut b = Builder::new(config, gas)?;
    let cluster = b.cluster(false);
    let amount = b.tx.pure(&amount);
    let gas_coin = b.tx.gas();
    let coin = b.tx.split_coins(gas_coin, vec![amount]);
    let role = b.tx.pure(&role);
    let name = b.tx.pure(&node_name.to_owned());
    let clock = b.clock();
    b.call(
        MODULE_STAKING,
        pkg::FN_STAKE,
        vec![cluster, coin[0], role, name, clock],
    );
    b.build()
}

/// `staking::add_stake(cluster, record, coin)` with `amount` split off the gas coin.
pub fn add_stake(
    config: &ChainConfig,
    gas: &Gas,
    record: ObjectRef,
    amount: u64,
) -> Result<Transaction, ChainError> {
    let mut b = Builder::new(config, gas)?;
    let cluster = b.cluster(false);
    let record = b.owned(record);
    let amount = b.tx.pure(&amount);
    let gas_coin = b.tx.gas();
    let coin = b.tx.split_coins(gas_coin, vec![amount]);
    b.call(
        MODULE_STAKING,
        pkg::FN_ADD_STAKE,
        vec![cluster, record, coin[0]],
    );
    b.build()
}

/// `staking::{function}(cluster, record[, clock])` for the record entry points that take no other
/// argument; `withdraw`'s returned coin goes back to the sender.
fn record_call(
    config: &ChainConfig,
    gas: &Gas,
    record: ObjectRef,
    function: &str,
    cluster_mutable: bool,
    with_clock: bool,
) -> Result<Transaction, ChainError> {
    let mut b = Builder::new(config, gas)?;
    let cluster = b.cluster(cluster_mutable);
    let record = b.owned(record);
    let mut args = vec![cluster, record];
    if with_clock {
        args.push(b.clock());
    }
    let result = b.call(MODULE_STAKING, function, args);
    if function == pkg::FN_WITHDRAW {
        let to = b.tx.pure(&gas.sender);
        b.tx.transfer_objects(vec![result], to);
    }
    b.build()
}

/// `staking::request_unstake(cluster, record, clock)`.
pub fn request_unstake(
    config: &ChainConfig,
    gas: &Gas,
    record: ObjectRef,
) -> Result<Transaction, ChainError> {
    record_call(config, gas, record, pkg::FN_REQUEST_UNSTAKE, false, true)
}

/// `staking::withdraw(cluster, record, clock)`, then the returned coin to the sender.
pub fn withdraw(
    config: &ChainConfig,
    gas: &Gas,
    record: ObjectRef,
) -> Result<Transaction, ChainError> {
    record_call(config, gas, record, pkg::FN_WITHDRAW, true, true)
}

/// `staking::revoke_tokens(cluster, record)`.
pub fn revoke_tokens(
    config: &ChainConfig,
    gas: &Gas,
    record: ObjectRef,
) -> Result<Transaction, ChainError> {
    record_call(config, gas, record, pkg::FN_REVOKE_TOKENS, false, false)
}

/// `staking::settle_slash(cluster, record)`.
pub fn settle_slash(
    config: &ChainConfig,
    gas: &Gas,
    record: ObjectRef,
) -> Result<Transaction, ChainError> {
    record_call(config, gas, record, pkg::FN_SETTLE_SLASH, true, false)
}

/// `cluster::{function}(cap, cluster, args…)`: the admin entry points, all pure arguments.
fn admin_call(
    config: &ChainConfig,
    gas: &Gas,
    admin_cap: ObjectRef,
    function: &str,
    pure_args: impl FnOnce(&mut TransactionBuilder) -> Vec<sui_transaction_builder::Argument>,
) -> Result<Transaction, ChainError> {
    let mut b = Builder::new(config, gas)?;
    let cap = b.owned(admin_cap);
    let cluster = b.cluster(true);
    let mut args = vec![cap, cluster];
    args.extend(pure_args(&mut b.tx));
    b.call(MODULE_CLUSTER, function, args);
    b.build()
}

/// Admin: `cluster::slash(cap, cluster, record_id)`.
pub fn slash(
    config: &ChainConfig,
    gas: &Gas,
    admin_cap: ObjectRef,
    record_id: Address,
) -> Result<Transaction, ChainError> {
    admin_call(config, gas, admin_cap, pkg::FN_SLASH, |tx| {
        vec![tx.pure(&record_id)]
    })
}

/// Admin: `cluster::grant_role(cap, cluster, account, role)`: `account` may then stake for `role`
/// (worker or admin).
pub fn grant_role(
    config: &ChainConfig,
    gas: &Gas,
    admin_cap: ObjectRef,
    account: Address,
    role: u8,
) -> Result<Transaction, ChainError> {
    admin_call(config, gas, admin_cap, pkg::FN_GRANT_ROLE, |tx| {
        vec![tx.pure(&account), tx.pure(&role)]
    })
}

/// Admin: `cluster::revoke_role(cap, cluster, account, role)`. The account's existing records
/// stay on chain; the control plane refuses them.
pub fn revoke_role(
    config: &ChainConfig,
    gas: &Gas,
    admin_cap: ObjectRef,
    account: Address,
    role: u8,
) -> Result<Transaction, ChainError> {
    admin_call(config, gas, admin_cap, pkg::FN_REVOKE_ROLE, |tx| {
        vec![tx.pure(&account), tx.pure(&role)]
    })
}

/// Admin: `cluster::set_role_minimum(cap, cluster, role, min_mist)`.
pub fn set_role_minimum(
    config: &ChainConfig,
    gas: &Gas,
    admin_cap: ObjectRef,
    role: u8,
    min_mist: u64,
) -> Result<Transaction, ChainError> {
    admin_call(config, gas, admin_cap, pkg::FN_SET_ROLE_MINIMUM, |tx| {
        vec![tx.pure(&role), tx.pure(&min_mist)]
    })
}

/// Admin: `cluster::set_unbonding_period(cap, cluster, period_ms)`.
pub fn set_unbonding_period(
    config: &ChainConfig,
    gas: &Gas,
    admin_cap: ObjectRef,
    period_ms: u64,
) -> Result<Transaction, ChainError> {
    admin_call(config, gas, admin_cap, pkg::FN_SET_UNBONDING_PERIOD, |tx| {
        vec![tx.pure(&period_ms)]
    })
}

/// Admin: `cluster::set_expected_pcrs(cap, cluster, pcr0, pcr1, pcr2)` (48 bytes each, none
/// all zero: the chain aborts with `EInvalidPcrLength` / `EZeroPcr` otherwise).
pub fn set_expected_pcrs(
    config: &ChainConfig,
    gas: &Gas,
    admin_cap: ObjectRef,
    pcrs: [&[u8]; 3],
) -> Result<Transaction, ChainError> {
    admin_call(config, gas, admin_cap, pkg::FN_SET_EXPECTED_PCRS, |tx| {
        pcrs.iter().map(|p| tx.pure(&p.to_vec())).collect()
    })
}

/// Admin: `cluster::set_enclave_operator(cap, cluster, operator)`.
pub fn set_enclave_operator(
    config: &ChainConfig,
    gas: &Gas,
    admin_cap: ObjectRef,
    operator: Address,
) -> Result<Transaction, ChainError> {
    admin_call(config, gas, admin_cap, pkg::FN_SET_ENCLAVE_OPERATOR, |tx| {
        vec![tx.pure(&operator)]
    })
}

/// Admin: `cluster::set_name(cap, cluster, name)`.
pub fn set_name(
    config: &ChainConfig,
    gas: &Gas,
    admin_cap: ObjectRef,
    name: &str,
) -> Result<Transaction, ChainError> {
    admin_call(config, gas, admin_cap, pkg::FN_SET_NAME, |tx| {
        vec![tx.pure(&name.to_owned())]
    })
}

/// Admin: `cluster::withdraw_treasury(cap, cluster, amount)` (the coin goes to the sender).
pub fn withdraw_treasury(
    config: &ChainConfig,
    gas: &Gas,
    admin_cap: ObjectRef,
    amount: u64,
) -> Result<Transaction, ChainError> {
    admin_call(config, gas, admin_cap, pkg::FN_WITHDRAW_TREASURY, |tx| {
        vec![tx.pure(&amount)]
    })
}

/// Admin: `cluster::migrate(cap, cluster)` after a package upgrade.
pub fn migrate(
    config: &ChainConfig,
    gas: &Gas,
    admin_cap: ObjectRef,
) -> Result<Transaction, ChainError> {
    admin_call(config, gas, admin_cap, pkg::FN_MIGRATE, |_| vec![])
}

/// Enclave operator: one PTB of
/// `0x2::nitro_attestation::load_nitro_attestation(attestation, 0x6)` (the framework parses the
/// document and verifies its certificate chain at the clock time; it is an `entry` function, so
/// only a PTB can feed its result on) whose `NitroAttestationDocument` result is passed by value
/// to `enclave::register_enclave(cluster, document, endpoint, 0x6)`. The document's user_data
/// must be layout v1 for this cluster and `endpoint` (`daas_attestation::binding`).
pub fn register_enclave(
    config: &ChainConfig,
    gas: &Gas,
    attestation: &[u8],
    endpoint: &str,
) -> Result<Transaction, ChainError> {
    let mut b = Builder::new(config, gas)?;
    let document = b.tx.pure(&attestation.to_vec());
    let clock = b.clock();
    let doc = b.tx.move_call(
        Function::new(
            Address::TWO,
            pkg::identifier(pkg::MODULE_NITRO_ATTESTATION),
            pkg::identifier(pkg::FN_LOAD_NITRO_ATTESTATION),
        ),
        vec![document, clock],
    );
    let cluster = b.cluster(true);
    let endpoint = b.tx.pure(&endpoint.to_owned());
    b.call(
        MODULE_ENCLAVE,
        pkg::FN_REGISTER_ENCLAVE,
        vec![cluster, doc, endpoint, clock],
    );
    b.build()
}

/// Sends `amount` MIST split off the gas coin to `to`.
pub fn transfer_sui(
    config: &ChainConfig,
    gas: &Gas,
    to: Address,
    amount: u64,
) -> Result<Transaction, ChainError> {
    let mut b = Builder::new(config, gas)?;
    let amount = b.tx.pure(&amount);
    let gas_coin = b.tx.gas();
    let coin = b.tx.split_coins(gas_coin, vec![amount]);
    let to = b.tx.pure(&to);
    b.tx.transfer_objects(coin, to);
    b.build()
}
