//! [`Chain`] over Sui gRPC v2 with `sui_rpc::Client`.

use std::time::Duration;

use daas_chain_types::package::{grant_entry_id, slashed_entry_id};
use daas_chain_types::{AdminCap, Package, StakeRecord, objects::Coin};
use futures_util::{StreamExt, pin_mut};
use prost_types::FieldMask;
use sui_crypto::SuiSigner;
use sui_crypto::simple::SimpleKeypair;
use sui_rpc::field::FieldMaskUtil;
use sui_rpc::proto::sui::rpc::v2::{
    self as proto, ExecuteTransactionRequest, GetObjectRequest, GetServiceInfoRequest,
    ListOwnedObjectsRequest, owner::OwnerKind,
};
use sui_sdk_types::{Address, Digest, StructTag, Transaction, UserSignature};

use crate::effects::Executed;
use crate::tx::Gas;
use crate::{
    AdminCapObject, AtCheckpoint, Chain, ChainConfig, ChainError, ChainInfo, ClusterObject,
    ObjectRef, RecordObject, SuiCoin,
};

const OBJECT_MASK: &[&str] = &[
    "object_id",
    "version",
    "digest",
    "owner",
    "object_type",
    "contents",
];
const EXECUTED_MASK: &[&str] = &["digest", "checkpoint", "effects", "events"];
/// Sui's limit on gas payment objects per transaction.
const MAX_GAS_COINS: usize = 256;
/// At most this many objects are read from one owned-object listing (an address can be sent
/// any number of dust coins; a hostile endpoint could page forever).
const MAX_LISTED_OBJECTS: usize = 10_000;

/// The chain client on `sui_rpc::Client`. Cheap to clone (one shared connection).
#[derive(Clone)]
pub struct GrpcChain {
    client: sui_rpc::Client,
    config: ChainConfig,
    package: Package,
    checkpoint_timeout: Duration,
}

impl std::fmt::Debug for GrpcChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcChain")
            .field("rpc", &self.config.rpc)
            .field("package", &self.package.id)
            .field("cluster", &self.config.cluster)
            .finish()
    }
}

/// A decoded Move object read from the chain.
struct FetchedObject {
    object: ObjectRef,
    owner: proto::Owner,
    ty: StructTag,
    contents: Vec<u8>,
}

impl GrpcChain {
    /// A client for `config.rpc`. Connects lazily; call [`GrpcChain::check_chain`] to verify
    /// the endpoint before signing anything.
    pub fn new(config: ChainConfig) -> Result<GrpcChain, ChainError> {
        let client = sui_rpc::Client::new(config.rpc.as_str())
            .map_err(|e| ChainError::Config(format!("invalid RPC URL {:?}: {e}", config.rpc)))?;
        Ok(GrpcChain {
            client,
            package: Package::new(config.package),
            config,
            checkpoint_timeout: Duration::from_secs(30),
        })
    }

    /// How long [`Chain::execute`] waits for the checkpoint (default 30 s).
    pub fn with_checkpoint_timeout(mut self, timeout: Duration) -> Self {
        self.checkpoint_timeout = timeout;
        self
    }

    pub fn config(&self) -> &ChainConfig {
        &self.config
    }

    pub fn package(&self) -> &Package {
        &self.package
    }

    /// The underlying `sui_rpc` client (for streams).
    pub fn rpc_client(&self) -> sui_rpc::Client {
        self.client.clone()
    }

    fn status(&self, call: &'static str, status: tonic::Status) -> ChainError {
        if status.code() == tonic::Code::Unavailable {
            return ChainError::Unreachable {
                url: self.config.rpc.clone(),
                reason: status.message().to_owned(),
            };
        }
        ChainError::rpc(call, status)
    }

    /// Reads the endpoint's identity and, if the configuration names a chain id, refuses any
    /// other chain.
    pub async fn check_chain(&self) -> Result<ChainInfo, ChainError> {
        let info = self.info().await?;
        if let Some(expected) = &self.config.chain_id
            && *expected != info.chain_id
        {
            return Err(ChainError::WrongChain {
                expected: expected.clone(),
                actual: info.chain_id,
            });
        }
        Ok(info)
    }

