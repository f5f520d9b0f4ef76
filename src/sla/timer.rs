//! The SLA timer: one task that sleeps until the next warning, due time or
//! escalation, does what is due, and sleeps again.
//!
//! As in mini-redis's `purge_expired_tasks`, there is no fixed tick: the
//! task sleeps until the earliest `next_at` of any clock (kept in SQLite,
//! so a restart picks up exactly where the last run stopped), or until a
//! wake-up: the ingest path notifies it when a message may have started or
//! stopped a clock, and a config change (a new [`Policy`] on its watch
//! channel) makes it recompute every clock's next moment. While it waits it
//! beats its [`Heartbeat`] every `step` (at most [`HEARTBEAT_STEP`] in the
//! daemon) and then re-reads the earliest `next_at`, which is how it
//! notices clocks changed by another process (`postdesk reply`, `close`,
//! `reopen` from the command line).
//!
//! What is due is decided by the pure [`crate::sla::clock::next_event`];
//! the store does it in one transaction per clock
//! ([`crate::store::sla::fire_due`]). Time comes in through `now`: the
//! daemon passes [`Timestamp::now`], tests a clock they move.
//!
//! [`HEARTBEAT_STEP`]: crate::daemon::HEARTBEAT_STEP

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::config::QueueConfig;
use crate::health::Heartbeat;
use crate::notify::template::AlertContext;
use crate::plan::Policy;
use crate::sla::calendar::{format_duration, format_local};
use crate::sla::clock::{Action, Clock};
use crate::store::StoreError;
use crate::store::handle::StoreHandle;
use crate::store::sla::{self, FireReport};

/// The customer's text in an alert is cut to this many characters: enough
/// to see what it is about, short enough for a phone screen.
pub const EXCERPT_CHARS: usize = 1500;

/// What an alert says about its ticket, read by the store inside the
/// timer's transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketFacts {
    /// `PD-42`.
    pub ticket_ref: String,
    pub subject: String,
    pub queue: String,
    /// The mailbox the ticket came in through; the alert is sent from it.
    pub mailbox: String,
    /// Its address, where agents answer from.
    pub mailbox_address: String,
    /// The ticket's (detected) language.
    pub language: String,
    pub requester: String,
    pub requester_name: Option<String>,
    pub created_at: Timestamp,
    /// The customer's latest text without quotes and signature.
    pub excerpt: String,
}

/// The template context of a warning (`level` 0) or escalation (`level`
/// 1, 2, …) about `clock`, with times in the queue's zone and in UTC.
/// `age` is how long the ticket has been open, i.e. waiting on us: since
/// the clock started.
pub fn alert_context(
    facts: &TicketFacts,
    clock: &Clock,
    level: u32,
    queue: Option<&QueueConfig>,
    now: Timestamp,
) -> AlertContext {
    let zone = queue.map(|q| q.timezone.clone()).unwrap_or(TimeZone::UTC);
    AlertContext {
        ticket: facts.ticket_ref.clone(),
        subject: facts.subject.clone(),
        customer_name: facts.requester_name.clone(),
        customer_address: facts.requester.clone(),
        language: facts.language.clone(),
        clock: clock.kind.template(),
        level,
        age: format_duration(now.duration_since(clock.started_at)),
        due_local: format_local(clock.due_at, &zone),
        due_utc: clock.due_at.strftime("%a %Y-%m-%d %H:%M").to_string(),
        queue: facts.queue.clone(),
        timezone: queue
            .map(|q| q.timezone_name.clone())
            .unwrap_or_else(|| "UTC".to_owned()),
        excerpt: excerpt(&facts.excerpt, EXCERPT_CHARS),
        mailbox_address: facts.mailbox_address.clone(),
    }
}

/// At most `max` characters of `text`, trimmed, with `…` when cut.
fn excerpt(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.truncate(out.trim_end().len());
    out.push('…');
    out
}

