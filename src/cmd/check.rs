//! `postdesk check-config`: every problem at once, each naming its key.
//! Beyond the file's syntax and values it checks what the daemon will
//! need at start: secrets readable, folders present, templates loadable.
//! With `--connect` it also logs in where the daemon will, read-only: each
//! IMAP mailbox (capabilities, folder counts, what the next run fetches)
//! and the SMTP relay (a session closed with QUIT, nothing sent).

use std::path::Path;

use super::Exit;
use crate::config::{Config, SourceConfig, TransportConfig};

pub fn check_config(path: &Path, connect: bool) -> anyhow::Result<Exit> {
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!(
                "\n{} error{} in {}",
                e.errors.len(),
                if e.errors.len() == 1 { "" } else { "s" },
                path.display()
            );
            return Ok(Exit::Failure);
        }
    };
    let mut problems = Vec::new();
    if let Some(src) = &cfg.security.token_secret
        && let Err(e) = src.read()
    {
        problems.push(format!("security.token_secret: {e}"));
    }
    for (i, m) in cfg.mailboxes.iter().enumerate() {
        match &m.source {
            Some(SourceConfig::Maildir(md)) if !crate::source::maildir::is_maildir(&md.path) => problems.push(format!(
                "mailboxes[{i}].maildir.path: {} is not a Maildir (it needs cur/, new/ and tmp/)",
                md.path.display()
            )),
            Some(SourceConfig::Imap(imap)) => {
                let (crate::config::ImapAuth::Password(src) | crate::config::ImapAuth::XOAuth2(src)) = &imap.auth;
                if let Err(e) = src.read() {
                    problems.push(format!("mailboxes[{i}].imap: {e}"));
                }
            }
            _ => {}
        }
    }
    if let TransportConfig::Smtp(s) = &cfg.outbox.transport
        && let Some(p) = &s.password
        && let Err(e) = p.read()
    {
        problems.push(format!("outbox.smtp.password: {e}"));
    }
    if let Err(e) = crate::notify::Transport::from_config(&cfg) {
        problems.push(format!("outbox: {e}"));
    }
    if let Err(e) = crate::notify::template::Templates::load(cfg.templates.dir.as_deref()) {
        problems.push(format!("templates: {e}"));
    }
    // Not a problem: the daemon creates it (under systemd, StateDirectory=
    // does), but an operator checking a fresh install should know.
    if let Some(dir) = cfg.store.path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        say!(
            "note: store.path: the folder {} does not exist yet; postdesk creates it at first start (the systemd unit's StateDirectory= does)",
            dir.display()
        );
    }
    if connect && problems.is_empty() {
        problems.extend(connect_checks(&cfg));
    }
    if problems.is_empty() {
        say!(
            "{}: OK ({} mailbox{}, {} queue{}, {} route{})",
            path.display(),
            cfg.mailboxes.len(),
            if cfg.mailboxes.len() == 1 { "" } else { "es" },
            cfg.queues.len(),
            if cfg.queues.len() == 1 { "" } else { "s" },
            cfg.routes.len(),
            if cfg.routes.len() == 1 { "" } else { "s" },
        );
        Ok(Exit::Success)
    } else {
        for p in &problems {
            eprintln!("{}: {p}", path.display());
        }
        Ok(Exit::Failure)
    }
}

/// `--connect`: logs in to every IMAP mailbox and the SMTP relay, in the
/// order of the config; prints what it found and returns the problems.
fn connect_checks(cfg: &Config) -> Vec<String> {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => return vec![format!("cannot start the network runtime: {e}")],
    };
    // What the store knows of each folder, when there is a store yet.
    let store = cfg
        .store
        .path
        .exists()
        .then(|| crate::store::Store::open_readonly(&cfg.store.path).ok())
        .flatten();
    runtime.block_on(async {
        let mut problems = Vec::new();
        for (i, m) in cfg.mailboxes.iter().enumerate() {
            if let Some(SourceConfig::Imap(imap)) = &m.source {
                match check_imap(cfg, store.as_ref(), m, imap).await {
                    Ok(lines) => lines.iter().for_each(|l| say!("{l}")),
                    Err(e) => problems.push(format!(
                        "mailboxes[{i}].imap ({}:{}): {e}",
                        imap.host, imap.port
                    )),
                }
            }
        }
        if let TransportConfig::Smtp(smtp) = &cfg.outbox.transport {
            match crate::notify::Transport::from_config(cfg) {
                Ok(crate::notify::Transport::Smtp(t)) => match t.check().await {
                    Ok(()) => say!(
                        "outbox: the SMTP relay {}:{} (tls = \"{}\") accepted a session{}; nothing was sent",
                        smtp.host,
                        smtp.port,
                        smtp.tls.as_str(),
                        smtp.username
                            .as_deref()
                            .map(|u| format!(" and the login as {u}"))
                            .unwrap_or_default()
                    ),
                    Err(e) => {
                        problems.push(format!("outbox.smtp ({}:{}): {e}", smtp.host, smtp.port))
                    }
                },
                Ok(_) => {}
                Err(e) => problems.push(format!("outbox: {e}")),
            }
        }
        problems
    })
}

