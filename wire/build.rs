//! Generates the Rust types of `proto/packetless.proto` with prost, compiling the
//! schema with protox (pure Rust: no protoc needed).

fn main() {
    println!("cargo:rerun-if-changed=proto/packetless.proto");
    let descriptors = protox::compile(["proto/packetless.proto"], ["proto"]).unwrap_or_else(|e| {
        eprintln!("error: proto/packetless.proto: {e}");
        std::process::exit(1);
    });
    prost_build::Config::new().compile_fds(descriptors).unwrap_or_else(|e| {
        eprintln!("error: generating Rust from proto/packetless.proto: {e}");
        std::process::exit(1);
    });
}