    /// What an answer's `x-sui-*` headers say: refuses an endpoint that reports another chain
    /// than the configured `chain_id` (or none at all when one is configured), and returns the
    /// checkpoint height the answer reflects.
    fn answer_checkpoint(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Option<u64>, ChainError> {
        use sui_rpc::client::ResponseExt;
        if let Some(expected) = &self.config.chain_id {
            let actual = metadata.chain_id().map(|d| d.to_string());
            if actual.as_deref() != Some(expected.as_str()) {
                return Err(ChainError::WrongChain {
                    expected: expected.clone(),
                    actual: actual.unwrap_or_else(|| "(no x-sui-chain-id header)".into()),
                });
            }
        }
        Ok(metadata.checkpoint_height())
    }

    async fn fetch(&self, id: Address) -> Result<AtCheckpoint<Option<FetchedObject>>, ChainError> {
        let request = GetObjectRequest::new(&id).with_read_mask(FieldMask::from_paths(OBJECT_MASK));
        let response = match self
            .client
            .clone()
            .ledger_client()
            .get_object(request)
            .await
        {
            Ok(r) => r,
            Err(s) if s.code() == tonic::Code::NotFound => {
                let checkpoint = self.answer_checkpoint(s.metadata())?;
                return Ok(AtCheckpoint::new(None, checkpoint));
            }
            Err(s) => return Err(self.status("GetObject", s)),
        };
        let checkpoint = self.answer_checkpoint(response.metadata())?;
        let object = response
            .into_inner()
            .object
            .ok_or_else(|| ChainError::decode(format!("object {id}"), "empty response"))?;
        let fetched = decode_object(&object)?;
        if fetched.object.id != id {
            return Err(ChainError::decode(
                format!("object {id}"),
                format!("the endpoint answered with object {}", fetched.object.id),
            ));
        }
        Ok(AtCheckpoint::new(Some(fetched), checkpoint))
    }

    /// The version at which shared object `id` became shared (a transaction input needs it).
    pub async fn initial_shared_version(&self, id: Address) -> Result<u64, ChainError> {
        let o = self
            .fetch(id)
            .await?
            .value
            .ok_or(ChainError::ObjectNotFound(id))?;
        match (o.owner.kind(), o.owner.version) {
            (OwnerKind::Shared, Some(v)) => Ok(v),
            _ => Err(ChainError::decode(
                format!("object {id}"),
                "not a shared object",
            )),
        }
    }

    /// The `AdminCap` `id`: its reference, its owner and its cluster, after checking that it is
    /// the configured package's `AdminCap`, owned by an address, and that its `id` field is the
    /// object's (admin tooling checks owner and cluster before paying gas for a call).
    pub async fn admin_cap(&self, id: Address) -> Result<AdminCapObject, ChainError> {
        let o = self
            .fetch(id)
            .await?
            .value
            .ok_or(ChainError::ObjectNotFound(id))?;
        if o.ty != self.package.admin_cap_type() {
            return Err(ChainError::WrongType {
                id,
                expected: "AdminCap".into(),
                actual: o.ty.to_string(),
            });
        }
        let owner = address_owner(&o.owner).ok_or_else(|| ChainError::NotAddressOwned {
            id,
            owner: format!("{:?}", o.owner.kind()),
        })?;
        let cap: AdminCap = daas_chain_types::from_bcs(&o.contents)
            .map_err(|e| ChainError::decode(format!("AdminCap {id}"), e))?;
        if cap.id != id {
            return Err(ChainError::decode(
                format!("AdminCap {id}"),
                "id field disagrees with the object",
            ));
        }
        Ok(AdminCapObject {
            object: o.object,
            owner,
            cap,
        })
    }

    /// The current reference of an owned object.
    pub async fn object_ref(&self, id: Address) -> Result<ObjectRef, ChainError> {
        self.fetch(id)
            .await?
            .value
            .map(|o| o.object)
            .ok_or(ChainError::ObjectNotFound(id))
    }

    /// Gas for a transaction by `sender` that also spends `amount` MIST from the gas coin:
    /// the reference gas price, [`crate::tx::DEFAULT_GAS_BUDGET`], and the sender's largest
    /// coins until they cover amount + budget.
    pub async fn gas_for(&self, sender: Address, amount: u64) -> Result<Gas, ChainError> {
        let price = self.reference_gas_price().await?;
        let budget = crate::tx::DEFAULT_GAS_BUDGET;
        let needed = amount.saturating_add(budget);
        let mut coins = self.sui_coins(sender).await?;
        coins.sort_by_key(|c| std::cmp::Reverse(c.balance));
        let available = coins
            .iter()
            .fold(0u64, |sum, c| sum.saturating_add(c.balance));
        let mut picked = Vec::new();
        let mut sum = 0u64;
        for c in coins.iter().take(MAX_GAS_COINS) {
            if sum >= needed {
                break;
            }
            sum = sum.saturating_add(c.balance);
            picked.push(c.object);
        }
        if sum < needed && available >= needed {
            return Err(ChainError::Build(format!(
                "{needed} MIST needed but the {MAX_GAS_COINS} largest of {} coins hold only {sum}: merge coins first",
                coins.len()
            )));
        }
        if sum < needed {
            return Err(ChainError::InsufficientBalance {
                needed,
                available,
                coins: coins.len(),
            });
        }
        Ok(Gas {
            sender,
            coins: picked,
            price,
            budget,
        })
    }

    /// Signs `tx` with `key` (which must be the sender) and executes it; a failed execution is
    /// returned as the matching error (a Move abort as [`ChainError::Aborted`]).
    pub async fn sign_and_execute(
        &self,
        key: &SimpleKeypair,
        tx: Transaction,
    ) -> Result<Executed, ChainError> {
        let signature = key
            .sign_transaction(&tx)
            .map_err(|e| ChainError::Sign(e.to_string()))?;
        self.execute(tx, vec![signature]).await?.into_result()
    }

    /// The value of `table`'s entry for `key` (`None` when there is none): the dynamic-field
    /// object `entry` (its derived id) must have type `ty`, be owned by `table`, and carry that
    /// id and that key — an entry that is anything else is an error, never an answer.
    async fn table_entry<V: serde::de::DeserializeOwned>(
        &self,
        table: Address,
        key: Address,
        entry: Address,
        ty: StructTag,
        what: &str,
    ) -> Result<AtCheckpoint<Option<V>>, ChainError> {
        let answer = self.fetch(entry).await?;
        let checkpoint = answer.checkpoint;
        let Some(o) = answer.value else {
            return Ok(AtCheckpoint::new(None, checkpoint));
        };
        if o.ty != ty {
            return Err(ChainError::WrongType {
                id: entry,
                expected: what.to_owned(),
                actual: o.ty.to_string(),
            });
        }
        let field: daas_chain_types::Field<Address, V> =
            daas_chain_types::from_bcs(&o.contents).map_err(|e| ChainError::decode(what, e))?;
        let in_table = o.owner.kind() == OwnerKind::Object
            && o.owner.address.as_deref().and_then(|a| a.parse().ok()) == Some(table);
        if !in_table {
            return Err(ChainError::decode(
                format!("{what} {entry}"),
                format!("not owned by the table {table}"),
            ));
        }
        if field.id != entry || field.name != key {
            return Err(ChainError::decode(
                format!("{what} {entry}"),
                format!("id or key field is not the entry of {key}"),
            ));
        }
        Ok(AtCheckpoint::new(Some(field.value), checkpoint))
    }

    fn decode_record(&self, o: FetchedObject) -> Result<RecordObject, ChainError> {
        let expected = self.package.stake_record_type();
        if o.ty != expected {
            return Err(ChainError::WrongType {
                id: o.object.id,
                expected: "StakeRecord".into(),
                actual: o.ty.to_string(),
            });
        }
        let owner = address_owner(&o.owner).ok_or_else(|| ChainError::NotAddressOwned {
            id: o.object.id,
            owner: format!("{:?}", o.owner.kind()),
        })?;
        let record: StakeRecord = daas_chain_types::from_bcs(&o.contents)
            .map_err(|e| ChainError::decode(format!("stake record {}", o.object.id), e))?;
        if record.id != o.object.id || record.owner != owner {
            return Err(ChainError::decode(
                format!("stake record {}", o.object.id),
                "id or owner field disagrees with the object",
            ));
        }
        Ok(RecordObject {
            object: o.object,
            record,
        })
    }

    async fn owned_of_type(
        &self,
        owner: Address,
        ty: &StructTag,
    ) -> Result<Vec<FetchedObject>, ChainError> {
        let mut request = ListOwnedObjectsRequest::default();
        request.owner = Some(owner.to_string());
        request.object_type = Some(ty.to_string());
        request.page_size = Some(500);
        request.read_mask = Some(FieldMask::from_paths(OBJECT_MASK));
        let stream = self.client.list_owned_objects(request);
        pin_mut!(stream);
        let mut out = Vec::new();
        let mut seen = 0usize;
        while let Some(item) = stream.next().await {
            seen += 1;
            if seen > MAX_LISTED_OBJECTS {
                return Err(ChainError::decode(
                    format!("objects of {owner}"),
                    format!("more than {MAX_LISTED_OBJECTS} objects of type {ty}"),
                ));
            }
            let object = item.map_err(|s| self.status("ListOwnedObjects", s))?;
            let fetched = decode_object(&object)?;
            // Never trust a server-side filter alone: compare parsed types.
            if fetched.ty == *ty {
                out.push(fetched);
            }
        }
        Ok(out)
    }
}

fn address_owner(owner: &proto::Owner) -> Option<Address> {
    (owner.kind() == OwnerKind::Address)
        .then(|| owner.address.as_deref()?.parse().ok())
        .flatten()
}

fn decode_object(object: &proto::Object) -> Result<FetchedObject, ChainError> {
    let id: Address = object
        .object_id
        .as_deref()
        .ok_or_else(|| ChainError::decode("object", "no object_id"))?
        .parse()
        .map_err(|e| ChainError::decode("object id", e))?;
    let what = || format!("object {id}");
    let version = object
        .version
        .ok_or_else(|| ChainError::decode(what(), "no version"))?;
    let digest: Digest = object
        .digest
        .as_deref()
        .ok_or_else(|| ChainError::decode(what(), "no digest"))?
        .parse()
        .map_err(|e| ChainError::decode(what(), e))?;
    let ty: StructTag = object
        .object_type
        .as_deref()
        .ok_or_else(|| ChainError::decode(what(), "no type (not a Move object)"))?
        .parse()
        .map_err(|e| ChainError::decode(what(), e))?;
    let contents = object
        .contents
        .as_ref()
        .and_then(|b| b.value.as_ref())
        .ok_or_else(|| ChainError::decode(what(), "no contents"))?
        .to_vec();
    let owner = object
        .owner
        .clone()
        .ok_or_else(|| ChainError::decode(what(), "no owner"))?;
    Ok(FetchedObject {
        object: ObjectRef {
            id,
            version,
            digest,
        },
        owner,
        ty,
        contents,
    })
}

impl Chain for GrpcChain {
    async fn info(&self) -> Result<ChainInfo, ChainError> {
        let info = self
            .client
            .clone()
            .ledger_client()
            .get_service_info(GetServiceInfoRequest::default())
            .await
            .map_err(|s| self.status("GetServiceInfo", s))?
            .into_inner();
        Ok(ChainInfo {
            chain_id: info.chain_id.unwrap_or_default(),
            chain: info.chain.unwrap_or_default(),
            epoch: info.epoch.unwrap_or_default(),
            checkpoint_height: info.checkpoint_height.unwrap_or_default(),
        })
    }

