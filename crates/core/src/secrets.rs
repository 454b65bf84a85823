//! Secrets at rest and access tokens.
//!
//! Stored secrets are sealed with XChaCha20-Poly1305 under a master key; the associated
//! data binds each ciphertext to the record it belongs to, so a sealed value copied into
//! another row does not open. A ciphertext names the key that sealed it (its key id), so a
//! node given several keys opens each value with the right one while the master key is
//! rotated (docs/operations.md#rotating-the-master-key). Access tokens are random and only
//! their SHA-256 is stored.
//!
//! Sealed layout, version 2: `0x02`, the key id (8 bytes), the nonce (24), then the
//! ciphertext and its tag. Version 1 (`0x01`, nonce, ciphertext), written before key ids,
//! still opens: each key is tried.

use std::sync::RwLock;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::model::Sealed;

const VERSION_1: u8 = 1;
const VERSION: u8 = 2;
const NONCE_LEN: usize = 24;
const KEY_ID_LEN: usize = 8;
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("the master key must be 32 bytes encoded in base64 ({0})")]
    BadKey(String),
    #[error("a stored secret could not be decrypted: wrong master key or corrupted data")]
    Open,
    #[error(
        "a stored secret is sealed under master key {0}, which this node was not given \
         (docs/operations.md#rotating-the-master-key)"
    )]
    UnknownKey(KeyId),
    #[error("encryption failed")]
    Seal,
}

/// A master key's id: the first 8 bytes of SHA-256 over a fixed label and the key. It
/// names the key in ciphertexts and in the database without revealing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyId([u8; KEY_ID_LEN]);

impl KeyId {
    fn of(key: &[u8]) -> Self {
        let digest = Sha256::new()
            .chain_update(b"hookrelay master key id\0")
            .chain_update(key)
            .finalize();
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        KeyId(id)
    }

    /// From its hex form ([`KeyId`]'s `Display`).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() != KEY_ID_LEN * 2 || !text.is_ascii() {
            return None;
        }
        let mut id = [0u8; KEY_ID_LEN];
        for (i, byte) in id.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(KeyId(id))
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

/// One master key, ready to seal and open.
#[derive(Clone)]
struct Key {
    id: KeyId,
    aead: XChaCha20Poly1305,
}

impl Key {
    fn from_base64(text: &str) -> Result<Self, SecretError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| SecretError::BadKey(e.to_string()))?;
        if bytes.len() != 32 {
            return Err(SecretError::BadKey(format!("got {} bytes", bytes.len())));
        }
        Ok(Key {
            id: KeyId::of(&bytes),
            aead: XChaCha20Poly1305::new_from_slice(&bytes)
                .map_err(|e| SecretError::BadKey(e.to_string()))?,
        })
    }
}

/// The keys a node holds; `sealing` indexes the one new secrets are sealed under.
#[derive(Clone)]
struct Ring {
    keys: Vec<Key>,
    sealing: usize,
}

/// The master keys, ready to seal and open. Every key opens what it sealed; one seals:
/// the first given, until [`Cipher::seal_with`] names another (the database names the
/// sealing key during a rotation).
pub struct Cipher {
    ring: RwLock<Ring>,
}

impl Clone for Cipher {
    fn clone(&self) -> Self {
        Cipher {
            ring: RwLock::new(self.ring().clone()),
        }
    }
}

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cipher(keys {:?})", self.key_ids())
    }
}

impl Cipher {
    /// From the base64 text of a 32-byte key.
    pub fn from_base64(text: &str) -> Result<Self, SecretError> {
        Self::from_keys(&[text])
    }

    /// From several keys (base64 of 32 bytes each); the first seals. The same key given
    /// twice is kept once.
    pub fn from_keys(texts: &[&str]) -> Result<Self, SecretError> {
        let mut keys: Vec<Key> = Vec::with_capacity(texts.len());
        for text in texts {
            let key = Key::from_base64(text)?;
            if !keys.iter().any(|k| k.id == key.id) {
                keys.push(key);
            }
        }
        if keys.is_empty() {
            return Err(SecretError::BadKey("no key given".into()));
        }
        Ok(Cipher {
            ring: RwLock::new(Ring { keys, sealing: 0 }),
        })
    }

