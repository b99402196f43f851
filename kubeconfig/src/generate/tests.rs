use std::path::PathBuf;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use daas_seal::{Address, NodeName, Role};
use kube::config::{ExecInteractiveMode, Kubeconfig};
use secrecy::{ExposeSecret, SecretString};

use super::*;
use crate::file::to_yaml;

const TOKEN: &str = "k3sdaas.v1.unit-test-token";

fn cert_pem(host: &str) -> String {
    rcgen::generate_simple_self_signed(vec![host.to_owned()])
        .expect("self-signed cert")
        .cert
        .pem()
}

fn exec_plugin() -> ExecPlugin {
    ExecPlugin {
        command: PathBuf::from("/usr/local/bin/kubeconfig"),
        keystore: Some(PathBuf::from("/home/me/.sui/sui_config/sui.keystore")),
        key: Some("my-alias".to_owned()),
        cluster: Address::new([0xc1; 32]),
        stake: Address::new([0x5e; 32]),
        role: Role::User,
        node_name: None,
        token_epoch: 3,
        ttl: Duration::from_secs(900),
    }
}

fn spec(credential: UserCredential) -> GenerateSpec {
    GenerateSpec {
        name: "k3s-daas".to_owned(),
        server: ServerUrl::parse("https://203.0.113.7:8080").expect("server"),
        ca: CaBundle::from_pem(cert_pem("203.0.113.7").as_bytes()).expect("ca"),
        namespace: Some("team-a".to_owned()),
        credential,
    }
}

fn token_spec() -> GenerateSpec {
    spec(UserCredential::Token(SecretString::from(TOKEN.to_owned())))
}

