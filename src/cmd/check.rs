//! `postdesk check-config`: every problem at once, each naming its key.
//! Beyond the file's syntax and values it checks what the daemon will
//! need at start: secrets readable, folders present, templates loadable.

use std::path::Path;

use super::Exit;
use crate::config::{Config, SourceConfig, TransportConfig};

pub fn check_config(path: &Path) -> anyhow::Result<Exit> {
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
    if let Some(dir) = cfg.store.path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        problems.push(format!("store.path: the folder {} does not exist yet; postdesk creates it at first start if it may", dir.display()));
    }
    if problems.is_empty() {
        println!(
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
