//! Encryption of secret values at rest.
//!
//! ChaCha20-Poly1305 with a 32-byte node key. Every value gets a fresh random
//! 12-byte nonce and is stored as `nonce || ciphertext || tag`. The associated
//! data binds a ciphertext to its row (`"<space id>\0<key>"`), so a value
//! copied into another row, or another Space, fails to decrypt.

use std::fmt;

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

/// Length of the node key in bytes.
pub const KEY_LEN: usize = 32;

/// Why a value could not be encrypted or decrypted. Never carries the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptError {
    #[error("failed to use the secret key: it has {0} bytes, expected {KEY_LEN}")]
    KeyLength(usize),
    #[error("failed to get random bytes from the system")]
    Random,
    #[error("failed to encrypt a value")]
    Seal,
    #[error("failed to decrypt a value (wrong key, wrong row or tampered data)")]
    Open,
}

/// Fresh random bytes for a new node key.
pub fn generate_key() -> Result<[u8; KEY_LEN], CryptError> {
    let mut key = [0u8; KEY_LEN];
    SystemRandom::new()
        .fill(&mut key)
        .map_err(|_| CryptError::Random)?;
    Ok(key)
}

/// The associated data of a secret: `"<space id>\0<key>"`.
pub fn secret_aad(space: &str, key: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(space.len() + 1 + key.len());
    aad.extend_from_slice(space.as_bytes());
    aad.push(0);
    aad.extend_from_slice(key.as_bytes());
    aad
}

impl super::Store {
    /// A key for `purpose` derived from the node key (the same on every
    /// start, since the node key is kept).
    pub fn derived_key(&self, purpose: &str) -> [u8; 32] {
        self.key.derived(purpose)
    }
}

/// The node key, ready to seal and open values.
pub struct SecretKey {
    key: LessSafeKey,
    rng: SystemRandom,
    /// The same bytes as an HMAC key, for keys derived per purpose.
    derive: ring::hmac::Key,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    /// A key from exactly [`KEY_LEN`] bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptError::KeyLength(bytes.len()));
        }
        let unbound =
            UnboundKey::new(&CHACHA20_POLY1305, bytes).map_err(|_| CryptError::KeyLength(0))?;
        Ok(Self {
            key: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
            derive: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes),
        })
    }

    /// A key for one purpose, derived from the node key (HMAC-SHA256 of the
    /// purpose), so other uses never see the node key itself and keys of
    /// different purposes are unrelated.
    pub fn derived(&self, purpose: &str) -> [u8; 32] {
        let mut message = b"spaceport-derived-key\0".to_vec();
        message.extend_from_slice(purpose.as_bytes());
        let tag = ring::hmac::sign(&self.derive, &message);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Encrypts `plaintext` bound to `aad`: returns `nonce || ciphertext || tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.fill(&mut nonce).map_err(|_| CryptError::Random)?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| CryptError::Seal)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// Decrypts what [`SecretKey::seal`] returned for the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptError> {
        if sealed.len() < NONCE_LEN + CHACHA20_POLY1305.tag_len() {
            return Err(CryptError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptError::Open)?;
        let mut in_out = ciphertext.to_vec();
        let len = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| CryptError::Open)?
            .len();
        in_out.truncate(len);
        Ok(in_out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::from_bytes(&generate_key().unwrap()).unwrap()
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_stay_the_same_per_key() {
        let bytes = generate_key().unwrap();
        let a = SecretKey::from_bytes(&bytes).unwrap();
        let b = SecretKey::from_bytes(&bytes).unwrap();
        assert_eq!(a.derived("tickets"), b.derived("tickets"));
        assert_ne!(a.derived("tickets"), a.derived("other"));
        assert_ne!(a.derived("tickets"), key().derived("tickets"));
        assert_ne!(&a.derived("tickets")[..], &bytes[..]);
    }

    #[test]
    fn round_trip() {
        let k = key();
        let aad = secret_aad("alice/app", "TOKEN");
        let sealed = k.seal(&aad, b"hunter2").unwrap();
        assert_eq!(sealed.len(), NONCE_LEN + 7 + 16);
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(k.open(&aad, &sealed).unwrap(), b"hunter2");
        // Empty values work too.
        let empty = k.seal(&aad, b"").unwrap();
        assert_eq!(k.open(&aad, &empty).unwrap(), b"");
    }

    #[test]
    fn nonces_differ_per_value() {
        let k = key();
        let a = k.seal(b"x", b"same").unwrap();
        let b = k.seal(b"x", b"same").unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN]);
        assert_ne!(a, b);
    }

    #[test]
    fn tampering_is_detected() {
        let k = key();
        let aad = secret_aad("alice/app", "TOKEN");
        let sealed = k.seal(&aad, b"hunter2").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert_eq!(k.open(&aad, &bad), Err(CryptError::Open), "byte {i}");
        }
        assert_eq!(k.open(&aad, &sealed[..10]), Err(CryptError::Open));
        assert_eq!(
            k.open(&aad, &sealed[..sealed.len() - 1]),
            Err(CryptError::Open)
        );
    }

    #[test]
    fn wrong_aad_or_key_fails() {
        let k = key();
        let sealed = k.seal(&secret_aad("alice/app", "TOKEN"), b"v").unwrap();
        assert_eq!(
            k.open(&secret_aad("alice/app", "OTHER"), &sealed),
            Err(CryptError::Open)
        );
        assert_eq!(
            k.open(&secret_aad("bob/app", "TOKEN"), &sealed),
            Err(CryptError::Open)
        );
        // The separator keeps "a/b" + "cD" apart from "a/bc" + "D".
        assert_ne!(secret_aad("a/b", "cD"), secret_aad("a/bc", "D"));
        assert_eq!(
            key().open(&secret_aad("alice/app", "TOKEN"), &sealed),
            Err(CryptError::Open)
        );
    }

    #[test]
    fn key_length_is_checked() {
        assert_eq!(
            SecretKey::from_bytes(&[0u8; 31]).unwrap_err(),
            CryptError::KeyLength(31)
        );
        assert!(SecretKey::from_bytes(&[0u8; 33]).is_err());
        assert!(format!("{:?}", key()).contains(".."));
    }
}
