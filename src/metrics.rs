//! Prometheus metrics: counters and histograms recorded where things
//! happen (through the `metrics` facade, so recording is a no-op when no
//! exporter is installed, as in one-shot commands), and gauges computed
//! from the database at scrape time, so `/metrics` agrees with
//! `postdesk status`.
//!
//! Every name is a constant here: one place to see what is exported.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Messages ingested, by `class` and `outcome`.
pub const MESSAGES_INGESTED: &str = "postdesk_messages_ingested_total";
/// Seconds from a message's arrival at postdesk (read from its source) to
/// its commit.
pub const INGEST_LATENCY: &str = "postdesk_ingest_latency_seconds";
/// Successful passes over a source, by `source`.
pub const SOURCE_SYNCS: &str = "postdesk_source_syncs_total";
/// Failed connections or passes, by `source`.
pub const SOURCE_ERRORS: &str = "postdesk_source_errors_total";
/// Seconds since a source's last successful sync, by `source` (scrape time).
pub const SOURCE_SYNC_LAG: &str = "postdesk_source_sync_lag_seconds";
/// Outgoing mail sent, retried (temporary failure) and failed, by `kind`.
pub const OUTBOX_SENT: &str = "postdesk_outbox_sent_total";
pub const OUTBOX_RETRIED: &str = "postdesk_outbox_retried_total";
pub const OUTBOX_FAILED: &str = "postdesk_outbox_failed_total";
/// Rows waiting in the outbox, and rows failed for good (scrape time).
pub const OUTBOX_PENDING: &str = "postdesk_outbox_pending";
pub const OUTBOX_FAILED_ROWS: &str = "postdesk_outbox_failed_rows";
/// Tickets per `queue` (scrape time).
pub const SLA_OPEN: &str = "postdesk_sla_open_tickets";
pub const SLA_WAITING: &str = "postdesk_sla_waiting_tickets";
pub const SLA_DUE_SOON: &str = "postdesk_sla_due_soon_tickets";
pub const SLA_BREACHED: &str = "postdesk_sla_breached_tickets";
/// Quarantined messages not yet replayed or dropped (scrape time).
pub const QUARANTINE_SIZE: &str = "postdesk_quarantine_messages";
/// 1 when postdesk is healthy (the rule of `postdesk status`), else 0.
pub const HEALTHY: &str = "postdesk_healthy";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder once per process; returns its handle.
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(h) = HANDLE.get() {
        return Ok(h.clone());
    }
    let buckets = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(INGEST_LATENCY.to_owned()), &buckets)
        .map_err(|e| e.to_string())?
        .install_recorder()
        .map_err(|e| e.to_string())?;
    describe();
    Ok(HANDLE.get_or_init(|| handle).clone())
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        MESSAGES_INGESTED,
        "Messages ingested, by class and outcome."
    );
    describe_histogram!(
        INGEST_LATENCY,
        metrics::Unit::Seconds,
        "From reading a message to its commit."
    );
    describe_counter!(SOURCE_SYNCS, "Successful passes over a source.");
    describe_counter!(SOURCE_ERRORS, "Failed connections or passes over a source.");
    describe_gauge!(
        SOURCE_SYNC_LAG,
        metrics::Unit::Seconds,
        "Seconds since the source's last successful sync."
    );
    describe_counter!(OUTBOX_SENT, "Outgoing mail sent, by kind.");
    describe_counter!(
        OUTBOX_RETRIED,
        "Outgoing mail that failed temporarily and will be retried, by kind."
    );
    describe_counter!(
        OUTBOX_FAILED,
        "Outgoing mail that failed for good, by kind."
    );
    describe_gauge!(OUTBOX_PENDING, "Rows waiting in the outbox.");
    describe_gauge!(OUTBOX_FAILED_ROWS, "Outbox rows failed for good.");
    describe_gauge!(SLA_OPEN, "Open tickets (waiting on us), by queue.");
    describe_gauge!(SLA_WAITING, "Tickets waiting on the customer, by queue.");
    describe_gauge!(
        SLA_DUE_SOON,
        "Open tickets inside their warning window, by queue."
    );
    describe_gauge!(
        SLA_BREACHED,
        "Open tickets past their response target, by queue."
    );
    describe_gauge!(
        QUARANTINE_SIZE,
        "Quarantined messages not yet replayed or dropped."
    );
    describe_gauge!(HEALTHY, "1 when postdesk is healthy, 0 when degraded.");
}

/// Records one ingested message.
pub fn ingested(class: &str, outcome: &str, latency: Duration) {
    metrics::counter!(MESSAGES_INGESTED, "class" => class.to_owned(), "outcome" => outcome.to_owned()).increment(1);
    metrics::histogram!(INGEST_LATENCY).record(latency.as_secs_f64());
}

pub fn source_synced(source: &str) {
    metrics::counter!(SOURCE_SYNCS, "source" => source.to_owned()).increment(1);
}

pub fn source_error(source: &str) {
    metrics::counter!(SOURCE_ERRORS, "source" => source.to_owned()).increment(1);
}

/// Records an outbox send result: "sent", "retried" or "failed".
pub fn outbox(result: &str, kind: &str) {
    let name = match result {
        "sent" => OUTBOX_SENT,
        "retried" => OUTBOX_RETRIED,
        _ => OUTBOX_FAILED,
    };
    metrics::counter!(name, "kind" => kind.to_owned()).increment(1);
}
