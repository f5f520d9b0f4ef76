//! Plain data passed between the pipeline stages.
//!
//! The flow is one way: a source produces a [`RawMail`]; `parse` turns it
//! into a [`ParsedMail`]; `classify` adds a [`Classification`]; `extract`
//! finds the [`CustomerText`]; `detect` names its language ([`Detection`]);
//! `thread` and `plan` decide what the store writes. Every type here is
//! owned, `Debug`, comparable and free of handles, so each stage can be
//! tested with a literal and no network, database or runtime.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a raw message came from. Kept on the stored message (as
/// [`Origin::key`]) and in every log line about it, so an operator can find
/// the original again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Origin {
    /// A single `.eml` file given on the command line.
    File { path: String },
    /// A file in a Maildir's `new/` or `cur/` folder; `unique` is the part of
    /// the file name before the `:2,` info suffix, stable across renames.
    Maildir { dir: String, unique: String },
    /// The `index`th message (0-based) of an mbox file.
    Mbox { path: String, index: usize },
    /// One message read from standard input (an MTA pipe).
    Pipe,
    /// A message in an IMAP folder, named by the folder's UIDVALIDITY and
    /// the message's UID: the only identity IMAP guarantees.
    Imap {
        mailbox: String,
        folder: String,
        uidvalidity: u32,
        uid: u32,
    },
    /// A quarantined message being replayed.
    Replay { quarantine_id: i64 },
    /// A message written by postdesk itself (a CLI reply or note).
    Local,
}

impl Origin {
    /// A short stable string for storage and logs, e.g. `imap:support/INBOX/17/42`.
    pub fn key(&self) -> String {
        match self {
            Origin::File { path } => format!("file:{path}"),
            Origin::Maildir { dir, unique } => format!("maildir:{dir}#{unique}"),
            Origin::Mbox { path, index } => format!("mbox:{path}#{index}"),
            Origin::Pipe => "pipe".to_owned(),
            Origin::Imap {
                mailbox,
                folder,
                uidvalidity,
                uid,
            } => {
                format!("imap:{mailbox}/{folder}/{uidvalidity}/{uid}")
            }
            Origin::Replay { quarantine_id } => format!("replay:{quarantine_id}"),
            Origin::Local => "local".to_owned(),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

/// Which way a message travels relative to the support team. Inbound mail
/// comes from customers (or robots); outbound mail is what our agents or
/// postdesk itself sent, seen again in the Sent folder or written locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// The bytes of one message exactly as a source delivered them, with where
/// they came from and which configured mailbox they belong to. This is what
/// crosses from a source (I/O) into the pure stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMail {
    pub origin: Origin,
    /// Name of the configured mailbox this message was delivered to; `None`
    /// lets the pipeline pick one by the recipient addresses.
    pub mailbox: Option<String>,
    pub direction: Direction,
    /// When the message reached us, if the source knows (IMAP INTERNALDATE,
    /// a Maildir file's time). The "no acknowledgement for old mail" rule
    /// trusts it over the Date header, which the sender's clock wrote.
    pub arrived: Option<jiff::Timestamp>,
    pub bytes: Vec<u8>,
}

/// A [`RawMail`] after analysis: where it came from and when it arrived,
/// with its bytes in the encoding the store keeps them in (compressed on
/// the analysis threads, so the single database writer does not have to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptRaw {
    pub origin: Origin,
    pub direction: Direction,
    /// See [`RawMail::arrived`].
    pub arrived: Option<jiff::Timestamp>,
    pub encoded: crate::store::raw::EncodedRaw,
}

/// An e-mail address with its optional display name. `email` keeps the
/// case the sender wrote; compare with [`Address::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Address {
    pub name: Option<String>,
    pub email: String,
}

impl Address {
    pub fn new(email: impl Into<String>) -> Self {
        Address {
            name: None,
            email: email.into(),
        }
    }

