//! `postdesk tickets` and `postdesk show`.

use anyhow::Context;

use super::{Exit, short_time};
use crate::config::Config;
use crate::store::Store;
use crate::store::query::{self, TicketFilter};

pub struct ListArgs {
    pub status: Option<String>,
    pub queue: Option<String>,
    pub limit: usize,
    pub json: bool,
    /// Only tickets inside their warning window.
    pub due: bool,
    /// Only tickets past their due time.
    pub breached: bool,
}

fn open(cfg: &Config) -> anyhow::Result<Store> {
    Store::open_readonly(&cfg.store.path)
        .with_context(|| format!("reading tickets from {}", cfg.store.path.display()))
}

pub fn list(cfg: &Config, args: &ListArgs) -> anyhow::Result<Exit> {
    if let Some(s) = &args.status
        && !["open", "waiting", "closed"].contains(&s.as_str())
    {
        anyhow::bail!("unknown status {s:?}; use open, waiting or closed");
    }
    if let Some(q) = &args.queue
        && cfg.queue(q).is_none()
    {
        anyhow::bail!(
            "there is no queue {q:?}; configured: {}",
            cfg.queues
                .iter()
                .map(|q| q.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let store = open(cfg)?;
    if args.due || args.breached {
        return list_sla(cfg, &store, args);
    }
    let tickets = query::list_tickets(
        &store.conn,
        &TicketFilter {
            status: args.status.clone(),
            queue: args.queue.clone(),
            limit: args.limit,
        },
    )?;
    if args.json {
        let rows: Vec<serde_json::Value> = tickets
            .iter()
            .map(|t| {
                let mut v = serde_json::to_value(t).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("ticket".into(), cfg.ticket_ref(t.id).into());
                }
                v
            })
            .collect();
        say!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Exit::Success);
    }
    if tickets.is_empty() {
        say!("no tickets");
        return Ok(Exit::Success);
    }
    say!(
        "{:<8} {:<8} {:<12} {:<4} {:<16} {:<32} SUBJECT",
        "TICKET",
        "STATUS",
        "QUEUE",
        "LANG",
        "CREATED (UTC)",
        "REQUESTER"
    );
    for t in &tickets {
        say!(
            "{:<8} {:<8} {:<12} {:<4} {:<16} {:<32} {}",
            cfg.ticket_ref(t.id),
            t.status,
            t.queue,
            t.language,
            short_time(t.created_at),
            truncate(&t.requester, 32),
            truncate(&t.subject, 60)
        );
    }
    Ok(Exit::Success)
}

/// `tickets --due` / `--breached`: tickets whose running response clock
/// is inside its warning window or past its due time, soonest due first.
fn list_sla(cfg: &Config, store: &Store, args: &ListArgs) -> anyhow::Result<Exit> {
    use crate::sla::calendar::{format_duration, format_local};
    use crate::sla::clock::Phase;
    crate::store::sla::ensure_schema(&store.conn)?;
    let now = jiff::Timestamp::now();
    let rows: Vec<_> = crate::store::sla::running_clocks(&store.conn, args.queue.as_deref(), now)?
        .into_iter()
        .filter(|c| {
            (args.due && c.phase == Phase::DueSoon) || (args.breached && c.phase == Phase::Breached)
        })
        .filter(|c| args.status.as_ref().is_none_or(|s| *s == c.status))
        .take(if args.limit == 0 {
            usize::MAX
        } else {
            args.limit
        })
        .collect();
    let zone = |queue: &str| {
        cfg.queue(queue)
            .map(|q| q.timezone.clone())
            .unwrap_or(jiff::tz::TimeZone::UTC)
    };
    if args.json {
        let rows: Vec<serde_json::Value> = rows
            .iter()
            .map(|c| {
                let mut v = serde_json::to_value(c).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert("ticket".into(), cfg.ticket_ref(c.ticket).into());
                    o.insert(
                        "due_local".into(),
                        format_local(c.due_at, &zone(&c.queue)).into(),
                    );
                }
                v
            })
            .collect();
        say!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(Exit::Success);
    }
    if rows.is_empty() {
        say!(
            "no tickets {}",
            match (args.due, args.breached) {
                (true, true) => "due soon or breached",
                (true, false) => "due soon",
                _ => "breached",
            }
        );
        return Ok(Exit::Success);
    }
    say!(
        "{:<8} {:<12} {:<5} {:<26} {:<20} {:<32} SUBJECT",
        "TICKET",
        "QUEUE",
        "CLOCK",
        "DUE (QUEUE TIME)",
        "LEFT",
        "REQUESTER"
    );
    for c in &rows {
        let left = c.due_at.duration_since(now);
        let left = if left.is_negative() {
            format!("{} over", format_duration(-left))
        } else {
            format!("{} left", format_duration(left))
        };
        say!(
            "{:<8} {:<12} {:<5} {:<26} {:<20} {:<32} {}",
            cfg.ticket_ref(c.ticket),
            c.queue,
            c.clock.as_str(),
            format_local(c.due_at, &zone(&c.queue)),
            left,
            truncate(&c.requester, 32),
            truncate(&c.subject, 60)
        );
    }
    Ok(Exit::Success)
}

