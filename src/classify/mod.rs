//! Stage 2: who sent this, a human or a robot? → [`Classification`].
//!
//! Every signal real mail carries is collected first ([`Signals`]), each
//! with the reason string the event log shows; the verdict is then taken
//! in a fixed order of precedence:
//!
//! 1. **bounce**: a bounce reports on *our* mail (a failed address, a
//!    returned message) and must reach the bounce handling even though
//!    bounces also carry `Auto-Submitted` or come back with our own
//!    Message-ID inside;
//! 2. **loop**: our own mail coming back must never be answered, whatever
//!    else it says;
//! 3. **auto-replied**: a vacation or out-of-office reply answers a message
//!    of ours, the most specific kind of robot mail;
//! 4. **auto-generated**: notifications, read receipts, feedback reports;
//! 5. **bulk**: lists and newsletters, the weakest robot evidence (a
//!    customer may write through a list);
//! 6. **human**: everything else.
//!
//! False positives are worse than misses: a customer who gets no
//! acknowledgement is worse off than a robot that gets one (which robots
//! ignore, and the outbox rate-limits). So single weak signals never decide
//! (`X-Auto-Response-Suppress`, which Outlook sets on ordinary mail; an
//! X-Mailer; a subject prefix alone); they only support strong ones.

mod vocab;

#[cfg(test)]
mod tests;

use crate::mail::{BounceInfo, Class, Classification, ParsedMail};
use crate::parse::{is_bounce_subject, is_daemon_address, starts_with_reply_prefix};
use crate::token::TokenKey;

/// What the classifier must know about us to recognize our own mail
/// coming back (a loop) and bounces of our mail.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassifyContext {
    /// Every address postdesk sends from or receives at, lowercased.
    pub own_addresses: Vec<String>,
    /// The domain of the Message-IDs postdesk generates, lowercased.
    pub message_id_domain: String,
}

/// How much of the body the bounce and auto-reply phrases are looked for
/// in: the MTA's explanation comes first; the rest is the returned message.
const BODY_SCAN_BYTES: usize = 16 * 1024;

/// Classifies one message. Pure.
pub fn classify(mail: &ParsedMail, ctx: &ClassifyContext) -> Classification {
    let signals = Signals::collect(mail, ctx);
    signals.verdict(mail)
}

/// Everything the headers and body say about the sender, with the reasons
/// to show. Collected in one pass so the verdict is a plain decision table.
#[derive(Debug, Default)]
struct Signals {
    reasons: Vec<String>,
    /// `Auto-Submitted: no`: the sender says a person wrote it; heuristic
    /// signals (subject, body, X-Mailer) are then ignored.
    declared_human: bool,
    auto_replied: bool,
    auto_generated: bool,
    bulk: bool,
    is_loop: bool,
    bounce: bool,
    /// A delivery-status report in which every recipient was delivered.
    delivered_report: bool,
    /// Signals that only count together with another one.
    weak_auto: Vec<String>,
}

impl Signals {
    fn collect(mail: &ParsedMail, ctx: &ClassifyContext) -> Self {
        let mut s = Signals::default();
        s.auto_submitted(mail);
        s.precedence(mail);
        s.vendor_headers(mail);
        s.list_headers(mail);
        s.loop_signals(mail, ctx);
        s.reports(mail);
        s.other_reports(mail);
        s.bounce_signals(mail);
        s.subject_and_weak(mail);
        s
    }

    fn reason(&mut self, reason: impl Into<String>) {
        let reason = reason.into();
        if !self.reasons.contains(&reason) {
            self.reasons.push(reason);
        }
    }

    /// RFC 3834 Auto-Submitted: any value but "no" is a robot.
    fn auto_submitted(&mut self, mail: &ParsedMail) {
        for value in mail.header_values("auto-submitted") {
            let keyword = first_keyword(value);
            match keyword.as_str() {
                "" => {}
                "no" => {
                    self.declared_human = true;
                    self.reason("auto-submitted: no");
                }
                "auto-replied" => {
                    self.auto_replied = true;
                    self.reason("auto-submitted: auto-replied");
                }
                other => {
                    self.auto_generated = true;
                    self.reason(format!("auto-submitted: {other}"));
                }
            }
        }
    }

