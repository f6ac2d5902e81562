//! Links the `rudder` binary with packed relative relocations (`DT_RELR`) where the
//! toolchain and C library can: the binary is a position-independent executable
//! with some 73,000 relative relocations, which take 1.7 MB as classic `RELA`
//! entries and about 17 KB packed (DESIGN.md §5 budgets the binary at 30 MiB). The
//! packed form needs binutils 2.38+ and glibc 2.36+; the probe links a tiny program
//! with the flag, so an older host simply builds without it.

use std::io::Write;
use std::process::{Command, Stdio};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.contains("linux-gnu") {
        return;
    }
    if links_with_packed_relocs() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

fn links_with_packed_relocs() -> bool {
    let Ok(out) = std::env::var("OUT_DIR") else { return false };
    let exe = std::path::Path::new(&out).join("relr-probe");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let child = Command::new(cc)
        .args(["-x", "c", "-", "-pie", "-fPIE", "-Wl,-z,pack-relative-relocs", "-o"])
        .arg(&exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else { return false };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"int main(void) { return 0; }\n");
    }
    let linked = child.wait().is_ok_and(|s| s.success());
    // The linker may accept the flag yet leave the relocations unpacked (a C
    // library without `GLIBC_ABI_DT_RELR`); the program must also run.
    linked && Command::new(&exe).status().is_ok_and(|s| s.success())
}