    async fn reference_gas_price(&self) -> Result<u64, ChainError> {
        self.client
            .clone()
            .get_reference_gas_price()
            .await
            .map_err(|s| self.status("GetEpoch", s))
    }

    async fn stake_record(
        &self,
        id: Address,
    ) -> Result<AtCheckpoint<Option<RecordObject>>, ChainError> {
        let answer = self.fetch(id).await?;
        let record = answer.value.map(|o| self.decode_record(o)).transpose()?;
        Ok(AtCheckpoint::new(record, answer.checkpoint))
    }

    async fn cluster(&self) -> Result<AtCheckpoint<ClusterObject>, ChainError> {
        let id = self.config.cluster;
        let answer = self.fetch(id).await?;
        let checkpoint = answer.checkpoint;
        let o = answer.value.ok_or(ChainError::ObjectNotFound(id))?;
        if o.ty != self.package.cluster_type() {
            return Err(ChainError::WrongType {
                id,
                expected: "Cluster".into(),
                actual: o.ty.to_string(),
            });
        }
        if o.owner.kind() != OwnerKind::Shared {
            return Err(ChainError::decode(
                format!("cluster {id}"),
                "not a shared object",
            ));
        }
        let cluster = daas_chain_types::from_bcs(&o.contents)
            .map_err(|e| ChainError::decode(format!("cluster {id}"), e))?;
        Ok(AtCheckpoint::new(
            ClusterObject {
                version: o.object.version,
                cluster,
            },
            checkpoint,
        ))
    }

