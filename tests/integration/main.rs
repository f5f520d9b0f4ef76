//! postdesk's integration tests: one binary (so the mail servers and the
//! built postdesk are shared), one module per area.

mod cli;
mod crash;
mod harness;
mod imap;
mod ingest;
mod outbox;
mod quarantine;
mod sla;
mod smoke;
mod systemd;
