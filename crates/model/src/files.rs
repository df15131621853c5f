//! Files both products write: private keys and other secrets are created with mode 0600 from
//! the first byte (`O_CREAT` with that mode), never written world-readable and chmod-ed after,
//! so no other user can open them in between.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// Mode of a secret file (owner read/write).
pub const SECRET_MODE: u32 = 0o600;
/// Mode of a public file such as a certificate.
pub const PUBLIC_MODE: u32 = 0o644;

/// Writes `data` to `path` (created or truncated) readable by its owner only. An existing
/// file's mode is tightened to 0600 before anything is written to it.
pub fn write_secret(path: &Path, data: &[u8]) -> io::Result<()> {
    write_with_mode(path, data, SECRET_MODE)
}

/// Writes `data` to `path` (created or truncated) with `mode` (on Unix; elsewhere the
/// platform default).
pub fn write_with_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut file = open_with_mode(path, mode)?;
    file.write_all(data)?;
    file.sync_all()
}

/// Like [`write_with_mode`] for a file that must not exist yet: an existing path, a symlink
/// included, is refused (`O_EXCL`), so nothing planted there between a check and the write is
/// followed. `mode` is subject to the umask, as for any newly created file.
pub fn create_with_mode(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path)?;
    file.write_all(data)?;
    file.sync_all()
}

#[cfg(unix)]
fn open_with_mode(path: &Path, mode: u32) -> io::Result<File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .open(path)?;
    // `mode` applies only when the file is created: fix an existing file before writing.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.set_len(0)?;
    Ok(file)
}

#[cfg(not(unix))]
fn open_with_mode(path: &Path, _mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_secret_is_0600_and_existing_file_is_tightened_and_replaced() {
        let dir = std::env::temp_dir().join(format!("kaddons-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("key.pem");
        let _ = std::fs::remove_file(&path);
        write_secret(&path, b"secret").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"secret");

        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_secret(&path, b"new").unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"new");

        write_with_mode(&dir.join("cert.pem"), b"c", PUBLIC_MODE).unwrap();
        assert_eq!(mode(&dir.join("cert.pem")), 0o644);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn create_with_mode_refuses_what_exists_and_never_follows_a_symlink() {
        let dir = std::env::temp_dir().join(format!("kaddons-create-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key.pem");
        create_with_mode(&key, b"k", SECRET_MODE).unwrap();
        assert_eq!(mode(&key), 0o600);
        let again = create_with_mode(&key, b"x", SECRET_MODE).unwrap_err();
        assert_eq!(again.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&key).unwrap(), b"k");
        let link = dir.join("link.pem");
        std::os::unix::fs::symlink(dir.join("target"), &link).unwrap();
        assert!(create_with_mode(&link, b"x", SECRET_MODE).is_err());
        assert!(!dir.join("target").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
