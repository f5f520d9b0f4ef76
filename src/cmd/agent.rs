//! `postdesk reply`, `note`, `close` and `reopen`: what an agent does to a
//! ticket from the command line. Each is one transaction in the store
//! ([`crate::store::sla`]), together with what it does to the ticket's
//! response clock; a running daemon sends a queued reply within its
//! heartbeat step, `postdesk run --once` sends it at once.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};

use anyhow::Context;
use jiff::Timestamp;

use super::Exit;
use crate::config::Config;
use crate::plan::Policy;
use crate::store::Store;
use crate::store::sla::{self, Agent, StatusChange};

/// What `reply` and `note` were given.
#[derive(Debug, Clone)]
pub struct TextArgs {
    pub ticket: String,
    /// Read the text from this file; stdin when `None` or `-`.
    pub file: Option<PathBuf>,
}

fn ticket_number(cfg: &Config, ticket: &str) -> anyhow::Result<i64> {
    cfg.parse_ticket_ref(ticket).with_context(|| {
        format!(
            "{ticket:?} is not a ticket; write it as {} (see `postdesk tickets`)",
            cfg.ticket_ref(42)
        )
    })
}

fn open(cfg: &Config) -> anyhow::Result<Store> {
    if !cfg.store.path.exists() {
        anyhow::bail!(
            "there is no database at {} yet; run `postdesk ingest` or `postdesk run` first",
            cfg.store.path.display()
        );
    }
    Store::open(&cfg.store.path).with_context(|| format!("opening {}", cfg.store.path.display()))
}

/// The text of a reply or note: the file's content, or stdin.
fn read_text(file: Option<&Path>) -> anyhow::Result<String> {
    match file.filter(|f| f.as_os_str() != "-") {
        Some(f) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read {}; pass a UTF-8 text file", f.display())),
        None => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("postdesk: type the text, then Ctrl-D on a line of its own");
            }
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .context("cannot read the text from stdin; pass --file FILE")?;
            Ok(text)
        }
    }
}

/// Who is typing, for the audit trail: the login name. The reply is
/// signed with the mailbox's display name only.
fn agent() -> Agent {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty());
    Agent { user, name: None }
}

pub fn reply(cfg: &Config, args: &TextArgs) -> anyhow::Result<Exit> {
    let id = ticket_number(cfg, &args.ticket)?;
    let text = read_text(args.file.as_deref())?;
    let mut store = open(cfg)?;
    let key = store
        .token_key(cfg)
        .context("reading the reply-token key")?;
    let policy = Policy {
        config: cfg.clone(),
        key,
    };
    let queued = sla::queue_reply(
        &mut store.conn,
        &policy,
        id,
        &text,
        &agent(),
        Timestamp::now(),
    )?;
    say!(
        "{}: reply to {} queued (outbox {}){}; the ticket now waits on the customer{}",
        cfg.ticket_ref(id),
        queued.to,
        queued.outbox,
        queued
            .in_reply_to
            .as_deref()
            .map(|m| format!(", in reply to <{m}>"))
            .unwrap_or_default(),
        match queued.stopped_clock {
            Some(seq) => format!(", response clock {seq} stopped"),
            None => String::new(),
        }
    );
    Ok(Exit::Success)
}

pub fn note(cfg: &Config, args: &TextArgs) -> anyhow::Result<Exit> {
    let id = ticket_number(cfg, &args.ticket)?;
    let text = read_text(args.file.as_deref())?;
    let mut store = open(cfg)?;
    sla::add_note(&mut store.conn, cfg, id, &text, &agent(), Timestamp::now())?;
    say!("{}: note added (internal; not mailed)", cfg.ticket_ref(id));
    Ok(Exit::Success)
}

pub fn close(cfg: &Config, ticket: &str) -> anyhow::Result<Exit> {
    let id = ticket_number(cfg, ticket)?;
    let mut store = open(cfg)?;
    match sla::close(&mut store.conn, cfg, id, &agent(), Timestamp::now())? {
        StatusChange::Already => say!("{} is already closed", cfg.ticket_ref(id)),
        StatusChange::Done { clock } => say!(
            "{}: closed{}",
            cfg.ticket_ref(id),
            clock
                .map(|seq| format!("; response clock {seq} stopped"))
                .unwrap_or_default()
        ),
    }
    Ok(Exit::Success)
}

pub fn reopen(cfg: &Config, ticket: &str) -> anyhow::Result<Exit> {
    let id = ticket_number(cfg, ticket)?;
    let mut store = open(cfg)?;
    match sla::reopen(&mut store.conn, cfg, id, &agent(), Timestamp::now())? {
        StatusChange::Already => say!("{} is already open", cfg.ticket_ref(id)),
        StatusChange::Done { clock } => say!(
            "{}: reopened{}",
            cfg.ticket_ref(id),
            clock
                .map(|seq| format!("; response clock {seq} started"))
                .unwrap_or_default()
        ),
    }
    Ok(Exit::Success)
}
