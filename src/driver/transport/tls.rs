//! TLS links (`tls://`): a TCP connection under TLS 1.3 (rustls), carrying the same frames as
//! `tcp://`. The link handshake inside authenticates the peer (keys, pinning, passwords), so TLS is
//! only a disguise for networks that let out nothing but HTTPS-looking traffic, and a veil over the
//! link handshake's metadata: each node presents a self-signed certificate for a key derived from its
//! node key (never the node key itself), and the client accepts any certificate whose handshake
//! signature verifies.

use std::sync::Arc;

use crate::core::identity::NodeKey;

use super::stream::BoxedStream;

/// What makes TLS connections: the node's certificate and both configurations.
#[derive(Clone)]
pub(crate) struct TlsConfig {
    #[cfg(feature = "tls")]
    inner: Arc<enabled::Configs>,
    #[cfg(not(feature = "tls"))]
    inner: Arc<()>,
}

/// The label of the TLS key derived from the node key.
const TLS_KEY_LABEL: &[u8] = b"meshrouter tls certificate key v1";

impl TlsConfig {
    /// Makes the certificate and configurations for `node`. Fails only if the TLS library refuses
    /// what it was given (a bug, reported at start-up rather than at the first connection).
    pub(crate) fn new(node: &NodeKey) -> Result<Self, String> {
        #[cfg(feature = "tls")]
        {
            let key = node.derive(TLS_KEY_LABEL);
            Ok(Self {
                inner: Arc::new(enabled::Configs::new(&key)?),
            })
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (node, TLS_KEY_LABEL);
            Ok(Self {
                inner: Arc::new(()),
            })
        }
    }

    /// Shakes hands as the client on a connected TCP stream. `host` is sent as the server name
    /// (SNI) when it is a DNS name, as browsers would.
    pub(crate) async fn connect(
        &self,
        tcp: tokio::net::TcpStream,
        host: &str,
    ) -> std::io::Result<BoxedStream> {
        #[cfg(feature = "tls")]
        {
            self.inner.connect(tcp, host).await
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (tcp, host, &self.inner);
            Err(no_tls())
        }
    }

    /// Shakes hands as the server on an accepted TCP stream.
    pub(crate) async fn accept(&self, tcp: tokio::net::TcpStream) -> std::io::Result<BoxedStream> {
        #[cfg(feature = "tls")]
        {
            self.inner.accept(tcp).await
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (tcp, &self.inner);
            Err(no_tls())
        }
    }
}

#[cfg(not(feature = "tls"))]
fn no_tls() -> std::io::Error {
    std::io::Error::other("this meshrouter was built without TLS (cargo feature \"tls\")")
}

#[cfg(feature = "tls")]
mod enabled {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::WebPkiSupportedAlgorithms;
    use rustls::pki_types::{
        CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime,
    };
    use rustls::{ClientConfig, DigitallySignedStruct, ServerConfig, SignatureScheme};

    use super::BoxedStream;
    use crate::core::identity::NodeKey;

    /// The name in our certificates (nobody checks it: the link handshake authenticates).
    const CERT_NAME: &str = "meshrouter";

    pub(super) struct Configs {
        client: tokio_rustls::TlsConnector,
        server: tokio_rustls::TlsAcceptor,
    }

    impl Configs {
        pub(super) fn new(key: &NodeKey) -> Result<Self, String> {
            // ring, which the daemon already carries (aws-lc-rs needs cmake and doubles the size).
            // Its provider lacks the post-quantum key exchange, which hides nothing that matters
            // here: the link handshake and its AEAD inside are what protect the traffic.
            #[allow(deprecated)]
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
            let pkcs8 = PrivatePkcs8KeyDer::from(der.to_vec());
            let signer = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&pkcs8, &rcgen::PKCS_ED25519)
                .map_err(|e| format!("TLS key: {e}"))?;
            let params = rcgen::CertificateParams::new(vec![CERT_NAME.to_owned()])
                .map_err(|e| format!("TLS certificate: {e}"))?;
            let cert = params
                .self_signed(&signer)
                .map_err(|e| format!("TLS certificate: {e}"))?;
            let server = ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| format!("TLS: {e}"))?
                .with_no_client_auth()
                .with_single_cert(
                    vec![cert.der().clone()],
                    PrivateKeyDer::Pkcs8(pkcs8.clone_key()),
                )
                .map_err(|e| format!("TLS server: {e}"))?;
            let verifier = AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            };
            let client = ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .map_err(|e| format!("TLS: {e}"))?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth();
            Ok(Self {
                client: tokio_rustls::TlsConnector::from(Arc::new(client)),
                server: tokio_rustls::TlsAcceptor::from(Arc::new(server)),
            })
        }

        pub(super) async fn connect(
            &self,
            tcp: tokio::net::TcpStream,
            host: &str,
        ) -> std::io::Result<BoxedStream> {
            // A host that is not a valid DNS name (an IPv6 zone, say) is sent as our own name.
            let name = match host.parse::<std::net::IpAddr>() {
                Ok(ip) => ServerName::IpAddress(ip.into()),
                Err(_) => ServerName::try_from(host.to_owned())
                    .or_else(|_| ServerName::try_from(CERT_NAME))
                    .map_err(std::io::Error::other)?,
            };
            let stream = self.client.connect(name, tcp).await?;
            Ok(Box::new(stream))
        }

        pub(super) async fn accept(
            &self,
            tcp: tokio::net::TcpStream,
        ) -> std::io::Result<BoxedStream> {
            let stream = self.server.accept(tcp).await?;
            Ok(Box::new(stream))
        }
    }

    /// Accepts any certificate, but checks that the server holds its key (the handshake signature):
    /// who the server is, the link handshake inside decides.
    #[derive(Debug)]
    struct AnyCertificate {
        algorithms: WebPkiSupportedAlgorithms,
    }

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algorithms.supported_schemes()
        }
    }
}
