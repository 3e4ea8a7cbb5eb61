//! The API key: the exchange's key object read from a file, and the rules
//! hqx keeps about it before any request.
//!
//! - A key file that group or others may access is refused, as ssh
//!   refuses an unprotected private key.
//! - A key past its `expiredAt` is refused; one that expires within
//!   [`EXPIRY_WARNING_MS`] (7 days) is used with a warning.
//! - The key object's `ips` (the addresses the key is bound to) is kept to
//!   explain a 403.
//!
//! The secret lives in a [`Secret`], whose `Debug` and `Display` print
//! nothing of it; no message here ever quotes the key file's text.

use serde_json::Value;

use crate::client::text_of;
use crate::sign::Secret;

/// How long before a key's `expiredAt` every `run` and `reconcile` warns:
/// 7 days.
pub const EXPIRY_WARNING_MS: i64 = 7 * 24 * 3_600_000;

/// An API key pair, with its expiry when known.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The public key (`x-api-key`).
    pub api_key: String,
    /// The private key; never printed.
    pub secret: Secret,
    /// `expiredAt` from the exchange's key object, when known.
    pub expires_at: Option<String>,
    /// `ips` from the exchange's key object: the addresses the key is bound
    /// to, when it says (`null` there means any address).
    pub ips: Option<Vec<String>>,
}

impl Credentials {
    /// Read the exchange's own key object (`{apiKey, secretKey, expiredAt, ...}`).
    pub fn from_key_file(path: &std::path::Path) -> Result<Credentials, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct KeyObject {
            api_key: String,
            secret_key: String,
            expired_at: Option<String>,
            #[serde(default)]
            ips: Value,
        }
        let k: KeyObject = serde_json::from_str(&text).map_err(|e| {
            // serde_json's message can quote the input (a bare secret, say):
            // say only where and what kind of problem it is.
            format!(
                "key file {} is not the exchange's key object ({{\"apiKey\", \"secretKey\", \"expiredAt\", ...}}): {:?} error at line {}, column {}; save the key object exactly as Haqqex showed it",
                path.display(),
                e.classify(),
                e.line(),
                e.column()
            )
        })?;
        // `ips` is not described further: a list of addresses, or one
        // text of them separated by commas; anything else is ignored (it
        // only ever adds to a message).
        let ips = match &k.ips {
            Value::Array(a) => Some(a.iter().filter_map(|v| text_of(Some(v))).collect()),
            Value::String(s) => Some(
                s.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            _ => None,
        }
        .filter(|v: &Vec<String>| !v.is_empty());
        Ok(Credentials {
            api_key: k.api_key,
            secret: Secret::new(k.secret_key),
            expires_at: k.expired_at,
            ips,
        })
    }

