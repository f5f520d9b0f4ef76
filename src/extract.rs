//! Stage 3: the text the customer wrote this time → [`CustomerText`].
//!
//! A reply carries the whole thread below (or around) the customer's new
//! words. We remove:
//!
//! - quotes marked in the HTML part (`blockquote`, `div.gmail_quote`,
//!   Outlook's `divRplyFwdMsg`, …), see `extract/html.rs`;
//! - in plain text: "On … wrote:" attribution lines in many languages
//!   (also wrapped over up to three lines), Outlook header blocks
//!   ("From: / Sent: / To: / Subject:" and translations),
//!   "-----Original Message-----" separators and `>`-quoted lines, keeping
//!   the customer's answers between quoted lines, see `extract/text.rs`;
//! - signatures after an RFC 3676 "-- " line and mobile-client lines
//!   ("Sent from my iPhone", "Von meinem iPhone gesendet", …). Closing
//!   formulas and names are kept: they are the customer's own words.
//!
//! A forward with nothing written above it is the request, so the
//! forwarded message is kept (minus its header block). When stripping
//! would leave nothing, the unstripped text is returned: an agent must
//! never see an empty message that had content.
//!
//! Everything is linear in the message size: each line is matched by a
//! fixed set of regexes compiled once, on windows of at most three lines.

mod html;
mod patterns;
mod text;

#[cfg(test)]
pub(crate) mod tests;

/// Test helpers other modules' tests use (a `ParsedMail` from a body).
#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) use super::tests::mail;
}

use crate::mail::{CustomerText, ParsedMail};

/// Everything `extract` found in a body, for callers that need more than
/// the customer text: a ticket view that can show the trimmed part, and
/// the evaluation, whose reference data keeps signatures in some cases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pieces {
    /// The customer's words; the unstripped body when stripping would
    /// have left nothing.
    pub reply: String,
    /// The signature block removed from the end of the reply.
    pub signature: Option<String>,
    /// The removed quote as plain text (empty when the HTML rules removed
    /// it: those quotes are elements, not lines).
    pub quoted: String,
    /// True when a quote was removed from `reply`.
    pub quote_removed: bool,
    /// True when the body was a forward with nothing written above it and
    /// `reply` is the forwarded message.
    pub forwarded: bool,
    /// True when the HTML part's quote markers decided the split.
    pub used_html: bool,
}

/// Removes quoted replies and signatures. Pure.
pub fn extract(mail: &ParsedMail) -> CustomerText {
    let p = pieces(mail);
    CustomerText {
        text: p.reply,
        quote_removed: p.quote_removed,
        signature_removed: p.signature.is_some(),
    }
}

/// Splits a message body into reply, signature and quote. Pure; see the
/// module documentation for the rules.
pub fn pieces(mail: &ParsedMail) -> Pieces {
    let forward_subject = patterns::FORWARD_SUBJECT.is_match(&mail.subject);

    if let Some(pruned) = mail.html.as_deref().and_then(html::strip_quotes) {
        let parts = text::split(&pruned, forward_subject);
        if !parts.reply.is_empty() {
            return Pieces {
                reply: parts.reply,
                signature: parts.signature,
                quoted: parts.quoted,
                quote_removed: true,
                forwarded: parts.forwarded,
                used_html: true,
            };
        }
    }

    // Rendered only now: when the HTML rules above decided, rendering the
    // whole HTML part as well would be wasted (it is the costliest step).
    let base: std::borrow::Cow<'_, str> = if mail.text.trim().is_empty() {
        mail.html
            .as_deref()
            .map(html::to_text)
            .unwrap_or_default()
            .into()
    } else {
        mail.text.as_str().into()
    };
    let parts = text::split(&base, forward_subject);
    if parts.reply.is_empty() {
        return Pieces {
            reply: text::normalize_newlines(base.trim()).into_owned(),
            ..Pieces::default()
        };
    }
    Pieces {
        quote_removed: parts.forwarded || !parts.quoted.trim().is_empty(),
        reply: parts.reply,
        signature: parts.signature,
        quoted: parts.quoted,
        forwarded: parts.forwarded,
        used_html: false,
    }
}
