//! Request signing and the credentials it needs.
//!
//! The contract: `x-api-sign` is the lowercase hex HMAC-SHA256 of
//! `<timestamp>.<body>`, keyed with the secret's UTF-8 bytes. Signing is a
//! pure function of (secret, timestamp, body bytes) so it can be tested
//! with the published vectors, and the client and the sandbox share it.

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// A private key. Its `Debug` and `Display` never show the value, so it
/// cannot leak through logs, errors or `{:?}`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret key.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The raw secret, for signing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Lowercase hex HMAC-SHA256 of `<timestamp>.<body>` keyed with `secret`.
pub fn sign(secret: &Secret, timestamp: &str, body: &[u8]) -> String {
    Signer::new(secret).sign(timestamp, body)
}

/// A secret made ready to sign many requests: HMAC's keyed state (the
/// key's inner and outer pads, one SHA-256 block each) is computed once
/// rather than per request. [`Signer::sign`] is the one place a request
/// is signed; [`sign`] is the same for a single request. Its `Debug`
/// shows nothing of the key.
#[derive(Clone)]
pub struct Signer(Hmac<Sha256>);

impl Signer {
    /// Key the HMAC with the secret's UTF-8 bytes.
    pub fn new(secret: &Secret) -> Signer {
        Signer(
            Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
                .expect("HMAC accepts keys of any length"),
        )
    }

    /// Lowercase hex HMAC-SHA256 of `<timestamp>.<body>`.
    pub fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let mut mac = self.0.clone();
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        // Into a buffer at once: `hex::encode` goes through an iterator
        // of chars, one at a time.
        let mut hex = [0u8; 64];
        hex::encode_to_slice(mac.finalize().into_bytes(), &mut hex)
            .expect("64 hex digits for 32 bytes");
        std::str::from_utf8(&hex)
            .expect("hex digits are ASCII")
            .to_string()
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

/// Check a signature in constant time (for the sandbox).
pub fn verify(secret: &Secret, timestamp: &str, body: &[u8], signature_hex: &str) -> bool {
    let Ok(sig) = hex::decode(signature_hex) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "ioh8xDhjoNK60BE0msPGFbfGA-ECZy26";

    #[test]
    fn published_vectors() {
        let s = Secret::new(SECRET);
        assert_eq!(
            sign(&s, "1700000000000", b"{}"),
            "9cf432e40162afb43d4dc253217cecd2fa8512fb6871770576ebdf892ec40077"
        );
        assert_eq!(
            sign(
                &s,
                "1700000000000",
                br#"{"pair":"BTC-USDC","type":"limit","side":"buy","quantity":"2","price":"24321.00"}"#
            ),
            "e0dc3bf3508155c47a49566069e83f08a750562bababdf35ba991356b1177bff"
        );
    }

    /// Made with `printf '%s' "$TS.$BODY" | openssl dgst -sha256 -hmac "$SECRET"`.
    #[test]
    fn vectors_from_openssl() {
        let s = Secret::new(SECRET);
        assert_eq!(
            sign(&s, "1712345678901", b"{}"),
            "2441e64b24b3d6077eab5c6c8b9ba7d8ac07542b47d94bb7475ef1f3b4eb6afc"
        );
        assert_eq!(
            sign(
                &s,
                "1712345678901",
                br#"{"pair":"ETH-USDC","type":"market","side":"sell","quantity":"1.5"}"#
            ),
            "c37d5046a3ab47805bc60045422cc503e71555b6ba55594d2b25be74cdb11cc4"
        );
    }

    /// A signer keyed once signs each request as [`sign`] does.
    #[test]
    fn a_signer_reused_signs_as_sign() {
        let s = Secret::new(SECRET);
        let signer = Signer::new(&s);
        for (ts, body) in [
            ("1700000000000", &b"{}"[..]),
            ("1712345678901", &b"{}"[..]),
            ("1", br#"{"pair":"BTC-USDC","quantity":"2"}"#),
            ("1700000000000", &b"{}"[..]),
        ] {
            assert_eq!(signer.sign(ts, body), sign(&s, ts, body));
        }
        assert_eq!(
            signer.sign("1700000000000", b"{}"),
            "9cf432e40162afb43d4dc253217cecd2fa8512fb6871770576ebdf892ec40077"
        );
        assert!(!format!("{signer:?}").contains(SECRET));
    }

    #[test]
    fn verify_accepts_own_and_refuses_tampered() {
        let s = Secret::new(SECRET);
        let sig = sign(&s, "1", b"{}");
        assert!(verify(&s, "1", b"{}", &sig));
        assert!(!verify(&s, "2", b"{}", &sig));
        assert!(!verify(&s, "1", b"{} ", &sig));
        assert!(!verify(&s, "1", b"{}", "zz"));
    }

    #[test]
    fn secret_never_prints() {
        let s = Secret::new(SECRET);
        assert!(!format!("{s:?} {s}").contains(SECRET));
    }
}
