//! Front-proxy (request-header) certificates for clusters built by hand.
//!
//! metrics-server is an *aggregated* API: kube-apiserver proxies `/apis/metrics.k8s.io` to it
//! and proves who the caller is with a client certificate (the "front proxy") plus
//! `X-Remote-User`/`X-Remote-Group` headers. kubeadm, kind, k3s and minikube set this up; a
//! control plane assembled from the binaries ("Kubernetes the hard way") usually does not,
//! and metrics-server then fails with `requestheader-client-ca-file` errors or the APIService
//! never becomes Available.
//!
//! This module creates what kubeadm would: a front-proxy CA and a `front-proxy-client`
//! certificate signed by it, written with safe permissions, plus the exact kube-apiserver flags
//! that use them. It writes files and nothing else: no cluster access, no CLI code.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kaddons_model::files::{self, PUBLIC_MODE, SECRET_MODE};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// File names, as kubeadm uses them under `/etc/kubernetes/pki`.
pub const CA_CERT_FILE: &str = "front-proxy-ca.crt";
pub const CA_KEY_FILE: &str = "front-proxy-ca.key";
pub const CLIENT_CERT_FILE: &str = "front-proxy-client.crt";
pub const CLIENT_KEY_FILE: &str = "front-proxy-client.key";

/// Common names, as kubeadm uses them. The client CN is what `--requestheader-allowed-names`
/// must list.
pub const CA_COMMON_NAME: &str = "front-proxy-ca";
pub const CLIENT_COMMON_NAME: &str = "front-proxy-client";

const DAY: u64 = 86_400;
/// Ten years (with the two or three leap days that fall in any ten-year span).
const CA_VALIDITY: Duration = Duration::from_secs((10 * 365 + 2) * DAY);
const CLIENT_VALIDITY: Duration = Duration::from_secs(365 * DAY);
/// Backdating covers small clock differences between this machine and the control plane.
const BACKDATE: Duration = Duration::from_secs(5 * 60);

