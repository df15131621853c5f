//! Server certificates checked the way kubectl (Go's crypto/x509) checks them, so kaddons
//! reaches every API server kubectl reaches with the same kubeconfig, and refuses the same ones
//! with a reason that names the certificate and the CA bundle.
//!
//! rustls/webpki is stricter than Go in two shapes people make every day with openssl:
//! a self-signed certificate with `CA:TRUE` (openssl's default for `req -x509`) used as both
//! `certificate-authority` and serving certificate (webpki: `CaUsedAsEndEntity`), and a
//! serving certificate trusted directly instead of its CA (webpki: `UnknownIssuer`). Go treats
//! every certificate of the pool as a root, so a presented certificate that is itself in the
//! pool is a chain of its own, and it does not care whether a leaf says `CA:TRUE`. The
//! [`KubectlVerifier`] runs webpki first and accepts those two extra shapes only, still checking
//! the name (IP/DNS SAN, or `tls-server-name`), the validity period and the extended key usage;
//! the handshake signatures are webpki's. This is kube-rs issue 1767.
//!
//! [`client`] is kube's default client stack (`Client::try_from(Config)`, kube-client 4.2
//! `client/builder.rs`) with this verifier in its rustls config: kube has no hook for it.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, OtherError, RootCertStore};
use tower::{BoxError, ServiceBuilder};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("invalid tls-server-name \"{name}\": {source}")]
    ServerName {
        name: String,
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    #[error("cannot use the certificate authority of {trust}: {source}")]
    Roots {
        trust: String,
        #[source]
        source: rustls::Error,
    },
}

/// The server's certificate did not verify; carried through rustls as
/// `CertificateError::Other` and found again by [`rejection`].
#[derive(Debug, Clone)]
pub struct Rejected {
    subject: String,
    issuer: String,
    /// What it was checked against: `certificate-authority /path of cluster "x"`.
    trust: String,
    reason: String,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let issued = if self.subject == self.issuer {
            "self-signed".to_string()
        } else {
            format!("issued by {}", self.issuer)
        };
        write!(
            f,
            "the server's certificate {} ({issued}) does not verify against {}: {}; kubectl would refuse it too",
            self.subject, self.trust, self.reason
        )
    }
}

impl std::error::Error for Rejected {}

/// Verifies server certificates against a kubeconfig's CA bundle as Go's x509 does.
#[derive(Debug)]
pub struct KubectlVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    roots: Vec<CertificateDer<'static>>,
    trust: String,
}

impl KubectlVerifier {
    /// `roots` are the DER certificates of the bundle; `trust` says where they came from.
    pub fn new(roots: &[Vec<u8>], trust: String) -> Result<Self, Error> {
        let roots: Vec<CertificateDer<'static>> = roots
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect();
        let mut store = RootCertStore::empty();
        for der in &roots {
            store.add(der.clone()).map_err(|source| Error::Roots {
                trust: trust.clone(),
                source,
            })?;
        }
        let webpki = WebPkiServerVerifier::builder(Arc::new(store))
            .build()
            .map_err(|e| Error::Roots {
                trust: trust.clone(),
                source: rustls::Error::General(e.to_string()),
            })?;
        Ok(KubectlVerifier {
            webpki,
            roots,
            trust,
        })
    }

    fn reject(&self, leaf: Option<&X509Certificate<'_>>, reason: String) -> rustls::Error {
        let (subject, issuer) = leaf
            .map(|c| (name(c.subject()), name(c.issuer())))
            .unwrap_or_else(|| ("(unparsable)".into(), "(unknown)".into()));
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(Rejected {
            subject,
            issuer,
            trust: self.trust.clone(),
            reason,
        }))))
    }

    /// The chains Go builds that webpki does not: the leaf itself in the bundle, or a leaf
    /// marked `CA:TRUE` signed directly by a certificate of the bundle. `None` when neither
    /// shape applies (webpki's verdict stands).
    fn go_chain(
        &self,
        end_entity: &CertificateDer<'_>,
        leaf: &X509Certificate<'_>,
        server_name: &ServerName<'_>,
        now: UnixTime,
    ) -> Option<Result<(), String>> {
        let parents: Vec<X509Certificate<'_>> = if self.roots.contains(end_entity) {
            Vec::new()
        } else if leaf.is_ca() {
            let signers: Vec<X509Certificate<'_>> = self
                .roots
                .iter()
                .filter_map(|r| X509Certificate::from_der(r).ok().map(|(_, c)| c))
                .filter(|r| {
                    r.subject().as_raw() == leaf.issuer().as_raw()
                        && leaf.verify_signature(Some(r.public_key())).is_ok()
                })
                .collect();
            if signers.is_empty() {
                // webpki stopped at CaUsedAsEndEntity; Go would look for the issuer and not
                // find it. (A CA:TRUE leaf behind an intermediate is not followed here.)
                return Some(Err(UNKNOWN_ISSUER.into()));
            }
            signers
        } else {
            return None;
        };
        Some(
            check_leaf(end_entity, leaf, server_name, now).and_then(|()| {
                // Go accepts when any signer is valid now.
                let errors: Vec<String> = parents
                    .iter()
                    .filter_map(|p| validity(p, now).err())
                    .collect();
                if !parents.is_empty() && errors.len() == parents.len() {
                    Err(format!("its issuer {}", errors[0]))
                } else {
                    Ok(())
                }
            }),
        )
    }
}

