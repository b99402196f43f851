//! The parent/enclave bridge for K3s-DaaS on AWS Nitro Enclaves.
//!
//! An enclave has no network: only vsock to its parent instance. This crate carries
//! everything across that link, in both places it runs:
//!
//! - **Parent** ([`Bridge`], `nautilus-master bridge`): ingress TCP (kubectl on :8080, workers
//!   on :6443) to the enclave's vsock ports; enclave-originated egress to an allow-list of TCP
//!   targets, each connection naming its target in a small [`header`]; and a relay for
//!   temporary AWS credentials ([`CredentialsClient`] on the enclave side) from one explicitly
//!   chosen [`CredentialsSource`]: the EC2 instance role (IMDSv2), an EKS IRSA role (STS
//!   `AssumeRoleWithWebIdentity`) or an EKS Pod Identity association.
//! - **Enclave** ([`EnclaveSide`]): local TCP listeners that forward to allow-listed targets
//!   through the parent (checked against the enclave's *own* allow-list first), vsock
//!   listeners that forward to local services, and an [`EgressDialer`].
//!
//! Both run over the [`VsockTransport`] seam: [`RealVsock`] (tokio-vsock) in production,
//! [`UnixVsock`] (Unix sockets named `<cid>.<port>.sock`) in tests and `dev`, because vsock
//! loopback is unavailable on many hosts, including the project's build machine.
//!
//! What this crate does not do: TLS (the enclave terminates and originates it; the parent
//! only ever sees ciphertext), DNS inside the enclave, or any trust decision about the
//! parent, which is untrusted. See `docs/bridge.md`.

mod accept;
mod allow;
mod container;
mod credentials;
mod enclave;
mod fetch;
pub mod header;
mod imds;
mod metrics;
mod parent;
mod source;
mod splice;
mod sts;
mod transport;

pub use allow::{AllowList, AllowListError, Host, Target, TargetError};
pub use container::{ContainerConfig, ContainerError, EKS_POD_IDENTITY_URI};
pub use credentials::{AwsCredentials, CredentialsClient, CredentialsError, Secret};
pub use enclave::{
    EgressDialer, EgressError, EgressForward, EnclaveConfig, EnclaveError, EnclaveHandle,
    EnclaveSide, IngressForward,
};
pub use fetch::{FetchError, TlsRootsError, TokenFileError};
pub use imds::{DEFAULT_IMDS_URL, Imds, ImdsError};
pub use metrics::{Counters, CountersSnapshot};
pub use parent::{
    Bridge, BridgeConfig, BridgeError, BridgeHandle, CredentialsConfig, EgressConfig, IngressRoute,
};
pub use source::{CredentialsSource, SourceError};
pub use splice::Limits;
pub use sts::{DEFAULT_SESSION_NAME, WebIdentityConfig, WebIdentityError};
pub use transport::{
    Accepted, BoxFuture, BoxListener, BoxStream, Listener, MIN_ENCLAVE_CID, PARENT_CID, RealVsock,
    Stream, UnixVsock, VsockTransport,
};
