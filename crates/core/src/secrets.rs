//! Secrets at rest and access tokens.
//!
//! Stored secrets are sealed with XChaCha20-Poly1305 under the master key; the associated
//! data binds each ciphertext to the record it belongs to, so a sealed value copied into
//! another row does not open. Access tokens are random and only their SHA-256 is stored.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::model::Sealed;

const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the master key must be 32 bytes encoded in base64 ({0})")]
    BadKey(String),
    #[error("a stored secret could not be decrypted: wrong master key or corrupted data")]
    Open,
    #[error("encryption failed")]
    Seal,
}

/// The master key, ready to seal and open.
#[derive(Clone)]
pub struct Cipher {
    aead: XChaCha20Poly1305,
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

impl Cipher {
    /// From the base64 text of a 32-byte key.
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| SecretError::BadKey(e.to_string()))?;
        if bytes.len() != 32 {
            return Err(SecretError::BadKey(format!("got {} bytes", bytes.len())));
        }
        Ok(Cipher {
            aead: XChaCha20Poly1305::new_from_slice(&bytes)
                .map_err(|e| SecretError::BadKey(e.to_string()))?,
        })
    }

    /// A fresh random key, base64-encoded.
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// Seals `plaintext`, bound to `context` (e.g. `auth_profile:{store}:{id}`).
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Sealed, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let ciphertext = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Seal)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(Sealed(out))
    }

    /// Opens what [`Cipher::seal`] made for the same `context`.
    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<Vec<u8>, SecretError> {
        let bytes = &sealed.0;
        if bytes.len() < 1 + NONCE_LEN || bytes[0] != VERSION {
            return Err(SecretError::Open);
        }
        self.aead
            .decrypt(
                XNonce::from_slice(&bytes[1..1 + NONCE_LEN]),
                Payload {
                    msg: &bytes[1 + NONCE_LEN..],
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Open)
    }
}

/// The associated data that binds a sealed signing secret to its subscription.
pub fn signing_secret_context(store: &str, subscription_id: &str) -> String {
    format!("signing_secret:{store}:{subscription_id}")
}

/// The context a destination's secret (a broker URL with its credentials) is sealed under.
pub fn destination_secret_context(store: &str, subscription_id: &str) -> String {
    format!("destination:{store}:{subscription_id}")
}

/// The associated data that binds a sealed auth config to its profile.
pub fn auth_config_context(store: &str, profile_id: &str) -> String {
    format!("auth_profile:{store}:{profile_id}")
}

/// A new access token: `hrat_` and 32 random bytes, base64url.
pub fn new_access_token() -> String {
    random_token("hrat_")
}

/// The prefix of portal session tokens (docs/portal.md), which tells them from API tokens.
pub const PORTAL_SESSION_PREFIX: &str = "hrp_";

/// A new portal link secret (single-use).
pub fn new_portal_link_secret() -> String {
    random_token("hrl_")
}

/// A new portal session token.
pub fn new_portal_session() -> String {
    random_token(PORTAL_SESSION_PREFIX)
}

/// `prefix` and base64url of 32 random bytes.
fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The SHA-256 (hex) of a token: the only form in which tokens are stored.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new client id for tokens made without `--client-id`.
pub fn new_client_id() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let c = Cipher::from_base64(&Cipher::generate_key()).unwrap();
        let sealed = c.seal("ctx:a", b"example-client-secret").unwrap();
        assert!(!sealed.0.windows(b"example".len()).any(|w| w == b"example"));
        assert_eq!(c.open("ctx:a", &sealed).unwrap(), b"example-client-secret");
        assert!(c.open("ctx:b", &sealed).is_err());
        let other = Cipher::from_base64(&Cipher::generate_key()).unwrap();
        assert!(other.open("ctx:a", &sealed).is_err());
    }

    #[test]
    fn bad_keys_rejected() {
        assert!(Cipher::from_base64("not base64!").is_err());
        assert!(Cipher::from_base64(&STANDARD.encode([0u8; 16])).is_err());
    }

    #[test]
    fn tokens_and_secrets_have_their_shapes() {
        let t = new_access_token();
        assert!(t.starts_with("hrat_"));
        assert_eq!(hash_token(&t).len(), 64);
        assert_ne!(hash_token(&t), hash_token(&new_access_token()));
        let s = crate::signing::Scheme::HmacSha256.new_secret();
        assert!(s.starts_with("whsec_"));
        assert_eq!(STANDARD.decode(&s[6..]).unwrap().len(), 24);
    }
}