impl ServerCertVerifier for KubectlVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let webpki_error = match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => return Ok(verified),
            Err(e) => e,
        };
        let Ok((_, leaf)) = X509Certificate::from_der(end_entity) else {
            return Err(self.reject(None, describe(&webpki_error, None, server_name)));
        };
        match self.go_chain(end_entity, &leaf, server_name, now) {
            Some(Ok(())) => Ok(ServerCertVerified::assertion()),
            Some(Err(reason)) => Err(self.reject(Some(&leaf), reason)),
            None => Err(self.reject(
                Some(&leaf),
                describe(&webpki_error, Some(&leaf), server_name),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// What Go checks of the leaf once it has a chain: the name, the validity period, and that
/// an extended key usage, when present, allows serving.
fn check_leaf(
    end_entity: &CertificateDer<'_>,
    leaf: &X509Certificate<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<(), String> {
    let parsed = rustls::server::ParsedCertificate::try_from(end_entity)
        .map_err(|e| format!("it cannot be parsed: {e}"))?;
    rustls::client::verify_server_name(&parsed, server_name)
        .map_err(|e| describe(&e, Some(leaf), server_name))?;
    validity(leaf, now)?;
    if let Ok(Some(eku)) = leaf.extended_key_usage() {
        if !eku.value.any && !eku.value.server_auth {
            return Err("its extended key usage does not allow serving TLS (no serverAuth)".into());
        }
    }
    Ok(())
}

fn validity(cert: &X509Certificate<'_>, now: UnixTime) -> Result<(), String> {
    let now = now.as_secs() as i64;
    let v = cert.validity();
    if now < v.not_before.timestamp() {
        return Err(format!("it is not valid before {}", v.not_before));
    }
    if now > v.not_after.timestamp() {
        return Err(format!("it expired on {}", v.not_after));
    }
    Ok(())
}

const UNKNOWN_ISSUER: &str =
    "unknown issuer (no certificate of the bundle issued it, and it is not in the bundle itself)";

/// One clause for a webpki verdict, with the certificate's own data where that helps.
fn describe(
    error: &rustls::Error,
    leaf: Option<&X509Certificate<'_>>,
    server_name: &ServerName<'_>,
) -> String {
    let rustls::Error::InvalidCertificate(e) = error else {
        return error.to_string();
    };
    match e {
        CertificateError::UnknownIssuer => UNKNOWN_ISSUER.into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let names = leaf.map(sans).unwrap_or_default();
            format!(
                "it is not valid for {} (it names {}); set tls-server-name in the kubeconfig if the server is reached under another name",
                server_name.to_str(),
                if names.is_empty() { "no IP or DNS subject alternative name".into() } else { names.join(", ") }
            )
        }
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => match leaf {
            Some(l) => validity(l, UnixTime::now())
                .err()
                .unwrap_or_else(|| e.to_string()),
            None => e.to_string(),
        },
        CertificateError::BadSignature => {
            "its signature does not verify against its issuer in the bundle".into()
        }
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "its extended key usage does not allow serving TLS (no serverAuth)".into()
        }
        // CaUsedAsEndEntity and other webpki refusals arrive as Other(webpki::Error).
        other => other.to_string(),
    }
}

fn name(n: &x509_parser::x509::X509Name<'_>) -> String {
    let s = n.to_string();
    if s.is_empty() {
        "(empty subject)".into()
    } else {
        s
    }
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|g| match g {
            GeneralName::DNSName(d) => Some(format!("DNS:{d}")),
            GeneralName::IPAddress(b) => {
                let ip: Option<IpAddr> = match b.len() {
                    4 => <[u8; 4]>::try_from(*b).ok().map(IpAddr::from),
                    16 => <[u8; 16]>::try_from(*b).ok().map(IpAddr::from),
                    _ => None,
                };
                ip.map(|ip| format!("IP:{ip}"))
            }
            _ => None,
        })
        .collect()
}

/// The certificate rejection inside a connection error, if that is what it is. The rustls
/// error sits inside an `io::Error` (whose `source()` skips it) or a boxed error, so each link
/// of the chain is unwrapped as well.
pub fn rejection<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a Rejected> {
    let mut current = Some(err);
    while let Some(link) = current {
        let mut e = link;
        loop {
            if let Some(rustls::Error::InvalidCertificate(CertificateError::Other(other))) =
                e.downcast_ref::<rustls::Error>()
            {
                return other.0.downcast_ref::<Rejected>();
            }
            if let Some(inner) = e
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                e = inner;
            } else {
                break;
            }
        }
        current = link.source();
    }
    None
}

