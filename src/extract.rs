//! Stage 3: the text the customer wrote this time → [`CustomerText`].

use crate::mail::{CustomerText, ParsedMail};

/// Removes quoted replies and signatures. Pure.
pub fn extract(mail: &ParsedMail) -> CustomerText {
    CustomerText {
        text: mail.text.clone(),
        quote_removed: false,
        signature_removed: false,
    }
}