    fn ring(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        // A panic while the lock was held cannot leave the ring half-changed: every
        // writer replaces whole fields.
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    /// A fresh random key, base64-encoded.
    pub fn generate_key() -> String {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        STANDARD.encode(key)
    }

    /// The id of a key given as base64.
    pub fn key_id(text: &str) -> Result<KeyId, SecretError> {
        Ok(Key::from_base64(text)?.id)
    }

    /// The ids of the keys held, the sealing one first.
    pub fn key_ids(&self) -> Vec<KeyId> {
        let ring = self.ring();
        let sealing = ring.keys[ring.sealing].id;
        std::iter::once(sealing)
            .chain(ring.keys.iter().map(|k| k.id).filter(|id| *id != sealing))
            .collect()
    }

    /// The id of the key new secrets are sealed under.
    pub fn sealing_key(&self) -> KeyId {
        let ring = self.ring();
        ring.keys[ring.sealing].id
    }

    /// Whether the key is held.
    pub fn holds(&self, id: KeyId) -> bool {
        self.ring().keys.iter().any(|k| k.id == id)
    }

    /// Seals from now on under the key `id`; false (and nothing changes) if it is not held.
    pub fn seal_with(&self, id: KeyId) -> bool {
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        match ring.keys.iter().position(|k| k.id == id) {
            Some(index) => {
                ring.sealing = index;
                true
            }
            None => false,
        }
    }

    /// Adds a key (base64) that opens, and seals once [`Cipher::seal_with`] names it.
    /// Returns its id; a key already held is not added twice.
    pub fn add_key(&self, text: &str) -> Result<KeyId, SecretError> {
        let key = Key::from_base64(text)?;
        let id = key.id;
        let mut ring = self.ring.write().unwrap_or_else(|e| e.into_inner());
        if !ring.keys.iter().any(|k| k.id == id) {
            ring.keys.push(key);
        }
        Ok(id)
    }

    /// The id of the key a value was sealed under; `None` for a version-1 value (which
    /// names none) or bytes that are not a sealed value.
    pub fn sealed_under(sealed: &Sealed) -> Option<KeyId> {
        let bytes = &sealed.0;
        if bytes.len() < 1 + KEY_ID_LEN || bytes[0] != VERSION {
            return None;
        }
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&bytes[1..1 + KEY_ID_LEN]);
        Some(KeyId(id))
    }

    /// Seals `plaintext`, bound to `context` (e.g. `auth_profile:{store}:{id}`), under the
    /// sealing key.
    pub fn seal(&self, context: &str, plaintext: &[u8]) -> Result<Sealed, SecretError> {
        let ring = self.ring();
        seal_under(&ring.keys[ring.sealing], context, plaintext)
    }

    /// Seals under the key `id`, which must be held.
    pub fn seal_under(
        &self,
        id: KeyId,
        context: &str,
        plaintext: &[u8],
    ) -> Result<Sealed, SecretError> {
        let ring = self.ring();
        let key = ring
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(SecretError::UnknownKey(id))?;
        seal_under(key, context, plaintext)
    }

    /// Opens what [`Cipher::seal`] made for the same `context`, with the key it names.
    pub fn open(&self, context: &str, sealed: &Sealed) -> Result<Vec<u8>, SecretError> {
        let bytes = &sealed.0;
        let ring = self.ring();
        match bytes.first() {
            Some(&VERSION) => {
                if bytes.len() < 1 + KEY_ID_LEN + NONCE_LEN + TAG_LEN {
                    return Err(SecretError::Open);
                }
                let id = Cipher::sealed_under(sealed).ok_or(SecretError::Open)?;
                let key = ring
                    .keys
                    .iter()
                    .find(|k| k.id == id)
                    .ok_or(SecretError::UnknownKey(id))?;
                open_with(key, context, &bytes[1 + KEY_ID_LEN..])
            }
            Some(&VERSION_1) if bytes.len() >= 1 + NONCE_LEN + TAG_LEN => ring
                .keys
                .iter()
                .find_map(|key| open_with(key, context, &bytes[1..]).ok())
                .ok_or(SecretError::Open),
            _ => Err(SecretError::Open),
        }
    }
}

fn seal_under(key: &Key, context: &str, plaintext: &[u8]) -> Result<Sealed, SecretError> {
    let mut nonce = [0u8; NONCE_LEN];
    OsRng.fill_bytes(&mut nonce);
    let ciphertext = key
        .aead
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: context.as_bytes(),
            },
        )
        .map_err(|_| SecretError::Seal)?;
    let mut out = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ciphertext.len());
    out.push(VERSION);
    out.extend_from_slice(&key.id.0);
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ciphertext);
    Ok(Sealed(out))
}

