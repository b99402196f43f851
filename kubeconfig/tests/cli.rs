//! The `kubeconfig generate` and `kubeconfig merge` command lines: exit codes, file modes,
//! refusals, and where files go. No kubectl needed (tests/kubectl.rs runs the real one).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use daas_kubeconfig::read_kubeconfig;
use daas_seal::Address;
use daas_wallet::{Scheme, WalletKey, write_keystore};

mod support;
use support::output_with_stdin;

const BIN: &str = env!("CARGO_BIN_EXE_kubeconfig");

/// Runs the binary in `cwd` with a clean environment (HOME = `home`), feeding `stdin`.
fn run(cwd: &Path, home: &Path, env: &[(&str, &str)], args: &[&str], stdin: &str) -> Output {
    output_with_stdin(
        Command::new(BIN)
            .args(args)
            .current_dir(cwd)
            .env_clear()
            .env("HOME", home)
            .envs(env.iter().copied()),
        stdin,
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

fn ca_file(dir: &Path) -> String {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).expect("cert");
    let path = dir.join("tls.crt");
    std::fs::write(&path, cert.cert.pem()).expect("ca");
    path.display().to_string()
}

#[test]
fn generate_refuses_plain_http_as_bad_usage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_file(dir.path());
    let out = run(
        dir.path(),
        dir.path(),
        &[],
        &[
            "generate",
            "--server",
            "http://127.0.0.1:8080",
            "--ca-file",
            &ca,
            "--token-stdin",
        ],
        "k3sdaas.token",
    );
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(stderr(&out).contains("cleartext"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn generate_needs_exactly_one_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_file(dir.path());
    let base = [
        "generate",
        "--server",
        "https://127.0.0.1:8080",
        "--ca-file",
        &ca,
    ];
    for extra in [&[][..], &["--token-stdin", "--exec"], &["--exec"]] {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let out = run(dir.path(), dir.path(), &[], &args, "");
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn generate_writes_0600_and_never_overwrites_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_file(dir.path());
    let gen_args = |token_out: &str, force: bool| {
        let mut a = vec![
            "generate".to_owned(),
            "--server".to_owned(),
            "https://127.0.0.1:8080".to_owned(),
            "--ca-file".to_owned(),
            ca.clone(),
            "--token-stdin".to_owned(),
            "-o".to_owned(),
            token_out.to_owned(),
        ];
        if force {
            a.push("--force".to_owned());
        }
        a
    };
    let args = gen_args("out/config", false);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(dir.path(), dir.path(), &[], &args, "k3sdaas.first\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "a file was asked for, not stdout");
    assert!(
        !stderr(&out).contains("k3sdaas.first"),
        "the token is not logged"
    );
    let path = dir.path().join("out/config");
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("out")), 0o700);

    let again = run(dir.path(), dir.path(), &[], &args, "k3sdaas.second\n");
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert!(!stderr(&again).contains("k3sdaas.second"));
    let text = std::fs::read_to_string(&path).expect("kubeconfig");
    assert!(text.contains("k3sdaas.first") && !text.contains("k3sdaas.second"));

    let forced = gen_args("out/config", true);
    let forced: Vec<&str> = forced.iter().map(String::as_str).collect();
    let out = run(dir.path(), dir.path(), &[], &forced, "k3sdaas.second\n");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read_to_string(&path)
            .expect("kubeconfig")
            .contains("k3sdaas.second")
    );
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn generate_refuses_an_empty_token_and_a_key_as_ca() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_file(dir.path());
    let out = run(
        dir.path(),
        dir.path(),
        &[],
        &[
            "generate",
            "--server",
            "https://127.0.0.1:8080",
            "--ca-file",
            &ca,
            "--token-stdin",
        ],
        "\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("token is empty"), "{}", stderr(&out));

    let key = rcgen::KeyPair::generate().expect("key");
    let key_file = dir.path().join("tls.key");
    std::fs::write(
        &key_file,
        format!(
            "{}{}",
            std::fs::read_to_string(&ca).expect("ca"),
            key.serialize_pem()
        ),
    )
    .expect("key");
    let out = run(
        dir.path(),
        dir.path(),
        &[],
        &[
            "generate",
            "--server",
            "https://127.0.0.1:8080",
            "--ca-file",
            &key_file.display().to_string(),
            "--token-stdin",
        ],
        "k3sdaas.token",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("private key"), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
}

#[test]
fn exec_mode_records_absolute_paths_and_checks_the_keystore() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_file(dir.path());
    let cluster = Address::new([1; 32]).to_string();
    let stake = Address::new([2; 32]).to_string();
    let args = |keystore: &str| {
        vec![
            "generate".to_owned(),
            "--server".to_owned(),
            "https://127.0.0.1:8080".to_owned(),
            "--ca-file".to_owned(),
            ca.clone(),
            "--exec".to_owned(),
            "--cluster".to_owned(),
            cluster.clone(),
            "--stake".to_owned(),
            stake.clone(),
            "--keystore".to_owned(),
            keystore.to_owned(),
        ]
    };

    // Two keys and no --key: kubectl would fail on every call, so generate fails now.
    write_keystore(
        &dir.path().join("two.keystore"),
        &[
            WalletKey::generate(Scheme::Ed25519),
            WalletKey::generate(Scheme::Ed25519),
        ],
    )
    .expect("keystore");
    let a = args("two.keystore");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = run(dir.path(), dir.path(), &[], &a, "");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--key"), "{}", stderr(&out));

    write_keystore(
        &dir.path().join("sui.keystore"),
        &[WalletKey::generate(Scheme::Ed25519)],
    )
    .expect("keystore");
    let a = args("sui.keystore");
    let a: Vec<&str> = a.iter().map(String::as_str).collect();
    let out = run(dir.path(), dir.path(), &[], &a, "");
    assert!(out.status.success(), "{}", stderr(&out));
    let yaml = String::from_utf8(out.stdout).expect("utf-8");
    assert!(!yaml.contains("insecure-skip-tls-verify"));
    let kc = daas_kubeconfig::parse_kubeconfig(&yaml, Path::new("stdout")).expect("parse");
    let exec = kc.auth_infos[0]
        .auth_info
        .as_ref()
        .and_then(|a| a.exec.clone())
        .expect("exec entry");
    let command = exec.command.expect("command");
    assert_eq!(
        Path::new(&command).canonicalize().expect("command"),
        Path::new(BIN).canonicalize().expect("bin")
    );
    let args = exec.args.expect("args");
    let keystore = args
        .iter()
        .position(|a| a == "--keystore")
        .map(|i| args[i + 1].clone())
        .expect("--keystore");
    assert_eq!(
        Path::new(&keystore),
        dir.path().join("sui.keystore"),
        "the relative --keystore is recorded as an absolute path"
    );
    assert!(
        args.ends_with(&["--ttl".to_owned(), "15m".to_owned()]),
        "{args:?}"
    );
}

#[test]
fn merge_defaults_to_the_first_kubeconfig_path_then_home() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_file(dir.path());
    let out = run(
        dir.path(),
        dir.path(),
        &[],
        &[
            "generate",
            "--server",
            "https://127.0.0.1:8080",
            "--ca-file",
            &ca,
            "--token-stdin",
            "-o",
            "gen.yaml",
        ],
        "k3sdaas.token",
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // $KUBECONFIG: the first non-empty path is the one written.
    let first = dir.path().join("a/config");
    let second = dir.path().join("b/config");
    let list = format!(":{}:{}", first.display(), second.display());
    let out = run(
        dir.path(),
        dir.path(),
        &[("KUBECONFIG", &list)],
        &["merge", "--from", "gen.yaml", "--set-current"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!second.exists());
    assert_eq!(mode(&first), 0o600);
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    let kc = read_kubeconfig(&first).expect("merged");
    assert_eq!(kc.current_context.as_deref(), Some("k3s-daas"));

    // No $KUBECONFIG: ~/.kube/config.
    let out = run(
        dir.path(),
        dir.path(),
        &[],
        &["merge", "--from", "gen.yaml"],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let home_config = dir.path().join(".kube/config");
    assert_eq!(mode(&home_config), 0o600);
    assert_eq!(mode(&dir.path().join(".kube")), 0o700);
}

#[test]
fn merge_conflict_fails_listing_the_names_and_force_replaces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_file(dir.path());
    for (server, out_file) in [
        ("https://10.0.0.1:8080", "one.yaml"),
        ("https://10.0.0.2:8080", "two.yaml"),
    ] {
        let out = run(
            dir.path(),
            dir.path(),
            &[],
            &[
                "generate",
                "--server",
                server,
                "--ca-file",
                &ca,
                "--token-stdin",
                "-o",
                out_file,
            ],
            "k3sdaas.token",
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let into = dir.path().join("config");
    let into_s = into.display().to_string();
    let merge = |from: &str, force: bool| {
        let mut args = vec!["merge", "--from", from, "--into", &into_s];
        if force {
            args.push("--force");
        }
        run(dir.path(), dir.path(), &[], &args, "")
    };
    assert!(merge("one.yaml", false).status.success());
    let before = std::fs::read(&into).expect("config");

    let out = merge("two.yaml", false);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(r#"clusters "k3s-daas""#), "{err}");
    assert!(!err.contains("k3sdaas.token"), "{err}");
    assert_eq!(std::fs::read(&into).expect("config"), before, "untouched");

    let out = merge("two.yaml", true);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(dir.path().join("config.bak")).expect("backup"),
        before
    );
    let kc = read_kubeconfig(&into).expect("config");
    let server = kc.clusters[0]
        .cluster
        .as_ref()
        .and_then(|c| c.server.clone());
    assert_eq!(server.as_deref(), Some("https://10.0.0.2:8080"));
}
