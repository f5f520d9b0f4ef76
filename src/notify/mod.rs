//! The outbox edge: queued rows → rendered, composed mail → a transport.
//!
//! [`Outbox::flush`] claims due rows (with a lease, counting the attempt
//! first), renders each with the templates, composes it, sends it within
//! `outbox.send_timeout`, and records the outcome: sent (with the server's
//! reply), retry later (temporary failure, backoff from `outbox.retry`),
//! or failed (permanent failure, or still failing after
//! `outbox.give_up_after`). Rows survive restarts; a row whose send was
//! cut off by a crash is claimable again when its lease ends, and goes out
//! with the same Message-ID.
//!
//! Transports: [`smtp`] (a relay, pooled connections, up to `pool_size`
//! messages in flight), [`sendmail`] (the local MTA) and the file
//! transport in [`transport`]. Each classifies its own failures into
//! [`SendError`]; this module only acts on the class. A send whose server
//! accepted the message but whose reply was lost (a timeout after the
//! final dot) is retried: the receiver then sees the same Message-ID
//! twice, which mail clients and our own ingest deduplicate; the
//! alternative, assuming success, could lose the mail.

pub mod compose;
pub mod sendmail;
pub mod smtp;
pub mod template;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use tokio::sync::OnceCell;

use crate::config::{Config, TransportConfig};
use crate::store::StoreError;
use crate::store::handle::StoreHandle;
use crate::store::outbox::{self, OutboxRow, SentMail};
use compose::{Composed, compose};
use sendmail::SendmailTransport;
use smtp::SmtpTransport;
use template::{Rendered, TemplateKind, Templates};
use transport::{FileTransport, SendError, TransportError};

/// Rows claimed per round trip to the database, per message in flight.
/// Two rounds per claim keep the database round trips few while the lease
/// (below) still covers every row of the claim.
const ROUNDS_PER_CLAIM: usize = 2;

/// The configured way out, built once from the config (see
/// [`Transport::from_config`]); the outbox sends every row through it.
#[derive(Debug, Clone)]
pub enum Transport {
    File(FileTransport),
    Sendmail(SendmailTransport),
    Smtp(SmtpTransport),
}

impl Transport {
    /// Builds the configured transport. Blocking: the SMTP transport reads
    /// its password from the secret source and its CA file, so call this
    /// from `spawn_blocking` (as [`Outbox::ready`] does).
    pub fn from_config(cfg: &Config) -> Result<Transport, TransportError> {
        Ok(match &cfg.outbox.transport {
            TransportConfig::File { dir } => Transport::File(FileTransport { dir: dir.clone() }),
            TransportConfig::Sendmail { command } => Transport::Sendmail(SendmailTransport {
                command: command.clone(),
            }),
            TransportConfig::Smtp(smtp) => {
                Transport::Smtp(SmtpTransport::new(smtp, cfg.outbox.send_timeout)?)
            }
        })
    }

    /// Messages sent at once: one per pooled SMTP connection; files and
    /// sendmail one at a time (the local MTA queues anyway).
    pub fn parallel(&self) -> usize {
        match self {
            Transport::Smtp(s) => s.pool_size().max(1),
            Transport::File(_) | Transport::Sendmail(_) => 1,
        }
    }

    fn describe(&self) -> String {
        match self {
            Transport::File(f) => format!("files in {}", f.dir.display()),
            Transport::Sendmail(s) => format!("sendmail program {}", s.command.display()),
            Transport::Smtp(s) => format!("{s:?}"),
        }
    }

    async fn send(&self, row: &OutboxRow, mail: &Composed) -> Result<String, SendError> {
        match self {
            Transport::File(f) => {
                let f = f.clone();
                let (id, kind, mail) = (row.id, row.kind.clone(), mail.clone());
                tokio::task::spawn_blocking(move || f.send(id, &kind, &mail))
                    .await
                    .map_err(|e| SendError::Temporary(format!("writer task failed: {e}")))?
            }
            Transport::Sendmail(s) => {
                s.send(&mail.envelope_from, &mail.recipients, &mail.bytes)
                    .await
            }
            Transport::Smtp(s) => {
                s.send(&mail.envelope_from, &mail.recipients, &mail.bytes)
                    .await
            }
        }
    }
}

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    pub sent: usize,
    pub retried: usize,
    pub failed: usize,
}