    async fn is_slashed(
        &self,
        slashed_table: Address,
        record: Address,
    ) -> Result<AtCheckpoint<bool>, ChainError> {
        let entry = slashed_entry_id(slashed_table, record);
        let answer = self
            .table_entry::<bool>(
                slashed_table,
                record,
                entry,
                daas_chain_types::package::slashed_entry_type(),
                "slashed table entry",
            )
            .await?;
        // An entry holding `false` is a misbehaving endpoint, not "not slashed": that answer
        // must not fail open.
        if answer.value == Some(false) {
            return Err(ChainError::decode(
                format!("slashed table entry {entry}"),
                "the slashed mark holds false",
            ));
        }
        Ok(answer.map(|v| v.is_some()))
    }

    async fn role_grants(
        &self,
        grants_table: Address,
        account: Address,
    ) -> Result<AtCheckpoint<u8>, ChainError> {
        let answer = self
            .table_entry::<u8>(
                grants_table,
                account,
                grant_entry_id(grants_table, account),
                daas_chain_types::package::grant_entry_type(),
                "role grants table entry",
            )
            .await?;
        Ok(answer.map(|v| v.unwrap_or(0)))
    }

    async fn sui_coins(&self, owner: Address) -> Result<Vec<SuiCoin>, ChainError> {
        self.owned_of_type(owner, &StructTag::gas_coin())
            .await?
            .into_iter()
            .map(|o| {
                let coin: Coin = daas_chain_types::from_bcs(&o.contents)
                    .map_err(|e| ChainError::decode(format!("coin {}", o.object.id), e))?;
                Ok(SuiCoin {
                    object: o.object,
                    balance: coin.balance,
                })
            })
            .collect()
    }

