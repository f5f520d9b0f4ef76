//! The pure half of ingestion: [`RawMail`] → [`Work`] (an analyzed
//! message, or a quarantine entry saying why not).
//!
//! `parse → classify → extract → detect`, with the configuration they need
//! resolved once into an [`Analyzer`]. No I/O and no database: the store
//! takes it from here. Batches are analyzed on all cores, because parsing
//! and language detection are the CPU-heavy part of ingest and the single
//! database writer should never wait for them.

use std::num::NonZeroUsize;
use std::sync::OnceLock;

use crate::classify::{self, ClassifyContext};
use crate::config::Config;
use crate::detect::Detector;
use crate::extract;
use crate::mail::{AnalyzedMail, KeptRaw, RawMail};
use crate::parse;
use crate::store::ingest::{QuarantineEntry, Work};
use crate::store::raw::EncodedRaw;

/// Most header bytes kept for a quarantined message that is too large to
/// keep whole.
const MAX_QUARANTINE_HEADER_BYTES: usize = 64 * 1024;

/// What the pure stages need from the configuration, resolved once.
#[derive(Debug, Clone)]
pub struct Analyzer {
    classify: ClassifyContext,
    detector: Detector,
    max_message_size: usize,
    /// (mailbox name, its addresses), in config order.
    mailboxes: Vec<(String, Vec<String>)>,
}

impl Analyzer {
    pub fn new(cfg: &Config) -> Analyzer {
        Analyzer {
            classify: ClassifyContext {
                own_addresses: cfg.own_addresses(),
                message_id_domain: cfg.security.message_id_domain.clone(),
            },
            // Config validation already refused unknown languages.
            detector: Detector::with_languages(&cfg.detect.languages).unwrap_or_default(),
            max_message_size: cfg.ingest.max_message_size,
            mailboxes: cfg
                .mailboxes
                .iter()
                .map(|m| (m.name.clone(), m.addresses().map(str::to_owned).collect()))
                .collect(),
        }
    }

    /// The size above which a message is quarantined unread.
    pub fn max_message_size(&self) -> usize {
        self.max_message_size
    }

    /// Runs the pure stages on one message. Never panics on bad mail: a
    /// message that cannot be analyzed becomes a quarantine entry.
    pub fn analyze(&self, raw: RawMail) -> Work {
        let size = raw.bytes.len();
        if size > self.max_message_size {
            return Work::Quarantine(too_large(
                raw.origin,
                raw.mailbox,
                &raw.bytes,
                size,
                self.max_message_size,
            ));
        }
        let parsed = match parse::parse(&raw.bytes) {
            Ok(p) => p,
            Err(e) => {
                return Work::Quarantine(QuarantineEntry {
                    origin: raw.origin,
                    mailbox: raw.mailbox,
                    reason: format!("cannot parse: {e}"),
                    size_bytes: size,
                    raw: Some(raw.bytes),
                    headers: None,
                });
            }
        };
        let mailbox = self.resolve_mailbox(raw.mailbox.as_deref(), &parsed);
        // The later stages are ours, not a third-party parser, but a bug in
        // them must still cost one message, not the process.
        let analyzed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut classification = classify::classify(&parsed, &self.classify);
            // Mail from our Sent folder is ours by definition: it is an
            // agent's reply, not our own mail coming back.
            if raw.direction == crate::mail::Direction::Outbound
                && classification.class == crate::mail::Class::Loop
            {
                classification.class = crate::mail::Class::Human;
                classification
                    .reasons
                    .push("outbound: sent from our own mailbox".to_owned());
            }
            let customer_text = extract::extract(&parsed);
            let detection = self.detector.detect(&customer_text, &parsed.subject);
            (classification, customer_text, detection)
        }));
        match analyzed {
            Ok((classification, customer_text, detection)) => {
                // Released now, not at the commit (see `AnalyzedMail`).
                let mut parsed = parsed;
                parsed.text = String::new();
                parsed.html = None;
                Work::Mail(Box::new(AnalyzedMail {
                    raw: KeptRaw {
                        encoded: EncodedRaw::encode(raw.bytes),
                        origin: raw.origin,
                        direction: raw.direction,
                        arrived: raw.arrived,
                    },
                    mailbox,
                    parsed,
                    classification,
                    customer_text,
                    detection,
                }))
            }
            Err(panic) => Work::Quarantine(QuarantineEntry {
                origin: raw.origin,
                mailbox: Some(mailbox),
                reason: format!("analysis crashed: {}", panic_message(&panic)),
                size_bytes: size,
                raw: Some(raw.bytes),
                headers: None,
            }),
        }
    }

    /// Analyzes a batch on all cores, keeping the order.
    ///
    /// The work runs on [`analysis_pool`], one long-lived thread per core
    /// shared by every source of the process, not on threads of its own:
    /// several mailboxes draining at once then share the cores instead of
    /// oversubscribing them, and per-thread state (the regex caches of the
    /// quote and signature patterns, a few MB) exists once per core rather
    /// than once per batch in flight. Work stealing keeps both cores busy
    /// when one message of a batch is much larger than the others.
    pub fn analyze_batch(&self, raws: Vec<RawMail>) -> Vec<Work> {
        use rayon::prelude::*;
        let pool = analysis_pool().filter(|p| p.current_num_threads() > 1);
        match pool {
            // `analyze` contains panics itself, so none reaches rayon.
            Some(pool) if raws.len() > 1 => pool.install(|| {
                raws.into_par_iter()
                    .with_max_len(1)
                    .map(|r| self.analyze(r))
                    .collect()
            }),
            _ => raws.into_iter().map(|r| self.analyze(r)).collect(),
        }
    }

    /// The configured mailbox a message belongs to: the one its source
    /// named, else the first whose address appears among the recipients
    /// or delivery headers, else the first configured one.
    fn resolve_mailbox(&self, named: Option<&str>, parsed: &crate::mail::ParsedMail) -> String {
        if let Some(n) = named
            && self.mailboxes.iter().any(|(name, _)| name == n)
        {
            return n.to_owned();
        }
        let mut recipients: Vec<String> = parsed
            .to
            .iter()
            .chain(&parsed.cc)
            .map(|a| a.key())
            .collect();
        for h in ["delivered-to", "x-original-to", "envelope-to"] {
            recipients.extend(
                parsed
                    .header_values(h)
                    .map(|v| v.trim().trim_matches(['<', '>']).to_lowercase()),
            );
        }
        self.mailboxes
            .iter()
            .find(|(_, addrs)| addrs.iter().any(|a| recipients.contains(a)))
            .or(self.mailboxes.first())
            .map(|(n, _)| n.clone())
            .unwrap_or_default()
    }
}

