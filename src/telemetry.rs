//! Logging setup: journald with structured fields under systemd, human
//! text on a terminal, or JSON lines, as configured.
//!
//! The filter comes from `RUST_LOG` when set, else from `log.level` (the
//! daemon) or `warn` (one-shot commands, whose output is their result).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{Config, LogFormat};

fn format_of(cfg: &Config, flag: Option<&str>) -> LogFormat {
    match flag {
        Some("human") => LogFormat::Human,
        Some("json") => LogFormat::Json,
        Some("journald") => LogFormat::Journald,
        _ => cfg.log.format,
    }
}

/// Libraries that log protocol traffic, credentials included (async-imap
/// traces `LOGIN "user" "password"` and AUTHENTICATE data): they are held
/// at `info` whatever RUST_LOG asks for, so no setting puts a secret in
/// the log.
const SECRET_BEARING: &[&str] = &["async_imap", "imap_proto", "lettre"];

fn filter(default: &str) -> EnvFilter {
    EnvFilter::new(filter_spec(
        std::env::var("RUST_LOG").ok().as_deref(),
        default,
    ))
}

/// The filter directives: RUST_LOG (else `default`) without directives for
/// the secret-bearing libraries, then those capped at `info`.
fn filter_spec(env: Option<&str>, default: &str) -> String {
    let base = env.filter(|e| !e.trim().is_empty()).unwrap_or(default);
    let mut parts: Vec<&str> = base
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty() && !SECRET_BEARING.iter().any(|t| d.starts_with(t)))
        .collect();
    let caps: Vec<String> = SECRET_BEARING.iter().map(|t| format!("{t}=info")).collect();
    parts.extend(caps.iter().map(String::as_str));
    parts.join(",")
}

/// True when stderr goes to the journal (systemd sets JOURNAL_STREAM).
fn under_journald() -> bool {
    std::env::var_os("JOURNAL_STREAM").is_some()
}

fn init(format: LogFormat, level: &str) {
    let registry = tracing_subscriber::registry().with(filter(level));
    let format = match format {
        LogFormat::Auto if under_journald() => LogFormat::Journald,
        LogFormat::Auto => LogFormat::Human,
        f => f,
    };
    let result = match format {
        LogFormat::Journald => match tracing_journald::layer() {
            Ok(layer) => registry
                .with(layer.with_syslog_identifier("postdesk".into()))
                .try_init(),
            Err(e) => {
                eprintln!("postdesk: journald is not reachable ({e}); logging to stderr");
                registry.with(human()).try_init()
            }
        },
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Human | LogFormat::Auto => registry.with(human()).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

fn human<S>() -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
}

/// For one-shot commands: warnings and errors only, unless RUST_LOG says otherwise.
pub fn init_cli(cfg: &Config, flag: Option<&str>) {
    init(format_of(cfg, flag), "warn");
}

/// For the daemon: the configured level.
pub fn init_daemon(cfg: &Config, flag: Option<&str>) {
    init(format_of(cfg, flag), &cfg.log.level);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_traces_stay_capped_whatever_rust_log_says() {
        assert_eq!(
            filter_spec(Some("trace,async_imap=trace,lettre=debug"), "info"),
            "trace,async_imap=info,imap_proto=info,lettre=info"
        );
        assert_eq!(
            filter_spec(None, "warn"),
            "warn,async_imap=info,imap_proto=info,lettre=info"
        );
    }
}
