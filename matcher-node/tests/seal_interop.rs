//! Our sealed boxes against libsodium's, through PyNaCl (`make deps` installs it): each
//! side opens what the other sealed, and both derive the same public key.

mod pynacl;

use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use matcher::seal::{decode_key, open, public_key, seal, Envelope};
use rand::rngs::StdRng;
use rand::SeedableRng;

use pynacl::python;

const SECRET: [u8; 32] = [
    0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2, 0x66, 0x45,
    0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5, 0x1d, 0xb9, 0x2c, 0x2a,
];

/// Runs a PyNaCl snippet with the secret key (base64) as argv[1] and `arg` as argv[2].
fn pynacl(script: &str, arg: &str) -> String {
    let out = Command::new(python())
        .args(["-c", script, &STANDARD.encode(SECRET), arg])
        .output()
        .expect("python3 runs (make deps installs it)");
    assert!(
        out.status.success(),
        "PyNaCl failed (make deps installs python3-nacl): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .trim()
        .to_string()
}

const PRELUDE: &str = "import sys, base64\n\
    from nacl.public import PrivateKey, PublicKey, SealedBox\n\
    sk = PrivateKey(base64.b64decode(sys.argv[1]))\n";

fn envelope() -> Envelope {
    Envelope {
        exchange: "north-pole".into(),
        giver: "rudolph".into(),
        receiver: "dasher".into(),
        epoch: 2,
        gift_id: 523831660756656213,
    }
}

#[test]
fn both_derive_the_same_public_key() {
    let theirs = pynacl(
        &format!("{PRELUDE}print(base64.b64encode(bytes(sk.public_key)).decode())"),
        "",
    );
    assert_eq!(public_key(&SECRET), theirs);
    // RFC 7748's Alice: this secret key's public key, as a known answer.
    assert_eq!(theirs, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=");
}

#[test]
fn libsodium_opens_our_box() {
    let key = decode_key(&public_key(&SECRET)).unwrap();
    let sealed = seal(&envelope(), &key, &mut StdRng::seed_from_u64(5)).unwrap();
    let script =
        format!("{PRELUDE}print(SealedBox(sk).decrypt(base64.b64decode(sys.argv[2])).decode())");
    let plaintext = pynacl(&script, &sealed);
    assert_eq!(plaintext, serde_json::to_string(&envelope()).unwrap());
}

#[test]
fn we_open_a_libsodium_box() {
    let json = serde_json::to_string(&envelope()).unwrap();
    let script = format!(
        "{PRELUDE}print(base64.b64encode(SealedBox(sk.public_key).encrypt(sys.argv[2].encode())).decode())"
    );
    let sealed = pynacl(&script, &json);
    assert_eq!(open(&sealed, &SECRET), Ok(envelope()));
}