/// A reply in the shapes the extract and detect patterns look for, so that
/// analyzing it compiles every pattern (each is compiled on first use).
const WARM_UP_MAIL: &str = "From: Ann <ann@example.org>\r\nTo: support@example.org\r\n\
Subject: Re: Fwd: printer\r\nMessage-ID: <warm-up@postdesk.invalid>\r\n\
Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/alternative; boundary=\"b\"\r\n\r\n\
--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
Hello, the printer on floor 3 still jams after the update of 2024-01-01.\r\n\
ERROR 2024-01-01 10:00:00 spooler.c:42 paper_path_fault=7\r\n\r\n\
-- \r\nAnn\r\nSent from my iPhone\r\n\r\n\
On Mon, 1 Jan 2024 at 09:00, Support <support@example.org> wrote:\r\n\
> Did the update help?\r\n\r\n\
-----Original Message-----\r\nFrom: Support\r\nSent: Monday\r\nTo: Ann\r\nSubject: printer\r\n\r\n\
---------- Forwarded message ---------\r\nold text\r\n\
--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
<div>Hello, the printer still jams.</div><div class=\"gmail_quote\">\
<blockquote>Did the update help?</blockquote></div>\r\n--b--\r\n";

/// Compiles the patterns of the pure stages ahead of the first message, on
/// the analysis threads, in the background: the first batch of a backlog
/// (and the first mail after a start) then does not pay for the regex
/// compilation, and it overlaps the connection's TLS handshake and login.
/// Nothing waits for it.
pub fn warm_up(analyzer: std::sync::Arc<Analyzer>) {
    let job = move || {
        let raw = RawMail {
            origin: crate::mail::Origin::Local,
            mailbox: None,
            direction: crate::mail::Direction::Inbound,
            arrived: None,
            bytes: WARM_UP_MAIL.as_bytes().to_vec(),
        };
        drop(analyzer.analyze(raw));
    };
    // Without a pool the first message pays; never block the caller.
    if let Some(pool) = analysis_pool() {
        pool.spawn(job);
    }
}

/// The threads that run the pure stages: one per core, started on first
/// use and kept for the life of the process (see
/// [`Analyzer::analyze_batch`]). `None` if not even one thread could be
/// started: batches are then analyzed on the caller's thread.
fn analysis_pool() -> Option<&'static rayon::ThreadPool> {
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("analyze-{i}"))
            .build()
            .inspect_err(|e| {
                tracing::warn!(error = %e, "No analysis threads; analyzing on one thread.");
            })
            .ok()
    })
    .as_ref()
}

/// A quarantine entry for a message over the size limit: only its header
/// section is kept.
pub fn too_large(
    origin: crate::mail::Origin,
    mailbox: Option<String>,
    head: &[u8],
    size: usize,
    limit: usize,
) -> QuarantineEntry {
    QuarantineEntry {
        origin,
        mailbox,
        reason: format!(
            "message is {size} bytes, over ingest.max_message_size ({limit} bytes); raise the limit and replay it to ingest it"
        ),
        size_bytes: size,
        raw: None,
        headers: Some(header_section(head)),
    }
}

