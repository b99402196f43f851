//! Generates the etcd v3 API and the shim admin API with the `protoc` shipped in
//! `protoc-bin-vendored`, so a fresh machine needs no system protobuf compiler.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut config = prost_build::Config::new();
    config.protoc_executable(protoc_bin_vendored::protoc_bin_path()?);
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        // Values are shared between the index, the watch log and responses without copying.
        .bytes(".")
        .compile_with_config(
            config,
            &[
                "proto/etcd/api/etcdserverpb/rpc.proto",
                "proto/etcd/api/mvccpb/kv.proto",
                "proto/etcd/api/authpb/auth.proto",
                "proto/daas/shim/v1/admin.proto",
            ],
            &["proto"],
        )?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
