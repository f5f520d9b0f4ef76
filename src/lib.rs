//! postdesk: support mailboxes in, tickets out.
//!
//! Data flows one way. A **source** (Maildir, mbox, `.eml`, stdin, IMAP)
//! yields [`mail::RawMail`]; the pure stages turn it into an
//! [`mail::AnalyzedMail`]:
//!
//! ```text
//! source → parse → classify → extract → detect ──┐
//!                                                 ▼
//!        store (one transaction: thread → plan → write ticket, message,
//!               events, outbox rows, checkpoint) → notify (outbox → SMTP/file)
//! ```
//!
//! `thread` and `plan` are pure too; they run inside the store's write
//! transaction on what it just read, so decisions that depend on stored
//! state (duplicates, threading, rate limits) never race. I/O lives only in
//! `source`, `store` and `notify`.

pub mod classify;
pub mod cli;
pub mod cmd;
pub mod config;
pub mod daemon;
pub mod detect;
pub mod extract;
pub mod health;
pub mod http;
pub mod mail;
pub mod metrics;
pub mod notify;
pub mod parse;
pub mod pipeline;
pub mod plan;
pub mod route;
pub mod secret;
pub mod sla;
pub mod source;
pub mod status;
pub mod store;
pub mod supervisor;
pub mod systemd;
pub mod telemetry;
pub mod thread;
pub mod tls;
pub mod token;
