//! The signed reply token carried in the Message-ID of every mail postdesk
//! sends.
//!
//! A customer's mail client copies our Message-ID into In-Reply-To and
//! References, so a reply names its ticket without trusting the subject
//! line. The token is `pdt1.<ticket>.<nonce>.<mac>@<domain>`:
//!
//! * `pdt1`: format and version, so a later format can coexist;
//! * `<ticket>`: the ticket number (the `42` of `PD-42`; the prefix is only
//!   display and may change in config without breaking old replies);
//! * `<nonce>`: random, so each outgoing mail has its own Message-ID;
//! * `<mac>`: the first 80 bits of HMAC-SHA256(secret, "pdt1.<ticket>.<nonce>"),
//!   base32. Without the secret, nobody can make a reference that threads
//!   into someone else's ticket.
//!
//! Everything is lowercase base32hex (RFC 4648 §7) and digits, so the token
//! is a valid dot-atom and survives clients that lowercase Message-IDs.

use std::fmt;

use data_encoding::BASE32_DNSSEC;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

const VERSION: &str = "pdt1";
/// 80 bits of MAC: forging one takes 2^80 tries against a mail server.
const MAC_BYTES: usize = 10;
/// Minimum secret length accepted by config validation.
pub const MIN_SECRET_BYTES: usize = 16;

/// The HMAC key for reply tokens. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenKey(Vec<u8>);

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

impl TokenKey {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        TokenKey(secret.into())
    }

    fn mac(&self, ticket: i64, nonce: &str) -> HmacSha256 {
        // HMAC accepts keys of any length; new_from_slice cannot fail.
        let mut mac = match HmacSha256::new_from_slice(&self.0) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        };
        mac.update(VERSION.as_bytes());
        mac.update(b".");
        mac.update(ticket.to_string().as_bytes());
        mac.update(b".");
        mac.update(nonce.as_bytes());
        mac
    }

    /// A new Message-ID (without angle brackets) for a mail about `ticket`.
    pub fn mint(&self, ticket: i64, domain: &str) -> String {
        self.mint_with_nonce(ticket, &new_nonce(), domain)
    }

    /// Like [`TokenKey::mint`] with a given nonce; deterministic, for tests.
    pub fn mint_with_nonce(&self, ticket: i64, nonce: &str, domain: &str) -> String {
        let tag = self.mac(ticket, nonce).finalize().into_bytes();
        let mac = BASE32_DNSSEC.encode(tag.get(..MAC_BYTES).unwrap_or(&tag));
        format!("{VERSION}.{ticket}.{nonce}.{mac}@{domain}")
    }

    /// The ticket number named by a Message-ID, if it is one of our tokens
    /// and its MAC is right. Anything else (other mail, a forged or altered
    /// token) is `None`.
    pub fn verify(&self, message_id: &str) -> Option<i64> {
        let local = message_id
            .trim()
            .trim_matches(['<', '>'])
            .split('@')
            .next()?;
        let local = local.to_ascii_lowercase();
        let mut parts = local.split('.');
        if parts.next()? != VERSION {
            return None;
        }
        let ticket_str = parts.next()?;
        let nonce = parts.next()?;
        let mac_str = parts.next()?;
        if parts.next().is_some()
            || ticket_str.is_empty()
            || !ticket_str.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let ticket: i64 = ticket_str.parse().ok()?;
        if ticket_str != ticket.to_string() {
            return None; // leading zeros would give two spellings of one token
        }
        let mac_bytes = BASE32_DNSSEC.decode(mac_str.as_bytes()).ok()?;
        if mac_bytes.len() != MAC_BYTES {
            return None;
        }
        // Constant-time comparison of the truncated tag.
        self.mac(ticket, nonce)
            .verify_truncated_left(&mac_bytes)
            .ok()?;
        Some(ticket)
    }

    /// True when `message_id` looks like one of ours (format only, no MAC
    /// check): used to recognize our own mail coming back.
    pub fn looks_like_token(message_id: &str) -> bool {
        message_id
            .trim_start_matches('<')
            .to_ascii_lowercase()
            .starts_with("pdt1.")
    }
}

/// 50 random bits as 10 base32hex characters.
pub fn new_nonce() -> String {
    let bytes: [u8; 5] = rand::random();
    BASE32_DNSSEC.encode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(b"0123456789abcdef0123456789abcdef".to_vec())
    }

    #[test]
    fn minted_token_verifies_to_its_ticket() {
        let id = key().mint(42, "support.example.com");
        assert!(id.starts_with("pdt1.42."), "{id}");
        assert!(id.ends_with("@support.example.com"));
        assert_eq!(key().verify(&id), Some(42));
        assert_eq!(key().verify(&format!("<{id}>")), Some(42));
        assert_eq!(
            key().verify(&id.to_uppercase()),
            Some(42),
            "clients may change case"
        );
    }

    #[test]
    fn two_mints_differ() {
        assert_ne!(key().mint(1, "d"), key().mint(1, "d"));
    }

    #[test]
    fn changing_the_ticket_breaks_the_mac() {
        let id = key().mint_with_nonce(42, "abcdefghij", "d");
        let forged = id.replacen("pdt1.42.", "pdt1.43.", 1);
        assert_eq!(key().verify(&forged), None);
        let padded = id.replacen("pdt1.42.", "pdt1.042.", 1);
        assert_eq!(key().verify(&padded), None);
    }

    #[test]
    fn another_secret_does_not_verify() {
        let id = key().mint(7, "d");
        assert_eq!(
            TokenKey::new(b"another secret, long enough".to_vec()).verify(&id),
            None
        );
    }

    #[test]
    fn garbage_is_not_a_token() {
        for s in [
            "",
            "<>",
            "abc@d",
            "pdt1.@d",
            "pdt1.1.n@d",
            "pdt1.x.n.m@d",
            "pdt1.1.n.!!!@d",
            "pdt1.1.n.aa.bb@d",
        ] {
            assert_eq!(key().verify(s), None, "{s}");
        }
    }

    #[test]
    fn debug_hides_the_secret() {
        assert_eq!(format!("{:?}", key()), "TokenKey(<redacted>)");
    }
}
