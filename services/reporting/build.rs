//! Generates the reporting service's gRPC server over the contract types of `ics-proto`, with
//! one difference: GetMeasureView answers with [`crate::encoded::Encoded`] rather than a
//! `MeasureView` of its own. An ICS measure view is hundreds of rows, computed once and asked
//! for thousands of times a second; copying it for every answer cost more than anything else in
//! serving it. The wire contract is the same message (see `encoded.rs`); clients keep using
//! `ics-proto`'s generated client.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time, not baked in with env!: the compiled build script is shared by every
    // checkout that uses the same target directory.
    let proto_root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let mut file_descriptors =
        protox::compile(["ics/reporting/v1/reporting.proto"], [&proto_root])?;
    // Only the service's own file: its imports' types are `ics-proto`'s.
    file_descriptors
        .file
        .retain(|file| file.name() == "ics/reporting/v1/reporting.proto");

    tonic_prost_build::configure()
        .build_client(false)
        .build_server(true)
        .codec_path("::ics_proto::codec::ProstCodec")
        .extern_path(
            ".ics.reporting.v1.MeasureView",
            "crate::encoded::Encoded<::ics_proto::reporting::v1::MeasureView>",
        )
        .extern_path(".ics", "::ics_proto")
        .compile_fds(file_descriptors)?;

    println!("cargo:rerun-if-changed={}", proto_root.display());
    Ok(())
}
