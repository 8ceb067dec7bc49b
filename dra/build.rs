//! Compiles the kubelet DRA and plugin-registration APIs (`proto/`) with a pure-Rust protobuf
//! compiler, so no `protoc` is needed to build.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(
        ["dra/v1/api.proto", "pluginregistration/v1/api.proto"],
        ["proto"],
    )?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