pub fn show(cfg: &Config, ticket: &str, events: bool, json: bool) -> anyhow::Result<Exit> {
    let store = open(cfg)?;
    let (id, d) = load_ticket(cfg, &store, ticket)?;
    if json {
        let mut v = serde_json::to_value(&d)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("ticket".into(), cfg.ticket_ref(id).into());
        }
        say!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(Exit::Success);
    }
    let t = &d.ticket;
    say!("{}  {}", cfg.ticket_ref(id), t.subject);
    say!("  status    {}", t.status);
    say!("  queue     {} (mailbox {})", t.queue, t.mailbox);
    say!(
        "  language  {} ({}, confidence {:.2})",
        t.language,
        t.language_source,
        t.language_confidence
    );
    say!(
        "  requester {}{}",
        t.requester_name
            .as_deref()
            .map(|n| format!("{n} <{}>", t.requester))
            .unwrap_or_else(|| t.requester.clone()),
        d.reply_to
            .as_deref()
            .map(|r| format!(" (replies to {r})"))
            .unwrap_or_default()
    );
    let others: Vec<String> = d
        .participants
        .iter()
        .filter(|p| p.role != "requester")
        .map(|p| format!("{} ({})", p.address, p.role))
        .collect();
    if !others.is_empty() {
        say!("  also      {}", others.join(", "));
    }
    if let Some(l) = t.linked_ticket {
        say!("  follows   {}", cfg.ticket_ref(l));
    }
    say!(
        "  created   {} UTC, updated {} UTC",
        short_time(t.created_at),
        short_time(t.updated_at)
    );
    let mut attachment_number = 0;
    for (i, m) in d.messages.iter().enumerate() {
        let from = match (&m.from_name, &m.from) {
            (Some(n), Some(a)) => format!("{n} <{a}>"),
            (None, Some(a)) => a.clone(),
            _ => "(unknown sender)".into(),
        };
        say!();
        say!(
            "── {} · {} · {} · {} · {} · {}",
            i + 1,
            short_time(m.date.unwrap_or(m.received_at)),
            m.direction,
            m.class,
            m.language.as_deref().unwrap_or("-"),
            from
        );
        for line in m.extracted_text.lines() {
            say!("   {line}");
        }
        for a in &m.attachments {
            attachment_number += 1;
            say!(
                "   [attachment {attachment_number}: {} · {} · {} bytes]",
                a.name.as_deref().unwrap_or("(unnamed)"),
                a.content_type,
                a.size_bytes
            );
        }
    }
    if events {
        say!();
        say!("events:");
        for e in &d.events {
            say!("  {} {:<18} {}", short_time(e.at), e.kind, e.detail);
        }
    }
    Ok(Exit::Success)
}

