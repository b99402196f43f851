//! Where the parent gets the credentials it relays, chosen explicitly (no auto-detection: the
//! wrong role relayed silently is worse than a clear start-up error), and the cache in front.
//!
//! - `imds`: the EC2 instance role, from IMDSv2 ([`crate::imds`]);
//! - `web-identity`: an EKS IRSA role, STS `AssumeRoleWithWebIdentity` ([`crate::sts`]);
//! - `container`: an EKS Pod Identity association, from the agent ([`crate::container`]).

use std::time::{Duration, SystemTime};

use crate::container::{Container, ContainerConfig, ContainerError};
use crate::credentials::AwsCredentials;
use crate::imds::{Imds, ImdsError};
use crate::sts::{WebIdentity, WebIdentityConfig, WebIdentityError};

/// Where the relayed credentials come from.
#[derive(Debug, Clone)]
pub enum CredentialsSource {
    /// The EC2 instance role, from IMDSv2 at this base URL (`http://169.254.169.254`).
    Imds {
        /// The metadata service's base URL.
        url: String,
    },
    /// An IAM role for the pod's ServiceAccount (EKS IRSA).
    WebIdentity(WebIdentityConfig),
    /// An EKS Pod Identity association.
    Container(ContainerConfig),
}

impl CredentialsSource {
    /// The name used in flags and logs: `imds`, `web-identity` or `container`.
    pub fn name(&self) -> &'static str {
        match self {
            CredentialsSource::Imds { .. } => "imds",
            CredentialsSource::WebIdentity(_) => "web-identity",
            CredentialsSource::Container(_) => "container",
        }
    }
}

/// Why a source could not be set up (at start) or gave no credentials.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// IMDS.
    #[error(transparent)]
    Imds(#[from] ImdsError),
    /// STS web identity.
    #[error(transparent)]
    WebIdentity(#[from] WebIdentityError),
    /// Pod Identity.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// No region was given and the source cannot tell one.
    #[error(
        "the {0} credentials source needs a region (--region, or AWS_REGION / AWS_DEFAULT_REGION)"
    )]
    NoRegion(&'static str),
    /// The region is not one (it goes into a host name).
    #[error("`{0}` is not an AWS region name (lower-case letters, digits and dashes)")]
    BadRegion(String),
}

#[derive(Debug)]
enum Fetcher {
    Imds(Imds),
    WebIdentity(WebIdentity),
    Container(Container),
}

/// Credentials cached until five minutes before they expire (every source rotates them well
/// before that). Credentials without an expiration are not cached.
#[derive(Debug)]
pub(crate) struct CachedCredentials {
    fetcher: Fetcher,
    region: Option<String>,
    cache: tokio::sync::Mutex<Option<AwsCredentials>>,
}

const REFRESH_BEFORE: Duration = Duration::from_secs(300);

impl CachedCredentials {
    /// Checks the configuration (nothing is fetched yet).
    pub(crate) fn new(
        source: &CredentialsSource,
        region: Option<String>,
    ) -> Result<Self, SourceError> {
        if let Some(r) = &region
            && !valid_region(r)
        {
            return Err(SourceError::BadRegion(r.clone()));
        }
        let fetcher = match source {
            CredentialsSource::Imds { url } => Fetcher::Imds(Imds::new(url)?),
            CredentialsSource::WebIdentity(c) => {
                let r = region
                    .as_deref()
                    .ok_or(SourceError::NoRegion(source.name()))?;
                Fetcher::WebIdentity(WebIdentity::new(c, r)?)
            }
            CredentialsSource::Container(c) => {
                if region.is_none() {
                    return Err(SourceError::NoRegion(source.name()));
                }
                Fetcher::Container(Container::new(c)?)
            }
        };
        Ok(Self {
            fetcher,
            region,
            cache: tokio::sync::Mutex::new(None),
        })
    }

    /// The source's name, for logs.
    pub(crate) fn name(&self) -> &'static str {
        match self.fetcher {
            Fetcher::Imds(_) => "imds",
            Fetcher::WebIdentity(_) => "web-identity",
            Fetcher::Container(_) => "container",
        }
    }

    /// The cached credentials while fresh, else new ones from the source.
    pub(crate) async fn get(&self) -> Result<AwsCredentials, SourceError> {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_ref()
            && c.expiration
                .and_then(|e| e.checked_sub(REFRESH_BEFORE))
                .is_some_and(|fresh_until| SystemTime::now() < fresh_until)
        {
            return Ok(c.clone());
        }
        let fresh = match &self.fetcher {
            Fetcher::Imds(imds) => {
                let region = match &self.region {
                    Some(r) => r.clone(),
                    None => imds.region().await?,
                };
                imds.credentials(&region).await?
            }
            Fetcher::WebIdentity(sts) => sts.credentials(self.region_or_empty()).await?,
            Fetcher::Container(agent) => agent.credentials(self.region_or_empty()).await?,
        };
        *cache = Some(fresh.clone());
        Ok(fresh)
    }

    /// The configured region (always set for the non-IMDS sources: `new` checks).
    fn region_or_empty(&self) -> &str {
        self.region.as_deref().unwrap_or_default()
    }
}

/// `eu-west-1`, `us-gov-west-1`, `cn-north-1`: lower-case letters, digits and dashes.
fn valid_region(r: &str) -> bool {
    (1..=32).contains(&r.len())
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !r.starts_with('-')
        && !r.ends_with('-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_non_imds_sources_need_a_region() {
        let web = CredentialsSource::WebIdentity(WebIdentityConfig {
            role_arn: "arn:aws:iam::123456789012:role/daas".into(),
            token_file: "/t".into(),
            session_name: "daas-bridge".into(),
            duration_seconds: None,
            endpoint: None,
            extra_ca: None,
        });
        let container = CredentialsSource::Container(ContainerConfig {
            full_uri: crate::container::EKS_POD_IDENTITY_URI.into(),
            token_file: "/t".into(),
        });
        for source in [&web, &container] {
            assert!(matches!(
                CachedCredentials::new(source, None),
                Err(SourceError::NoRegion(_))
            ));
            assert!(matches!(
                CachedCredentials::new(source, Some("eu-west-1.evil.com/".into())),
                Err(SourceError::BadRegion(_))
            ));
            let ok = CachedCredentials::new(source, Some("eu-west-1".into())).expect("valid");
            assert_eq!(ok.name(), source.name());
        }
        let imds = CredentialsSource::Imds {
            url: crate::imds::DEFAULT_IMDS_URL.into(),
        };
        assert!(CachedCredentials::new(&imds, None).is_ok());
    }
}
