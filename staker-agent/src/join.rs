//! `staker-agent join`: verify the master, send it a fresh worker Seal token, check what it
//! answers against what was verified, and write the join material (see `state_dir.rs`).
//!
//! In order: (1) the stake record must be the key's, in the cluster, active and a worker's
//! (refused before anything is sent); (2) the master passes the attestation check, or the CA
//! given with `--ca-file` is pinned (with a warning); (3) `POST /join` with a token minted for
//! this one call (5 minutes), over TLS trusting that CA alone; (4) the answer's CA and CA hash
//! must be the verified ones, its node and stake ours; (5) the files are written. Secrets are
//! never printed or logged.

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use base64ct::{Base64, Encoding};
use daas_chain::{Chain, GrpcChain};
use daas_join_api::{AgentKind, JoinRequest, JoinResponse};
use daas_seal::{Address, Role};
use daas_verify_master::{Endpoint, MasterCheck, verify_master};
use daas_wallet::WalletKey;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde_json::json;

use crate::chain::{block_on, connect, now_ms, usable_record};
use crate::cli::{AgentChoice, Global, JoinArgs};
use crate::state_dir::{self, JoinRecord, StateDir};
use crate::token::{Minting, mint_for};

/// Lifetime of the Seal token minted for one join call (the master accepts at most
/// [`daas_join_api::MAX_JOIN_TOKEN_TTL_MS`], and each token once).
const JOIN_TOKEN_TTL_MS: u64 = 5 * 60 * 1000;
/// Largest `--ca-file` read.
const MAX_CA_FILE: u64 = 64 * 1024;

/// Everything a join needs, loaded once (`run` joins again with it).
pub(crate) struct Joiner {
    pub(crate) args: JoinArgs,
    pub(crate) agent: AgentKind,
    key: WalletKey,
    pub(crate) chain: GrpcChain,
}

/// How the master's CA came to be trusted.
#[derive(Clone, Debug)]
pub(crate) enum TrustedBy {
    /// The attestation check passed.
    Attestation { module_id: String, dev_root: bool },
    /// `--ca-file`: pinned by the user, nothing checked.
    PinnedFile(String),
}

/// The master's CA as verified (or pinned), and where to reach it.
struct TrustedMaster {
    endpoint: Endpoint,
    ca_pem: String,
    ca_der: Vec<u8>,
    k3s_ca_hash: String,
    by: TrustedBy,
}

/// A completed join.
pub(crate) struct Joined {
    pub(crate) record: JoinRecord,
    pub(crate) state: StateDir,
    pub(crate) trusted_by: TrustedBy,
    pub(crate) files: Vec<std::path::PathBuf>,
}

impl Joiner {
    /// Loads the key and connects to the chain (checked chain id).
    pub(crate) async fn new(global: &Global, args: JoinArgs, agent: AgentKind) -> Result<Self> {
        let key = crate::chain::key(global)?;
        let chain = connect(&args.chain).await?;
        Ok(Self {
            args,
            agent,
            key,
            chain,
        })
    }

    pub(crate) fn state(&self) -> StateDir {
        StateDir::new(&self.args.state_dir)
    }