/// `Ok(normalised)` or `Err(part of the message)`.
fn check_server(input: &str, expected: Result<&str, &str>) {
    match (ServerUrl::parse(input), expected) {
        (Ok(url), Ok(want)) => assert_eq!(url.as_str(), want, "{input}"),
        (Err(e), Err(want)) => {
            let msg = e.to_string();
            assert!(msg.contains(want), "{input}: {msg:?} lacks {want:?}");
        }
        (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
    }
}

#[test]
fn server_urls() {
    check_server("https://203.0.113.7:8080", Ok("https://203.0.113.7:8080"));
    check_server("https://k3s.example:8080/", Ok("https://k3s.example:8080"));
    check_server("HTTPS://k3s.example:8080", Ok("https://k3s.example:8080"));
    check_server("https://[::1]:8080", Ok("https://[::1]:8080"));
    check_server(
        "https://k3s.example/prefix/",
        Ok("https://k3s.example/prefix"),
    );
    check_server(
        "http://203.0.113.7:8080",
        Err("http://: kubectl would send"),
    );
    check_server("HTTP://k3s.example", Err("cleartext"));
    check_server("k3s.example:8080", Err("missing the https:// scheme"));
    check_server("ftp://k3s.example", Err("scheme must be https://"));
    check_server("https://me:hunter2@k3s.example", Err("credentials"));
    check_server("https://k3s.example?x=1", Err("query"));
    check_server("https://k3s.example#top", Err("fragment"));
    check_server("https://k3s example", Err("not a URL"));
    check_server("https://", Err("invalid server URL"));
    check_server("", Err("invalid server URL"));
    let e = ServerUrl::parse("https://me:hunter2@k3s.example").expect_err("refused");
    assert!(!format!("{e} {e:?}").contains("hunter2"));
}

/// `Ok(number of certificates)` or `Err(part of the message)`.
fn check_ca(input: &[u8], expected: Result<usize, &str>) {
    match (CaBundle::from_pem(input), expected) {
        (Ok(ca), Ok(n)) => assert_eq!(ca.certificates().len(), n),
        (Err(e), Err(want)) => {
            let msg = e.to_string();
            assert!(msg.contains(want), "{msg:?} lacks {want:?}");
        }
        (got, want) => panic!("got {got:?}, want {want:?}"),
    }
}

#[test]
fn ca_files() {
    let a = cert_pem("a.example");
    let b = cert_pem("b.example");
    let key = rcgen::KeyPair::generate().expect("key").serialize_pem();
    check_ca(a.as_bytes(), Ok(1));
    check_ca(format!("# proxy\n{a}\n{b}").as_bytes(), Ok(2));
    check_ca(format!("{a}{key}").as_bytes(), Err("private key"));
    check_ca(key.as_bytes(), Err("private key"));
    check_ca(
        b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        Err("private key"),
    );
    check_ca(b"", Err("no PEM CERTIFICATE"));
    check_ca(b"not a certificate at all", Err("no PEM CERTIFICATE"));
    check_ca(
        b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        Err("no PEM CERTIFICATE"),
    );
    // Valid base64 between the markers, but not X.509.
    check_ca(
        b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n",
        Err("not a usable X.509 certificate"),
    );
    check_ca(
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        Err("not valid PEM"),
    );
    check_ca(b"-----BEGIN CERTIFICATE-----\nAAAA\n", Err("not valid PEM"));
}

#[test]
fn ca_is_re_encoded_from_the_certificates_only() {
    let a = cert_pem("a.example");
    let input =
        format!("comment line\n{a}-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    let ca = CaBundle::from_pem(input.as_bytes()).expect("ca");
    let pem = ca.to_pem();
    assert!(!pem.contains("comment") && !pem.contains("PUBLIC KEY"));
    assert!(pem.lines().all(|l| l.len() <= 64));
    assert_eq!(CaBundle::from_pem(pem.as_bytes()).expect("reparse"), ca);
}

#[test]
fn token_mode() {
    let spec = token_spec();
    let kc = generate(&spec).expect("generate");
    assert_eq!(kc.api_version.as_deref(), Some("v1"));
    assert_eq!(kc.kind.as_deref(), Some("Config"));
    assert_eq!(kc.current_context.as_deref(), Some("k3s-daas"));

    let [cluster] = kc.clusters.as_slice() else {
        panic!("one cluster")
    };
    assert_eq!(cluster.name, "k3s-daas");
    let c = cluster.cluster.as_ref().expect("cluster");
    assert_eq!(c.server.as_deref(), Some("https://203.0.113.7:8080"));
    assert_eq!(c.insecure_skip_tls_verify, None);
    assert_eq!(c.certificate_authority, None);
    let ca_data = c.certificate_authority_data.as_deref().expect("ca data");
    let pem = Base64::decode_vec(ca_data).expect("base64");
    assert_eq!(pem, spec.ca.to_pem().into_bytes());

    let [user] = kc.auth_infos.as_slice() else {
        panic!("one user")
    };
    assert_eq!(user.name, "k3s-daas");
    let auth = user.auth_info.as_ref().expect("auth");
    assert_eq!(
        auth.token.as_ref().map(|t| t.expose_secret()),
        Some(TOKEN),
        "the token is stored"
    );
    assert!(auth.exec.is_none());

    let [context] = kc.contexts.as_slice() else {
        panic!("one context")
    };
    let ctx = context.context.as_ref().expect("context");
    assert_eq!(context.name, "k3s-daas");
    assert_eq!(ctx.cluster, "k3s-daas");
    assert_eq!(ctx.user.as_deref(), Some("k3s-daas"));
    assert_eq!(ctx.namespace.as_deref(), Some("team-a"));

    assert!(!format!("{kc:?}").contains(TOKEN), "Debug hides the token");
    assert!(
        !format!("{spec:?}").contains(TOKEN),
        "Debug hides the token"
    );
}

#[test]
fn exec_mode() {
    let kc = generate(&spec(UserCredential::Exec(exec_plugin()))).expect("generate");
    let auth = kc.auth_infos[0].auth_info.as_ref().expect("auth");
    assert!(auth.token.is_none() && auth.token_file.is_none());
    let exec = auth.exec.as_ref().expect("exec entry");
    assert_eq!(
        exec.api_version.as_deref(),
        Some("client.authentication.k8s.io/v1")
    );
    assert_eq!(exec.command.as_deref(), Some("/usr/local/bin/kubeconfig"));
    let cluster = format!("0x{}", "c1".repeat(32));
    let stake = format!("0x{}", "5e".repeat(32));
    assert_eq!(
        exec.args.as_deref().expect("args"),
        [
            "credential",
            "--cluster",
            cluster.as_str(),
            "--stake",
            stake.as_str(),
            "--role",
            "user",
            "--keystore",
            "/home/me/.sui/sui_config/sui.keystore",
            "--key",
            "my-alias",
            "--epoch",
            "3",
            "--ttl",
            "15m",
        ]
    );
    assert_eq!(exec.interactive_mode, Some(ExecInteractiveMode::Never));
    assert!(!exec.provide_cluster_info);
    assert!(exec.env.is_none());
}

#[test]
fn exec_mode_worker_passes_its_node_name() {
    let plugin = ExecPlugin {
        role: Role::Worker,
        node_name: Some(NodeName::new("node-1").expect("name")),
        keystore: None,
        key: None,
        ..exec_plugin()
    };
    let kc = generate(&spec(UserCredential::Exec(plugin))).expect("generate");
    let args = kc.auth_infos[0]
        .auth_info
        .as_ref()
        .expect("auth")
        .exec
        .as_ref()
        .expect("exec")
        .args
        .clone()
        .expect("args");
    let tail: Vec<&str> = args[5..].iter().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "--role",
            "worker",
            "--node-name",
            "node-1",
            "--epoch",
            "3",
            "--ttl",
            "15m"
        ]
    );
}

