//! Stage 6: stage outputs + what the store found → a [`Plan`] of writes.
//!
//! [`plan`] is pure. The store calls it inside its write transaction with
//! the [`Found`] facts it just read (the threading decision, the ticket it
//! names, rate-limit counters, bounce state), then writes the plan in the
//! same transaction. Every rule about what a message causes lives here:
//! new ticket or not, status changes, participants, the acknowledgement
//! decision and its reason, bounce bookkeeping and the audit events.

use std::time::Duration;

use jiff::Timestamp;
use serde::Serialize;
use serde_json::json;

use crate::config::{Config, is_plain_address};
use crate::detect;
use crate::mail::{AnalyzedMail, Class, Direction, Language, LanguageSource};
use crate::notify::template::{AckContext, LocalTime, ResponseTarget};
use crate::route;
use crate::thread::{ThreadDecision, ThreadVia};
use crate::token::TokenKey;

/// Event names, as stored in `events.kind`.
pub mod event {
    pub const TICKET_CREATED: &str = "ticket.created";
    pub const TICKET_REOPENED: &str = "ticket.reopened";
    pub const TICKET_ROUTED: &str = "ticket.routed";
    pub const TICKET_LINKED: &str = "ticket.linked";
    pub const MESSAGE_THREADED: &str = "message.threaded";
    pub const MESSAGE_DUPLICATE: &str = "message.duplicate";
    pub const MESSAGE_IGNORED: &str = "message.ignored";
    pub const MESSAGE_QUARANTINED: &str = "message.quarantined";
    pub const THREAD_NEW: &str = "thread.new";
    pub const LANGUAGE: &str = "language.resolved";
    pub const ACK_QUEUED: &str = "ack.queued";
    pub const ACK_SUPPRESSED: &str = "ack.suppressed";
    pub const CUSTOMER_REPLIED: &str = "customer.replied";
    pub const AGENT_RESPONDED: &str = "agent.responded";
    pub const BOUNCE_RECORDED: &str = "bounce.recorded";
    pub const ADDRESS_BOUNCING: &str = "address.bouncing";
    pub const ADDRESS_CLEARED: &str = "address.cleared";
    pub const ALERT_REPLIED: &str = "alert.replied";
}

/// What became of a message; the `outcome` of `postdesk ingest --json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    Created,
    Threaded,
    Duplicate,
    Ignored,
    Quarantined,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Threaded => "threaded",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
            Outcome::Quarantined => "quarantined",
        }
    }
}

/// The configuration and key the planner decides with. Built once per
/// config (re)load.
#[derive(Debug, Clone)]
pub struct Policy {
    pub config: Config,
    pub key: TokenKey,
}

/// A ticket as stored, as far as planning needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketSnapshot {
    pub id: i64,
    pub status: String,
    pub queue: String,
    pub mailbox: String,
    pub language: String,
    pub requester: String,
    pub closed_at: Option<Timestamp>,
    /// Addresses taking part, lowercased.
    pub participants: Vec<String>,
}

/// Facts the store read for one message, inside the write transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub decision: ThreadDecision,
    /// The ticket named by `decision`, when it names one.
    pub ticket: Option<TicketSnapshot>,
    /// The language of the sender's most recent ticket.
    pub previous_language: Option<String>,
    /// Automatic mails queued to the ack recipient in the last hour.
    pub recipient_automatic_last_hour: u32,
    /// Automatic mails queued in all in the last hour.
    pub automatic_last_hour: u32,
    /// The ack recipient bounced our mail and has not written since.
    pub recipient_bouncing: bool,
    /// The sender is marked as bouncing (a human message clears it).
    pub sender_bouncing: bool,
}

/// A new ticket to insert.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTicket {
    pub subject: String,
    pub mailbox: String,
    pub queue: String,
    pub language: Language,
    pub requester: String,
    pub requester_name: Option<String>,
    pub reply_to: Option<String>,
    pub linked_ticket: Option<i64>,
}

