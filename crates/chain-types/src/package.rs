//! Names and type tags of the package's modules, functions and structs, and of the few
//! framework objects the package touches.

use sui_sdk_types::{Address, Identifier, StructTag, TypeTag};

/// Module names.
pub const MODULE_CLUSTER: &str = "cluster";
pub const MODULE_STAKING: &str = "staking";
pub const MODULE_ENCLAVE: &str = "enclave";

/// Entry functions of `staking`.
pub const FN_STAKE: &str = "stake";
pub const FN_ADD_STAKE: &str = "add_stake";
pub const FN_REQUEST_UNSTAKE: &str = "request_unstake";
pub const FN_WITHDRAW: &str = "withdraw";
pub const FN_REVOKE_TOKENS: &str = "revoke_tokens";
pub const FN_SETTLE_SLASH: &str = "settle_slash";

/// Admin functions of `cluster`.
pub const FN_SET_ROLE_MINIMUM: &str = "set_role_minimum";
pub const FN_SET_UNBONDING_PERIOD: &str = "set_unbonding_period";
pub const FN_SET_EXPECTED_PCRS: &str = "set_expected_pcrs";
pub const FN_SET_ENCLAVE_OPERATOR: &str = "set_enclave_operator";
pub const FN_SET_NAME: &str = "set_name";
pub const FN_WITHDRAW_TREASURY: &str = "withdraw_treasury";
pub const FN_SLASH: &str = "slash";
pub const FN_GRANT_ROLE: &str = "grant_role";
pub const FN_REVOKE_ROLE: &str = "revoke_role";
pub const FN_MIGRATE: &str = "migrate";

/// `enclave::register_enclave`.
pub const FN_REGISTER_ENCLAVE: &str = "register_enclave";

/// The shared `0x2::clock::Clock` object and its initial shared version.
pub const CLOCK_ID: Address = Address::from_static("0x6");
pub const CLOCK_INITIAL_SHARED_VERSION: u64 = 1;

/// A published `k3s_daas` package, identified by its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Package {
    pub id: Address,
}

impl Package {
    pub const fn new(id: Address) -> Self {
        Package { id }
    }

    /// `{package}::{module}::{name}` without type parameters.
    pub fn struct_tag(&self, module: &str, name: &str) -> StructTag {
        StructTag::new(self.id, identifier(module), identifier(name), vec![])
    }

    /// `{package}::staking::StakeRecord`.
    pub fn stake_record_type(&self) -> StructTag {
        self.struct_tag(MODULE_STAKING, "StakeRecord")
    }

    /// `{package}::cluster::Cluster`.
    pub fn cluster_type(&self) -> StructTag {
        self.struct_tag(MODULE_CLUSTER, "Cluster")
    }

    /// `{package}::cluster::AdminCap`.
    pub fn admin_cap_type(&self) -> StructTag {
        self.struct_tag(MODULE_CLUSTER, "AdminCap")
    }
}

/// A Move identifier from one of this crate's constant names (all valid identifiers).
pub fn identifier(name: &str) -> Identifier {
    Identifier::new(name).unwrap_or_else(|_| unreachable!("constant identifiers are valid"))
}

/// `0x2::object::ID`, the key type of `Cluster.slashed`.
pub fn object_id_type() -> TypeTag {
    TypeTag::Struct(Box::new(StructTag::new(
        Address::TWO,
        Identifier::from_static("object"),
        Identifier::from_static("ID"),
        vec![],
    )))
}

/// `0x2::dynamic_field::Field<0x2::object::ID, bool>`: the type of a `Cluster.slashed` entry.
pub fn slashed_entry_type() -> StructTag {
    StructTag::new(
        Address::TWO,
        Identifier::from_static("dynamic_field"),
        Identifier::from_static("Field"),
        vec![object_id_type(), TypeTag::Bool],
    )
}

/// `0x2::dynamic_field::Field<address, u8>`: the type of a `Cluster.grants` entry.
pub fn grant_entry_type() -> StructTag {
    StructTag::new(
        Address::TWO,
        Identifier::from_static("dynamic_field"),
        Identifier::from_static("Field"),
        vec![TypeTag::Address, TypeTag::U8],
    )
}

/// `0x2::clock::Clock`.
pub fn clock_type() -> StructTag {
    StructTag::new(
        Address::TWO,
        Identifier::from_static("clock"),
        Identifier::from_static("Clock"),
        vec![],
    )
}

/// `0x2::nitro_attestation` and its `load_nitro_attestation` entry function.
pub const MODULE_NITRO_ATTESTATION: &str = "nitro_attestation";
pub const FN_LOAD_NITRO_ATTESTATION: &str = "load_nitro_attestation";

/// `0x2::nitro_attestation::NitroAttestationDocument` (`drop` only: it lives within one PTB).
pub fn nitro_attestation_document_type() -> StructTag {
    StructTag::new(
        Address::TWO,
        Identifier::from_static("nitro_attestation"),
        Identifier::from_static("NitroAttestationDocument"),
        vec![],
    )
}

/// Object id of the `Cluster.slashed` entry for `record_id`: the dynamic field of the table
/// `table_id` keyed by the `ID` `record_id`. It exists exactly while the record is marked slashed,
/// so a reader checks "slashed?" with one object read (not found = not slashed).
pub fn slashed_entry_id(table_id: Address, record_id: Address) -> Address {
    table_id.derive_dynamic_child_id(&object_id_type(), record_id.as_bytes())
}

/// Object id of the `Cluster.grants` entry for `account`: the dynamic field of the table
/// `grants_table` keyed by the `address` `account`. It exists exactly while the account holds at
/// least one grant, so a reader learns an account's grant mask with one object read (not found =
/// no grant).
pub fn grant_entry_id(grants_table: Address, account: Address) -> Address {
    grants_table.derive_dynamic_child_id(&TypeTag::Address, account.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_tags_print_and_parse_as_sui_does() {
        let pkg = Package::new(Address::from_static("0xabc"));
        let tag = pkg.stake_record_type();
        let parsed: StructTag = tag.to_string().parse().expect("parses");
        assert_eq!(parsed, tag);
        assert!(tag.to_string().ends_with("::staking::StakeRecord"));
        assert_eq!(
            slashed_entry_type().to_string(),
            format!(
                "{}::dynamic_field::Field<{}::object::ID, bool>",
                Address::TWO,
                Address::TWO
            )
        );
    }

    #[test]
    fn slashed_entry_ids_depend_on_table_and_record() {
        let t = Address::from_static("0x1");
        let a = slashed_entry_id(t, Address::from_static("0xa"));
        assert_ne!(a, slashed_entry_id(t, Address::from_static("0xb")));
        assert_ne!(
            a,
            slashed_entry_id(Address::from_static("0x2"), Address::from_static("0xa"))
        );
        assert_eq!(a, slashed_entry_id(t, Address::from_static("0xa")));
    }

    #[test]
    fn grant_entries_are_keyed_by_address_not_id() {
        let t = Address::from_static("0x1");
        let a = Address::from_static("0xa");
        let g = grant_entry_id(t, a);
        assert_eq!(g, grant_entry_id(t, a));
        assert_ne!(g, grant_entry_id(t, Address::from_static("0xb")));
        assert_ne!(g, grant_entry_id(Address::from_static("0x2"), a));
        // Same table and key bytes, but key type `address` instead of `ID`.
        assert_ne!(g, slashed_entry_id(t, a));
        assert_eq!(
            grant_entry_type().to_string(),
            format!("{}::dynamic_field::Field<address, u8>", Address::TWO)
        );
    }
}
