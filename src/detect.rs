//! Stage 4: which language did the customer write in → [`Detection`].

use crate::mail::{CustomerText, Detection, Language, LanguageSource};

/// Guesses the language of the extracted text plus the subject. Pure.
pub fn detect(text: &CustomerText, subject: &str) -> Option<Detection> {
    let _ = (text, subject);
    None
}

/// Applies the fallbacks in order: a reliable detection, the customer's
/// previous tickets, Content-Language, the mailbox default.
pub fn resolve(
    detection: Option<&Detection>,
    previous: Option<&str>,
    content_language: Option<&str>,
    mailbox_default: &str,
) -> Language {
    if let Some(d) = detection.filter(|d| d.reliable) {
        return Language {
            code: d.language.clone(),
            confidence: d.confidence,
            source: LanguageSource::Detected,
        };
    }
    if let Some(p) = previous {
        return Language {
            code: p.to_owned(),
            confidence: 0.0,
            source: LanguageSource::PreviousTicket,
        };
    }
    if let Some(c) = content_language {
        return Language {
            code: c.to_owned(),
            confidence: 0.0,
            source: LanguageSource::ContentLanguage,
        };
    }
    Language {
        code: mailbox_default.to_owned(),
        confidence: 0.0,
        source: LanguageSource::MailboxDefault,
    }
}
