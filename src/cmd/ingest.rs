//! `postdesk ingest`: files, Maildirs, mbox files and stdin → tickets.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Exit;
use crate::config::Config;
use crate::mail::{Direction, RawMail};
use crate::pipeline::{self, Analyzer};
use crate::plan::{Outcome, Policy};
use crate::source::{self, InputKind, maildir, mbox::MboxReader};
use crate::store::Store;
use crate::store::ingest::{IngestItem, IngestReport, SourceEffects, Work, ingest_resilient};

/// Messages per store transaction: large enough to amortize the commit's
/// fsync, small enough to keep memory bounded on big imports.
const BATCH: usize = 64;

pub struct IngestArgs {
    pub json: bool,
    pub dry_run: bool,
    pub mailbox: Option<String>,
    pub outbound: bool,
    pub paths: Vec<PathBuf>,
}

/// Counts for the closing summary.
#[derive(Default)]
struct Tally {
    total: usize,
    created: usize,
    threaded: usize,
    duplicate: usize,
    ignored: usize,
    quarantined: usize,
    acks: usize,
    failed: usize,
}

/// Prints reports as they come, keeping the tally.
struct Printer<'a> {
    cfg: &'a Config,
    json: bool,
    progress: ProgressBar,
    tally: Tally,
}

impl Printer<'_> {
    fn report(&mut self, r: &IngestReport) {
        let t = &mut self.tally;
        t.total += 1;
        match r.outcome {
            Outcome::Created => t.created += 1,
            Outcome::Threaded => t.threaded += 1,
            Outcome::Duplicate => t.duplicate += 1,
            Outcome::Ignored => t.ignored += 1,
            Outcome::Quarantined => t.quarantined += 1,
        }
        t.acks += usize::from(r.ack);
        let ticket = r.ticket.map(|n| self.cfg.ticket_ref(n));
        if self.json {
            let line = serde_json::json!({
                "message_id": r.message_id,
                "outcome": r.outcome,
                "ticket": ticket,
                "class": r.class,
                "language": r.language,
                "ack": r.ack,
                "reason": r.reason,
                "origin": r.origin,
            });
            self.progress.suspend(|| say!("{line}"));
        } else {
            let line = format!(
                "{:<11} {:<8} {:<14} {:<3} {:<3} {}\n{:>12}{}",
                r.outcome.as_str(),
                ticket.as_deref().unwrap_or("-"),
                r.class.map(|c| c.as_str()).unwrap_or("-"),
                r.language.as_deref().unwrap_or("-"),
                if r.ack { "ack" } else { "" },
                r.origin,
                "",
                r.reason
            );
            self.progress.suspend(|| say!("{line}"));
        }
        self.progress.inc(1);
    }

    fn failure(&mut self, origin: &str, e: &dyn std::fmt::Display) {
        self.tally.failed += 1;
        self.tally.total += 1;
        self.progress.suspend(|| {
            eprintln!(
                "postdesk: {}",
                super::terminal_safe(&format!("{origin}: not stored: {e}"))
            )
        });
        self.progress.inc(1);
    }
}