    /// One whole join (see the module docs).
    pub(crate) async fn join(&self) -> Result<Joined> {
        let record = usable_record(&self.chain, self.key.address(), self.args.stake).await?;
        if record.role != Role::Worker {
            bail!(
                "stake record {} is a {} stake: only a worker stake can join a node (stake with --role worker --node-name <name>)",
                record.id,
                record.role
            );
        }
        if record.node_name.is_empty() {
            bail!("stake record {} names no node", record.id);
        }
        let master = self.trusted_master().await?;
        let token = mint_for(
            &self.key,
            &Minting {
                cluster: self.chain.config().cluster,
                stake: record.id,
                role: Role::Worker,
                node_name: Some(&record.node_name),
                token_epoch: record.token_epoch,
                ttl_ms: JOIN_TOKEN_TTL_MS,
            },
        )?;
        let body = serde_json::to_vec(&JoinRequest {
            agent: Some(self.agent),
        })
        .context("encoding the join request")?;
        let answer = daas_verify_master::post_json_pinned(
            &master.endpoint,
            &master.ca_der,
            daas_join_api::PATH,
            token.as_str(),
            body,
            daas_join_api::MAX_RESPONSE_LEN,
        )
        .await
        .context("the join request failed; nothing was written")?;
        if !answer.status.is_success() {
            bail!(
                "the master refused the join (HTTP {}): {}; nothing was written",
                answer.status,
                status_message(&answer.body)
            );
        }
        let response: JoinResponse = serde_json::from_slice(&answer.body).map_err(|e| {
            anyhow!("the master's join answer is malformed ({e}); nothing was written")
        })?;
        check_response(&response, &master, record.id, &record.node_name)
            .context("the master's join answer was refused; nothing was written")?;
        let join_record = JoinRecord {
            node_name: response.node_name.clone(),
            stake: record.id.to_string(),
            server: response.server.clone(),
            master: master.endpoint.to_string(),
            ca_hash: response.ca_hash.clone(),
            agent: agent_name(self.agent).to_owned(),
            joined_at_ms: now_ms(),
            expires_at_ms: response.expires_at_ms,
        };
        let state = self.state();
        let files = write_material(&state, &response, &join_record)?;
        Ok(Joined {
            record: join_record,
            state,
            trusted_by: master.by,
            files,
        })
    }

    /// The attestation check, or the pinned `--ca-file`.
    async fn trusted_master(&self) -> Result<TrustedMaster> {
        if let Some(path) = &self.args.ca_file {
            let pem = read_ca_file(path)?;
            let url = match &self.args.master {
                Some(url) => url.clone(),
                None => registered_endpoint(&self.chain).await?,
            };
            eprintln!(
                "staker-agent: WARNING: pinning the CA in {} instead of checking the master's attestation: nothing proves what runs behind {url}",
                path.display()
            );
            let ca_der = CertificateDer::from_pem_slice(pem.as_bytes())
                .map_err(|e| anyhow!("{} holds no PEM certificate: {e}", path.display()))?
                .to_vec();
            return Ok(TrustedMaster {
                endpoint: Endpoint::parse(&url)?,
                k3s_ca_hash: daas_verify_master::k3s_ca_hash(pem.as_bytes()),
                ca_pem: pem,
                ca_der,
                by: TrustedBy::PinnedFile(path.display().to_string()),
            });
        }
        let check = MasterCheck {
            endpoint: self.args.master.clone(),
            anchors: crate::master::anchors(self.args.dev_root.as_deref())?,
            ..MasterCheck::new(now_ms())
        };
        let v = verify_master(&self.chain, &check)
            .await
            .context("the master did not pass the attestation check; nothing was sent")?;
        Ok(TrustedMaster {
            endpoint: Endpoint::parse(&v.endpoint)?,
            ca_pem: v.ca_pem,
            ca_der: v.ca_der,
            k3s_ca_hash: v.k3s_ca_hash,
            by: TrustedBy::Attestation {
                module_id: v.module_id,
                dev_root: self.args.dev_root.is_some(),
            },
        })
    }
}

/// The join request's `agent` for a `--agent` choice.
pub(crate) fn agent_kind(choice: AgentChoice) -> AgentKind {
    match choice {
        AgentChoice::K3s => AgentKind::K3sAgent,
        AgentChoice::Kubelet => AgentKind::Kubelet,
    }
}

fn agent_name(kind: AgentKind) -> &'static str {
    match kind {
        AgentKind::K3sAgent => "k3s-agent",
        AgentKind::Kubelet => "kubelet",
    }
}

/// The endpoint registered on chain for the cluster's enclave.
async fn registered_endpoint(chain: &GrpcChain) -> Result<String> {
    let cluster = chain.cluster().await?.value.cluster;
    cluster.enclave.map(|e| e.endpoint).ok_or_else(|| {
        anyhow!(
            "no enclave is registered on chain for cluster {}: pass --master",
            cluster.id
        )
    })
}

fn read_ca_file(path: &Path) -> Result<String> {
    let bytes = state_dir::read_small(path)?
        .ok_or_else(|| anyhow!("--ca-file {} does not exist", path.display()))?;
    if bytes.len() as u64 > MAX_CA_FILE {
        bail!("--ca-file {} is too large", path.display());
    }
    String::from_utf8(bytes).map_err(|_| anyhow!("--ca-file {} is not PEM text", path.display()))
}