    /// The address lowercased, for comparisons and storage keys. The local
    /// part is case-sensitive in theory; no real mail system treats it so.
    pub fn key(&self) -> String {
        self.email.trim().to_lowercase()
    }

    /// The domain part, lowercased, or "" when there is none.
    pub fn domain(&self) -> String {
        self.key()
            .rsplit_once('@')
            .map(|(_, d)| d.to_owned())
            .unwrap_or_default()
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) if !n.is_empty() => write!(f, "{n} <{}>", self.email),
            _ => f.write_str(&self.email),
        }
    }
}

/// One top-level header field: the name as written and the value unfolded
/// and decoded (RFC 2047) to text. Kept in order, duplicates included,
/// because classification looks at headers the parser has no field for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderField {
    pub name: String,
    pub value: String,
}

/// A file attached to a message. Content is stored once per SHA-256.
#[derive(Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: Option<String>,
    pub content_type: String,
    pub size_bytes: usize,
    /// Lowercase hex SHA-256 of `content`.
    pub sha256: String,
    pub content: Vec<u8>,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("name", &self.name)
            .field("content_type", &self.content_type)
            .field("size_bytes", &self.size_bytes)
            .field("sha256", &self.sha256)
            .finish_non_exhaustive()
    }
}

/// One recipient line of a delivery status notification (RFC 3464).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReportRecipient {
    /// Final-Recipient (or Original-Recipient) address, without the `rfc822;` type.
    pub address: String,
    /// Action: failed, delayed, delivered, relayed, expanded.
    pub action: String,
    /// Status code such as `5.1.1`.
    pub status: String,
    pub diagnostic: Option<String>,
}

/// What a `multipart/report` (or a non-standard bounce) says about a
/// message we sent: which message, to whom, and how it failed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeliveryReport {
    /// The report-type parameter: delivery-status, disposition-notification,
    /// feedback-report; empty for a bounce recognized without one.
    pub report_type: String,
    pub recipients: Vec<ReportRecipient>,
    /// Message-IDs of the original message, from Original-Message-ID fields
    /// and from the returned headers or message (message/rfc822,
    /// text/rfc822-headers, or a `Message-ID:` line in a returned body).
    pub original_message_ids: Vec<String>,
}

/// A message decomposed into what the later stages need. Produced by
/// `parse::parse`, never by hand outside tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedMail {
    /// Message-ID without angle brackets. Synthetic (from the content hash)
    /// when the message has none, so a redelivery gets the same one.
    pub message_id: String,
    pub message_id_synthetic: bool,
    /// In-Reply-To ids without angle brackets, in order.
    pub in_reply_to: Vec<String>,
    /// References ids without angle brackets, oldest first.
    pub references: Vec<String>,
    pub from: Option<Address>,
    pub sender: Option<Address>,
    pub reply_to: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    /// Return-Path: `None` when absent, `Some("")` for the null path `<>`.
    pub return_path: Option<String>,
    /// Subject decoded to text; "" when absent.
    pub subject: String,
    pub date: Option<jiff::Timestamp>,
    /// The first language tag of Content-Language, lowercased.
    pub content_language: Option<String>,
    /// Every top-level header, in order.
    pub headers: Vec<HeaderField>,
    /// The readable body: the first text/plain part, or the HTML converted
    /// to text when there is none.
    pub text: String,
    /// The first text/html part as HTML, when there is one; `extract` uses
    /// its blockquotes to find quoted text.
    pub html: Option<String>,
    /// True when `text` was converted from HTML.
    pub text_from_html: bool,
    pub attachments: Vec<Attachment>,
    /// Set for `multipart/report` messages and for bounces whose returned
    /// message could be found.
    pub report: Option<DeliveryReport>,
    /// Lowercase hex SHA-256 over what makes two deliveries "the same
    /// message": the body and the originator fields, not the trace headers
    /// (Received, Delivered-To, Return-Path, …) that differ per delivery.
    pub content_hash: String,
    pub size_bytes: usize,
}

