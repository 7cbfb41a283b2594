//! Sealed delivery: libsodium's `crypto_box_seal` (an anonymous X25519 +
//! XSalsa20-Poly1305 box) of the JSON assignment, to the participant's public key.
//! Only the holder of the matching secret key can read who they give to; the sealer keeps
//! no key that opens it. `open` is what a participant (or the workload) runs.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use crypto_box::{PublicKey, SecretKey, KEY_SIZE};
use rand::{CryptoRng, RngCore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The plaintext inside a sealed box; serialised in this field order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub exchange: String,
    pub giver: String,
    pub receiver: String,
    pub epoch: u64,
    pub gift_id: u64,
}

/// The plaintext of a `gift_status_ok` box: a gift's production stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub gift_id: u64,
    /// `queued`, the kind of the first task not completed, `packaged` or `cancelled`.
    pub stage: String,
}

/// Why a public key is refused (the register reasons).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    Undecodable,
    Length(usize),
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::Undecodable => write!(f, "public_key is not standard padded base64"),
            KeyError::Length(n) => write!(f, "public_key is {n} bytes, not {KEY_SIZE}"),
        }
    }
}

impl std::error::Error for KeyError {}

/// Why a sealed box could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// Not standard padded base64.
    Undecodable,
    /// Not sealed to this key, or altered.
    Forged,
    /// It opened, but the plaintext is not an assignment.
    Plaintext(String),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Undecodable => write!(f, "sealed box is not standard padded base64"),
            OpenError::Forged => write!(f, "sealed box does not open with this key"),
            OpenError::Plaintext(e) => write!(f, "sealed box holds no assignment: {e}"),
        }
    }
}

impl std::error::Error for OpenError {}

/// Sealing failed inside the cipher (it does not for any plaintext of sane size).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealError;

impl fmt::Display for SealError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the cipher refused to seal")
    }
}

impl std::error::Error for SealError {}

/// Decodes a base64 (standard, padded) X25519 public key.
pub fn decode_key(text: &str) -> Result<[u8; KEY_SIZE], KeyError> {
    let bytes = STANDARD.decode(text).map_err(|_| KeyError::Undecodable)?;
    <[u8; KEY_SIZE]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Length(bytes.len()))
}

/// Base64 (standard, padded) of a public key, as participants register it.
pub fn encode_key(key: &[u8; KEY_SIZE]) -> String {
    STANDARD.encode(key)
}

/// A fresh key pair: the secret key's bytes and the public key as registered (base64).
pub fn keypair(rng: &mut (impl RngCore + CryptoRng)) -> ([u8; KEY_SIZE], String) {
    let secret = SecretKey::generate(rng);
    (
        secret.to_bytes(),
        encode_key(secret.public_key().as_bytes()),
    )
}

/// The public key (base64, as registered) of a secret key.
pub fn public_key(secret_key: &[u8; KEY_SIZE]) -> String {
    encode_key(SecretKey::from_bytes(*secret_key).public_key().as_bytes())
}

/// Seals the envelope's UTF-8 JSON to `public_key`; returns the box as base64.
pub fn seal(
    envelope: &Envelope,
    public_key: &[u8; KEY_SIZE],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<String, SealError> {
    seal_json(envelope, public_key, rng)
}

/// Seals any value's UTF-8 JSON to `public_key`; returns the box as base64.
pub fn seal_json(
    value: &impl Serialize,
    public_key: &[u8; KEY_SIZE],
    rng: &mut (impl RngCore + CryptoRng),
) -> Result<String, SealError> {
    let plaintext = serde_json::to_vec(value).map_err(|_| SealError)?;
    let sealed = PublicKey::from_bytes(*public_key)
        .seal(rng, &plaintext)
        .map_err(|_| SealError)?;
    Ok(STANDARD.encode(sealed))
}

/// Opens a base64 sealed box with the recipient's secret key.
pub fn open(sealed: &str, secret_key: &[u8; KEY_SIZE]) -> Result<Envelope, OpenError> {
    open_json(sealed, secret_key)
}

/// Opens a base64 sealed box holding JSON of `T` (a [`Progress`], for `gift_status`).
pub fn open_json<T: DeserializeOwned>(
    sealed: &str,
    secret_key: &[u8; KEY_SIZE],
) -> Result<T, OpenError> {
    let bytes = STANDARD
        .decode(sealed)
        .map_err(|_| OpenError::Undecodable)?;
    let plaintext = SecretKey::from_bytes(*secret_key)
        .unseal(&bytes)
        .map_err(|_| OpenError::Forged)?;
    serde_json::from_slice(&plaintext).map_err(|e| OpenError::Plaintext(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn envelope() -> Envelope {
        Envelope {
            exchange: "north".into(),
            giver: "alice".into(),
            receiver: "bob".into(),
            epoch: 3,
            gift_id: 523831660756656213,
        }
    }

    #[test]
    fn a_box_opens_with_its_key_only() {
        let mut rng = StdRng::seed_from_u64(1);
        let (secret, public) = keypair(&mut rng);
        let (other, _) = keypair(&mut rng);
        let sealed = seal(&envelope(), &decode_key(&public).unwrap(), &mut rng).unwrap();
        assert_eq!(open(&sealed, &secret), Ok(envelope()));
        assert_eq!(open(&sealed, &other), Err(OpenError::Forged));
        assert_eq!(public_key(&secret), public);
    }

    #[test]
    fn the_plaintext_is_the_json_in_field_order() {
        let json = serde_json::to_string(&envelope()).unwrap();
        assert_eq!(
            json,
            r#"{"exchange":"north","giver":"alice","receiver":"bob","epoch":3,"gift_id":523831660756656213}"#
        );
    }

    #[test]
    fn sealing_twice_gives_different_boxes_and_hides_the_receiver() {
        let mut rng = StdRng::seed_from_u64(2);
        let (_, public) = keypair(&mut rng);
        let key = decode_key(&public).unwrap();
        let a = seal(&envelope(), &key, &mut rng).unwrap();
        let b = seal(&envelope(), &key, &mut rng).unwrap();
        assert_ne!(a, b);
        let bytes = STANDARD.decode(&a).unwrap();
        assert!(!bytes.windows(3).any(|w| w == b"bob"));
        // Ephemeral key, ciphertext and 16-byte tag.
        let plain = serde_json::to_vec(&envelope()).unwrap().len();
        assert_eq!(bytes.len(), KEY_SIZE + plain + 16);
    }

    #[test]
    fn altered_or_garbled_boxes_are_refused() {
        let mut rng = StdRng::seed_from_u64(3);
        let (secret, public) = keypair(&mut rng);
        let sealed = seal(&envelope(), &decode_key(&public).unwrap(), &mut rng).unwrap();
        let mut bytes = STANDARD.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            open(&STANDARD.encode(&bytes), &secret),
            Err(OpenError::Forged)
        );
        assert_eq!(open("not base64!", &secret), Err(OpenError::Undecodable));
        assert_eq!(open("AAAA", &secret), Err(OpenError::Forged));
    }

    #[test]
    fn keys_must_be_padded_base64_of_32_bytes() {
        assert_eq!(decode_key("%%%"), Err(KeyError::Undecodable));
        assert_eq!(
            decode_key(&STANDARD.encode([0u8; 31])),
            Err(KeyError::Length(31))
        );
        let unpadded = STANDARD.encode([7u8; 32]).trim_end_matches('=').to_string();
        assert_eq!(decode_key(&unpadded), Err(KeyError::Undecodable));
        assert_eq!(decode_key(&STANDARD.encode([7u8; 32])), Ok([7u8; 32]));
    }
}
