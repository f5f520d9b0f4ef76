//! The command line: clap types only. This is the contract other tools
//! and tests rely on; `main.rs` maps it to the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// postdesk: support mailboxes in, tickets out.
#[derive(Debug, Parser)]
#[command(name = "postdesk", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Config file [default: $POSTDESK_CONFIG, then /etc/postdesk/postdesk.toml].
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log format: auto, human, json or journald (overrides log.format).
    #[arg(long, global = true, value_name = "FORMAT")]
    pub log_format: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Turn messages into tickets: .eml files, Maildirs, mbox files, or `-`
    /// for one message on stdin (an MTA pipe; exits 75 when it could not be
    /// stored, so the MTA retries).
    Ingest {
        /// Print one JSON object per message.
        #[arg(long)]
        json: bool,
        /// Decide everything, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// The configured mailbox these messages were sent to [default: by recipient].
        #[arg(long, value_name = "NAME")]
        mailbox: Option<String>,
        /// Messages as outbound (our own agents' sent mail).
        #[arg(long)]
        outbound: bool,
        #[arg(required = true, value_name = "PATH|-")]
        paths: Vec<PathBuf>,
    },
    /// List tickets, newest first.
    Tickets {
        /// open, waiting or closed.
        #[arg(long, value_name = "STATUS")]
        status: Option<String>,
        #[arg(long, value_name = "QUEUE")]
        queue: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// Show a ticket and its messages in order.
    Show {
        /// e.g. PD-42
        ticket: String,
        /// Include the event log (why each message went where).
        #[arg(long)]
        events: bool,
        #[arg(long)]
        json: bool,
    },
    /// Health and counts; exit code 0 healthy, 1 degraded.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// The daemon: watch the configured mailboxes, send the outbox.
    Run {
        /// One pass over every source and the outbox, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Validate the config file and say what to fix.
    CheckConfig,
}