/// What became of one row in a flush.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowOutcome {
    Sent,
    Retried,
    Failed,
}

impl FlushStats {
    fn add(&mut self, o: RowOutcome) {
        match o {
            RowOutcome::Sent => self.sent += 1,
            RowOutcome::Retried => self.retried += 1,
            RowOutcome::Failed => self.failed += 1,
        }
    }
}

/// Why a flush stopped early. Rows are untouched by either: they stay
/// pending (or leased until their lease ends) and the next flush retries.
#[derive(Debug, thiserror::Error)]
pub enum FlushError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Renders and sends queued mail.
#[derive(Debug, Clone)]
pub struct Outbox {
    config: Arc<Config>,
    templates: Arc<Templates>,
    /// Built on first use (or by [`Outbox::ready`] at start-up): reading
    /// the SMTP password may block, and must not happen on the runtime.
    transport: Arc<OnceCell<Transport>>,
}

impl Outbox {
    /// No I/O: the transport is built by [`Outbox::ready`] or the first
    /// flush.
    pub fn new(config: Arc<Config>, templates: Arc<Templates>) -> Outbox {
        Outbox {
            config,
            templates,
            transport: Arc::new(OnceCell::new()),
        }
    }

    /// Builds the transport (reads the SMTP password and CA file on a
    /// blocking thread) unless built already. Call at start-up to report a
    /// bad secret or CA file before anything is queued; a failure is
    /// retried by the next call.
    pub async fn ready(&self) -> Result<&Transport, TransportError> {
        self.transport
            .get_or_try_init(|| {
                let cfg = self.config.clone();
                async move {
                    let t = tokio::task::spawn_blocking(move || Transport::from_config(&cfg))
                        .await
                        .map_err(|e| TransportError::Task(e.to_string()))??;
                    tracing::info!(transport = %t.describe(), parallel = t.parallel(), "Outbox transport ready.");
                    Ok(t)
                }
            })
            .await
    }

    /// Renders and composes a row. An error here will not pass by itself.
    pub fn prepare(&self, row: &OutboxRow, now: Timestamp) -> Result<(Rendered, Composed), String> {
        let kind = TemplateKind::from_dir_name(&row.kind)
            .ok_or_else(|| format!("no template kind for outbox rows of kind {:?}", row.kind))?;
        let mailbox = self
            .config
            .mailbox(&row.mailbox)
            .or(self.config.mailboxes.first())
            .ok_or_else(|| format!("mailbox {:?} is no longer configured", row.mailbox))?;
        // The queue's language, then the mailbox's, then English.
        let fallback = row
            .context
            .get("queue")
            .and_then(|q| q.as_str())
            .and_then(|q| self.config.queue(q))
            .and_then(|q| q.languages.first().cloned())
            .unwrap_or_else(|| mailbox.default_language.clone());
        let context = one_line_fields(&row.context);
        let rendered = self
            .templates
            .render(kind, &row.language, &fallback, &context)
            .map_err(|e| e.to_string())?;
        let composed = compose(row, &rendered, mailbox, now).map_err(|e| e.to_string())?;
        Ok((rendered, composed))
    }

    /// Sends every due row, up to [`Transport::parallel`] at once;
    /// returns what happened.
    pub async fn flush(&self, store: &StoreHandle) -> Result<FlushStats, FlushError> {
        self.flush_until(store, None).await
    }