    /// Refuse a key file that group or others may read or write, as ssh
    /// refuses an unprotected private key: the secret would not be secret.
    /// Says which `chmod` to run; never reads or shows the secret.
    pub fn check_key_file_mode(path: &std::path::Path) -> Result<(), String> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let meta = std::fs::metadata(path)
                .map_err(|e| format!("cannot read key file {}: {e}", path.display()))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(format!(
                    "key file {} is accessible by group or others (mode {mode:03o}): its secret is not private, so hqx refuses it, as ssh refuses an unprotected private key; run `chmod 600 {}` and try again (and consider the key exposed if others could read it: replace it on Haqqex)",
                    path.display(),
                    path.display()
                ));
            }
        }
        #[cfg(not(unix))]
        let _ = path;
        Ok(())
    }

    /// A warning when the key expires within [`EXPIRY_WARNING_MS`] of
    /// `now_ms`, with the date and time of its expiry (UTC). `None` for a
    /// key without `expiredAt` or one that expires later.
    pub fn expiry_warning(&self, now_ms: i64) -> Option<String> {
        let at = self.expires_at.as_ref()?;
        let t =
            time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok()?;
        let exp_ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
        let left = exp_ms - now_ms;
        if !(0..=EXPIRY_WARNING_MS).contains(&left) {
            return None;
        }
        let utc = t.to_offset(time::UtcOffset::UTC);
        let when = format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            utc.year(),
            u8::from(utc.month()),
            utc.day(),
            utc.hour(),
            utc.minute(),
            utc.second()
        );
        let hours = left / 3_600_000;
        Some(format!(
            "warning: API key {} expires at {when} (in {} day(s) {} hour(s)); create a new key on Haqqex before then and pass it with --key-file or HAQQEX_PUBLIC_KEY/HAQQEX_PRIVATE_KEY",
            self.api_key,
            hours / 24,
            hours % 24
        ))
    }

    /// What to add to the message of a 403 (the exchange refuses the
    /// key from this address): the addresses the key object binds it to,
    /// when it says.
    pub fn forbidden_hint(&self) -> String {
        match &self.ips {
            Some(ips) => format!(
                "; the key is bound to the IP address(es) {} (its key object's `ips`): run hqx from one of them, or allow this machine's address for the key on Haqqex",
                ips.join(", ")
            ),
            None => "; the key may be bound to other IP addresses: check its `ips` on Haqqex".into(),
        }
    }

    /// Refuse a key whose `expiredAt` has passed, before any request.
    pub fn check_expiry(&self, now_ms: i64) -> Result<(), String> {
        let Some(at) = &self.expires_at else {
            return Ok(());
        };
        let t = time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .map_err(|e| format!("the key's expiredAt `{at}` is not an ISO-8601 time: {e}"))?;
        let exp_ms = (t.unix_timestamp_nanos() / 1_000_000) as i64;
        if exp_ms <= now_ms {
            return Err(format!(
                "API key {} expired at {at}; create a new key on Haqqex and pass it with --key-file or HAQQEX_PUBLIC_KEY/HAQQEX_PRIVATE_KEY",
                self.api_key
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::now_ms;

    #[test]
    fn a_malformed_key_file_never_echoes_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        for text in [
            "\"SUPERSECRET\"",
            "{\"apiKey\": \"k\", \"secretKey\": 42, \"x\": \"SUPERSECRET\"}",
            "{\"apiKey\": \"k\", \"secretKey\": \"SUPERSECRET\"",
            "[\"SUPERSECRET\"]",
        ] {
            let p = dir.path().join("key.json");
            std::fs::write(&p, text).unwrap();
            let e = Credentials::from_key_file(&p).unwrap_err();
            assert!(!e.contains("SUPERSECRET"), "{e}");
            assert!(e.contains("line 1"), "{e}");
        }
    }

    #[test]
    fn a_403_names_the_addresses_the_key_object_binds_the_key_to() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.json");
        for (ips, shown) in [
            (
                r#"["203.0.113.7","198.51.100.0/24"]"#,
                Some("203.0.113.7, 198.51.100.0/24"),
            ),
            (
                r#""203.0.113.7, 198.51.100.9""#,
                Some("203.0.113.7, 198.51.100.9"),
            ),
            ("null", None),
            ("[]", None),
        ] {
            std::fs::write(
                &p,
                format!(
                    r#"{{"apiKey":"k","secretKey":"SUPERSECRET","ips":{ips},"expiredAt":null}}"#
                ),
            )
            .unwrap();
            let hint = Credentials::from_key_file(&p).unwrap().forbidden_hint();
            match shown {
                Some(list) => assert!(
                    hint.contains(&format!("bound to the IP address(es) {list}")),
                    "{hint}"
                ),
                None => assert!(
                    hint.contains("may be bound to other IP addresses"),
                    "{hint}"
                ),
            }
            assert!(!hint.contains("SUPERSECRET"));
        }
    }

    #[test]
    fn a_key_file_others_may_read_is_refused_with_the_chmod_to_run() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.json");
        std::fs::write(&p, r#"{"apiKey":"k","secretKey":"SUPERSECRET"}"#).unwrap();
        for (mode, ok) in [
            (0o600, true),
            (0o400, true),
            (0o640, false),
            (0o604, false),
            (0o620, false),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            let r = Credentials::check_key_file_mode(&p);
            assert_eq!(r.is_ok(), ok, "mode {mode:o}: {r:?}");
            if let Err(e) = r {
                assert!(e.contains(&format!("chmod 600 {}", p.display())), "{e}");
                assert!(!e.contains("SUPERSECRET"));
            }
        }
    }

    #[test]
    fn a_key_warns_from_7_days_before_it_expires() {
        let c = Credentials {
            api_key: "k".into(),
            secret: Secret::new("SUPERSECRET"),
            expires_at: Some("2026-12-07T12:30:00Z".into()),
            ips: None,
        };
        let exp = 1_796_646_600_000; // 2026-12-07T12:30:00Z
        let w = c.expiry_warning(exp - 2 * 3_600_000).unwrap();
        assert!(
            w.contains("expires at 2026-12-07 12:30:00 UTC (in 0 day(s) 2 hour(s))"),
            "{w}"
        );
        assert!(c.expiry_warning(exp - EXPIRY_WARNING_MS).is_some());
        assert!(c.expiry_warning(exp - EXPIRY_WARNING_MS - 1).is_none());
    }

    #[test]
    fn expired_key_is_refused_and_secret_not_shown() {
        let c = Credentials {
            api_key: "k".into(),
            secret: Secret::new("SUPERSECRET"),
            expires_at: Some("2023-11-14T09:22:07.235Z".into()),
            ips: None,
        };
        let e = c.check_expiry(now_ms()).unwrap_err();
        assert!(e.contains("expired"), "{e}");
        assert!(!e.contains("SUPERSECRET") && !format!("{c:?}").contains("SUPERSECRET"));
        let ok = Credentials {
            expires_at: Some("2999-01-01T00:00:00Z".into()),
            ..c
        };
        assert!(ok.check_expiry(now_ms()).is_ok());
    }
}