/// What happens to the ticket.
#[derive(Debug, Clone, PartialEq)]
pub enum TicketChange {
    None,
    Create(NewTicket),
    /// Attach to an existing ticket, optionally changing its status.
    Update {
        id: i64,
        status: Option<&'static str>,
    },
}

/// An outgoing mail to queue. The ticket number, Message-ID and dedup key
/// are completed when the row is written (a new ticket has no id before).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutboxDraft {
    pub kind: &'static str,
    /// Suffix of the dedup key after `<kind>:<ticket>`, e.g. "" for the one
    /// ack of a ticket.
    pub dedup_suffix: String,
    pub to: String,
    pub language: String,
    pub context: serde_json::Value,
    pub in_reply_to: Option<String>,
    pub references: Vec<String>,
    pub automatic: bool,
}

/// An audit event; `ticket` and `message` are filled in when written.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedEvent {
    pub kind: &'static str,
    pub detail: serde_json::Value,
}

/// Everything one message causes, written in one transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub outcome: Outcome,
    pub ticket: TicketChange,
    /// Store the message (false only for duplicates).
    pub store_message: bool,
    pub language: Option<Language>,
    /// (address, role, display name) to add if not present.
    pub participants: Vec<(String, &'static str, Option<String>)>,
    pub events: Vec<PlannedEvent>,
    pub outbox: Vec<OutboxDraft>,
    /// Addresses to mark as bouncing, with the reason.
    pub mark_bouncing: Vec<(String, String)>,
    /// An address that wrote to us again: no longer bouncing.
    pub clear_bouncing: Option<String>,
    /// Whether an acknowledgement was queued.
    pub ack: bool,
    /// One sentence for `--json` and the log.
    pub reason: String,
}

impl Plan {
    fn new(outcome: Outcome, reason: impl Into<String>) -> Plan {
        Plan {
            outcome,
            ticket: TicketChange::None,
            store_message: true,
            language: None,
            participants: Vec::new(),
            events: Vec::new(),
            outbox: Vec::new(),
            mark_bouncing: Vec::new(),
            clear_bouncing: None,
            ack: false,
            reason: reason.into(),
        }
    }

    fn event(&mut self, kind: &'static str, detail: serde_json::Value) {
        self.events.push(PlannedEvent { kind, detail });
    }
}

/// The sender's address, lowercased: From, else Sender, else Return-Path.
pub fn sender(mail: &AnalyzedMail) -> String {
    let p = &mail.parsed;
    p.from
        .as_ref()
        .or(p.sender.as_ref())
        .map(|a| a.key())
        .or_else(|| p.return_path.as_ref().map(|r| r.trim().to_lowercase()))
        .unwrap_or_default()
}

/// Where customer mail about this message goes: the first Reply-To that is
/// a plain address and not ours, else From. `None` when nothing usable.
pub fn reply_address(mail: &AnalyzedMail, cfg: &Config) -> Option<String> {
    let p = &mail.parsed;
    let usable = |a: &crate::mail::Address| {
        let k = a.key();
        (is_plain_address(&k) && !cfg.is_own_address(&k)).then_some(k)
    };
    p.reply_to
        .iter()
        .find_map(usable)
        .or_else(|| p.from.as_ref().and_then(usable))
}

