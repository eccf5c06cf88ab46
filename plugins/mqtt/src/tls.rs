//! The rustls client configuration of an `mqtts://` connection, handed to rumqttc
//! as `TlsConfiguration::Rustls`.
//!
//! rumqttc's own TLS set-up (`TlsConfiguration::Simple`) trusts only the CA given to
//! it and uses rustls' process-default crypto provider; we build the configuration
//! ourselves so that
//! - the `ring` provider is used explicitly (no aws-lc-rs, which needs cmake);
//! - the broker certificate is verified against the system CA store
//!   (rustls-native-certs) plus the optional `ca_file`, as the agent's HTTP client
//!   does (`tfo_plugin_common::http`);
//! - a client certificate (`client_cert` + `client_key`) enables mutual TLS;
//! - `insecure_skip_verify` accepts any certificate and name but still checks the
//!   handshake signatures.
//!
//! Files are read when the instance is created, so a missing or malformed file is a
//! config error with its path (`tls.ca_file`...).

use std::sync::Arc;

use rustls::{
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
    ClientConfig,
};

use crate::config::TlsConfig;

/// Builds the client configuration; an error names the config field at fault.
pub fn client_config(t: &TlsConfig) -> Result<Arc<ClientConfig>, (String, String)> {
    let builder =
        tfo_plugin_common::http::tls_builder(t.ca_file.as_deref(), t.insecure_skip_verify)
            .map_err(|e| {
                let field = if e.contains("CA file") {
                    "tls.ca_file"
                } else {
                    "tls"
                };
                (field.to_string(), e)
            })?;

    let config = match (&t.client_cert, &t.client_key) {
        (None, None) => builder.with_no_client_auth(),
        (Some(_), None) => {
            return Err((
                "tls.client_key".into(),
                "client_cert needs client_key".into(),
            ))
        }
        (None, Some(_)) => {
            return Err((
                "tls.client_cert".into(),
                "client_key needs client_cert".into(),
            ))
        }
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| {
                    (
                        "tls.client_cert".to_string(),
                        format!("reading {}: {e}", cert.display()),
                    )
                })?;
            if chain.is_empty() {
                return Err((
                    "tls.client_cert".into(),
                    format!("{} holds no PEM certificate", cert.display()),
                ));
            }
            let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
                (
                    "tls.client_key".to_string(),
                    format!("reading a PEM private key from {}: {e}", key.display()),
                )
            })?;
            builder.with_client_auth_cert(chain, key_der).map_err(|e| {
                (
                    "tls.client_key".to_string(),
                    format!("{} does not fit {}: {e}", key.display(), cert.display()),
                )
            })?
        }
    };
    Ok(Arc::new(config))
}