/// kube's default client (`Client::try_from(config)` in kube-client 4.2 without the retry
/// layer, which kaddons turns off) with [`KubectlVerifier`] in its rustls config. Client
/// certificates (also from exec plugins), tokens, exec plugins, impersonation headers,
/// `tls-server-name` and the connect/read/write timeouts come from `config` exactly as kube
/// applies them. For configs without a CA bundle, with `insecure-skip-tls-verify` or with a
/// proxy, use kube's own `Client::try_from`.
pub fn client(config: &kube::Config, verifier: KubectlVerifier) -> Result<kube::Client, Error> {
    let mut tls = config.rustls_client_config()?;
    tls.dangerous().set_certificate_verifier(Arc::new(verifier));
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let mut https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let server_name =
            ServerName::try_from(name.clone()).map_err(|source| Error::ServerName {
                name: name.clone(),
                source,
            })?;
        https = https
            .with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(server_name));
    }
    let mut connector =
        hyper_timeout::TimeoutConnector::new(https.enable_http1().wrap_connector(http));
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let http_client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build::<_, kube::client::Body>(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .map_err(BoxError::from)
        .service(http_client);
    Ok(kube::Client::new(service, config.default_namespace.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `sans`, `CA:TRUE` like openssl's `req -x509` default.
    fn self_signed_ca(cn: &str, sans: &[&str]) -> Vec<u8> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn verify(roots: &[Vec<u8>], presented: &[u8], name: &str) -> Result<(), String> {
        crate::cluster::client::install_crypto_provider();
        let verifier = KubectlVerifier::new(roots, "certificate-authority ca.crt".into()).unwrap();
        verifier
            .verify_server_cert(
                &CertificateDer::from(presented.to_vec()),
                &[],
                &ServerName::try_from(name.to_string()).unwrap(),
                &[],
                UnixTime::now(),
            )
            .map(|_| ())
            .map_err(|e| {
                let io = std::io::Error::new(std::io::ErrorKind::InvalidData, e);
                rejection(&io)
                    .expect("a Rejected inside the io::Error")
                    .to_string()
            })
    }

    #[test]
    fn a_self_signed_ca_serving_as_itself_verifies_for_its_names_only() {
        let cert = self_signed_ca("kube-apiserver", &["127.0.0.1"]);
        assert_eq!(
            verify(std::slice::from_ref(&cert), &cert, "127.0.0.1"),
            Ok(())
        );
        let err = verify(std::slice::from_ref(&cert), &cert, "kubernetes.default").unwrap_err();
        assert!(err.contains("CN=kube-apiserver (self-signed)"), "{err}");
        assert!(
            err.contains("not valid for kubernetes.default (it names IP:127.0.0.1)"),
            "{err}"
        );
    }

    #[test]
    fn another_ca_is_an_unknown_issuer_naming_both_sides() {
        let served = self_signed_ca("kube-apiserver", &["127.0.0.1"]);
        let other = self_signed_ca("other-ca", &[]);
        let err = verify(&[other], &served, "127.0.0.1").unwrap_err();
        assert!(
            err.starts_with("the server's certificate CN=kube-apiserver (self-signed) does not verify against certificate-authority ca.crt: unknown issuer"),
            "{err}"
        );
    }
}
