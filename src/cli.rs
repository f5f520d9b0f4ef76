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
        /// Only tickets inside their warning window (response due soon).
        #[arg(long)]
        due: bool,
        /// Only tickets past their response due time.
        #[arg(long)]
        breached: bool,
    },
    /// Answer the customer: the text from --file or stdin goes out through
    /// the outbox, threaded onto their last message with the ticket's tag;
    /// the response clock stops and the ticket waits on the customer.
    Reply {
        /// e.g. PD-42
        ticket: String,
        /// The answer as a UTF-8 text file [default: stdin].
        #[arg(long, short = 'f', value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Add an internal note to a ticket (never mailed).
    Note {
        /// e.g. PD-42
        ticket: String,
        /// The note as a UTF-8 text file [default: stdin].
        #[arg(long, short = 'f', value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Close a ticket; its response clock stops.
    Close {
        /// e.g. PD-42
        ticket: String,
    },
    /// Reopen a closed ticket; a next-response clock starts.
    Reopen {
        /// e.g. PD-42
        ticket: String,
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
        /// Print message N of the ticket (numbered as listed, from 1)
        /// exactly as it was received, e.g. to save it as an .eml file.
        #[arg(long, value_name = "N", conflicts_with_all = ["events", "json"])]
        raw: Option<usize>,
        /// Print attachment N of the ticket (numbered as listed, from 1),
        /// decoded, e.g. `> invoice.pdf`.
        #[arg(long, value_name = "N", conflicts_with_all = ["events", "json", "raw"])]
        attachment: Option<usize>,
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
    CheckConfig {
        /// Also log in to every IMAP mailbox and the SMTP relay, changing
        /// nothing there: report the server's capabilities, each folder's
        /// counts and what the next run would fetch.
        #[arg(long)]
        connect: bool,
    },
    /// Mail that could not be processed: list, show, replay or drop it.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
}

/// What to do with quarantined mail.
#[derive(Debug, Subcommand)]
pub enum QuarantineAction {
    /// Open entries (with --all also replayed and dropped ones).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// One entry: why, where from, its headers.
    Show {
        id: i64,
        /// Print the message itself.
        #[arg(long)]
        raw: bool,
    },
    /// Run entries through the pipeline again (after a fix or with a larger size limit).
    Replay {
        #[arg(required_unless_present = "all")]
        ids: Vec<i64>,
        /// Every open entry.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Override ingest.max_message_size for this replay, e.g. "100 MiB".
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
    },
    /// Discard entries (their bytes are deleted; the record stays).
    Drop {
        #[arg(required = true)]
        ids: Vec<i64>,
    },
}