pub fn ingest(cfg: &Config, args: &IngestArgs) -> anyhow::Result<Exit> {
    if let Some(m) = &args.mailbox
        && cfg.mailbox(m).is_none()
    {
        anyhow::bail!(
            "there is no mailbox {m:?} in {}; configured: {}",
            cfg.path.display(),
            cfg.mailboxes
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let stdin_only =
        args.paths.len() == 1 && args.paths.first().is_some_and(|p| p.as_os_str() == "-");
    let mut store = if args.dry_run && !cfg.store.path.exists() {
        // A dry run writes nothing, not even a new empty database.
        Store::open_in_memory()?
    } else {
        match Store::open(&cfg.store.path) {
            Ok(s) => s,
            Err(e) if stdin_only => {
                eprintln!("postdesk: {e}; the MTA will retry the message");
                return Ok(Exit::TempFail);
            }
            Err(e) => return Err(e.into()),
        }
    };
    let key = match store.token_key_for(cfg, !args.dry_run) {
        Ok(k) => k,
        Err(e) if stdin_only => {
            eprintln!("postdesk: {e}; the MTA will retry the message");
            return Ok(Exit::TempFail);
        }
        Err(e) => return Err(e.into()),
    };
    let policy = Policy {
        config: cfg.clone(),
        key,
    };
    let analyzer = Analyzer::new(cfg);
    let direction = if args.outbound {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    let progress = if !args.json && std::io::stderr().is_terminal() {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    } else {
        ProgressBar::hidden()
    };
    progress.set_style(
        ProgressStyle::with_template("{spinner} {pos}/{len} messages {per_sec} {wide_bar} {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut printer = Printer {
        cfg,
        json: args.json,
        progress,
        tally: Tally::default(),
    };
    let mut ctx = Ctx {
        store: &mut store,
        policy: &policy,
        analyzer: &analyzer,
        dry_run: args.dry_run,
    };

    let mut exit = Exit::Success;
    for path in &args.paths {
        let kind = source::classify_input(path)?;
        let with_mailbox = |mut raw: RawMail| {
            raw.mailbox = args.mailbox.clone();
            raw.direction = direction;
            raw
        };
        match kind {
            InputKind::Stdin => {
                let (raw, size) = source::read_stdin(analyzer.max_message_size())
                    .context("cannot read standard input")?;
                let raw = with_mailbox(raw);
                let work = if size > analyzer.max_message_size() {
                    Work::Quarantine(pipeline::too_large(
                        raw.origin,
                        raw.mailbox,
                        &raw.bytes,
                        size,
                        analyzer.max_message_size(),
                    ))
                } else {
                    analyzer.analyze(raw)
                };
                let results = ctx.ingest(vec![IngestItem {
                    work,
                    effects: SourceEffects::default(),
                }]);
                for (origin, r) in results {
                    match r {
                        Ok(report) => printer.report(&report),
                        Err(e) => {
                            printer.failure(&origin, &e);
                            // The MTA keeps the message and delivers it again.
                            exit = Exit::TempFail;
                        }
                    }
                }
            }
            InputKind::File(p) => {
                let raw = with_mailbox(source::read_file(&p)?);
                let results = ctx.ingest(vec![IngestItem {
                    work: analyzer.analyze(raw),
                    effects: SourceEffects::default(),
                }]);
                exit = exit.worst(printer.all(results));
            }
            InputKind::Maildir(dir) => {
                let entries = maildir::scan(&dir, true)?;
                printer.progress.inc_length(entries.len() as u64);
                for chunk in entries.chunks(BATCH) {
                    let mut raws = Vec::with_capacity(chunk.len());
                    let mut oversized = Vec::new();
                    for e in chunk {
                        if e.size_bytes > analyzer.max_message_size() as u64 {
                            let head = maildir::read_head(e, 64 * 1024)?;
                            oversized.push(pipeline::too_large(
                                e.origin(&dir),
                                args.mailbox.clone(),
                                &head,
                                e.size_bytes as usize,
                                analyzer.max_message_size(),
                            ));
                        } else {
                            raws.push(with_mailbox(maildir::read(&dir, e, None)?));
                        }
                    }
                    // Importing a Maildir leaves its files alone; the store
                    // remembers each file, so a second import skips them.
                    let effects = SourceEffects {
                        remember_origin: true,
                        ..SourceEffects::default()
                    };
                    let items: Vec<IngestItem> = analyzer
                        .analyze_batch(raws)
                        .into_iter()
                        .chain(oversized.into_iter().map(Work::Quarantine))
                        .map(|work| IngestItem {
                            work,
                            effects: effects.clone(),
                        })
                        .collect();
                    exit = exit.worst(printer.all(ctx.ingest(items)));
                }
            }
            InputKind::Mbox(p) => {
                let mut batch = Vec::with_capacity(BATCH);
                for raw in MboxReader::open(&p)? {
                    batch.push(with_mailbox(raw?));
                    if batch.len() == BATCH {
                        printer.progress.inc_length(batch.len() as u64);
                        exit = exit.worst(printer.all(ctx.ingest_raw(std::mem::take(&mut batch))));
                    }
                }
                printer.progress.inc_length(batch.len() as u64);
                exit = exit.worst(printer.all(ctx.ingest_raw(batch)));
            }
        }
    }
    printer.progress.finish_and_clear();
    if !args.json {
        let t = &printer.tally;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "{} message{}: {} created, {} threaded, {} duplicate, {} ignored, {} quarantined{}; {} acknowledgement{} queued{}",
            t.total,
            if t.total == 1 { "" } else { "s" },
            t.created,
            t.threaded,
            t.duplicate,
            t.ignored,
            t.quarantined,
            if t.failed > 0 {
                format!(", {} NOT STORED", t.failed)
            } else {
                String::new()
            },
            t.acks,
            if t.acks == 1 { "" } else { "s" },
            if args.dry_run {
                " (dry run: nothing was written)"
            } else {
                ""
            },
        );
    }
    Ok(exit)
}

impl Exit {
    fn worst(self, other: Exit) -> Exit {
        match (self, other) {
            (Exit::TempFail, _) | (_, Exit::TempFail) => Exit::TempFail,
            (Exit::Failure, _) | (_, Exit::Failure) => Exit::Failure,
            _ => Exit::Success,
        }
    }
}

impl Printer<'_> {
    fn all(
        &mut self,
        results: Vec<(String, Result<IngestReport, crate::store::StoreError>)>,
    ) -> Exit {
        let mut exit = Exit::Success;
        for (origin, r) in results {
            match r {
                Ok(report) => self.report(&report),
                Err(e) => {
                    self.failure(&origin, &e);
                    exit = Exit::Failure;
                }
            }
        }
        exit
    }
}

/// What every input kind needs to hand messages to the store.
struct Ctx<'a> {
    store: &'a mut Store,
    policy: &'a Policy,
    analyzer: &'a Analyzer,
    dry_run: bool,
}

impl Ctx<'_> {
    fn ingest(
        &mut self,
        items: Vec<IngestItem>,
    ) -> Vec<(String, Result<IngestReport, crate::store::StoreError>)> {
        let origins: Vec<String> = items.iter().map(|i| i.work.origin().key()).collect();
        let results = ingest_resilient(
            &mut self.store.conn,
            &items,
            self.policy,
            jiff::Timestamp::now(),
            self.dry_run,
        );
        origins.into_iter().zip(results).collect()
    }

    fn ingest_raw(
        &mut self,
        raws: Vec<RawMail>,
    ) -> Vec<(String, Result<IngestReport, crate::store::StoreError>)> {
        let items = self
            .analyzer
            .analyze_batch(raws)
            .into_iter()
            .map(|work| IngestItem {
                work,
                effects: SourceEffects::default(),
            })
            .collect();
        self.ingest(items)
    }
}