    /// Like [`Outbox::flush`], but claims no new rows after `deadline`, so
    /// the daemon's loop gets back to its heartbeat and its stop signal
    /// during a large backlog (the rest goes out on the next round).
    pub async fn flush_until(
        &self,
        store: &StoreHandle,
        deadline: Option<std::time::Instant>,
    ) -> Result<FlushStats, FlushError> {
        let transport = self.ready().await?;
        let parallel = transport.parallel();
        let batch = parallel * ROUNDS_PER_CLAIM;
        // A claimed row is leased for as long as its claim can take to
        // send (each round ends within send_timeout), plus one timeout of
        // slack: no other sender takes it meanwhile, and after a crash it
        // is free again within minutes.
        let lease = self.config.outbox.send_timeout
            * u32::try_from(ROUNDS_PER_CLAIM + 1).unwrap_or(u32::MAX);
        let mut stats = FlushStats::default();
        loop {
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(stats);
            }
            let rows = store
                .call(move |c| outbox::claim_due(c, Timestamp::now(), lease, batch))
                .await?;
            if rows.is_empty() {
                return Ok(stats);
            }
            let outcomes: Vec<Result<RowOutcome, StoreError>> = futures::stream::iter(rows)
                .map(|row| self.send_one(store, transport, row))
                .buffer_unordered(parallel)
                .collect()
                .await;
            for o in outcomes {
                stats.add(o?);
            }
        }
    }

    #[tracing::instrument(skip_all, fields(outbox = row.id, kind = %row.kind, to = %row.to_addr, message_id = %row.message_id, attempt = row.attempts))]
    async fn send_one(
        &self,
        store: &StoreHandle,
        transport: &Transport,
        row: OutboxRow,
    ) -> Result<RowOutcome, StoreError> {
        let now = Timestamp::now();
        let row_kind = row.kind.clone();
        let (rendered, composed) = match self.prepare(&row, now) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(error = %e, "Outgoing mail cannot be built; marked failed.");
                store
                    .call(move |c| outbox::mark_failed(c, row.id, now, &e))
                    .await?;
                return Ok(RowOutcome::Failed);
            }
        };
        let result = match tokio::time::timeout(
            self.config.outbox.send_timeout,
            transport.send(&row, &composed),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(SendError::Temporary(format!(
                "no answer within outbox.send_timeout ({})",
                humantime::format_duration(self.config.outbox.send_timeout)
            ))),
        };
        let (reason, setup) = match result {
            Ok(reply) => {
                tracing::info!(reply = %reply, "Mail sent.");
                let from = composed.envelope_from.clone();
                store
                    .call(move |c| {
                        let sent = SentMail {
                            from: &from,
                            subject: &rendered.subject,
                            text: &rendered.text,
                            language: &rendered.language,
                            bytes: &composed.bytes,
                            server_reply: &reply,
                        };
                        outbox::record_sent(c, &row, &sent, Timestamp::now())
                    })
                    .await?;
                crate::metrics::outbox("sent", &row_kind);
                return Ok(RowOutcome::Sent);
            }
            Err(SendError::Permanent(e)) => {
                tracing::error!(error = %e, "Mail refused permanently; marked failed.");
                crate::metrics::outbox("failed", &row_kind);
                // The relay refused the recipient itself (5.1.x: no such
                // user, bad address): like a bounce, no more automatic mail
                // to it until the person writes to us again.
                let refused = refuses_recipient(&e).then(|| row.to_addr.clone());
                store
                    .call(move |c| {
                        outbox::mark_failed(c, row.id, Timestamp::now(), &e)?;
                        if let Some(addr) = refused {
                            let now = Timestamp::now();
                            outbox::mark_bouncing(c, &addr, &e, now)?;
                            crate::store::ingest::insert_event(
                                c,
                                now,
                                row.ticket_id,
                                None,
                                crate::plan::event::ADDRESS_BOUNCING,
                                &serde_json::json!({ "address": addr, "reason": e }),
                            )?;
                        }
                        Ok(())
                    })
                    .await?;
                return Ok(RowOutcome::Failed);
            }
            Err(SendError::Temporary(e)) => (e, false),
            Err(SendError::Setup(e)) => (e, true),
        };
        let wait = retry_wait(&self.config.outbox.retry, row.attempts);
        let next = now
            .checked_add(jiff::SignedDuration::try_from(wait).unwrap_or(jiff::SignedDuration::MAX))
            .unwrap_or(now);
        let deadline = row
            .created_at
            .checked_add(
                jiff::SignedDuration::try_from(self.config.outbox.give_up_after)
                    .unwrap_or(jiff::SignedDuration::MAX),
            )
            .unwrap_or(Timestamp::MAX);
        if next > deadline {
            let why = format!(
                "gave up after {} attempts over {}: {reason}",
                row.attempts,
                humantime::format_duration(self.config.outbox.give_up_after)
            );
            tracing::error!(error = %why, "Mail could not be delivered; marked failed.");
            crate::metrics::outbox("failed", &row_kind);
            store
                .call(move |c| outbox::mark_failed(c, row.id, Timestamp::now(), &why))
                .await?;
            return Ok(RowOutcome::Failed);
        }
        let retry_in = humantime::format_duration(wait);
        if setup {
            tracing::error!(%retry_in, error = %reason, "Mail not sent: the transport is misconfigured; fix it, the mail is kept and retried.");
        } else {
            tracing::warn!(%retry_in, error = %reason, "Mail not sent; will retry.");
        }
        crate::metrics::outbox("retried", &row_kind);
        store
            .call(move |c| outbox::mark_retry(c, row.id, next, &reason))
            .await?;
        Ok(RowOutcome::Retried)
    }
}