/// `postdesk show PD-N --raw K`: writes the ticket's message K (as
/// numbered by `show`) to stdout byte for byte, as it was received. The
/// store keeps it compressed, so this is how an operator gets the original.
/// To a terminal only when it can show it (see [`super::terminal_can_show`]).
pub fn show_raw(cfg: &Config, ticket: &str, n: usize) -> anyhow::Result<Exit> {
    use std::io::IsTerminal as _;
    let store = open(cfg)?;
    let (id, d) = load_ticket(cfg, &store, ticket)?;
    let Some(m) = n.checked_sub(1).and_then(|i| d.messages.get(i)) else {
        anyhow::bail!(
            "{} has {} message(s); --raw takes a number from 1 to {}",
            cfg.ticket_ref(id),
            d.messages.len(),
            d.messages.len()
        );
    };
    let Some(bytes) = crate::store::raw::read(&store.conn, m.id)? else {
        anyhow::bail!(
            "message {n} of {} has no stored original (written by an agent note?)",
            cfg.ticket_ref(id)
        );
    };
    let mut out = std::io::stdout().lock();
    if out.is_terminal() && !super::terminal_can_show(&bytes) {
        anyhow::bail!(
            "message {n} holds bytes a terminal would act on (escape sequences or binary); redirect it to a file: postdesk show {} --raw {n} > message.eml",
            cfg.ticket_ref(id)
        );
    }
    super::write_bytes(&mut out, &bytes)
}

/// `postdesk show PD-N --attachment K`: writes the ticket's attachment K
/// (numbered across the ticket as `show` lists them) to stdout, decoded;
/// to a terminal only when it can show it (see [`super::terminal_can_show`]).
pub fn show_attachment(cfg: &Config, ticket: &str, n: usize) -> anyhow::Result<Exit> {
    use std::io::IsTerminal as _;
    let store = open(cfg)?;
    let (id, d) = load_ticket(cfg, &store, ticket)?;
    let all: Vec<&query::AttachmentView> = d.messages.iter().flat_map(|m| &m.attachments).collect();
    let Some(a) = n.checked_sub(1).and_then(|i| all.get(i)) else {
        anyhow::bail!(
            "{} has {} attachment(s){}",
            cfg.ticket_ref(id),
            all.len(),
            if all.is_empty() {
                String::new()
            } else {
                format!("; --attachment takes a number from 1 to {}", all.len())
            }
        );
    };
    let Some(bytes) = query::attachment_content(&store.conn, &a.sha256)? else {
        anyhow::bail!(
            "the content of attachment {n} of {} (SHA-256 {}) is missing from the database",
            cfg.ticket_ref(id),
            a.sha256
        );
    };
    let mut out = std::io::stdout().lock();
    if out.is_terminal() && !super::terminal_can_show(&bytes) {
        anyhow::bail!(
            "attachment {n} ({}, {}) is binary or holds escape sequences; redirect it to a file: postdesk show {} --attachment {n} > {}",
            a.name.as_deref().unwrap_or("unnamed"),
            a.content_type,
            cfg.ticket_ref(id),
            a.name.as_deref().map_or("attachment.bin", safe_file_name)
        );
    }
    super::write_bytes(&mut out, &bytes)
}

/// A name from a message, fit to suggest in a shell command: the last
/// path segment, with only characters that need no quoting.
fn safe_file_name(name: &str) -> &str {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let plain = !base.is_empty()
        && !base.starts_with(['.', '-'])
        && base
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'));
    if plain { base } else { "attachment.bin" }
}

/// The ticket named by `ticket` (e.g. PD-42) with everything `show` prints.
fn load_ticket(
    cfg: &Config,
    store: &Store,
    ticket: &str,
) -> anyhow::Result<(i64, query::TicketDetail)> {
    let Some(id) = cfg.parse_ticket_ref(ticket) else {
        anyhow::bail!(
            "{ticket:?} is not a ticket; write it as {}",
            cfg.ticket_ref(42)
        );
    };
    let Some(d) = query::show_ticket(&store.conn, id)? else {
        anyhow::bail!("there is no ticket {}", cfg.ticket_ref(id));
    };
    Ok((id, d))
}

/// At most `n` characters, with an ellipsis when cut.
fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::safe_file_name;

    #[test]
    fn only_plain_names_are_suggested_for_a_shell_command() {
        assert_eq!(safe_file_name("invoice-2026.pdf"), "invoice-2026.pdf");
        assert_eq!(safe_file_name("Rechnung_März.pdf"), "Rechnung_März.pdf");
        assert_eq!(safe_file_name("C:\\Users\\x\\log.txt"), "log.txt");
        assert_eq!(safe_file_name("../../etc/passwd"), "passwd");
        for risky in [
            "screen shot.png",
            "a;rm -rf ~",
            "$(id).txt",
            ".bashrc",
            "-rf",
            "",
            "dir/",
        ] {
            assert_eq!(safe_file_name(risky), "attachment.bin", "{risky:?}");
        }
    }
}
