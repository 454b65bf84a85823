//! Standard Webhooks signatures (<https://www.standardwebhooks.com>), docs/security.md:
//! `webhook-signature` carries one signature per key, space separated, over
//! `"{id}.{timestamp}.{body}"`:
//! - `v1,<base64 HMAC-SHA256>` keyed with the bytes of a `whsec_…` secret (the default);
//! - `v1a,<base64 ed25519 signature>` with a `whsk_…` secret key, whose public key the
//!   receiver verifies with: `whpk_` + base64 of its 32 bytes.
//!
//! During a rotation both keys sign.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use ed25519_dalek::Signer;
use hmac::{Hmac, Mac};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::Sha256;

#[derive(Debug, thiserror::Error)]
#[error("signing secret is not whsec_<base64> nor whsk_<base64 of a 64-byte ed25519 key>")]
pub struct BadSecret;

/// How a subscription's deliveries are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `v1`: HMAC-SHA256 with a shared secret.
    HmacSha256,
    /// `v1a`: ed25519; the receiver holds only the public key.
    Ed25519,
}

impl Scheme {
    /// The scheme of a stored secret, by its prefix.
    pub fn of_secret(secret: &str) -> Result<Self, BadSecret> {
        if secret.starts_with("whsec_") {
            Ok(Scheme::HmacSha256)
        } else if secret.starts_with("whsk_") {
            Ok(Scheme::Ed25519)
        } else {
            Err(BadSecret)
        }
    }

    /// A new random secret of this scheme: `whsec_` and base64 of 24 random bytes, or
    /// `whsk_` and base64 of a new ed25519 keypair (seed, then public key: 64 bytes).
    pub fn new_secret(self) -> String {
        match self {
            Scheme::HmacSha256 => {
                let mut bytes = [0u8; 24];
                OsRng.fill_bytes(&mut bytes);
                format!("whsec_{}", STANDARD.encode(bytes))
            }
            Scheme::Ed25519 => {
                let mut seed = [0u8; 32];
                OsRng.fill_bytes(&mut seed);
                let key = ed25519_dalek::SigningKey::from_bytes(&seed);
                format!("whsk_{}", STANDARD.encode(key.to_keypair_bytes()))
            }
        }
    }
}

/// A decoded signing secret, ready to sign many messages.
#[derive(Clone)]
pub enum SigningKey {
    Hmac(Hmac<Sha256>),
    Ed25519(Box<ed25519_dalek::SigningKey>),
}

impl SigningKey {
    pub fn from_secret(secret: &str) -> Result<Self, BadSecret> {
        if let Some(encoded) = secret.strip_prefix("whsec_") {
            let bytes = STANDARD.decode(encoded).map_err(|_| BadSecret)?;
            return Hmac::<Sha256>::new_from_slice(&bytes)
                .map(SigningKey::Hmac)
                .map_err(|_| BadSecret);
        }
        let encoded = secret.strip_prefix("whsk_").ok_or(BadSecret)?;
        let bytes: [u8; 64] = STANDARD
            .decode(encoded)
            .map_err(|_| BadSecret)?
            .try_into()
            .map_err(|_| BadSecret)?;
        // The keypair form checks that the public half belongs to the secret half.
        ed25519_dalek::SigningKey::from_keypair_bytes(&bytes)
            .map(|k| SigningKey::Ed25519(Box::new(k)))
            .map_err(|_| BadSecret)
    }

    /// `v1,<signature>` or `v1a,<signature>` of one message.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        match self {
            SigningKey::Hmac(mac) => {
                let mut mac = mac.clone();
                mac.update(id.as_bytes());
                mac.update(b".");
                mac.update(timestamp.to_string().as_bytes());
                mac.update(b".");
                mac.update(body);
                format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
            }
            SigningKey::Ed25519(key) => {
                let message = signed_content(id, timestamp, body);
                format!("v1a,{}", STANDARD.encode(key.sign(&message).to_bytes()))
            }
        }
    }

    /// `whpk_<base64>`, the public key receivers verify `v1a` with; `None` for HMAC.
    pub fn public_key(&self) -> Option<String> {
        match self {
            SigningKey::Hmac(_) => None,
            SigningKey::Ed25519(key) => Some(format!(
                "whpk_{}",
                STANDARD.encode(key.verifying_key().to_bytes())
            )),
        }
    }
}

/// The bytes every signature covers: `{id}.{timestamp}.{body}`.
fn signed_content(id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let timestamp = timestamp.to_string();
    let mut message = Vec::with_capacity(id.len() + timestamp.len() + body.len() + 2);
    message.extend_from_slice(id.as_bytes());
    message.push(b'.');
    message.extend_from_slice(timestamp.as_bytes());
    message.push(b'.');
    message.extend_from_slice(body);
    message
}

/// The `webhook-signature` header value: one signature per key, space separated.
pub fn signature_header(keys: &[SigningKey], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter()
        .map(|k| k.sign(id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        // The vector from the Standard Webhooks reference libraries.
        let key = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = key.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn rejects_malformed_secrets() {
        assert!(SigningKey::from_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(SigningKey::from_secret("whsec_!!!").is_err());
    }

    #[test]
    fn ed25519_signs_v1a_over_the_spec_layout() {
        use ed25519_dalek::{Signature, Verifier, VerifyingKey};
        let secret = Scheme::Ed25519.new_secret();
        assert_eq!(Scheme::of_secret(&secret).unwrap(), Scheme::Ed25519);
        let key = SigningKey::from_secret(&secret).unwrap();
        let public = key.public_key().unwrap();
        let public: [u8; 32] = STANDARD
            .decode(public.strip_prefix("whpk_").unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let header = key.sign("msg_1", 1614265330, br#"{"a":1}"#);
        let sig = header.strip_prefix("v1a,").unwrap();
        let sig = Signature::from_slice(&STANDARD.decode(sig).unwrap()).unwrap();
        let verifying = VerifyingKey::from_bytes(&public).unwrap();
        verifying
            .verify(br#"msg_1.1614265330.{"a":1}"#, &sig)
            .unwrap();
        assert!(verifying
            .verify(br#"msg_1.1614265331.{"a":1}"#, &sig)
            .is_err());
    }

    #[test]
    fn rejects_malformed_ed25519_keys() {
        assert!(SigningKey::from_secret("whsk_").is_err());
        assert!(SigningKey::from_secret(&format!("whsk_{}", STANDARD.encode([7u8; 32]))).is_err());
        // A public half that is not the secret half's.
        let mut bytes = STANDARD
            .decode(Scheme::Ed25519.new_secret().strip_prefix("whsk_").unwrap())
            .unwrap();
        bytes[40] ^= 1;
        assert!(SigningKey::from_secret(&format!("whsk_{}", STANDARD.encode(bytes))).is_err());
        assert!(
            SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
                .unwrap()
                .public_key()
                .is_none()
        );
    }

    #[test]
    fn header_carries_every_key() {
        let a = SigningKey::from_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let b = SigningKey::from_secret("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let h = signature_header(&[a, b], "m", 1, b"{}");
        assert_eq!(h.split(' ').count(), 2);
    }
}