    fn precedence(&mut self, mail: &ParsedMail) {
        for value in mail.header_values("precedence") {
            let keyword = first_keyword(value);
            match keyword.as_str() {
                "bulk" | "junk" | "list" => {
                    self.bulk = true;
                    self.reason(format!("precedence: {keyword}"));
                }
                "auto_reply" | "auto-reply" | "autoreply" => {
                    self.auto_replied = true;
                    self.reason(format!("precedence: {keyword}"));
                }
                _ => {}
            }
        }
    }

    /// Headers auto-responders and robots of particular vendors set.
    fn vendor_headers(&mut self, mail: &ParsedMail) {
        for header in &mail.headers {
            let name = header.name.to_ascii_lowercase();
            let value = header.value.trim().to_ascii_lowercase();
            match name.as_str() {
                "x-autoreply" | "x-autorespond" | "x-autoreply-from" | "x-mail-autoreply"
                | "x-autoresponder" | "x-vacation"
                    if !matches!(value.as_str(), "no" | "false" | "0") =>
                {
                    self.auto_replied = true;
                    self.reason(format!("{name} present"));
                }
                "x-autogenerated" => {
                    if value.starts_with("reply") {
                        self.auto_replied = true;
                    } else {
                        self.auto_generated = true;
                    }
                    self.reason(format!("x-autogenerated: {value}"));
                }
                "x-fc-machinegenerated" if value == "true" => {
                    self.auto_generated = true;
                    self.reason("x-fc-machinegenerated: true");
                }
                "x-post-messageclass" if value.contains("autoresponder") => {
                    self.auto_replied = true;
                    self.reason("x-post-messageclass: autoresponder");
                }
                "x-ms-exchange-generated-message-source" => {
                    self.auto_generated = true;
                    self.reason(format!("{name} present"));
                }
                // An inbox rule forwarded or answered it; the text may still
                // be a person's (a customer's forwarding rule): support only.
                "x-ms-exchange-inbox-rules-loop" => {
                    self.weak_auto.push(format!("{name} present"));
                }
                "x-auto-response-suppress" if !value.is_empty() => {
                    // Outlook sets it on ordinary mail: support only.
                    self.weak_auto
                        .push(format!("x-auto-response-suppress: {value}"));
                }
                "x-mailer" | "user-agent"
                    if vocab::AUTOREPLY_MAILERS.iter().any(|m| value.contains(m)) =>
                {
                    self.weak_auto
                        .push(format!("{name} names an auto-responder"));
                }
                _ => {}
            }
        }
    }

    /// Mailing lists and newsletters (RFC 2369/2919, ESP feedback ids).
    fn list_headers(&mut self, mail: &ParsedMail) {
        for (header, reason) in [
            ("list-id", "list-id present"),
            ("list-unsubscribe", "list-unsubscribe present"),
            ("list-post", "list-post present"),
            ("list-subscribe", "list-subscribe present"),
            ("feedback-id", "feedback-id present"),
            ("x-mlserver", "x-mlserver present"),
            ("x-mailman-version", "x-mailman-version present"),
            ("mailing-list", "mailing-list present"),
        ] {
            if mail.header(header).is_some() {
                self.bulk = true;
                self.reason(reason);
            }
        }
    }

