//! A CA and a `localhost` certificate made at test time, for the TLS mock upstream.
#![allow(dead_code)]

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{crypto::ring, ServerConfig};

/// A TLS acceptor serving a certificate for `localhost`, and the PEM of the CA that signed it.
pub fn acceptor_for_localhost() -> (tokio_rustls::TlsAcceptor, String) {
    let fail = |e: &dyn std::fmt::Display| -> ! { panic!("test certificate: {e}") };
    let ca_key = KeyPair::generate().unwrap_or_else(|e| fail(&e));
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| fail(&e));
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap_or_else(|e| fail(&e));

    let leaf_key = KeyPair::generate().unwrap_or_else(|e| fail(&e));
    let leaf_params = CertificateParams::new(vec!["localhost".to_string()]).unwrap_or_else(|e| fail(&e));
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap_or_else(|e| fail(&e));

    let chain = vec![CertificateDer::from(leaf.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| fail(&e))
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap_or_else(|e| fail(&e));
    (tokio_rustls::TlsAcceptor::from(Arc::new(config)), ca.pem())
}