impl ParsedMail {
    /// All values of a header, by case-insensitive name.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// The address replies go to: the first Reply-To, else From.
    pub fn reply_address(&self) -> Option<&Address> {
        self.reply_to.first().or(self.from.as_ref())
    }
}

/// The kind of sender behind a message. Only `Human` mail gets an
/// acknowledgement; the rest is what makes robots talk to each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Human,
    AutoReplied,
    AutoGenerated,
    Bounce,
    Bulk,
    Loop,
}

impl Class {
    pub const ALL: [Class; 6] = [
        Class::Human,
        Class::AutoReplied,
        Class::AutoGenerated,
        Class::Bounce,
        Class::Bulk,
        Class::Loop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Human => "human",
            Class::AutoReplied => "auto-replied",
            Class::AutoGenerated => "auto-generated",
            Class::Bounce => "bounce",
            Class::Bulk => "bulk",
            Class::Loop => "loop",
        }
    }

    pub fn parse(s: &str) -> Option<Class> {
        Class::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Automatic mail of any kind: never acknowledged.
    pub fn is_automatic(self) -> bool {
        self != Class::Human
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Details of a bounce: which of our messages failed, for whom.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BounceInfo {
    /// Message-IDs of the returned message (ours, if it was ours).
    pub original_message_ids: Vec<String>,
    /// Addresses that failed, lowercased.
    pub failed_recipients: Vec<String>,
    /// True for a permanent failure (5.x.x or action=failed); false for a
    /// delay warning.
    pub permanent: bool,
}

/// The classifier's verdict and the signals that led to it, so the event
/// log can say why a message was not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Classification {
    pub class: Class,
    /// Human-readable signals, e.g. `auto-submitted: auto-replied`.
    pub reasons: Vec<String>,
    pub bounce: Option<BounceInfo>,
}

/// What the customer actually wrote this time, with quoted replies and
/// signatures removed. Language detection and the ticket view use it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CustomerText {
    pub text: String,
    pub quote_removed: bool,
    pub signature_removed: bool,
}

/// A language guess from the text alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// BCP 47 primary subtag: ISO 639-1 where one exists ("en", "ja").
    pub language: String,
    /// whatlang's confidence, 0.0 to 1.0.
    pub confidence: f64,
    /// whatlang's own reliability verdict combined with our length rules.
    pub reliable: bool,
}

/// Where a stored language came from, in the order they are tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LanguageSource {
    Detected,
    PreviousTicket,
    ContentLanguage,
    MailboxDefault,
}

impl LanguageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            LanguageSource::Detected => "detected",
            LanguageSource::PreviousTicket => "previous-ticket",
            LanguageSource::ContentLanguage => "content-language",
            LanguageSource::MailboxDefault => "mailbox-default",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            LanguageSource::Detected,
            LanguageSource::PreviousTicket,
            LanguageSource::ContentLanguage,
            LanguageSource::MailboxDefault,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

/// The language a message is stored with, after the fallbacks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Language {
    pub code: String,
    /// Detection confidence when detected; 0.0 for a fallback.
    pub confidence: f64,
    pub source: LanguageSource,
}

/// Everything the pure stages learned about one message: the input of the
/// threading and planning decisions taken inside the store's transaction.
///
/// It holds less than the stages saw, on purpose: a batch waits for its
/// commit after analysis, and several batches are in flight while a
/// backlog drains. The bytes as received are kept compressed
/// ([`KeptRaw`]), and the decoded bodies (`parsed.text`, `parsed.html`)
/// are emptied once extraction and detection are done: what the store
/// needs of a body is `customer_text`.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzedMail {
    pub raw: KeptRaw,
    /// The configured mailbox this message belongs to (resolved).
    pub mailbox: String,
    pub parsed: ParsedMail,
    pub classification: Classification,
    pub customer_text: CustomerText,
    /// The guess from the text; the fallbacks need stored state and are
    /// applied in `plan`.
    pub detection: Option<Detection>,
}
