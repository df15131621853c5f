//! The minimal root filesystem of kaddons-metrics-server's image, as distroless "cc" has it:
//! the binary, the shared libraries a glibc-linked binary needs (read from the build machine
//! with `ldd`; none for a static binary), CA certificates, `/etc/passwd` and `/etc/group` with
//! the non-root user 65532 ("nonroot"), and a world-writable sticky `/tmp`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::archive::{Arch, Entry, ImageConfig};

pub const BINARY_PATH: &str = "usr/local/bin/kaddons-metrics-server";
pub const CA_CERTIFICATES: &str = "/etc/ssl/certs/ca-certificates.crt";
pub const NONROOT: u64 = 65532;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {what} {}", .path.display())]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not an ELF executable; pass the kaddons-metrics-server binary itself (target/release/kaddons-metrics-server)", .path.display())]
    NotElf { path: PathBuf },
    #[error("{} is built for {found}, not {wanted}; build it for {wanted} (cargo build --release --target {target}) or pick --platform {found}", .path.display())]
    WrongArch {
        path: PathBuf,
        found: String,
        wanted: Arch,
        target: &'static str,
    },
    #[error("{} is dynamically linked for {arch}, and kaddons can only collect shared libraries for this machine's architecture; pass a statically linked binary (a musl target) with --binary", .path.display())]
    ForeignDynamic { path: PathBuf, arch: Arch },
    #[error("{} is dynamically linked, and `ldd` cannot list its libraries: {problem}; install libc-bin (it ships ldd) or pass a statically linked binary with --binary", .path.display())]
    Ldd { path: PathBuf, problem: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What an ELF header says: the machine, and whether it has a program interpreter (is
/// dynamically linked).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elf {
    pub machine: u16,
    pub dynamic: bool,
}

/// Reads the ELF header and program headers (64-bit little-endian only: amd64 and arm64).
pub fn elf(data: &[u8]) -> Option<Elf> {
    if data.len() < 64 || &data[..4] != b"\x7fELF" || data[4] != 2 || data[5] != 1 {
        return None;
    }
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_le_bytes)
    };
    let machine = u16_at(18)?;
    let phoff = usize::try_from(u64_at(32)?).ok()?;
    let phentsize = usize::from(u16_at(54)?);
    let phnum = usize::from(u16_at(56)?);
    let mut dynamic = false;
    for i in 0..phnum {
        // PT_INTERP = 3
        if u32_at(phoff.checked_add(i.checked_mul(phentsize)?)?)? == 3 {
            dynamic = true;
        }
    }
    Some(Elf { machine, dynamic })
}

fn arch_name(machine: u16) -> String {
    match machine {
        62 => "linux/amd64".into(),
        183 => "linux/arm64".into(),
        other => format!("ELF machine {other}"),
    }
}

/// The shared libraries `ldd` lists for `binary`, by the path the loader looks them up at
/// (the interpreter under its absolute name, e.g. /lib64/ld-linux-x86-64.so.2).
pub fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let ldd_error = |problem: String| Error::Ldd {
        path: binary.to_path_buf(),
        problem,
    };
    let out = Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|e| ldd_error(format!("running ldd: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(ldd_error(format!(
            "ldd exited with {}: {}{}",
            out.status,
            text.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)`, `/lib64/ld-linux-x86-64.so.2 (0x...)`,
        // `linux-vdso.so.1 (0x...)` (in the kernel, not a file).
        let path = match line.split_once("=>") {
            Some((_, right)) => right.split_whitespace().next().unwrap_or(""),
            None => line.split_whitespace().next().unwrap_or(""),
        };
        if path == "not" || line.contains("not found") {
            return Err(ldd_error(format!("a library is missing: {line}")));
        }
        if path.starts_with('/') {
            libs.push(PathBuf::from(path));
        }
    }
    Ok(libs)
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|source| Error::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// The entries and config of the kaddons-metrics-server image for `binary` (built for
/// `arch`), tagged `reference`, with the CA bundle at `ca_certificates`.
pub fn metrics_server(
    binary: &Path,
    arch: Arch,
    reference: &str,
    ca_certificates: &Path,
) -> Result<(ImageConfig, Vec<Entry>)> {
    let data = read("the kaddons-metrics-server binary", binary)?;
    let info = elf(&data).ok_or_else(|| Error::NotElf {
        path: binary.to_path_buf(),
    })?;
    if info.machine != arch.elf_machine() {
        return Err(Error::WrongArch {
            path: binary.to_path_buf(),
            found: arch_name(info.machine),
            wanted: arch,
            target: arch.rust_target(),
        });
    }
    let mut entries = vec![
        Entry::file(BINARY_PATH, 0o755, data),
        Entry::file(
            "etc/ssl/certs/ca-certificates.crt",
            0o644,
            read("the CA certificates", ca_certificates)?,
        ),
        Entry::file(
            "etc/passwd",
            0o644,
            b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n".to_vec(),
        ),
        Entry::file("etc/group", 0o644, b"root:x:0:\nnonroot:x:65532:\n".to_vec()),
        Entry::dir("tmp", 0o1777),
        Entry::dir("root", 0o700),
        Entry::Dir {
            path: "home/nonroot".into(),
            mode: 0o700,
            uid: NONROOT,
            gid: NONROOT,
        },
    ];
    if info.dynamic {
        if Arch::host() != Some(arch) {
            return Err(Error::ForeignDynamic {
                path: binary.to_path_buf(),
                arch,
            });
        }
        for lib in shared_libraries(binary)? {
            let data = read("a shared library of the binary", &lib)?;
            let path = lib.to_string_lossy().trim_start_matches('/').to_string();
            entries.push(Entry::file(&path, 0o755, data));
        }
    }
    let mut labels = BTreeMap::new();
    labels.insert(
        "org.opencontainers.image.title".to_string(),
        "kaddons-metrics-server".to_string(),
    );
    labels.insert(
        "org.opencontainers.image.description".to_string(),
        "written by `kaddons image build metrics-server`".to_string(),
    );
    let config = ImageConfig {
        reference: reference.to_string(),
        arch,
        entrypoint: vec![format!("/{BINARY_PATH}")],
        user: format!("{NONROOT}:{NONROOT}"),
        exposed_ports: vec!["10250/tcp".into()],
        env: vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            format!("SSL_CERT_FILE={CA_CERTIFICATES}"),
        ],
        labels,
    };
    Ok((config, entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_test_binary_as_elf() {
        let me = std::env::current_exe().unwrap();
        let info = elf(&std::fs::read(me).unwrap()).unwrap();
        if let Some(arch) = Arch::host() {
            assert_eq!(info.machine, arch.elf_machine());
        }
        assert!(elf(b"#!/bin/sh\n").is_none());
        assert!(elf(&[0x7f, b'E', b'L', b'F', 2, 1]).is_none());
    }
}