/// What went wrong while creating front-proxy certificates.
#[derive(Debug, thiserror::Error)]
pub enum AggregatorError {
    #[error("{} already exists; pass --force to overwrite it", path.display())]
    AlreadyExists { path: PathBuf },
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot resolve the absolute path of {}: {source}", path.display())]
    Resolve {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot remove {} before overwriting it: {source}", path.display())]
    Remove {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot generate the front-proxy certificates: {0}")]
    Generate(#[from] rcgen::Error),
}

/// Where the four files were written. All paths are absolute, so the flags built from them
/// work wherever kube-apiserver is started from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrontProxyCerts {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl FrontProxyCerts {
    /// The paths the files have (or would have) inside `dir`, which must be absolute for the
    /// flags to be usable.
    pub fn in_dir(dir: &Path) -> Self {
        FrontProxyCerts {
            ca_cert: dir.join(CA_CERT_FILE),
            ca_key: dir.join(CA_KEY_FILE),
            client_cert: dir.join(CLIENT_CERT_FILE),
            client_key: dir.join(CLIENT_KEY_FILE),
        }
    }

    /// The kube-apiserver flags that enable the aggregation layer with these files, one flag
    /// per element, in the order kubeadm writes them.
    pub fn apiserver_flags(&self) -> Vec<String> {
        vec![
            format!("--requestheader-client-ca-file={}", self.ca_cert.display()),
            format!("--requestheader-allowed-names={CLIENT_COMMON_NAME}"),
            "--requestheader-extra-headers-prefix=X-Remote-Extra-".to_string(),
            "--requestheader-group-headers=X-Remote-Group".to_string(),
            "--requestheader-username-headers=X-Remote-User".to_string(),
            format!("--proxy-client-cert-file={}", self.client_cert.display()),
            format!("--proxy-client-key-file={}", self.client_key.display()),
        ]
    }

    /// How to check that the flags took effect.
    pub fn how_to_verify(&self) -> &'static str {
        HOW_TO_VERIFY
    }

    fn files(&self) -> [(&Path, u32); 4] {
        [
            (&self.ca_cert, PUBLIC_MODE),
            (&self.ca_key, SECRET_MODE),
            (&self.client_cert, PUBLIC_MODE),
            (&self.client_key, SECRET_MODE),
        ]
    }
}

const HOW_TO_VERIFY: &str = "\
To verify: restart kube-apiserver with the flags above, enable metrics-server, then
  kubectl get --raw /apis
lists the metrics.k8s.io group, and
  kubectl -n kube-system get configmap extension-apiserver-authentication -o yaml
shows requestheader-client-ca-file.
If kube-apiserver cannot reach Service IPs (no kube-proxy on the control-plane host), also pass
--enable-aggregator-routing=true.
";

/// Generates the front-proxy CA and client certificate and writes the four files into `dir`
/// (created if missing).
///
/// Without `force`, nothing is written if any of the four files already exists (the error
/// names it). With `force`, existing files are replaced; they are removed first so the new
/// files get their modes at creation (keys 0600, certificates 0644, both subject to the umask).
/// Everything is generated before the first file is touched.
pub fn write_front_proxy_certs(
    dir: &Path,
    force: bool,
) -> Result<FrontProxyCerts, AggregatorError> {
    fs::create_dir_all(dir).map_err(|source| AggregatorError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let dir = fs::canonicalize(dir).map_err(|source| AggregatorError::Resolve {
        path: dir.to_path_buf(),
        source,
    })?;
    let certs = FrontProxyCerts::in_dir(&dir);

    if !force {
        for (path, _) in certs.files() {
            // symlink_metadata: a dangling symlink is in the way too.
            if fs::symlink_metadata(path).is_ok() {
                return Err(AggregatorError::AlreadyExists {
                    path: path.to_path_buf(),
                });
            }
        }
    }

    let material = generate(SystemTime::now())?;
    let contents = [
        material.ca_cert.as_bytes(),
        material.ca_key.as_bytes(),
        material.client_cert.as_bytes(),
        material.client_key.as_bytes(),
    ];
    for ((path, mode), content) in certs.files().into_iter().zip(contents) {
        if force {
            remove_if_present(path)?;
        }
        write_new(path, mode, content)?;
    }
    Ok(certs)
}

/// PEM text of the four files.
struct Material {
    ca_cert: String,
    ca_key: String,
    client_cert: String,
    client_key: String,
}

fn generate(now: SystemTime) -> Result<Material, AggregatorError> {
    let start = now.checked_sub(BACKDATE).unwrap_or(now);

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    ca_params.not_before = start.into();
    ca_params.not_after = (start + CA_VALIDITY).into();
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;

    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params.distinguished_name = rcgen::DistinguishedName::new();
    client_params
        .distinguished_name
        .push(DnType::CommonName, CLIENT_COMMON_NAME);
    client_params.is_ca = IsCa::ExplicitNoCa;
    client_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    client_params.use_authority_key_identifier_extension = true;
    client_params.not_before = start.into();
    client_params.not_after = (start + CLIENT_VALIDITY).into();
    let client_key = KeyPair::generate()?;
    let client_cert = client_params.signed_by(&client_key, &ca)?;

    Ok(Material {
        ca_cert: ca.pem(),
        ca_key: ca.key().serialize_pem(),
        client_cert: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    })
}

fn remove_if_present(path: &Path) -> Result<(), AggregatorError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(AggregatorError::Remove {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Creates `path` (which must not exist) with `mode` and writes `content` to it: keys are
/// secrets from their first byte, never written and chmod-ed after.
fn write_new(path: &Path, mode: u32, content: &[u8]) -> Result<(), AggregatorError> {
    files::create_with_mode(path, content, mode).map_err(|source| AggregatorError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::process::{Command, Output};

    const OPENSSL: &str = "/usr/bin/openssl";

    /// The real openssl binary, or `None` (test skipped) when it is missing outside CI.
    fn openssl() -> Option<&'static str> {
        if Path::new(OPENSSL).exists() {
            return Some(OPENSSL);
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("{OPENSSL} is required when CI=true");
        }
        eprintln!("skipping: {OPENSSL} not found");
        None
    }

    fn run(openssl: &str, args: &[&str]) -> Output {
        Command::new(openssl).args(args).output().unwrap()
    }

    fn text(out: &Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn s(path: &Path) -> &str {
        path.to_str().unwrap()
    }

    fn contents(certs: &FrontProxyCerts) -> Vec<Vec<u8>> {
        certs
            .files()
            .iter()
            .map(|(p, _)| fs::read(p).unwrap())
            .collect()
    }

    #[test]
    fn client_certificate_verifies_against_the_ca_for_client_auth() {
        let Some(openssl) = openssl() else { return };
        let dir = tempfile::tempdir().unwrap();
        let certs = write_front_proxy_certs(dir.path(), false).unwrap();

        let out = run(
            openssl,
            &[
                "verify",
                "-CAfile",
                s(&certs.ca_cert),
                "-purpose",
                "sslclient",
                s(&certs.client_cert),
            ],
        );
        assert!(out.status.success(), "openssl verify: {}", text(&out));
        assert!(text(&out).contains(": OK"), "{}", text(&out));

        // Not a server certificate: the purpose check is real.
        let out = run(
            openssl,
            &[
                "verify",
                "-CAfile",
                s(&certs.ca_cert),
                "-purpose",
                "sslserver",
                s(&certs.client_cert),
            ],
        );
        assert!(!out.status.success(), "clientAuth only: {}", text(&out));
    }

    #[test]
    fn a_different_ca_does_not_verify_the_client() {
        let Some(openssl) = openssl() else { return };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let first = write_front_proxy_certs(a.path(), false).unwrap();
        let second = write_front_proxy_certs(b.path(), false).unwrap();
        let out = run(
            openssl,
            &[
                "verify",
                "-CAfile",
                s(&second.ca_cert),
                s(&first.client_cert),
            ],
        );
        assert!(!out.status.success(), "{}", text(&out));
    }

    #[test]
    fn subjects_and_extensions_are_what_kube_apiserver_expects() {
        let Some(openssl) = openssl() else { return };
        let dir = tempfile::tempdir().unwrap();
        let certs = write_front_proxy_certs(dir.path(), false).unwrap();

        let out = run(
            openssl,
            &["x509", "-noout", "-subject", "-in", s(&certs.client_cert)],
        );
        assert!(out.status.success(), "{}", text(&out));
        let subject = String::from_utf8_lossy(&out.stdout);
        assert_eq!(subject.trim(), "subject=CN = front-proxy-client");

        let out = run(
            openssl,
            &["x509", "-noout", "-subject", "-in", s(&certs.ca_cert)],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "subject=CN = front-proxy-ca"
        );

        let ca_text = text(&run(
            openssl,
            &["x509", "-noout", "-text", "-in", s(&certs.ca_cert)],
        ));
        assert!(ca_text.contains("CA:TRUE"), "{ca_text}");
        assert!(ca_text.contains("Certificate Sign, CRL Sign"), "{ca_text}");

        let client_text = text(&run(
            openssl,
            &["x509", "-noout", "-text", "-in", s(&certs.client_cert)],
        ));
        assert!(client_text.contains("CA:FALSE"), "{client_text}");
        assert!(
            client_text.contains("TLS Web Client Authentication"),
            "{client_text}"
        );
        assert!(
            !client_text.contains("TLS Web Server Authentication"),
            "{client_text}"
        );

        // The keys belong to the certificates.
        for (cert, key) in [
            (&certs.ca_cert, &certs.ca_key),
            (&certs.client_cert, &certs.client_key),
        ] {
            let from_cert = run(openssl, &["x509", "-noout", "-pubkey", "-in", s(cert)]);
            let from_key = run(openssl, &["pkey", "-pubout", "-in", s(key)]);
            assert!(from_key.status.success(), "{}", text(&from_key));
            assert_eq!(from_cert.stdout, from_key.stdout, "{}", key.display());
        }
    }

    #[test]
    fn validity_is_ten_years_for_the_ca_and_one_year_for_the_client() {
        let Some(openssl) = openssl() else { return };
        let dir = tempfile::tempdir().unwrap();
        let certs = write_front_proxy_certs(dir.path(), false).unwrap();
        // `-checkend N` succeeds when the certificate is still valid N seconds from now.
        let valid_in = |cert: &Path, days: u64| {
            let secs = (days * DAY).to_string();
            run(
                openssl,
                &["x509", "-noout", "-checkend", &secs, "-in", s(cert)],
            )
            .status
            .success()
        };
        assert!(valid_in(&certs.ca_cert, 3640));
        assert!(!valid_in(&certs.ca_cert, 3660));
        assert!(valid_in(&certs.client_cert, 360));
        assert!(!valid_in(&certs.client_cert, 370));
    }

    #[test]
    fn keys_are_0600_and_certificates_0644_from_creation() {
        let dir = tempfile::tempdir().unwrap();
        let certs = write_front_proxy_certs(dir.path(), false).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&certs.ca_key), 0o600);
        assert_eq!(mode(&certs.client_key), 0o600);
        // The umask may only take bits away from 0644.
        for cert in [&certs.ca_cert, &certs.client_cert] {
            let m = mode(cert);
            assert_eq!(m & !0o644, 0, "{:o}", m);
            assert_ne!(m & 0o600, 0, "{:o}", m);
        }
        assert!(fs::read_to_string(&certs.ca_key)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(fs::read_to_string(&certs.client_cert)
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn second_run_without_force_refuses_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let certs = write_front_proxy_certs(dir.path(), false).unwrap();
        let before = contents(&certs);

        let err = write_front_proxy_certs(dir.path(), false).unwrap_err();
        assert!(
            matches!(&err, AggregatorError::AlreadyExists { path } if path == &certs.ca_cert),
            "{err:?}"
        );
        let msg = err.to_string();
        assert!(msg.contains(CA_CERT_FILE), "{msg}");
        assert!(msg.contains("--force"), "{msg}");
        assert_eq!(contents(&certs), before);
    }

    #[test]
    fn any_single_existing_file_blocks_and_nothing_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join(CLIENT_KEY_FILE);
        fs::write(&existing, "mine").unwrap();

        let err = write_front_proxy_certs(dir.path(), false).unwrap_err();
        assert!(err.to_string().contains(CLIENT_KEY_FILE), "{err}");
        assert_eq!(fs::read_to_string(&existing).unwrap(), "mine");
        for other in [CA_CERT_FILE, CA_KEY_FILE, CLIENT_CERT_FILE] {
            assert!(!dir.path().join(other).exists(), "{other} written");
        }
    }

    #[test]
    fn force_overwrites_with_new_material_and_tight_modes() {
        let Some(openssl) = openssl() else { return };
        let dir = tempfile::tempdir().unwrap();
        let certs = write_front_proxy_certs(dir.path(), false).unwrap();
        let before = contents(&certs);
        // A key left world-readable by someone else must not stay that way.
        fs::set_permissions(&certs.client_key, fs::Permissions::from_mode(0o644)).unwrap();

        let again = write_front_proxy_certs(dir.path(), true).unwrap();
        assert_eq!(again, certs);
        let after = contents(&again);
        for (b, a) in before.iter().zip(&after) {
            assert_ne!(b, a, "every file is replaced");
        }
        let mode = fs::metadata(&again.client_key)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let out = run(
            openssl,
            &[
                "verify",
                "-CAfile",
                s(&again.ca_cert),
                "-purpose",
                "sslclient",
                s(&again.client_cert),
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
    }

    #[test]
    fn missing_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("etc/kubernetes/pki");
        let certs = write_front_proxy_certs(&nested, false).unwrap();
        assert!(certs.client_key.is_file());
    }

    #[test]
    fn flags_use_absolute_paths_even_for_a_relative_dir() {
        let dir = tempfile::tempdir().unwrap();
        // A relative path that resolves inside the temp dir, without changing the process cwd.
        let cwd = std::env::current_dir().unwrap();
        let relative = pathdiff(dir.path(), &cwd).join("pki");
        assert!(relative.is_relative());
        let certs = write_front_proxy_certs(&relative, false).unwrap();
        let root = fs::canonicalize(dir.path()).unwrap().join("pki");

        let ca = root.join(CA_CERT_FILE);
        let cert = root.join(CLIENT_CERT_FILE);
        let key = root.join(CLIENT_KEY_FILE);
        assert_eq!(
            certs.apiserver_flags(),
            vec![
                format!("--requestheader-client-ca-file={}", ca.display()),
                "--requestheader-allowed-names=front-proxy-client".to_string(),
                "--requestheader-extra-headers-prefix=X-Remote-Extra-".to_string(),
                "--requestheader-group-headers=X-Remote-Group".to_string(),
                "--requestheader-username-headers=X-Remote-User".to_string(),
                format!("--proxy-client-cert-file={}", cert.display()),
                format!("--proxy-client-key-file={}", key.display()),
            ]
        );
        for flag in certs.apiserver_flags() {
            if let Some((_, value)) = flag.split_once("-file=") {
                assert!(Path::new(value).is_absolute(), "{flag}");
                assert!(Path::new(value).is_file(), "{flag}");
            }
        }
    }

    #[test]
    fn verify_text_names_the_checks() {
        let certs = FrontProxyCerts::in_dir(Path::new("/etc/kubernetes/pki"));
        let text = certs.how_to_verify();
        assert!(text.contains("kubectl get --raw /apis"));
        assert!(text.contains("metrics.k8s.io"));
        assert!(text.contains(
            "kubectl -n kube-system get configmap extension-apiserver-authentication -o yaml"
        ));
        assert!(text.contains("requestheader-client-ca-file"));
    }

    /// `target` relative to `base` (both absolute), using `..` components.
    fn pathdiff(target: &Path, base: &Path) -> PathBuf {
        let t: Vec<_> = target.components().collect();
        let b: Vec<_> = base.components().collect();
        let common = t.iter().zip(&b).take_while(|(x, y)| x == y).count();
        let mut out = PathBuf::new();
        for _ in common..b.len() {
            out.push("..");
        }
        for c in &t[common..] {
            out.push(c);
        }
        out
    }
}
