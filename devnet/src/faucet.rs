//! The faucet: an ordinary signed transfer from the faucet key, submitted through the gRPC client
//! (the devnet has no special faucet endpoint).

use std::time::Duration;

use futures_util::StreamExt;
use prost_types::FieldMask;
use sui_crypto::SuiSigner;
use sui_rpc::client::ExecuteAndWaitError;
use sui_rpc::field::FieldMaskUtil;
use sui_rpc::proto::sui::rpc::v2 as proto;
use sui_sdk_types::{Address, Digest, StructTag};
use sui_transaction_builder::{ObjectInput, TransactionBuilder};

use daas_chain_types::consts::MIST_PER_SUI;
use daas_wallet::WalletKey;

use crate::error::DevnetError;

/// Gas budget of a faucet transfer (far above its cost, see `exec::gas`).
const BUDGET: u64 = 50_000_000;
/// How often a transfer is retried when another transfer consumed the chosen coin first.
const ATTEMPTS: usize = 5;

/// The result of a faucet transfer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaucetReceipt {
    pub digest: Digest,
    /// The new `Coin<SUI>` owned by the recipient.
    pub coin: Address,
    pub amount: u64,
}

/// Parses an amount: `100` or `1.5` (SUI) or `250mist` (MIST).
pub fn parse_amount(text: &str) -> Result<u64, String> {
    let text = text.trim();
    if let Some(mist) = text.strip_suffix("mist") {
        return mist
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("{text:?} is not a whole number of MIST"));
    }
    let sui = text.strip_suffix("sui").unwrap_or(text).trim();
    let (whole, fraction) = sui.split_once('.').unwrap_or((sui, ""));
    let bad = || format!("{text:?} is not an amount (e.g. 100, 0.5 or 250mist)");
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad());
    }
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let fraction: u64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().map_err(|_| bad())?
    };
    whole
        .checked_mul(MIST_PER_SUI)
        .and_then(|m| m.checked_add(fraction))
        .ok_or_else(|| format!("{text:?} is too large"))
}

fn rpc_error(client: &sui_rpc::Client, status: tonic::Status) -> DevnetError {
    DevnetError::Rpc {
        rpc: client.uri().to_string(),
        status: Box::new(status),
    }
}

/// Coins of `owner` large enough to pay `amount` plus the gas budget.
async fn faucet_coins(
    client: &sui_rpc::Client,
    owner: Address,
    amount: u64,
) -> Result<Vec<ObjectInput>, DevnetError> {
    let request = proto::ListOwnedObjectsRequest::default()
        .with_owner(owner.to_string())
        .with_object_type(StructTag::gas_coin().to_string())
        .with_page_size(1000)
        .with_read_mask(FieldMask::from_paths([
            "object_id",
            "version",
            "digest",
            "balance",
        ]));
    let mut stream = Box::pin(client.list_owned_objects(request));
    let mut coins = Vec::new();
    while let Some(object) = stream.next().await {
        let object = object.map_err(|s| rpc_error(client, s))?;
        if object.balance() < amount.saturating_add(BUDGET) {
            continue;
        }
        let (Ok(id), Ok(digest)) = (object.object_id().parse(), object.digest().parse()) else {
            continue;
        };
        coins.push(ObjectInput::owned(id, object.version(), digest));
    }
    Ok(coins)
}

fn random_index(len: usize) -> usize {
    use rand_core::RngCore;
    (rand_core::OsRng.next_u64() % len.max(1) as u64) as usize
}

/// Sends `amount` MIST to `to` from the faucet key: `SplitCoins(Gas, [amount])` and
/// `TransferObjects`, signed and executed like any transaction.
pub async fn fund(
    client: &mut sui_rpc::Client,
    faucet: &WalletKey,
    to: Address,
    amount: u64,
) -> Result<FaucetReceipt, DevnetError> {
    if amount == 0 {
        return Err(DevnetError::Faucet("the amount must be above 0".to_owned()));
    }
    let gas_price = client
        .get_reference_gas_price()
        .await
        .map_err(|s| rpc_error(client, s))?;
    let sender = faucet.address();
    let mut last_error = None;
    for _ in 0..ATTEMPTS {
        let coins = faucet_coins(client, sender, amount).await?;
        if coins.is_empty() {
            return Err(DevnetError::Faucet(format!(
                "the faucet {sender} has no coin holding {amount} MIST plus {BUDGET} MIST of gas"
            )));
        }
        let gas = coins[random_index(coins.len())].clone();

        let mut builder = TransactionBuilder::new();
        let amount_arg = builder.pure(&amount);
        let gas_arg = builder.gas();
        let split = builder.split_coins(gas_arg, vec![amount_arg]);
        let recipient = builder.pure(&to);
        builder.transfer_objects(split, recipient);
        builder.set_sender(sender);
        builder.set_gas_budget(BUDGET);
        builder.set_gas_price(gas_price);
        builder.add_gas_objects([gas]);
        let transaction = builder
            .try_build()
            .map_err(|e| DevnetError::Faucet(format!("cannot build the transfer: {e}")))?;
        let signature = faucet
            .keypair()
            .sign_transaction(&transaction)
            .map_err(|e| DevnetError::Faucet(format!("cannot sign the transfer: {e}")))?;
        let request = proto::ExecuteTransactionRequest::new(transaction.into())
            .with_signatures(vec![signature.into()])
            .with_read_mask(FieldMask::from_paths([
                "digest",
                "effects.status",
                "effects.changed_objects",
            ]));
        let response = match client
            .execute_transaction_and_wait_for_checkpoint(request, Duration::from_secs(30))
            .await
        {
            Ok(response) => response.into_inner(),
            // Another transfer used the same coin first: pick again.
            Err(ExecuteAndWaitError::RpcError(status))
                if status.code() == tonic::Code::FailedPrecondition =>
            {
                last_error = Some(status);
                continue;
            }
            Err(e) => return Err(DevnetError::Faucet(format!("transfer failed: {e}"))),
        };
        let executed = response.transaction();
        let status = executed.effects().status();
        if !status.success() {
            return Err(DevnetError::Faucet(format!(
                "transfer failed on chain: {:?}",
                status.error()
            )));
        }
        let digest: Digest = executed
            .digest()
            .parse()
            .map_err(|_| DevnetError::Faucet("the response has no digest".to_owned()))?;
        let to_text = to.to_string();
        let coin = executed
            .effects()
            .changed_objects
            .iter()
            .find(|c| {
                c.id_operation() == proto::changed_object::IdOperation::Created
                    && c.output_owner().address() == to_text
            })
            .and_then(|c| c.object_id().parse().ok())
            .ok_or_else(|| DevnetError::Faucet("the transfer created no coin".to_owned()))?;
        return Ok(FaucetReceipt {
            digest,
            coin,
            amount,
        });
    }
    Err(DevnetError::Faucet(format!(
        "every faucet coin was in use; last error: {}",
        last_error
            .map(|s| s.message().to_owned())
            .unwrap_or_default()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_parse_as_sui_or_mist() {
        assert_eq!(parse_amount("100"), Ok(100 * MIST_PER_SUI));
        assert_eq!(parse_amount("1.5"), Ok(1_500_000_000));
        assert_eq!(parse_amount("0.000000001"), Ok(1));
        assert_eq!(parse_amount("250mist"), Ok(250));
        assert_eq!(parse_amount("2sui"), Ok(2 * MIST_PER_SUI));
        for bad in ["", "abc", "1.0000000001", "-1", "1e3", "mist", "."] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
        assert!(parse_amount("18446744073709551615").is_err());
    }
}