/// The `message` of a Kubernetes `Status` answer (or a bounded, printable excerpt of whatever
/// came back).
fn status_message(body: &[u8]) -> String {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message")?.as_str().map(str::to_owned));
    let text = message.unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let text: String = text.chars().filter(|c| !c.is_control()).take(512).collect();
    if text.is_empty() {
        "(no message)".into()
    } else {
        text
    }
}

/// The answer must carry exactly the verified CA, our node and stake, and well-formed
/// credentials (they end up in files and config lines).
fn check_response(
    r: &JoinResponse,
    master: &TrustedMaster,
    stake: Address,
    node_name: &str,
) -> Result<()> {
    if r.format != daas_join_api::FORMAT_V1 {
        bail!("unknown answer format {:?}", r.format);
    }
    if r.ca_hash != master.k3s_ca_hash {
        bail!(
            "its CA hash {} is not the verified CA's {}",
            printable(&r.ca_hash),
            master.k3s_ca_hash
        );
    }
    if r.ca_certificate != master.ca_pem {
        bail!("its CA certificate is not the verified one");
    }
    if !r
        .client_ca_certificate
        .starts_with("-----BEGIN CERTIFICATE-----")
        || r.client_ca_certificate.len() > 64 * 1024
    {
        bail!("its client CA is not a PEM certificate");
    }
    if r.node_name != node_name {
        bail!(
            "it names node {:?}, but the stake record's node is {node_name:?}",
            printable(&r.node_name)
        );
    }
    if r.stake.parse::<Address>().ok() != Some(stake) {
        bail!("it names stake {:?}, not {stake}", printable(&r.stake));
    }
    let server: http::Uri = r
        .server
        .parse()
        .map_err(|_| anyhow!("its server {:?} is not a URL", printable(&r.server)))?;
    if server.scheme_str() != Some("https") || server.host().is_none() {
        bail!(
            "its server {:?} is not an https URL (k3s agents and kubelets need one)",
            printable(&r.server)
        );
    }
    if !is_bootstrap_token(&r.bootstrap_token) {
        bail!("its bootstrap token is not of the form <6 [a-z0-9]>.<16 [a-z0-9]>");
    }
    if r.token != format!("{}::{}", r.ca_hash, r.bootstrap_token) {
        bail!("its K3s token is not K10<CA hash>::<bootstrap token>");
    }
    if r.node_password.is_empty()
        || r.node_password.len() > 256
        || !r.node_password.bytes().all(|b| b.is_ascii_graphic())
    {
        bail!("its node password is not one word of printable ASCII");
    }
    Ok(())
}

/// Untrusted text for an error message: printable, bounded.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(128).collect()
}

