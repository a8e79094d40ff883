//! Builds the eBPF object from `src/bpf/*.c` with clang (CO-RE: `-g -O2 -target bpf`).
//!
//! The object lands in `$OUT_DIR/packetless.bpf.o` and is embedded by `src/lib.rs`.
//! clang is taken from `$CLANG`, else the first of `clang-19`, `clang-18`, ..., `clang`
//! found on `PATH`. A missing compiler or missing libbpf headers fail the build with
//! the Debian packages that provide them.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const SOURCES: &[&str] = &[
    "packetless.bpf.c",
    "owner.bpf.c",
    "tcp_life.bpf.c",
    "udp.bpf.c",
    "iter.bpf.c",
    "cgroup.bpf.c",
    "common.h",
    "config.h",
    "events.h",
    "maps.h",
    "vmlinux.h",
];

const PACKAGES_HINT: &str = "install them with: apt-get install clang-19 libbpf-dev linux-libc-dev \
     (or set CLANG to a clang >= 14 that has the BPF target)";

fn main() {
    let src = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR")).join("src/bpf");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("packetless.bpf.o");
    for file in SOURCES {
        println!("cargo:rerun-if-changed={}", src.join(file).display());
    }
    println!("cargo:rerun-if-env-changed=CLANG");

    let clang =
        find_clang().unwrap_or_else(|| fail(&format!("no clang found to build the eBPF programs; {PACKAGES_HINT}")));
    let libbpf_include = ["/usr/include", "/usr/local/include"]
        .iter()
        .map(Path::new)
        .find(|dir| dir.join("bpf/bpf_helpers.h").exists())
        .unwrap_or_else(|| fail(&format!("libbpf headers (bpf/bpf_helpers.h) not found; {PACKAGES_HINT}")));
    let multiarch = multiarch_include();
    if !multiarch.join("asm/types.h").exists() && !Path::new("/usr/include/asm/types.h").exists() {
        fail(&format!("kernel UAPI headers (asm/types.h) not found in {}; {PACKAGES_HINT}", multiarch.display()));
    }

    let output = Command::new(&clang)
        .args(["-g", "-O2", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-I{}", src.display()))
        .arg(format!("-I{}", libbpf_include.display()))
        .arg(format!("-I{}", multiarch.display()))
        .arg("-c")
        .arg(src.join("packetless.bpf.c"))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| fail(&format!("running {clang}: {e}; {PACKAGES_HINT}")));
    if !output.status.success() {
        fail(&format!("{clang} failed to build the eBPF object:\n{}", String::from_utf8_lossy(&output.stderr)));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}

/// `CLANG` if set, else the newest versioned clang on `PATH`, else plain `clang`.
fn find_clang() -> Option<String> {
    if let Some(clang) = env::var_os("CLANG") {
        return Some(clang.to_string_lossy().into_owned());
    }
    let names = (14..=22).rev().map(|v| format!("clang-{v}")).chain(std::iter::once("clang".to_owned()));
    let path = env::var_os("PATH")?;
    names.into_iter().find(|name| env::split_paths(&path).any(|dir| dir.join(name).is_file()))
}

/// Debian keeps `asm/*.h` under a per-architecture directory.
fn multiarch_include() -> PathBuf {
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let triple = match arch.as_str() {
        "aarch64" => "aarch64-linux-gnu",
        "riscv64" => "riscv64-linux-gnu",
        "powerpc64" => "powerpc64le-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        _ => "x86_64-linux-gnu",
    };
    PathBuf::from("/usr/include").join(triple)
}