    async fn stake_records_of(&self, owner: Address) -> Result<Vec<RecordObject>, ChainError> {
        let ty = self.package.stake_record_type();
        self.owned_of_type(owner, &ty)
            .await?
            .into_iter()
            .map(|o| self.decode_record(o))
            .collect()
    }

    async fn execute(
        &self,
        transaction: Transaction,
        signatures: Vec<UserSignature>,
    ) -> Result<Executed, ChainError> {
        let digest = transaction.digest();
        let mut request = ExecuteTransactionRequest::default();
        request.transaction = Some(transaction.into());
        request.signatures = signatures.into_iter().map(Into::into).collect();
        request.read_mask = Some(FieldMask::from_paths(EXECUTED_MASK));
        let response = self
            .client
            .clone()
            .execute_transaction_and_wait_for_checkpoint(request, self.checkpoint_timeout)
            .await
            .map_err(|e| match e {
                sui_rpc::client::ExecuteAndWaitError::RpcError(s) => {
                    self.status("ExecuteTransaction", s)
                }
                sui_rpc::client::ExecuteAndWaitError::CheckpointTimeout(_)
                | sui_rpc::client::ExecuteAndWaitError::CheckpointStreamError { .. } => {
                    ChainError::CheckpointTimeout {
                        digest: digest.to_string(),
                    }
                }
                other => ChainError::decode("execute request", other),
            })?
            .into_inner();
        let executed = response
            .transaction
            .ok_or_else(|| ChainError::decode("execute response", "no transaction"))?;
        let decoded = Executed::decode(&self.package, &executed)?;
        if decoded.digest != digest {
            return Err(ChainError::decode(
                "execute response",
                format!(
                    "executed {} but the endpoint answered for {}",
                    digest, decoded.digest
                ),
            ));
        }
        Ok(decoded)
    }
}
