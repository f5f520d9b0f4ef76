//! Stage 1: raw RFC 5322 bytes → [`ParsedMail`].

use crate::mail::ParsedMail;

/// Why a message could not be parsed; the message is quarantined with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the message is empty")]
    Empty,
    #[error("the message has no header section; it is not RFC 5322 mail")]
    NotMail,
    #[error("the MIME parser crashed on this message: {0}")]
    Panicked(String),
}

/// Parses one message. Never panics: a panic inside mail-parser is caught
/// and returned as [`ParseError::Panicked`].
pub fn parse(bytes: &[u8]) -> Result<ParsedMail, ParseError> {
    let _ = bytes;
    Err(ParseError::NotMail) // placeholder until the parse stage lands
}
