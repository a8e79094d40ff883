//! Checks that the system libzmq (with its development symlink) is there before the
//! link step fails with a bare "cannot find -lzmq", and passes its search path on.

use std::path::Path;
use std::process::Command;

const HINT: &str = "install it with: apt-get install libzmq3-dev (Debian/Ubuntu; libzmq5 brings CURVE through \
                    libsodium), or your distribution's zeromq development package";

fn main() {
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    if let Ok(out) = Command::new("pkg-config").args(["--libs-only-L", "libzmq"]).output() {
        if out.status.success() {
            for dir in String::from_utf8_lossy(&out.stdout).split_whitespace().filter_map(|a| a.strip_prefix("-L")) {
                println!("cargo:rustc-link-search=native={dir}");
            }
            return;
        }
    }
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let candidates = [
        format!("/usr/lib/{arch}-linux-gnu/libzmq.so"),
        "/usr/lib/libzmq.so".to_owned(),
        "/usr/lib64/libzmq.so".to_owned(),
        "/usr/local/lib/libzmq.so".to_owned(),
    ];
    if !candidates.iter().any(|c| Path::new(c).exists()) {
        eprintln!("error: libzmq (libzmq.so) not found; packetless exports flows to ntopng through it; {HINT}");
        std::process::exit(1);
    }
}