    /// Our own mail coming back: from one of our addresses, with one of
    /// our Message-IDs, or naming us in X-Loop.
    fn loop_signals(&mut self, mail: &ParsedMail, ctx: &ClassifyContext) {
        let own = |email: &str| {
            // support+anything@ is the support mailbox too.
            let key = crate::config::without_subaddress(email);
            ctx.own_addresses
                .iter()
                .any(|a| a.trim().eq_ignore_ascii_case(&key))
        };
        if let Some(from) = &mail.from
            && own(&from.email)
        {
            self.is_loop = true;
            self.reason(format!("from is our own address {}", from.key()));
        }
        if let Some(sender) = &mail.sender
            && own(&sender.email)
        {
            self.is_loop = true;
            self.reason(format!("sender is our own address {}", sender.key()));
        }
        // Our own mail carries a signed token at our Message-ID domain.
        // Neither half alone is enough: agents' mail clients also write
        // Message-IDs at the company domain, and another company's postdesk
        // writes tokens at its own.
        let in_our_domain = !ctx.message_id_domain.is_empty()
            && mail
                .message_id
                .rsplit_once('@')
                .is_some_and(|(_, d)| d.trim().eq_ignore_ascii_case(ctx.message_id_domain.trim()));
        if !mail.message_id_synthetic
            && in_our_domain
            && TokenKey::looks_like_token(&mail.message_id)
        {
            self.is_loop = true;
            self.reason("message-id is a postdesk token of ours");
        }
        for value in mail.header_values("x-loop") {
            let value = value.trim().trim_matches(['<', '>']);
            let names_us = !value.is_empty()
                && (own(value) || ctx.own_addresses.iter().any(|a| contains_ci(value, a)));
            if names_us {
                self.is_loop = true;
                self.reason("x-loop names our address");
            } else {
                self.weak_auto.push("x-loop present".to_owned());
            }
        }
    }

    /// multipart/report: delivery status, read receipts, feedback reports.
    fn reports(&mut self, mail: &ParsedMail) {
        let Some(report) = &mail.report else {
            return;
        };
        match report.report_type.as_str() {
            "delivery-status" => {
                let all_delivered = !report.recipients.is_empty()
                    && report
                        .recipients
                        .iter()
                        .all(|r| is_success(&r.action, &r.status));
                if all_delivered {
                    self.delivered_report = true;
                    self.auto_generated = true;
                    self.reason("delivery-status: delivered");
                } else {
                    self.bounce = true;
                    self.reason("report-type: delivery-status");
                }
            }
            "disposition-notification" => {
                self.auto_generated = true;
                self.reason("report-type: disposition-notification");
            }
            "feedback-report" => {
                self.auto_generated = true;
                self.reason("report-type: feedback-report");
            }
            _ => {}
        }
    }

    /// Robot reports that are not multipart/report: Amazon SES
    /// notifications (JSON by SNS e-mail) and Microsoft's JMRP complaints
    /// (the complained-about message carries X-HmXmrOriginalRecipient).
    fn other_reports(&mut self, mail: &ParsedMail) {
        let head = mail.text.trim_start();
        if head.starts_with('{') {
            // SNS wraps the SES document in a JSON string: drop the escapes.
            let compact: String = head
                .chars()
                .take(1000)
                .filter(|c| !c.is_whitespace() && *c != '\\')
                .collect::<String>()
                .to_ascii_lowercase();
            if compact.contains("\"notificationtype\":\"bounce\"") {
                self.bounce = true;
                self.reason("amazon ses bounce notification");
            } else if compact.contains("\"notificationtype\":\"complaint\"") {
                self.auto_generated = true;
                self.reason("amazon ses complaint notification");
            } else if compact.contains("\"notificationtype\":\"delivery\"") {
                self.auto_generated = true;
                self.delivered_report = true;
                self.reason("amazon ses delivery notification");
            }
        }
        let jmrp = mail.attachments.iter().any(|a| {
            a.content_type == "message/rfc822"
                && contains_bytes_ci(
                    a.content.get(..8192).unwrap_or(&a.content),
                    b"x-hmxmroriginalrecipient:",
                )
        });
        if jmrp {
            self.auto_generated = true;
            self.reason("microsoft jmrp complaint");
        }
    }

