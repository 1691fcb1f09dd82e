//! Generates the gRPC code of `proto/dts.proto` with a vendored `protoc`, so a plain
//! `cargo build` works on a machine that has no protobuf compiler installed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protos = ["proto/dts.proto"];
    for proto in protos {
        println!("cargo:rerun-if-changed={proto}");
    }
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY of intent: build scripts are single-threaded; prost reads PROTOC.
    std::env::set_var("PROTOC", protoc);
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("dts_descriptor.bin"))
        // `dtsctl -o json` prints the wire types as they are.
        .type_attribute(".dts.v1", "#[derive(serde::Serialize)]")
        .compile_protos(&protos, &["proto"])?;
    Ok(())
}
