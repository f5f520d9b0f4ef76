//! `postdesk quarantine list|show|replay|drop`: mail that could not be
//! processed, and a way back into the pipeline once the cause is fixed
//! (a parser fix, a larger `ingest.max_message_size`).

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use super::{Exit, short_time};
use crate::config::Config;
use crate::mail::{Direction, Origin, RawMail};
use crate::pipeline::Analyzer;
use crate::plan::Policy;
use crate::store::Store;
use crate::store::ingest::{IngestItem, SourceEffects, Work, ingest_batch};
use crate::store::quarantine;

pub fn list(cfg: &Config, all: bool, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open_readonly(&cfg.store.path)?;
    let rows = quarantine::list(&store.conn, all)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        println!("the quarantine is empty");
    }
    for q in &rows {
        println!(
            "{:>5}  {}  {:>9} bytes{}  {}\n       {}{}",
            q.id,
            short_time(q.received_at),
            q.size_bytes,
            if q.has_raw { "" } else { " (headers only)" },
            q.origin,
            q.reason,
            q.resolution
                .as_deref()
                .map(|r| format!(" [{r}]"))
                .unwrap_or_default()
        );
    }
    Ok(Exit::Success)
}

pub fn show(cfg: &Config, id: i64, raw: bool) -> anyhow::Result<Exit> {
    let store = Store::open_readonly(&cfg.store.path)?;
    let Some(quarantine::QuarantinedBytes {
        entry: q,
        raw: bytes,
        headers,
    }) = quarantine::get(&store.conn, id)?
    else {
        anyhow::bail!("there is no quarantined message {id}; see `postdesk quarantine list`");
    };
    if raw {
        let data = bytes
            .or_else(|| headers.map(String::into_bytes))
            .unwrap_or_default();
        std::io::stdout().lock().write_all(&data)?;
        return Ok(Exit::Success);
    }
    println!("quarantined message {}", q.id);
    println!("  origin    {}", q.origin);
    println!("  mailbox   {}", q.mailbox.as_deref().unwrap_or("-"));
    println!("  received  {} UTC", short_time(q.received_at));
    println!(
        "  size      {} bytes{}",
        q.size_bytes,
        if q.has_raw {
            ""
        } else {
            " (too large: only the headers were kept)"
        }
    );
    println!("  reason    {}", q.reason);
    if let Some(r) = &q.resolution {
        println!("  resolved  {r}");
    }
    let head = bytes
        .as_deref()
        .map(crate::pipeline::header_section)
        .or(headers)
        .unwrap_or_default();
    println!("\n{head}");
    println!("\n(the whole message: postdesk quarantine show {id} --raw)");
    Ok(Exit::Success)
}

pub fn drop(cfg: &Config, ids: &[i64]) -> anyhow::Result<Exit> {
    let store = Store::open(&cfg.store.path)?;
    let mut exit = Exit::Success;
    for id in ids {
        if quarantine::resolve(&store.conn, *id, "dropped", jiff::Timestamp::now())? {
            println!("dropped {id}");
        } else {
            eprintln!("postdesk: {id} is not an open quarantine entry");
            exit = Exit::Failure;
        }
    }
    Ok(exit)
}

/// Runs quarantined messages through the pipeline again. `max_size`
/// overrides `ingest.max_message_size` for this replay.
pub fn replay(
    cfg: &Config,
    ids: &[i64],
    all: bool,
    max_size: Option<usize>,
) -> anyhow::Result<Exit> {
    let mut cfg = cfg.clone();
    if let Some(m) = max_size {
        cfg.ingest.max_message_size = m;
    }
    let mut store = Store::open(&cfg.store.path)?;
    let key = store.token_key(&cfg)?;
    let policy = Policy {
        config: cfg.clone(),
        key,
    };
    let analyzer = Analyzer::new(&cfg);
    let targets: Vec<i64> = if all {
        quarantine::list(&store.conn, false)?
            .into_iter()
            .map(|q| q.id)
            .collect()
    } else {
        ids.to_vec()
    };
    if targets.is_empty() {
        println!("nothing to replay");
        return Ok(Exit::Success);
    }
    let mut exit = Exit::Success;
    for id in targets {
        match replay_one(&mut store, &policy, &analyzer, id) {
            Ok(line) => println!("{id}: {line}"),
            Err(e) => {
                eprintln!("postdesk: {id}: {e:#}");
                exit = Exit::Failure;
            }
        }
    }
    Ok(exit)
}

fn replay_one(
    store: &mut Store,
    policy: &Policy,
    analyzer: &Analyzer,
    id: i64,
) -> anyhow::Result<String> {
    let Some(quarantine::QuarantinedBytes {
        entry: q,
        raw: bytes,
        ..
    }) = quarantine::get(&store.conn, id)?
    else {
        anyhow::bail!("there is no quarantined message {id}");
    };
    if q.resolved_at.is_some() {
        anyhow::bail!("already {}", q.resolution.as_deref().unwrap_or("resolved"));
    }
    let bytes = match bytes {
        Some(b) => b,
        None => recover(&q.origin).with_context(|| {
            format!(
                "the message was too large to keep; its original at {} is needed",
                q.origin
            )
        })?,
    };
    let raw = RawMail {
        origin: Origin::Replay { quarantine_id: id },
        mailbox: q.mailbox.clone(),
        direction: Direction::Inbound,
        arrived: Some(q.received_at),
        bytes,
    };
    let work = analyzer.analyze(raw);
    if let Work::Quarantine(again) = &work {
        quarantine::set_reason(&store.conn, id, &again.reason)?;
        anyhow::bail!("still cannot be processed: {}", again.reason);
    }
    let item = IngestItem {
        work,
        effects: SourceEffects::default(),
    };
    let now = jiff::Timestamp::now();
    let report = ingest_batch(
        &mut store.conn,
        std::slice::from_ref(&item),
        policy,
        now,
        false,
    )?
    .pop()
    .context("no report")?;
    quarantine::resolve(&store.conn, id, "replayed", now)?;
    Ok(format!(
        "{}{} ({})",
        report.outcome.as_str(),
        report
            .ticket
            .map(|t| format!(" {}", policy.config.ticket_ref(t)))
            .unwrap_or_default(),
        report.reason
    ))
}

/// Reads a message too large to have been kept from where it came from.
fn recover(origin: &str) -> anyhow::Result<Vec<u8>> {
    if let Some(path) = origin.strip_prefix("file:") {
        return Ok(std::fs::read(path)?);
    }
    if let Some(rest) = origin.strip_prefix("maildir:")
        && let Some((dir, unique)) = rest.rsplit_once('#')
    {
        for sub in ["new", "cur"] {
            let d = Path::new(dir).join(sub);
            for entry in
                std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))?
            {
                let entry = entry?;
                if entry.file_name().to_string_lossy().split(":2,").next() == Some(unique) {
                    return Ok(std::fs::read(entry.path())?);
                }
            }
        }
        anyhow::bail!("the file {unique} is no longer in {dir}");
    }
    anyhow::bail!(
        "it can only be read again from {origin}; raise ingest.max_message_size and have the source fetch it again"
    )
}