/// True when `address` is an agent of `queue` (or of any queue if `None`).
fn is_agent(cfg: &Config, address: &str, queue: Option<&str>) -> bool {
    cfg.queues
        .iter()
        .filter(|q| queue.is_none_or(|n| q.name == n))
        .any(|q| q.is_agent(address))
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Decides what one message causes.
pub fn plan(mail: &AnalyzedMail, found: &Found, policy: &Policy, now: Timestamp) -> Plan {
    let cfg = &policy.config;
    let class = mail.classification.class;
    let from = sender(mail);
    let from_name = mail.parsed.from.as_ref().and_then(|a| a.name.clone());

    let mut plan = match &found.decision {
        ThreadDecision::Duplicate { message, ticket } => {
            let mut p = Plan::new(
                Outcome::Duplicate,
                format!("already stored as message {message}"),
            );
            p.store_message = false;
            if let Some(t) = ticket {
                p.ticket = TicketChange::Update {
                    id: *t,
                    status: None,
                };
            }
            p.event(
                event::MESSAGE_DUPLICATE,
                json!({ "of": message, "origin": mail.raw.origin.key() }),
            );
            return p;
        }
        _ if class == Class::Loop => {
            let mut p = Plan::new(
                Outcome::Ignored,
                "our own mail came back (loop); stored, no ticket change",
            );
            p.event(
                event::MESSAGE_IGNORED,
                json!({ "class": class, "reasons": mail.classification.reasons }),
            );
            p
        }
        ThreadDecision::Existing { via, detail, .. } => match &found.ticket {
            Some(t) => plan_existing(mail, found, t, *via, detail, policy, now),
            None => {
                // The store names only tickets it found; treat a miss as new.
                plan_new(
                    mail,
                    found,
                    policy,
                    now,
                    "the matched ticket no longer exists",
                    None,
                )
            }
        },
        ThreadDecision::New { reason } => plan_new(mail, found, policy, now, reason, None),
    };

    // Bounces: the failed recipients get no more automatic mail.
    if class == Class::Bounce
        && let Some(b) = &mail.classification.bounce
        && b.permanent
    {
        for r in &b.failed_recipients {
            if !cfg.is_own_address(r) {
                plan.mark_bouncing
                    .push((r.clone(), "permanent delivery failure".to_owned()));
                plan.event(event::ADDRESS_BOUNCING, json!({ "address": r }));
            }
        }
    }
    // A human message from a bouncing address proves it works again.
    if class == Class::Human
        && mail.raw.direction == Direction::Inbound
        && found.sender_bouncing
        && !from.is_empty()
    {
        plan.clear_bouncing = Some(from.clone());
        plan.event(event::ADDRESS_CLEARED, json!({ "address": from }));
    }
    let _ = from_name;
    plan
}

fn plan_existing(
    mail: &AnalyzedMail,
    found: &Found,
    t: &TicketSnapshot,
    via: ThreadVia,
    detail: &str,
    policy: &Policy,
    now: Timestamp,
) -> Plan {
    let cfg = &policy.config;
    let class = mail.classification.class;
    let from = sender(mail);
    let inbound = mail.raw.direction == Direction::Inbound;
    let agent = !inbound || is_agent(cfg, &from, Some(&t.queue));
    let human = class == Class::Human;

    if via == ThreadVia::AlertReply {
        // Our own team answering a warning or escalation: kept on the
        // ticket for the record; not an answer to the customer, so neither
        // the status nor the response clock changes.
        let mut p = Plan::new(Outcome::Threaded, format!("internal: {detail}"));
        p.ticket = TicketChange::Update {
            id: t.id,
            status: None,
        };
        p.event(
            event::ALERT_REPLIED,
            json!({ "by": from, "detail": detail }),
        );
        return p;
    }

    if t.status == "closed" && inbound && human && !agent {
        let window = cfg
            .queue(&t.queue)
            .map(|q| q.reopen_within)
            .unwrap_or(Duration::from_secs(14 * 86400));
        let closed_for = t
            .closed_at
            .map(|c| now.as_millisecond() - c.as_millisecond())
            .unwrap_or(0);
        if closed_for > ms(window) {
            let reason = format!(
                "ticket {} was closed {} ago, longer than its queue's reopen window ({}); a new ticket follows it",
                cfg.ticket_ref(t.id),
                humantime::format_duration(Duration::from_secs(
                    u64::try_from(closed_for / 1000).unwrap_or(0)
                )),
                humantime::format_duration(window)
            );
            return plan_new(mail, found, policy, now, &reason, Some(t));
        }
    }

    let mut p = Plan::new(
        Outcome::Threaded,
        format!("threaded by {} ({detail})", via.as_str()),
    );
    p.event(
        event::MESSAGE_THREADED,
        json!({ "via": via.as_str(), "detail": detail }),
    );
    let mut status = None;
    if human || !inbound {
        if agent {
            if t.status != "closed" {
                status = Some("waiting");
            }
            p.event(
                event::AGENT_RESPONDED,
                json!({ "by": from, "direction": mail.raw.direction.as_str() }),
            );
        } else {
            if t.status == "closed" {
                p.event(event::TICKET_REOPENED, json!({ "by": from }));
                p.reason = format!("{}; reopened", p.reason);
            }
            status = Some("open");
            // The arrival time lets an agent's answer that is found later
            // (a Sent folder synced after the inbox) tell whether this
            // message came after it and still waits for an answer.
            p.event(
                event::CUSTOMER_REPLIED,
                json!({
                    "by": from,
                    "arrived_ms": mail.raw.arrived.map(|t| t.as_millisecond()),
                }),
            );
        }
    } else if class == Class::Bounce {
        p.event(
            event::BOUNCE_RECORDED,
            json!({ "bounce": mail.classification.bounce }),
        );
    }
    if status == Some(t.status.as_str()) {
        status = None;
    }
    p.ticket = TicketChange::Update { id: t.id, status };
    // Someone who replied with our token or a real reference is in the
    // conversation; a subject-tag match already required taking part.
    if inbound
        && human
        && via != ThreadVia::SubjectTag
        && !from.is_empty()
        && !t.participants.contains(&from)
    {
        let role = if agent { "agent" } else { "cc" };
        p.participants.push((
            from,
            role,
            mail.parsed.from.as_ref().and_then(|a| a.name.clone()),
        ));
    }
    p
}

fn plan_new(
    mail: &AnalyzedMail,
    found: &Found,
    policy: &Policy,
    now: Timestamp,
    thread_reason: &str,
    follows: Option<&TicketSnapshot>,
) -> Plan {
    let cfg = &policy.config;
    let class = mail.classification.class;
    let from = sender(mail);

    if mail.raw.direction == Direction::Outbound {
        let mut p = Plan::new(
            Outcome::Ignored,
            format!("outbound mail that belongs to no ticket ({thread_reason})"),
        );
        p.event(
            event::MESSAGE_IGNORED,
            json!({ "direction": "outbound", "thread": thread_reason }),
        );
        return p;
    }
    if !cfg.ingest.ticket_classes.contains(&class) {
        let mut p = Plan::new(
            Outcome::Ignored,
            format!(
                "{class} mail that belongs to no ticket opens none ({})",
                mail.classification.reasons.join(", ")
            ),
        );
        p.event(event::MESSAGE_IGNORED, json!({ "class": class, "reasons": mail.classification.reasons, "thread": thread_reason }));
        return p;
    }

    let mailbox = cfg.mailbox(&mail.mailbox).or(cfg.mailboxes.first());
    let mailbox_name = mailbox
        .map(|m| m.name.clone())
        .unwrap_or_else(|| mail.mailbox.clone());
    let default_language = mailbox.map(|m| m.default_language.as_str()).unwrap_or("en");
    let language = detect::resolve(
        mail.detection.as_ref(),
        found.previous_language.as_deref(),
        mail.parsed.content_language.as_deref(),
        default_language,
    );
    let default_queue = mailbox
        .map(|m| m.default_queue.as_str())
        .unwrap_or("general");
    let routed = route::route(&cfg.routes, &language.code, &mailbox_name, default_queue);
    let reply_to = reply_address(mail, cfg).filter(|r| *r != from);
    let subject = if mail.parsed.subject.trim().is_empty() {
        "(no subject)".to_owned()
    } else {
        mail.parsed.subject.clone()
    };

    let mut p = Plan::new(Outcome::Created, format!("new ticket: {thread_reason}"));
    p.event(event::THREAD_NEW, json!({ "reason": thread_reason }));
    p.event(
        event::TICKET_CREATED,
        json!({ "class": class, "mailbox": mailbox_name }),
    );
    p.event(
        event::LANGUAGE,
        json!({ "language": language.code, "source": language.source.as_str(), "confidence": language.confidence,
                "detected": mail.detection }),
    );
    p.event(
        event::TICKET_ROUTED,
        json!({ "queue": routed.queue, "reason": routed.reason }),
    );
    if let Some(old) = follows {
        p.event(event::TICKET_LINKED, json!({ "follows": old.id }));
    }
    if !from.is_empty() {
        p.participants.push((
            from.clone(),
            "requester",
            mail.parsed.from.as_ref().and_then(|a| a.name.clone()),
        ));
    }
    for a in mail.parsed.to.iter().chain(&mail.parsed.cc) {
        let k = a.key();
        if is_plain_address(&k) && !cfg.is_own_address(&k) && k != from {
            p.participants.push((k, "cc", a.name.clone()));
        }
    }

    // The acknowledgement.
    let ack = decide_ack(mail, found, policy, now, &language, &routed.queue);
    match ack {
        Ok(draft) => {
            p.event(
                event::ACK_QUEUED,
                json!({ "to": draft.to, "language": draft.language }),
            );
            p.outbox.push(draft);
            p.ack = true;
        }
        Err(why) => {
            p.event(event::ACK_SUPPRESSED, json!({ "reason": why }));
            p.reason = format!("{}; no acknowledgement: {why}", p.reason);
        }
    }

    p.ticket = TicketChange::Create(NewTicket {
        subject,
        mailbox: mailbox_name,
        queue: routed.queue,
        language: language.clone(),
        requester: from,
        requester_name: mail.parsed.from.as_ref().and_then(|a| a.name.clone()),
        reply_to,
        linked_ticket: follows.map(|t| t.id),
    });
    p.language = Some(language);
    p
}

/// The acknowledgement for a new ticket, or why there is none.
fn decide_ack(
    mail: &AnalyzedMail,
    found: &Found,
    policy: &Policy,
    now: Timestamp,
    language: &Language,
    queue: &str,
) -> Result<OutboxDraft, String> {
    let cfg = &policy.config;
    let ack = &cfg.acknowledge;
    let class = mail.classification.class;
    if !ack.enabled {
        return Err("acknowledgements are disabled (acknowledge.enabled = false)".into());
    }
    if class != Class::Human {
        return Err(format!("{class} mail is never acknowledged"));
    }
    let from = sender(mail);
    if cfg.is_own_address(&from) {
        return Err("the sender is one of our own addresses".into());
    }
    if is_agent(cfg, &from, None) {
        return Err("the sender is an agent".into());
    }
    let Some(to) = reply_address(mail, cfg) else {
        return Err(
            "no usable address to answer (From and Reply-To are missing, invalid or ours)".into(),
        );
    };
    // This very message, from that address, proves it receives mail again.
    if found.recipient_bouncing && to != from {
        return Err(format!("{to} bounced our mail and has not written since"));
    }
    // Arrival when the source knows it; else the sender's Date header.
    let written = mail
        .raw
        .arrived
        .or(mail.parsed.date.filter(|d| *d <= now))
        .unwrap_or(now);
    let age_ms = now.as_millisecond() - written.as_millisecond();
    if age_ms > ms(ack.max_age) {
        return Err(format!(
            "the message is {} old, older than acknowledge.max_age ({})",
            humantime::format_duration(Duration::from_secs(
                u64::try_from(age_ms / 1000).unwrap_or(0)
            )),
            humantime::format_duration(ack.max_age)
        ));
    }
    if found.recipient_automatic_last_hour >= ack.per_sender_per_hour {
        return Err(format!(
            "{to} already got {} automatic mails in the last hour (acknowledge.per_sender_per_hour = {})",
            found.recipient_automatic_last_hour, ack.per_sender_per_hour
        ));
    }
    if found.automatic_last_hour >= ack.per_hour {
        return Err(format!(
            "the hourly cap of automatic mail is reached (acknowledge.per_hour = {})",
            ack.per_hour
        ));
    }
    let mailbox = cfg.mailbox(&mail.mailbox).or(cfg.mailboxes.first());
    let team_name = mailbox
        .map(|m| m.display_name.clone().unwrap_or_else(|| m.name.clone()))
        .unwrap_or_default();
    let q = cfg.queue(queue);
    let target = q
        .map(|q| q.first_response)
        .unwrap_or(Duration::from_secs(24 * 3600));
    let due = crate::sla::due_at(cfg, queue, now, target);
    // The due time in the customer's own UTC offset when their Date header
    // tells it, else in the queue's zone.
    let due_local = match mail
        .parsed
        .header("date")
        .and_then(date_offset)
        .and_then(|s| jiff::tz::Offset::from_seconds(s).ok())
    {
        Some(offset) => LocalTime::with_offset(due, offset),
        None => LocalTime::new(
            due,
            q.map(|q| &q.timezone).unwrap_or(&jiff::tz::TimeZone::UTC),
        ),
    };
    let context = AckContext {
        // Filled in when the ticket's number is known.
        ticket: String::new(),
        subject: mail.parsed.subject.clone(),
        customer_name: mail.parsed.from.as_ref().and_then(|a| a.name.clone()),
        team_name,
        response: ResponseTarget {
            hours: i64::try_from(target.as_secs() / 3600).unwrap_or(24),
            business_hours: q.is_some_and(|q| !q.calendar.week().is_always_open()),
            due: due_local,
        },
    };
    let mut references = mail.parsed.references.clone();
    let in_reply_to = (!mail.parsed.message_id_synthetic).then(|| mail.parsed.message_id.clone());
    if let Some(id) = &in_reply_to {
        references.push(id.clone());
    }
    Ok(OutboxDraft {
        kind: "ack",
        dedup_suffix: String::new(),
        to,
        language: language.code.clone(),
        context: with_queue(serde_json::to_value(&context).unwrap_or_default(), queue),
        in_reply_to,
        references,
        automatic: true,
    })
}

/// Adds the queue's name to a template context: the outbox uses it to
/// fall back to the queue's language when there is no template in the
/// ticket's language.
pub fn with_queue(mut context: serde_json::Value, queue: &str) -> serde_json::Value {
    if let Some(o) = context.as_object_mut() {
        o.insert("queue".into(), queue.into());
    }
    context
}

/// The UTC offset in seconds at the end of a Date header (`+0100`,
/// `-0330`), so an ack can express its due time in the customer's zone.
pub fn date_offset(date: &str) -> Option<i32> {
    let token = date
        .split_whitespace()
        .find(|t| (t.starts_with('+') || t.starts_with('-')) && t.len() == 5)?;
    let sign = if token.starts_with('-') { -1 } else { 1 };
    let digits = token.get(1..)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits.get(..2)?.parse().ok()?;
    let minutes: i32 = digits.get(2..)?.parse().ok()?;
    (hours <= 14 && minutes < 60).then_some(sign * (hours * 3600 + minutes * 60))
}

/// The language used when nothing better is known.
pub fn fallback_language(cfg: &Config, mailbox: &str) -> Language {
    Language {
        code: cfg
            .mailbox(mailbox)
            .map(|m| m.default_language.clone())
            .unwrap_or_else(|| "en".into()),
        confidence: 0.0,
        source: LanguageSource::MailboxDefault,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_offsets() {
        assert_eq!(date_offset("Sun, 22 Nov 2026 10:59:00 +0100"), Some(3600));
        assert_eq!(
            date_offset("Sun, 22 Nov 2026 10:59:00 -0330 (NST)"),
            Some(-(3 * 3600 + 30 * 60))
        );
        assert_eq!(date_offset("Sun, 22 Nov 2026 10:59:00 GMT"), None);
        assert_eq!(date_offset("+9999"), None);
    }
}