/// The header section of a message (up to the first empty line), capped.
pub fn header_section(bytes: &[u8]) -> String {
    let capped = bytes.get(..MAX_QUARANTINE_HEADER_BYTES).unwrap_or(bytes);
    let end = find_subslice(capped, b"\r\n\r\n")
        .or_else(|| find_subslice(capped, b"\n\n"))
        .unwrap_or(capped.len());
    String::from_utf8_lossy(capped.get(..end).unwrap_or(capped)).into_owned()
}

fn find_subslice(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::{Direction, Origin};

    fn analyzer(extra: &str) -> Analyzer {
        let cfg = Config::from_str(
            &format!(
                "[[mailboxes]]\nname = \"support\"\naddress = \"support@example.com\"\n\
                 [[mailboxes]]\nname = \"sales\"\naddress = \"sales@example.com\"\naliases = [\"orders@example.com\"]\n{extra}"
            ),
            std::path::Path::new("/x.toml"),
        )
        .unwrap();
        Analyzer::new(&cfg)
    }

    fn raw(bytes: &[u8], mailbox: Option<&str>) -> RawMail {
        RawMail {
            origin: Origin::Pipe,
            mailbox: mailbox.map(str::to_owned),
            direction: Direction::Inbound,
            arrived: None,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn the_warm_up_mail_reaches_the_quote_and_signature_rules() {
        let a = Analyzer::new(&crate::store::ingest::test_policy("").config);
        let Work::Mail(m) = a.analyze(raw(WARM_UP_MAIL.as_bytes(), None)) else {
            panic!("the warm-up mail is quarantined");
        };
        assert!(m.customer_text.quote_removed, "{:?}", m.customer_text);
        assert!(
            m.customer_text.text.contains("printer"),
            "{:?}",
            m.customer_text
        );
        assert_eq!(m.detection.map(|d| d.language).as_deref(), Some("en"));
        warm_up(std::sync::Arc::new(a));
    }

    #[test]
    fn too_large_is_quarantined_with_headers_only() {
        let a = analyzer("[ingest]\nmax_message_size = 2048\n");
        let mut msg = b"From: a@b.c\r\nSubject: big\r\n\r\n".to_vec();
        msg.extend(std::iter::repeat_n(b'x', 4000));
        let Work::Quarantine(q) = a.analyze(raw(&msg, None)) else {
            panic!("not quarantined")
        };
        assert!(
            q.reason.contains("over ingest.max_message_size"),
            "{}",
            q.reason
        );
        assert_eq!(q.raw, None);
        assert_eq!(q.headers.as_deref(), Some("From: a@b.c\r\nSubject: big"));
    }

    #[test]
    fn garbage_is_quarantined_with_its_bytes() {
        let a = analyzer("");
        match a.analyze(raw(b"", None)) {
            Work::Quarantine(q) => assert_eq!(q.raw.as_deref(), Some(&b""[..])),
            Work::Mail(_) => panic!("empty input analyzed as mail"),
        }
    }

    #[test]
    fn mailbox_is_resolved_from_recipients() {
        let a = analyzer("");
        let m = b"From: c@x.org\r\nTo: Orders <orders@example.com>\r\nSubject: hi\r\nMessage-ID: <1@x>\r\n\r\nHello\r\n";
        let Work::Mail(m1) = a.analyze(raw(m, None)) else {
            panic!()
        };
        assert_eq!(m1.mailbox, "sales");
        let Work::Mail(m2) = a.analyze(raw(m, Some("support"))) else {
            panic!()
        };
        assert_eq!(m2.mailbox, "support", "the source's mailbox wins");
        let other = b"From: c@x.org\r\nTo: x@else.org\r\nSubject: hi\r\n\r\nHello\r\n";
        let Work::Mail(m3) = a.analyze(raw(other, None)) else {
            panic!()
        };
        assert_eq!(m3.mailbox, "support", "first mailbox by default");
    }

    #[test]
    fn batch_keeps_order() {
        let a = analyzer("");
        // Sizes vary, so the pool's threads finish them out of order.
        let raws: Vec<RawMail> = (0..40)
            .map(|i| {
                let body = "word ".repeat(if i % 7 == 0 { 40_000 } else { 3 });
                raw(
                    format!(
                        "From: c{i}@x.org\r\nMessage-ID: <{i}@x>\r\nSubject: s\r\n\r\n{body}\r\n"
                    )
                    .as_bytes(),
                    None,
                )
            })
            .collect();
        let ids: Vec<String> = a
            .analyze_batch(raws)
            .into_iter()
            .map(|w| match w {
                Work::Mail(m) => m.parsed.message_id,
                Work::Quarantine(q) => q.reason,
            })
            .collect();
        assert_eq!(ids, (0..40).map(|i| format!("{i}@x")).collect::<Vec<_>>());
    }
}
