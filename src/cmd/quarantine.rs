//! `postdesk quarantine list|show|replay|drop`: mail that could not be
//! processed, and a way back into the pipeline once the cause is fixed
//! (a parser fix, a larger `ingest.max_message_size`).

use std::path::Path;

use anyhow::Context;

use super::{Exit, short_time};
use crate::config::{Config, ImapConfig, SourceConfig};
use crate::mail::{Direction, Origin, RawMail};
use crate::pipeline::Analyzer;
use crate::plan::Policy;
use crate::source::imap::sync::Refetched;
use crate::store::Store;
use crate::store::ingest::{IngestItem, SourceEffects, Work, ingest_batch};
use crate::store::quarantine;

pub fn list(cfg: &Config, all: bool, json: bool) -> anyhow::Result<Exit> {
    let store = Store::open_readonly(&cfg.store.path)?;
    let rows = quarantine::list(&store.conn, all)?;
    if json {
        say!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        say!("the quarantine is empty");
    }
    for q in &rows {
        say!(
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
        let mut out = std::io::stdout().lock();
        if std::io::IsTerminal::is_terminal(&out) && !super::terminal_can_show(&data) {
            anyhow::bail!(
                "message {id} holds bytes a terminal would act on (escape sequences or binary); redirect it to a file: postdesk quarantine show {id} --raw > message.eml"
            );
        }
        return super::write_bytes(&mut out, &data);
    }
    say!("quarantined message {}", q.id);
    say!("  origin    {}", q.origin);
    say!("  mailbox   {}", q.mailbox.as_deref().unwrap_or("-"));
    say!("  received  {} UTC", short_time(q.received_at));
    say!(
        "  size      {} bytes{}",
        q.size_bytes,
        if q.has_raw {
            ""
        } else {
            " (too large: only the headers were kept)"
        }
    );
    say!("  reason    {}", q.reason);
    if let Some(r) = &q.resolution {
        say!("  resolved  {r}");
    }
    let head = bytes
        .as_deref()
        .map(crate::pipeline::header_section)
        .or(headers)
        .unwrap_or_default();
    say!("\n{head}");
    say!("\n(the whole message: postdesk quarantine show {id} --raw)");
    Ok(Exit::Success)
}

pub fn drop(cfg: &Config, ids: &[i64]) -> anyhow::Result<Exit> {
    let store = Store::open(&cfg.store.path)?;
    let mut exit = Exit::Success;
    for id in ids {
        if quarantine::resolve(&store.conn, *id, "dropped", jiff::Timestamp::now())? {
            say!("dropped {id}");
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
        say!("nothing to replay");
        return Ok(Exit::Success);
    }
    let mut exit = Exit::Success;
    for id in targets {
        match replay_one(&mut store, &policy, &analyzer, id) {
            Ok(line) => say!("{id}: {line}"),
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
        None => recover(&policy.config, &q.origin).with_context(|| {
            format!(
                "the message was too large to keep; its original at {} is needed",
                q.origin
            )
        })?,
    };
    let raw = RawMail {
        origin: Origin::Replay { quarantine_id: id },
        mailbox: q.mailbox.clone(),
        direction: direction_of(&policy.config, &q.origin),
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

/// Where an `imap:` origin points: mailbox, folder, UIDVALIDITY, UID
/// (the format of [`Origin::key`]; a folder name may contain `/`).
fn imap_origin(origin: &str) -> Option<(&str, &str, u32, u32)> {
    let rest = origin.strip_prefix("imap:")?;
    let (mailbox, rest) = rest.split_once('/')?;
    let (rest, uid) = rest.rsplit_once('/')?;
    let (folder, uidvalidity) = rest.rsplit_once('/')?;
    Some((
        mailbox,
        folder,
        uidvalidity.parse().ok()?,
        uid.parse().ok()?,
    ))
}

/// The IMAP settings of the configured mailbox `name`.
fn imap_config<'c>(cfg: &'c Config, name: &str) -> Option<&'c ImapConfig> {
    cfg.mailboxes
        .iter()
        .find(|m| m.name == name)
        .and_then(|m| match &m.source {
            Some(SourceConfig::Imap(i)) => Some(i),
            _ => None,
        })
}

/// Mail quarantined from a mailbox's Sent folder is our agents' and is
/// replayed as outbound, as the source would have stored it.
fn direction_of(cfg: &Config, origin: &str) -> Direction {
    let from_sent = imap_origin(origin).is_some_and(|(mailbox, folder, _, _)| {
        imap_config(cfg, mailbox).is_some_and(|i| i.sent_folder.as_deref() == Some(folder))
    });
    if from_sent {
        Direction::Outbound
    } else {
        Direction::Inbound
    }
}

/// Reads a message too large to have been kept from where it came from:
/// its file, or its IMAP server (read-only; nothing there changes).
fn recover(cfg: &Config, origin: &str) -> anyhow::Result<Vec<u8>> {
    if let Some((mailbox, folder, uidvalidity, uid)) = imap_origin(origin) {
        let Some(imap) = imap_config(cfg, mailbox) else {
            anyhow::bail!("mailbox {mailbox:?} is no longer configured for IMAP");
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let fetched = runtime
            .block_on(crate::source::imap::sync::refetch(
                imap,
                folder,
                uidvalidity,
                uid,
            ))
            .with_context(|| {
                format!(
                    "fetching UID {uid} from {}:{} {folder:?}",
                    imap.host, imap.port
                )
            })?;
        return match fetched {
            Refetched::Found(bytes) => Ok(bytes),
            Refetched::Gone => anyhow::bail!(
                "the server no longer has UID {uid} in {folder:?} (expunged or moved); find the message and use `postdesk ingest`"
            ),
            Refetched::Renumbered => anyhow::bail!(
                "the UIDVALIDITY of {folder:?} changed, so UID {uid} may be another message; find the message and use `postdesk ingest`"
            ),
        };
    }

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
    if let Some((path, index)) = origin
        .strip_prefix("mbox:")
        .and_then(|rest| rest.rsplit_once('#'))
        && let Ok(index) = index.parse::<usize>()
    {
        let found = crate::source::mbox::MboxReader::open(Path::new(path))?.nth(index);
        return match found {
            Some(mail) => Ok(mail?.bytes),
            None => anyhow::bail!("{path} no longer has a message number {index}"),
        };
    }
    anyhow::bail!(
        "only its headers were kept and {origin} cannot be read again; ask the sender to send it again, or import a copy with `postdesk ingest`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imap_origins_are_read_back_whatever_the_folder_name() {
        let key = |folder: &str| {
            Origin::Imap {
                mailbox: "support".into(),
                folder: folder.into(),
                uidvalidity: 17,
                uid: 42,
            }
            .key()
        };
        assert_eq!(
            imap_origin(&key("INBOX")),
            Some(("support", "INBOX", 17, 42))
        );
        assert_eq!(
            imap_origin(&key("INBOX/Support/2026")),
            Some(("support", "INBOX/Support/2026", 17, 42))
        );
        assert_eq!(imap_origin("maildir:/var/mail#1"), None);
        assert_eq!(imap_origin("imap:support/INBOX/x/42"), None);
    }

    #[test]
    fn mail_from_the_sent_folder_is_replayed_as_outbound() {
        let cfg = Config::from_str(
            "[[mailboxes]]\nname = \"support\"\naddress = \"support@example.com\"\n[mailboxes.imap]\nhost = \"127.0.0.1\"\nusername = \"u\"\npassword = { file = \"pw\" }\nsent_folder = \"Sent\"\n",
            Path::new("/etc/postdesk/postdesk.toml"),
        )
        .unwrap();
        assert_eq!(
            direction_of(&cfg, "imap:support/Sent/1/2"),
            Direction::Outbound
        );
        assert_eq!(
            direction_of(&cfg, "imap:support/INBOX/1/2"),
            Direction::Inbound
        );
        assert_eq!(direction_of(&cfg, "pipe"), Direction::Inbound);
    }
}
