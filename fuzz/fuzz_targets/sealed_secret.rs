//! Sealed secrets (crates/core/src/secrets.rs), through the public API only (the sealed
//! format may change): any bytes as a sealed value, truncated and altered ones, and
//! seal→open round trips. Opening what was not sealed under this key and context is an
//! error, never a panic.
#![no_main]

use std::sync::OnceLock;

use hookrelay_core::secrets::Cipher;
use hookrelay_core::Sealed;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Read as a master key (base64 text).
    key: String,
    context: String,
    other_context: String,
    plaintext: Vec<u8>,
    /// Opened as if it were a sealed value.
    sealed: Vec<u8>,
    /// Where to cut and where to flip a bit of a sealed value.
    cut: u16,
    flip: u16,
}

fn ciphers() -> &'static (Cipher, Cipher) {
    static KEYS: OnceLock<(Cipher, Cipher)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let key = |byte: u8| Cipher::from_base64(&base64_of_32(byte)).expect("a valid key");
        (key(7), key(8))
    })
}

/// The base64 text of 32 bytes of `byte` (the fuzz crate has no base64 of its own).
fn base64_of_32(byte: u8) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = [byte; 32];
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    while out.len() % 4 != 0 {
        out.push('=');
    }
    out
}

fuzz_target!(|input: Input| {
    let (cipher, other) = ciphers();
    // Any text as a key: a key or an error.
    let _ = Cipher::from_base64(&input.key);
    // Bytes nobody sealed do not open (a forgery would need the key).
    assert!(cipher
        .open(&input.context, &Sealed(input.sealed.clone()))
        .is_err());
    assert!(cipher.open(&input.context, &Sealed(Vec::new())).is_err());

    let sealed = cipher
        .seal(&input.context, &input.plaintext)
        .expect("sealing does not fail");
    assert_eq!(
        cipher
            .open(&input.context, &sealed)
            .expect("opens what it sealed"),
        input.plaintext
    );
    // Bound to its context and its key.
    if input.other_context != input.context {
        assert!(cipher.open(&input.other_context, &sealed).is_err());
    }
    assert!(other.open(&input.context, &sealed).is_err());
    // Truncated anywhere, it is an error.
    let len = sealed.0.len();
    for cut in [0, 1, usize::from(input.cut) % len, len / 2, len - 1] {
        let truncated = Sealed(sealed.0[..cut].to_vec());
        assert!(
            cipher.open(&input.context, &truncated).is_err(),
            "cut at {cut}"
        );
    }
    // One bit changed anywhere, it is an error.
    let mut altered = sealed.0.clone();
    let bit = usize::from(input.flip) % (len * 8);
    altered[bit / 8] ^= 1 << (bit % 8);
    assert!(cipher.open(&input.context, &Sealed(altered)).is_err());
    // Longer, it is an error too.
    let mut longer = sealed.0.clone();
    longer.push(0);
    assert!(cipher.open(&input.context, &Sealed(longer)).is_err());
});
