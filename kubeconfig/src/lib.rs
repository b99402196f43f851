//! kubectl access to K3s-DaaS: kubeconfig files and the exec credential plugin.
//!
//! kubectl reaches the cluster through the K3s-DaaS proxy (`https://HOST:8080`), which
//! authenticates Seal tokens. This crate writes the kubeconfig that points kubectl there:
//!
//! - [`generate`] builds a [`Kubeconfig`] (kube's own types) with one cluster, user and context.
//!   The cluster pins the proxy's certificate as `certificate-authority-data`
//!   ([`CaBundle`]), and the server must be `https://` ([`ServerUrl`]). The user either holds
//!   a static token ([`UserCredential::Token`]) or runs this crate's binary as an exec
//!   credential plugin ([`UserCredential::Exec`]).
//! - [`merge`] adds a generated kubeconfig to an existing one. A name that exists with
//!   different content is a conflict unless forced; nothing else is touched.
//! - [`to_yaml`], [`parse_kubeconfig`], [`read_kubeconfig`], [`write_private`] and
//!   [`merge_into_file`] do the file side: YAML through kube's own YAML crate, atomic 0600
//!   writes, a `.bak` backup and kubectl's `<file>.lock` convention.
//! - [`exec_credential`] mints a short-lived Seal token from the user's Sui wallet and wraps it
//!   in a `client.authentication.k8s.io/v1` `ExecCredential`, the object an exec credential
//!   plugin prints (like `aws eks get-token`). kubectl caches it until `expirationTimestamp`
//!   and runs the plugin again afterwards, so tokens can be minutes long.
//!
//! Not here: talking to the cluster, reading the chain (the stake's `token_epoch` is passed in),
//! fetching or verifying the enclave's attested certificate (the CA file is given), and
//! `insecure-skip-tls-verify`, which is never written.
//!
//! No error or `Debug` output of this crate contains a token; static tokens are
//! [`SecretString`]s.

mod credential;
mod file;
mod generate;
mod merge;

pub use credential::{
    CredentialError, CredentialRequest, EXEC_API_VERSION, ExecCredential, ExecCredentialStatus,
    exec_credential,
};
pub use file::{
    FileError, MergeOutcome, merge_into_file, parse_kubeconfig, read_kubeconfig, to_yaml,
    write_private,
};
pub use generate::{
    CaBundle, ExecPlugin, GenerateError, GenerateSpec, MAX_EXEC_TTL, ServerUrl, UserCredential,
    generate,
};
pub use kube::config::Kubeconfig;
pub use merge::{Conflicts, MergeError, MergeOptions, merge};
pub use secrecy::SecretString;
