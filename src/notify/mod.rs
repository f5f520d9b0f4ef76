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

pub mod compose;
pub mod template;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use crate::config::{Config, TransportConfig};
use crate::store::StoreError;
use crate::store::handle::StoreHandle;
use crate::store::outbox::{self, OutboxRow, SentMail};
use compose::{Composed, compose};
use template::{Rendered, TemplateKind, Templates};
use transport::{FileTransport, SendError};

/// Rows claimed per round trip to the database.
const CLAIM_BATCH: usize = 32;

/// A configured transport.
#[derive(Debug, Clone)]
pub enum Transport {
    File(FileTransport),
}

impl Transport {
    pub fn from_config(cfg: &Config) -> Transport {
        match &cfg.outbox.transport {
            TransportConfig::File { dir } => Transport::File(FileTransport { dir: dir.clone() }),
            // Until the SMTP and sendmail transports land, mail is kept as
            // files next to the database rather than lost.
            _ => Transport::File(FileTransport {
                dir: cfg
                    .store
                    .path
                    .parent()
                    .map(|p| p.join("outbox"))
                    .unwrap_or_else(|| "outbox".into()),
            }),
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

/// Renders and sends queued mail.
#[derive(Debug, Clone)]
pub struct Outbox {
    config: Arc<Config>,
    templates: Arc<Templates>,
    transport: Transport,
}

impl Outbox {
    pub fn new(config: Arc<Config>, templates: Arc<Templates>) -> Outbox {
        let transport = Transport::from_config(&config);
        Outbox {
            config,
            templates,
            transport,
        }
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
        let rendered = self
            .templates
            .render(kind, &row.language, &fallback, &row.context)
            .map_err(|e| e.to_string())?;
        let composed = compose(row, &rendered, mailbox, now).map_err(|e| e.to_string())?;
        Ok((rendered, composed))
    }

    /// Sends every due row; returns what happened.
    pub async fn flush(&self, store: &StoreHandle) -> Result<FlushStats, StoreError> {
        let mut stats = FlushStats::default();
        let lease = self.config.outbox.send_timeout * 2;
        loop {
            let rows = store
                .call(move |c| outbox::claim_due(c, Timestamp::now(), lease, CLAIM_BATCH))
                .await?;
            if rows.is_empty() {
                return Ok(stats);
            }
            for row in rows {
                self.send_one(store, row, &mut stats).await?;
            }
        }
    }

    async fn send_one(
        &self,
        store: &StoreHandle,
        row: OutboxRow,
        stats: &mut FlushStats,
    ) -> Result<(), StoreError> {
        let now = Timestamp::now();
        let (rendered, composed) = match self.prepare(&row, now) {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(outbox = row.id, kind = %row.kind, to = %row.to_addr, error = %e, "Outgoing mail cannot be built; marked failed.");
                stats.failed += 1;
                return store
                    .call(move |c| outbox::mark_failed(c, row.id, now, &e))
                    .await;
            }
        };
        let result = match tokio::time::timeout(
            self.config.outbox.send_timeout,
            self.transport.send(&row, &composed),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(SendError::Temporary(format!(
                "no answer within outbox.send_timeout ({})",
                humantime::format_duration(self.config.outbox.send_timeout)
            ))),
        };
        match result {
            Ok(reply) => {
                tracing::info!(outbox = row.id, kind = %row.kind, to = %row.to_addr, message_id = %row.message_id, "Mail sent.");
                stats.sent += 1;
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
                    .await
            }
            Err(SendError::Permanent(e)) => {
                tracing::error!(outbox = row.id, kind = %row.kind, to = %row.to_addr, error = %e, "Mail refused permanently; marked failed.");
                stats.failed += 1;
                store
                    .call(move |c| outbox::mark_failed(c, row.id, Timestamp::now(), &e))
                    .await
            }
            Err(SendError::Temporary(e)) => {
                let wait = retry_wait(&self.config.outbox.retry, row.attempts);
                let next = now
                    .checked_add(
                        jiff::SignedDuration::try_from(wait).unwrap_or(jiff::SignedDuration::MAX),
                    )
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
                        "gave up after {} attempts over {}: {e}",
                        row.attempts,
                        humantime::format_duration(self.config.outbox.give_up_after)
                    );
                    tracing::error!(outbox = row.id, to = %row.to_addr, error = %why, "Mail could not be delivered; marked failed.");
                    stats.failed += 1;
                    store
                        .call(move |c| outbox::mark_failed(c, row.id, Timestamp::now(), &why))
                        .await
                } else {
                    tracing::warn!(outbox = row.id, to = %row.to_addr, attempt = row.attempts, retry_in = %humantime::format_duration(wait), error = %e, "Mail not sent; will retry.");
                    stats.retried += 1;
                    store
                        .call(move |c| outbox::mark_retry(c, row.id, next, &e))
                        .await
                }
            }
        }
    }
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
    fn retry_schedule_repeats_its_last_wait() {
        let s = [Duration::from_secs(1), Duration::from_secs(5)];
        assert_eq!(retry_wait(&s, 1), Duration::from_secs(1));
        assert_eq!(retry_wait(&s, 2), Duration::from_secs(5));
        assert_eq!(retry_wait(&s, 9), Duration::from_secs(5));
        assert_eq!(retry_wait(&[], 1), Duration::from_secs(60));
    }
}