/// One IMAP mailbox: the lines to print, or why it cannot be used.
async fn check_imap(
    cfg: &Config,
    store: Option<&crate::store::Store>,
    mailbox: &crate::config::MailboxConfig,
    imap: &crate::config::ImapConfig,
) -> Result<Vec<String>, crate::source::imap::ImapError> {
    use crate::source::imap::probe::{self, FolderUse};
    let tls = match imap.tls {
        crate::config::TlsMode::None => None,
        _ => Some(crate::tls::client_config(imap.ca_file.as_deref())?),
    };
    let found = probe::probe(imap, tls.as_ref()).await?;
    let yes = |b: bool| if b { "yes" } else { "no" };
    let mut lines = vec![format!(
        "mailbox {}: {}:{} (tls = \"{}\"), logged in as {}; IDLE {}, MOVE {}, UIDPLUS {}",
        mailbox.name,
        imap.host,
        imap.port,
        imap.tls.as_str(),
        imap.username,
        yes(found.caps.idle),
        yes(found.caps.r#move),
        yes(found.caps.uidplus),
    )];
    for f in &found.folders {
        let counts = format!(
            "{} message{}{}",
            f.messages,
            if f.messages == 1 { "" } else { "s" },
            f.unseen
                .map(|u| format!(", {u} unseen"))
                .unwrap_or_default()
        );
        let what = match f.used_as {
            FolderUse::Inbox => {
                let source = crate::source::imap::Folder::of(mailbox)
                    .into_iter()
                    .find(|folder| folder.name == f.name)
                    .map(|folder| folder.source());
                let state = store
                    .zip(source)
                    .and_then(|(s, source)| {
                        crate::store::imap_state::folder_state(&s.conn, &source).ok()
                    })
                    .flatten();
                next_run(cfg, imap, f, state)
            }
            FolderUse::Sent => "our agents' replies, read as outbound messages".to_owned(),
            FolderUse::MoveTo => "ingested mail is moved here".to_owned(),
        };
        lines.push(format!(
            "  {} ({}): {counts}; {what}",
            f.name,
            f.used_as.key()
        ));
    }
    if imap.idle && !found.caps.idle {
        lines.push(format!(
            "  the server has no IDLE: new mail is polled for every {}",
            humantime::format_duration(imap.poll_interval)
        ));
    }
    if matches!(imap.after_ingest, crate::config::PostAction::Move(_)) && !found.caps.r#move {
        lines.push(
            if found.caps.uidplus {
                "  the server has no MOVE: mail is moved by COPY, \\Deleted and UID EXPUNGE"
            } else {
                "  the server has neither MOVE nor UIDPLUS: moved mail is copied and left flagged \\Deleted in the folder, for the server's cleanup to expunge"
            }
            .to_owned(),
        );
    }
    Ok(lines)
}

/// What the next run would fetch from the inbox folder, from the store's
/// checkpoint, or from the backlog setting on first contact.
fn next_run(
    cfg: &Config,
    imap: &crate::config::ImapConfig,
    f: &crate::source::imap::probe::FolderStatus,
    state: Option<crate::store::imap_state::FolderState>,
) -> String {
    match state {
        Some(st) if Some(st.uidvalidity) == f.uidvalidity => format!(
            "read up to UID {}, the server's next UID is {}",
            st.last_uid,
            f.uid_next
                .map_or_else(|| "not given".to_owned(), |n| n.to_string())
        ),
        Some(st) => format!(
            "its UIDVALIDITY changed ({} stored, {} now): the next run reads it again and skips what is stored",
            st.uidvalidity,
            f.uidvalidity
                .map_or_else(|| "none".to_owned(), |v| v.to_string())
        ),
        None => {
            let (takes, setting) = match imap.backlog {
                crate::config::Backlog::All => (format!("all {}", f.messages), "all"),
                crate::config::Backlog::Unseen => (
                    f.unseen
                        .map_or_else(|| "the unseen".to_owned(), |u| format!("the {u} unseen")),
                    "unseen",
                ),
                crate::config::Backlog::None => ("none".to_owned(), "none"),
            };
            format!(
                "never read: the first run takes {takes} (backlog = \"{setting}\") and then new mail; no acknowledgement goes to mail older than {} (acknowledge.max_age)",
                humantime::format_duration(cfg.acknowledge.max_age)
            )
        }
    }
}