    /// Bounces that are not RFC 3464 reports: a decision over the sender,
    /// the null return path, the subject, the body and a returned message.
    fn bounce_signals(&mut self, mail: &ParsedMail) {
        if self.bounce || self.delivered_report {
            return;
        }
        if mail.header("x-failed-recipients").is_some() {
            self.bounce = true;
            self.reason("x-failed-recipients present");
            return;
        }
        if self.bulk && !self.declared_human {
            // A list server refusing our post (not a member, a loop): our
            // message was not delivered.
            let subject = mail.subject.to_lowercase();
            let body = body_head(mail);
            if let Some(phrase) = vocab::LIST_REJECTIONS
                .iter()
                .find(|p| subject.contains(*p) || body.contains(*p))
            {
                self.bounce = true;
                self.reason(format!("list server rejected the message: \"{phrase}\""));
                return;
            }
        }
        let daemon = mail
            .from
            .as_ref()
            .is_some_and(|a| is_daemon_sender(&a.email, a.name.as_deref()))
            || mail
                .sender
                .as_ref()
                .is_some_and(|a| is_daemon_address(&a.email));
        let null_path = mail.return_path.as_deref() == Some("");
        let subject = is_bounce_subject(&mail.subject);
        let returned = mail
            .report
            .as_ref()
            .is_some_and(|r| !r.original_message_ids.is_empty())
            || mail.attachments.iter().any(|a| {
                matches!(
                    a.content_type.as_str(),
                    "message/rfc822" | "text/rfc822-headers"
                )
            });
        if !(daemon || null_path || subject) {
            return;
        }
        let body = body_head(mail);
        let boilerplate = vocab::MTA_BOILERPLATE.iter().find(|p| body.contains(*p));
        let failure = vocab::FAILURE_WORDS.iter().find(|p| body.contains(*p));

        // A mail system sender is nearly decisive; a null return path or a
        // bounce subject needs words only delivery software writes (or the
        // returned message), because people write about failed mail too.
        let decided = (daemon
            && (subject || boilerplate.is_some() || failure.is_some() || returned || null_path))
            || (null_path && (subject || boilerplate.is_some() || (failure.is_some() && returned)))
            || (subject && (boilerplate.is_some() || returned));
        if !decided {
            return;
        }
        self.bounce = true;
        if daemon {
            self.reason("sender is a mail system");
        }
        if null_path {
            self.reason("null return-path");
        }
        if subject {
            self.reason("bounce subject");
        }
        if let Some(phrase) = boilerplate.or(failure) {
            self.reason(format!("bounce text: \"{phrase}\""));
        }
        if returned {
            self.reason("returned message attached");
        }
    }

    /// Auto-reply subjects ("Automatic reply:", "Abwesenheitsnotiz:" …) and
    /// the weak signals: each alone is not enough.
    fn subject_and_weak(&mut self, mail: &ParsedMail) {
        if self.declared_human {
            return;
        }
        let subject = mail.subject.trim().to_lowercase();
        let prefix = vocab::AUTOREPLY_SUBJECT_PREFIXES
            .iter()
            .find(|p| subject.starts_with(*p));
        let weak = vocab::WEAK_AUTOREPLY_SUBJECTS.iter().find(|p| {
            subject.strip_prefix(*p).is_some_and(|rest| {
                let rest = rest.trim_start();
                rest.is_empty() || rest.starts_with(':')
            })
        });
        if prefix.is_none() && weak.is_none() {
            return;
        }
        let null_path = mail.return_path.as_deref() == Some("");
        let replies = !mail.in_reply_to.is_empty() || !mail.references.is_empty();
        let body = body_head(mail);
        let body_phrase = vocab::AUTOREPLY_BODY.iter().find(|p| body.contains(*p));
        // Header signals other than X-Auto-Response-Suppress, which any
        // Outlook mail may carry.
        let is_xars = |w: &&String| w.starts_with("x-auto-response-suppress");
        let mut header_support: Vec<String> = self
            .weak_auto
            .iter()
            .filter(|w| !is_xars(w))
            .cloned()
            .collect();
        if null_path {
            header_support.push("null return-path".to_owned());
        }
        let mut support = header_support.clone();
        support.extend(self.weak_auto.iter().filter(is_xars).cloned());
        if let Some(phrase) = body_phrase {
            support.push(format!("auto-reply text: \"{phrase}\""));
        }
        // A prefix with a colon ("Automatic reply:") is what responders
        // write; any support, or answering one of our messages, confirms
        // it. A bare "Out of office" needs a header signal and one more.
        let decided = match (prefix, weak) {
            (Some(_), _) => !support.is_empty() || replies,
            (None, Some(_)) => !header_support.is_empty() && (support.len() >= 2 || replies),
            (None, None) => false,
        };
        if decided {
            self.auto_replied = true;
            let matched = prefix.or(weak).copied().unwrap_or_default();
            self.reason(format!(
                "auto-reply subject \"{}\"",
                matched.trim_end_matches(':')
            ));
            for s in support {
                self.reason(s);
            }
            if replies && !starts_with_reply_prefix(&subject) {
                self.reason("answers one of our messages");
            }
        }
    }

