//! postdesk's integration tests: one binary (so the mail servers and the
//! built postdesk are shared), one module per area.

// Test helpers fail loudly by design: an unwrap here is an assertion.
#![allow(clippy::unwrap_used)]

mod cli;
mod crash;
mod harness;
mod imap;
mod ingest;
mod ops;
mod outbox;
mod quarantine;
mod sla;
mod smoke;
mod systemd;
