//! A throwaway certificate authority and a TLS-terminating proxy in front
//! of a plain service (RabbitMQ), to test `amqps://` without touching the
//! broker's own configuration.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().expect("CA key");
        Self {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    /// The CA's certificate, PEM (what `ETL_TLS_CA_FILE` holds).
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for `names` (DNS names) and its key, DER.
    fn leaf(
        &self,
        names: &[&str],
    ) -> (
        rustls::pki_types::CertificateDer<'static>,
        rustls::pki_types::PrivateKeyDer<'static>,
    ) {
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("server parameters");
        let key = KeyPair::generate().expect("server key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        (
            cert.der().clone(),
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
    }
}

/// Listens on `127.0.0.1:<ephemeral>`, speaks TLS with a certificate for
/// `names` signed by a [`TestCa`], and forwards the plain bytes to `target`.
pub struct TlsProxy {
    pub address: SocketAddr,
    /// Connections whose first bytes were not a TLS handshake (a client
    /// that fell back to plain AMQP would show here).
    plain: Arc<AtomicUsize>,
    /// Connections that began a TLS handshake.
    attempts: Arc<AtomicUsize>,
    /// Connections that completed the TLS handshake.
    handshakes: Arc<AtomicUsize>,
}

impl TlsProxy {
    pub async fn start(ca: &TestCa, names: &[&str], target: SocketAddr) -> Self {
        let (cert, key) = ca.leaf(names);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server TLS config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
        let address = listener.local_addr().expect("address");
        let plain = Arc::new(AtomicUsize::new(0));
        let handshakes = Arc::new(AtomicUsize::new(0));
        let attempts = Arc::new(AtomicUsize::new(0));
        let (seen_plain, seen_tls, seen_attempt) =
            (plain.clone(), handshakes.clone(), attempts.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let (seen_plain, seen_tls, seen_attempt) =
                    (seen_plain.clone(), seen_tls.clone(), seen_attempt.clone());
                tokio::spawn(async move {
                    let mut first = [0_u8; 1];
                    // A TLS record starts with 0x16 (handshake); AMQP with "A".
                    if inbound.peek(&mut first).await.is_err() || first[0] != 0x16 {
                        seen_plain.fetch_add(1, Ordering::SeqCst);
                        return;
                    }
                    seen_attempt.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut tls) = acceptor.accept(inbound).await else {
                        return;
                    };
                    seen_tls.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut outbound).await;
                });
            }
        });
        Self {
            address,
            plain,
            attempts,
            handshakes,
        }
    }

    pub fn plain_connections(&self) -> usize {
        self.plain.load(Ordering::SeqCst)
    }

    pub fn attempts(&self) -> usize {
        self.attempts.load(Ordering::SeqCst)
    }

    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}