/// Builds from `spec` and expects an error whose message contains `want`.
fn check_refused(spec: GenerateSpec, want: &str) {
    match generate(&spec) {
        Ok(_) => panic!("{want}: generated"),
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.contains(want), "{msg:?} lacks {want:?}");
            assert!(!msg.contains(TOKEN));
        }
    }
}

#[test]
fn refusals() {
    let exec = |p: ExecPlugin| spec(UserCredential::Exec(p));
    let token = |t: &str| spec(UserCredential::Token(SecretString::from(t.to_owned())));
    check_refused(token(""), "empty");
    check_refused(token("two words"), "whitespace");
    check_refused(token("tøken"), "non-ASCII");
    check_refused(
        GenerateSpec {
            name: String::new(),
            ..token_spec()
        },
        "invalid name",
    );
    check_refused(
        GenerateSpec {
            name: "my cluster".to_owned(),
            ..token_spec()
        },
        "whitespace",
    );
    check_refused(
        GenerateSpec {
            namespace: Some("Team_A".to_owned()),
            ..token_spec()
        },
        "RFC 1123",
    );
    check_refused(
        exec(ExecPlugin {
            command: PathBuf::from("kubeconfig"),
            ..exec_plugin()
        }),
        "plugin command path must be absolute",
    );
    check_refused(
        exec(ExecPlugin {
            keystore: Some(PathBuf::from("sui.keystore")),
            ..exec_plugin()
        }),
        "keystore path must be absolute",
    );
    check_refused(
        exec(ExecPlugin {
            key: Some("--role".to_owned()),
            ..exec_plugin()
        }),
        "key selector",
    );
    check_refused(
        exec(ExecPlugin {
            role: Role::Worker,
            ..exec_plugin()
        }),
        "needs a node name",
    );
    check_refused(
        exec(ExecPlugin {
            node_name: Some(NodeName::new("node-1").expect("name")),
            ..exec_plugin()
        }),
        "only worker",
    );
    check_refused(
        exec(ExecPlugin {
            ttl: Duration::from_secs(2 * 3600),
            ..exec_plugin()
        }),
        "between 1s and 1h",
    );
    check_refused(
        exec(ExecPlugin {
            ttl: Duration::from_millis(500),
            ..exec_plugin()
        }),
        "between 1s and 1h",
    );
}

/// The YAML we write reads back into the same kubeconfig through kube's own parser.
#[test]
fn yaml_round_trip_through_kube() {
    for spec in [token_spec(), spec(UserCredential::Exec(exec_plugin()))] {
        let kc = generate(&spec).expect("generate");
        let yaml = to_yaml(&kc).expect("yaml");
        assert!(!yaml.contains("insecure-skip-tls-verify"));
        let back = Kubeconfig::from_yaml(&yaml).expect("kube parses it");
        assert_eq!(
            serde_json::to_value(&back).expect("json"),
            serde_json::to_value(&kc).expect("json"),
            "{yaml}"
        );
    }
}

/// kubectl reads YAML 1.1 untyped before it sees the schema: addresses, the epoch and the
/// boolean-looking values must come out as strings, not numbers.
#[test]
fn exec_args_stay_strings_in_untyped_yaml() {
    let plugin = ExecPlugin {
        key: Some("yes".to_owned()),
        token_epoch: 0,
        ..exec_plugin()
    };
    let kc = generate(&spec(UserCredential::Exec(plugin))).expect("generate");
    let yaml = to_yaml(&kc).expect("yaml");
    let untyped: serde_json::Value = serde_saphyr::from_str(&yaml).expect("untyped parse");
    let args = untyped["users"][0]["user"]["exec"]["args"]
        .as_array()
        .expect("args");
    assert!(args.iter().all(serde_json::Value::is_string), "{yaml}");
    assert!(args.iter().any(|a| a == "0"));
    assert!(args.iter().any(|a| a == "yes"));
}
