//! The outbound HTTP client every adapter builds on (Odoo, the OpenAI-compatible model,
//! the embeddings endpoint): one reqwest, TLS through rustls with the ring provider and
//! the platform's root certificates (`rustls-platform-verifier`).
//!
//! reqwest is built without a compiled-in crypto provider (aws-lc-rs is a heavy build on
//! two cores), and building a client before a provider is installed panics inside
//! reqwest. [`client_builder`] installs ring first, so every client starts here.
//!
//! Must not depend on any other module of the crate.

/// A reqwest client builder, with the process-wide rustls crypto provider (ring) installed.
pub fn client_builder() -> reqwest::ClientBuilder {
    // An error only means a provider is installed already (by an earlier call).
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
}

#[cfg(test)]
mod tests {
    #[test]
    fn builds_a_client_with_tls() {
        assert!(super::client_builder().build().is_ok());
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