/// Opens `nonce ‖ ciphertext` with one key.
fn open_with(key: &Key, context: &str, rest: &[u8]) -> Result<Vec<u8>, SecretError> {
    if rest.len() < NONCE_LEN + TAG_LEN {
        return Err(SecretError::Open);
    }
    key.aead
        .decrypt(
            XNonce::from_slice(&rest[..NONCE_LEN]),
            Payload {
                msg: &rest[NONCE_LEN..],
                aad: context.as_bytes(),
            },
        )
        .map_err(|_| SecretError::Open)
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

    /// What the version-1 layout (no key id) held: it must still open.
    fn seal_v1(key: &str, context: &str, plaintext: &[u8]) -> Sealed {
        let aead = XChaCha20Poly1305::new_from_slice(&STANDARD.decode(key).unwrap()).unwrap();
        let nonce = [7u8; NONCE_LEN];
        let ct = aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            .unwrap();
        Sealed([&[VERSION_1][..], &nonce, &ct].concat())
    }

    #[test]
    fn values_name_their_key_and_open_with_any_ring_that_holds_it() {
        let (old, new) = (Cipher::generate_key(), Cipher::generate_key());
        let old_only = Cipher::from_base64(&old).unwrap();
        let sealed_old = old_only.seal("ctx", b"secret").unwrap();
        assert_eq!(
            Cipher::sealed_under(&sealed_old),
            Some(Cipher::key_id(&old).unwrap())
        );
        // Both keys, the old one sealing: opens both, seals under the old one.
        let both = Cipher::from_keys(&[&old, &new]).unwrap();
        assert_eq!(both.sealing_key(), Cipher::key_id(&old).unwrap());
        let sealed_new = both
            .seal_under(Cipher::key_id(&new).unwrap(), "ctx", b"other")
            .unwrap();
        assert_eq!(both.open("ctx", &sealed_old).unwrap(), b"secret");
        assert_eq!(both.open("ctx", &sealed_new).unwrap(), b"other");
        // The old key alone does not know the new one, and says which key it lacks.
        match old_only.open("ctx", &sealed_new) {
            Err(SecretError::UnknownKey(id)) => assert_eq!(id, Cipher::key_id(&new).unwrap()),
            other => panic!("{other:?}"),
        }
        // Told to, the ring seals under the new key; a key it lacks is refused.
        assert!(both.seal_with(Cipher::key_id(&new).unwrap()));
        assert!(!both.seal_with(Cipher::key_id(&Cipher::generate_key()).unwrap()));
        let sealed = both.seal("ctx", b"x").unwrap();
        assert_eq!(
            Cipher::sealed_under(&sealed),
            Some(Cipher::key_id(&new).unwrap())
        );
        assert_eq!(both.key_ids()[0], Cipher::key_id(&new).unwrap());
        // A key added later opens what it sealed.
        let late = Cipher::from_base64(&new).unwrap();
        assert!(late.open("ctx", &sealed_old).is_err());
        late.add_key(&old).unwrap();
        assert_eq!(late.open("ctx", &sealed_old).unwrap(), b"secret");
    }

    #[test]
    fn version_1_values_still_open_with_any_key_of_the_ring() {
        let (old, new) = (Cipher::generate_key(), Cipher::generate_key());
        let v1 = seal_v1(&old, "ctx", b"legacy");
        assert_eq!(Cipher::sealed_under(&v1), None);
        let ring = Cipher::from_keys(&[&new, &old]).unwrap();
        assert_eq!(ring.open("ctx", &v1).unwrap(), b"legacy");
        assert!(ring.open("other", &v1).is_err());
        assert!(Cipher::from_base64(&new).unwrap().open("ctx", &v1).is_err());
    }

    #[test]
    fn truncated_or_empty_values_are_errors() {
        let key = Cipher::generate_key();
        let c = Cipher::from_base64(&key).unwrap();
        let sealed = c.seal("ctx", b"secret").unwrap();
        for len in 0..sealed.0.len() {
            let cut = Sealed(sealed.0[..len].to_vec());
            assert!(c.open("ctx", &cut).is_err(), "{len} bytes opened");
        }
        let v1 = seal_v1(&key, "ctx", b"secret");
        for len in 0..v1.0.len() {
            assert!(c.open("ctx", &Sealed(v1.0[..len].to_vec())).is_err());
        }
    }

    #[test]
    fn key_ids_print_and_parse() {
        let id = Cipher::key_id(&Cipher::generate_key()).unwrap();
        assert_eq!(id.to_string().len(), 16);
        assert_eq!(KeyId::parse(&id.to_string()), Some(id));
        assert_eq!(KeyId::parse("zz"), None);
        assert_eq!(KeyId::parse("é0000000000000"), None);
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