    fn verdict(mut self, mail: &ParsedMail) -> Classification {
        let class = if self.bounce {
            Class::Bounce
        } else if self.is_loop {
            Class::Loop
        } else if self.auto_replied {
            Class::AutoReplied
        } else if self.auto_generated {
            Class::AutoGenerated
        } else if self.bulk {
            Class::Bulk
        } else {
            Class::Human
        };
        if class == Class::Human && !self.weak_auto.is_empty() {
            // Say why weak signals did not decide, for the event log.
            for weak in std::mem::take(&mut self.weak_auto) {
                self.reason(format!("{weak} (not enough alone)"));
            }
        }
        let bounce = (class == Class::Bounce).then(|| bounce_info(mail));
        Classification {
            class,
            reasons: self.reasons,
            bounce,
        }
    }
}

/// The details of a bounce from the parsed delivery report.
fn bounce_info(mail: &ParsedMail) -> BounceInfo {
    let mut info = BounceInfo::default();
    let Some(report) = &mail.report else {
        info.permanent = !is_delay_warning(mail);
        return info;
    };
    info.original_message_ids = report.original_message_ids.clone();
    let failed: Vec<_> = report
        .recipients
        .iter()
        .filter(|r| !is_success(&r.action, &r.status))
        .collect();
    for r in &failed {
        let address = r.address.trim().to_lowercase();
        if !address.is_empty() && !info.failed_recipients.contains(&address) {
            info.failed_recipients.push(address);
        }
    }
    info.permanent = if failed.is_empty() {
        !is_delay_warning(mail)
    } else {
        failed
            .iter()
            .any(|r| r.status.trim().starts_with('5') || r.action.eq_ignore_ascii_case("failed"))
    };
    info
}

/// A delay warning says the MTA is still trying: subject or body says so.
fn is_delay_warning(mail: &ParsedMail) -> bool {
    let subject = mail.subject.to_lowercase();
    if vocab::DELAY_SUBJECT.iter().any(|p| subject.contains(p)) {
        return true;
    }
    let body = body_head(mail);
    vocab::DELAY_BODY.iter().any(|p| body.contains(p))
}

/// A recipient line that reports success: delivered, relayed, expanded
/// (RFC 3464), "deliverable" (a verification report), or a 2.x.x status
/// without an action.
fn is_success(action: &str, status: &str) -> bool {
    let action = action.trim().to_ascii_lowercase();
    matches!(
        action.as_str(),
        "delivered" | "relayed" | "expanded" | "deliverable"
    ) || (action.is_empty() && status.trim().starts_with('2'))
}

/// A From that is a mail system: a daemon local part, or a display name
/// such as "Mail Delivery System".
fn is_daemon_sender(email: &str, name: Option<&str>) -> bool {
    if is_daemon_address(email) {
        return true;
    }
    let name = name.unwrap_or_default().to_lowercase();
    vocab::DAEMON_NAMES.iter().any(|n| name.contains(n))
}

/// The lowercased start of the body text, where MTAs explain themselves.
fn body_head(mail: &ParsedMail) -> String {
    let mut end = mail.text.len().min(BODY_SCAN_BYTES);
    while !mail.text.is_char_boundary(end) {
        end = end.saturating_sub(1);
    }
    mail.text.get(..end).unwrap_or_default().to_lowercase()
}

/// The first keyword of a header value: `auto-replied; owner=…` → `auto-replied`.
fn first_keyword(value: &str) -> String {
    value
        .split([';', ' ', '\t', '('])
        .find(|t| !t.is_empty())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn contains_bytes_ci(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    let needle = needle.trim();
    !needle.is_empty() && haystack.to_lowercase().contains(&needle.to_lowercase())
}
