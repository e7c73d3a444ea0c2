//! Compiles `proto/` with protox, so no system `protoc` is needed.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in with env!: the compiled build script is shared by every
    // checkout that uses the same target directory (CI clones into a new folder each run).
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "ics/events/v1/types.proto",
        "ics/events/v1/envelope.proto",
        "ics/events/v1/command.proto",
        "ics/events/v1/trusts.proto",
        "ics/events/v1/workshops.proto",
        "ics/events/v1/metrics.proto",
        "ics/trusts/v1/trusts.proto",
        "ics/workshops/v1/workshops.proto",
        "ics/metrics/v1/metrics.proto",
        "ics/reporting/v1/measures.proto",
        "ics/reporting/v1/reporting.proto",
        "ics/admin/v1/admin.proto",
    ];
    let file_descriptors = protox::compile(files, [&proto_root])?;

    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out_dir.join("ics_descriptor.bin"),
        prost::Message::encode_to_vec(&file_descriptors),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Prost's codec, decoding each message from one slice (see `src/codec.rs`).
        .codec_path("crate::codec::ProstCodec")
        .compile_fds(file_descriptors)?;

    println!("cargo:rerun-if-changed={}", proto_root.display());
    Ok(())
}