/// What the timer task needs: its handles, passed in (no god handle).
#[derive(Debug)]
pub struct Timer {
    pub store: StoreHandle,
    /// The current policy; a new value (config reload) makes the timer
    /// recompute every clock's next moment.
    pub policy: watch::Receiver<Arc<Policy>>,
    /// Notified when a clock may have changed in this process (ingest).
    pub wake: Arc<Notify>,
    /// Notified when the timer queued mail, so it goes out at once.
    pub outbox_wake: Arc<Notify>,
    pub heartbeat: Heartbeat,
    pub stop: CancellationToken,
    /// The longest wait between heartbeats (and re-reads of the next due
    /// moment); [`crate::daemon::HEARTBEAT_STEP`] in the daemon.
    pub step: Duration,
}

/// One pass: with `reconcile`, first bring clocks in line with tickets and
/// config; then do everything due at `now`. Also the `run --once` path.
pub async fn pass(
    store: &StoreHandle,
    policy: Arc<Policy>,
    now: Timestamp,
    reconcile: bool,
) -> Result<FireReport, StoreError> {
    store
        .call(move |c| {
            if reconcile {
                let n = sla::reconcile(c, &policy.config, now)?;
                if n > 0 {
                    tracing::info!(
                        clocks = n,
                        "Response clocks brought in line with their tickets."
                    );
                }
            }
            sla::fire_due(c, &policy, now)
        })
        .await
}

fn log_fired(policy: &Policy, report: &FireReport) {
    for f in &report.fired {
        let ticket = policy.config.ticket_ref(f.ticket);
        match f.action {
            Action::Warn => {
                tracing::info!(%ticket, clock = f.seq, outbox = f.outbox, "Response due soon; warning handled.")
            }
            Action::SkipWarning => {
                tracing::info!(%ticket, clock = f.seq, "Warning skipped: the due time passed while postdesk was stopped.")
            }
            Action::Breach => tracing::warn!(%ticket, clock = f.seq, "Response target breached."),
            Action::Escalate(level) => {
                tracing::warn!(%ticket, clock = f.seq, level, outbox = f.outbox, "Escalation handled.")
            }
        }
    }
}

/// Waits for a new policy; `false` when the sender is gone (then it never
/// completes again).
async fn policy_changed(rx: &mut watch::Receiver<Arc<Policy>>, closed: &mut bool) -> bool {
    if *closed {
        std::future::pending::<()>().await;
    }
    match rx.changed().await {
        Ok(()) => true,
        Err(_) => {
            *closed = true;
            false
        }
    }
}

/// How long until `next`, at most `step`.
fn wait_for(next: Option<Timestamp>, now: Timestamp, step: Duration) -> Duration {
    next.map(|n| Duration::try_from(n.duration_since(now)).unwrap_or(Duration::ZERO))
        .unwrap_or(step)
        .min(step)
}

/// The timer task; returns when `stop` is cancelled.
#[tracing::instrument(skip_all)]
pub async fn run<N>(mut t: Timer, now: N)
where
    N: Fn() -> Timestamp,
{
    let mut reconcile = true;
    let mut reloads_closed = false;
    loop {
        t.heartbeat.beat();
        let policy = t.policy.borrow_and_update().clone();
        let mut next = match pass(&t.store, policy.clone(), now(), reconcile).await {
            Ok(report) => {
                reconcile = false;
                log_fired(&policy, &report);
                if report.queued() > 0 {
                    t.outbox_wake.notify_one();
                }
                report.next
            }
            Err(StoreError::Closed) => return,
            Err(e) => {
                tracing::error!(error = %e, "SLA timer pass failed; trying again shortly.");
                now().checked_add(t.step).ok()
            }
        };
        loop {
            t.heartbeat.beat();
            let current = now();
            if next.is_some_and(|n| n <= current) {
                break;
            }
            let wait = wait_for(next, current, t.step);
            tokio::select! {
                _ = t.stop.cancelled() => return,
                _ = t.wake.notified() => break,
                changed = policy_changed(&mut t.policy, &mut reloads_closed) => {
                    if changed {
                        reconcile = true;
                        break;
                    }
                }
                _ = tokio::time::sleep(wait) => {
                    // Another process may have started or stopped a clock.
                    match t.store.call(|c| sla::next_due(c)).await {
                        Ok(n) => next = n,
                        Err(StoreError::Closed) => return,
                        Err(e) => tracing::debug!(error = %e, "Cannot read the next SLA deadline."),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
