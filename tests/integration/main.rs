//! postdesk's integration tests: one binary (so the mail servers and the
//! built postdesk are shared), one module per area.

mod cli;
mod harness;
mod ingest;
mod smoke;