/// Context fields that come from inbound headers and are shown inline
/// ("Dear {{ customer_name }},"): a display name or subject carrying
/// encoded line breaks must not break the greeting into lines that look
/// like headers or a forged signature. Multi-line fields (an agent's
/// `body`, an alert's `excerpt`) are left as they are.
const ONE_LINE_FIELDS: [&str; 5] = [
    "subject",
    "customer_name",
    "customer_address",
    "agent_name",
    "team_name",
];

fn one_line_fields(context: &serde_json::Value) -> std::borrow::Cow<'_, serde_json::Value> {
    let Some(obj) = context.as_object() else {
        return std::borrow::Cow::Borrowed(context);
    };
    let needs = ONE_LINE_FIELDS.iter().any(|k| {
        obj.get(*k).and_then(|v| v.as_str()).is_some_and(|s| {
            s.chars()
                .any(|c| c.is_control() || c.is_whitespace() && c != ' ')
        })
    });
    if !needs {
        return std::borrow::Cow::Borrowed(context);
    }
    let mut obj = obj.clone();
    for k in ONE_LINE_FIELDS {
        if let Some(serde_json::Value::String(s)) = obj.get_mut(k) {
            *s = compose::one_line(s, 300);
        }
    }
    std::borrow::Cow::Owned(serde_json::Value::Object(obj))
}

/// True when a permanent failure is the relay refusing the recipient
/// address itself: an enhanced status code 5.1.x (RFC 3463: bad
/// destination mailbox or address), not a policy or content refusal.
pub fn refuses_recipient(reply: &str) -> bool {
    reply
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .any(|w| {
            w.strip_prefix("5.1.")
                .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
        })
}

/// The wait before the next attempt after `attempts` attempts: the
/// configured list, its last entry repeating.
pub fn retry_wait(schedule: &[Duration], attempts: u32) -> Duration {
    let i = usize::try_from(attempts.saturating_sub(1)).unwrap_or(usize::MAX);
    schedule
        .get(i)
        .or(schedule.last())
        .copied()
        .unwrap_or(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_recipients_are_recognized_by_their_status_code() {
        assert!(refuses_recipient(
            "550 5.1.1 <x@example.test>: Recipient address rejected: User unknown"
        ));
        assert!(refuses_recipient("permanent: 553 5.1.3 bad address syntax"));
        assert!(!refuses_recipient("554 5.7.1 Relay access denied"));
        assert!(!refuses_recipient("552 5.2.2 mailbox full"));
        assert!(!refuses_recipient("550 5.1. weird"));
    }

    #[test]
    fn retry_schedule_repeats_its_last_wait() {
        let s = [Duration::from_secs(1), Duration::from_secs(5)];
        assert_eq!(retry_wait(&s, 1), Duration::from_secs(1));
        assert_eq!(retry_wait(&s, 2), Duration::from_secs(5));
        assert_eq!(retry_wait(&s, 9), Duration::from_secs(5));
        assert_eq!(retry_wait(&[], 1), Duration::from_secs(60));
    }

    #[test]
    fn inline_fields_become_one_line() {
        let c = serde_json::json!({
            "customer_name": "Eve\r\nBcc: x@y\u{2028}X: 1",
            "subject": "a\tb",
            "body": "line 1\nline 2",
            "response": { "hours": 4 }
        });
        let out = one_line_fields(&c);
        assert_eq!(out["customer_name"], "Eve Bcc: x@y X: 1");
        assert_eq!(out["subject"], "a b");
        assert_eq!(out["body"], "line 1\nline 2");
        assert_eq!(out["response"]["hours"], 4);
        let plain = serde_json::json!({ "customer_name": "Erika Mustermann" });
        assert!(matches!(
            one_line_fields(&plain),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
