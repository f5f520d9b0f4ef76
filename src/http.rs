//! The optional HTTP listener (`[http] listen = "127.0.0.1:9187"`):
//! `/metrics` in Prometheus text format and `/healthz` as JSON with the
//! same health rule as `postdesk status` (200 healthy, 503 degraded).
//!
//! Gauges (queues, sync lag, outbox, quarantine) are computed from the
//! database at scrape time on a read-only connection, so they never drift
//! from what `postdesk status` says; counters and the latency histogram
//! are recorded where things happen ([`crate::metrics`]).

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics as m;
use crate::status::{self, StatusReport};
use crate::store::Store;

/// What the handlers need; the config is swapped on reload.
#[derive(Clone)]
pub struct HttpState {
    pub config: Arc<RwLock<Arc<Config>>>,
    pub prometheus: PrometheusHandle,
}

impl HttpState {
    fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }
}

/// Serves on a bound listener until `stop` is cancelled.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    stop: CancellationToken,
) -> std::io::Result<()> {
    tracing::info!(listen = %listener.local_addr()?, "Serving /metrics and /healthz.");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
}

/// Reads the status report on a blocking thread.
async fn report(state: &HttpState) -> Result<StatusReport, String> {
    let cfg = state.config();
    let path: PathBuf = cfg.store.path.clone();
    tokio::task::spawn_blocking(move || {
        let store = Store::open_readonly(&path).map_err(|e| e.to_string())?;
        status::collect(&store.conn, &cfg, jiff::Timestamp::now()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn metrics(State(state): State<HttpState>) -> Response {
    match report(&state).await {
        Ok(r) => set_gauges(&r),
        Err(e) => tracing::warn!(error = %e, "Cannot read the database for /metrics gauges."),
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
        .into_response()
}

async fn healthz(State(state): State<HttpState>) -> Response {
    match report(&state).await {
        Ok(r) => {
            let code = if r.healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
            (code, axum::Json(serde_json::json!({
                "status": if r.healthy { "healthy" } else { "degraded" },
                "problems": r.problems,
                "summary": r.summary_line(),
            })))
                .into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({ "status": "degraded", "problems": [format!("cannot read the database: {e}")] })),
        )
            .into_response(),
    }
}

fn set_gauges(r: &StatusReport) {
    for q in &r.queues {
        let queue = q.counts.queue.clone();
        metrics::gauge!(m::SLA_OPEN, "queue" => queue.clone()).set(q.counts.open as f64);
        metrics::gauge!(m::SLA_WAITING, "queue" => queue.clone()).set(q.counts.waiting as f64);
        metrics::gauge!(m::SLA_DUE_SOON, "queue" => queue.clone()).set(q.due_soon as f64);
        metrics::gauge!(m::SLA_BREACHED, "queue" => queue).set(q.breached as f64);
    }
    for mb in &r.mailboxes {
        for s in &mb.sources {
            if let Some(t) = s.synced_at {
                let lag = r.generated_at.duration_since(t).as_secs_f64().max(0.0);
                metrics::gauge!(m::SOURCE_SYNC_LAG, "source" => s.source.clone()).set(lag);
            }
        }
    }
    metrics::gauge!(m::OUTBOX_PENDING).set(r.outbox.pending as f64);
    metrics::gauge!(m::OUTBOX_FAILED_ROWS).set(r.outbox.failed as f64);
    metrics::gauge!(m::QUARANTINE_SIZE).set(r.quarantine as f64);
    metrics::gauge!(m::HEALTHY).set(if r.healthy { 1.0 } else { 0.0 });
}
