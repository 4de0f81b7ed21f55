//! Generates the `weather.v1` server, client and messages from `proto/weather.proto`, and the
//! file descriptor set that server reflection serves. `protoc` is the one shipped in the
//! `protoc-bin-vendored` crate: nothing is fetched and no system protoc is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto/weather.proto");
    // prost-build runs the protoc that `PROTOC` names (build scripts are single-threaded).
    std::env::set_var("PROTOC", protoc);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("weather_descriptor.bin"))
        .compile_protos(&["proto/weather.proto"], &["proto"])?;
    Ok(())
}