/// `[a-z0-9]{6}.[a-z0-9]{16}` (the Kubernetes bootstrap token format).
fn is_bootstrap_token(s: &str) -> bool {
    let ok = |part: &str, len: usize| {
        part.len() == len
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    matches!(s.split_once('.'), Some((id, secret)) if ok(id, 6) && ok(secret, 16))
}

/// Writes every file of the layout (secrets first, `join.json` last).
fn write_material(
    state: &StateDir,
    r: &JoinResponse,
    record: &JoinRecord,
) -> Result<Vec<std::path::PathBuf>> {
    state.create()?;
    let token_path = state.path(state_dir::TOKEN_FILE);
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{
            "name": "k3s-daas",
            "cluster": {
                "server": r.server,
                "certificate-authority-data": Base64::encode_string(r.ca_certificate.as_bytes()),
            },
        }],
        "users": [{ "name": "bootstrap", "user": { "token": r.bootstrap_token } }],
        "contexts": [{ "name": "bootstrap", "context": { "cluster": "k3s-daas", "user": "bootstrap" } }],
        "current-context": "bootstrap",
    });
    // YAML: one `key: "json string"` per line (a JSON string is a YAML double-quoted scalar).
    let k3s_config = [
        ("server", r.server.as_str()),
        ("token-file", &token_path.to_string_lossy()),
        ("node-name", r.node_name.as_str()),
    ]
    .iter()
    .map(|(k, v)| format!("{k}: {}\n", serde_json::Value::from(*v)))
    .collect::<String>();
    let record_json = serde_json::to_vec_pretty(record).context("encoding join.json")?;
    let files = vec![
        state.write(state_dir::CA_FILE, r.ca_certificate.as_bytes(), 0o644)?,
        state.write(
            state_dir::CLIENT_CA_FILE,
            r.client_ca_certificate.as_bytes(),
            0o644,
        )?,
        state.write(
            state_dir::TOKEN_FILE,
            format!("{}\n", r.token).as_bytes(),
            0o600,
        )?,
        state.write(
            state_dir::NODE_PASSWORD_FILE,
            format!("{}\n", r.node_password).as_bytes(),
            0o600,
        )?,
        state.write(
            state_dir::BOOTSTRAP_KUBECONFIG,
            &serde_json::to_vec_pretty(&kubeconfig).context("encoding the kubeconfig")?,
            0o600,
        )?,
        state.write(state_dir::K3S_CONFIG, k3s_config.as_bytes(), 0o600)?,
        state.write(state_dir::JOIN_RECORD, &record_json, 0o644)?,
    ];
    Ok(files)
}

/// What a join did, on stdout (never a secret).
pub(crate) fn print(global: &Global, j: &Joined) {
    let r = &j.record;
    let (trust_json, trust_text) = match &j.trusted_by {
        TrustedBy::Attestation {
            module_id,
            dev_root,
        } => (
            json!({ "attested": true, "module_id": module_id, "dev_root": dev_root }),
            format!(
                "attested (enclave {module_id}{})",
                if *dev_root { ", under a DEV root" } else { "" }
            ),
        ),
        TrustedBy::PinnedFile(path) => (
            json!({ "attested": false, "ca_file": path }),
            format!("CA pinned from {path} (no attestation check)"),
        ),
    };
    let files: Vec<String> = j.files.iter().map(|p| p.display().to_string()).collect();
    if global.json() {
        println!(
            "{}",
            json!({
                "joined": true, "node_name": r.node_name, "stake": r.stake, "server": r.server,
                "master": r.master, "trust": trust_json, "ca_hash": r.ca_hash, "agent": r.agent,
                "expires_at_ms": r.expires_at_ms, "state_dir": j.state.root().display().to_string(),
                "files": files,
            })
        );
    } else {
        println!(
            "Joined as node {} (stake {}).\nmaster     {} — {trust_text}\nserver     {}\nCA hash    {}\nexpires    {} (the bootstrap token; the node must register before then)\nwrote      {}\nnext       k3s agent --config {}   (or: staker-agent run)",
            r.node_name,
            r.stake,
            r.master,
            r.server,
            r.ca_hash,
            crate::token::rfc3339(r.expires_at_ms),
            files.join("\n           "),
            j.state.path(state_dir::K3S_CONFIG).display(),
        );
    }
}

/// `staker-agent join`.
pub(crate) fn run(global: &Global, args: JoinArgs) -> Result<()> {
    let agent = agent_kind(args.agent);
    let joined = block_on(async { Joiner::new(global, args, agent).await?.join().await })?;
    print(global, &joined);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_token_shape() {
        for (token, ok) in [
            ("abcdef.0123456789abcdef", true),
            ("abcdef.0123456789abcde", false),
            ("ABCDEF.0123456789abcdef", false),
            ("abcdef0123456789abcdef", false),
            ("abcdef.0123456789abcdef\n", false),
            ("", false),
        ] {
            assert_eq!(is_bootstrap_token(token), ok, "{token:?}");
        }
    }

    #[test]
    fn status_messages_are_bounded_and_printable() {
        assert_eq!(
            status_message(br#"{"kind":"Status","code":409,"message":"node name w1 is bound"}"#),
            "node name w1 is bound"
        );
        assert_eq!(status_message(b"plain\ntext"), "plaintext");
        assert_eq!(status_message(b""), "(no message)");
        assert_eq!(status_message(&[b'x'; 2000]).len(), 512);
    }
}
