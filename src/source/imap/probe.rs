//! What the daemon would find on an IMAP server, found without changing
//! anything there (`postdesk check-config --connect`): connect and log in
//! exactly as the daemon does, read the capabilities, and ask STATUS of
//! every folder the config names. STATUS does not select a folder, so no
//! flag, recent bit or expunge can result.

use std::sync::Arc;

use rustls::ClientConfig;

use super::connect::{self, Capabilities, Credentials};
use super::{COMMAND_TIMEOUT, ImapError, timed, utf7};
use crate::config::{ImapConfig, PostAction};

/// What a folder is to postdesk, as the config names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FolderUse {
    /// `folder`: customers' mail.
    Inbox,
    /// `sent_folder`: our agents' replies.
    Sent,
    /// `move_to` (with `after_ingest = "move"`): where ingested mail goes.
    MoveTo,
}

impl FolderUse {
    /// The config key that names the folder.
    pub fn key(self) -> &'static str {
        match self {
            FolderUse::Inbox => "folder",
            FolderUse::Sent => "sent_folder",
            FolderUse::MoveTo => "move_to",
        }
    }
}

/// One folder's STATUS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderStatus {
    pub name: String,
    pub used_as: FolderUse,
    pub messages: u32,
    pub unseen: Option<u32>,
    pub uidvalidity: Option<u32>,
    pub uid_next: Option<u32>,
}

/// What the server offers and holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub caps: Capabilities,
    pub folders: Vec<FolderStatus>,
}

/// The folders `cfg` names, each with what it is for.
fn named_folders(cfg: &ImapConfig) -> Vec<(&str, FolderUse)> {
    let mut folders = vec![(cfg.folder.as_str(), FolderUse::Inbox)];
    if let Some(sent) = &cfg.sent_folder {
        folders.push((sent, FolderUse::Sent));
    }
    if let PostAction::Move(to) = &cfg.after_ingest {
        folders.push((to, FolderUse::MoveTo));
    }
    folders
}

/// Logs in, reads the capabilities and every named folder's STATUS, logs
/// out. The first failure is returned, worded as the daemon words it.
pub async fn probe(cfg: &ImapConfig, tls: Option<&Arc<ClientConfig>>) -> Result<Probe, ImapError> {
    let mut creds = Credentials::new(cfg.auth.clone());
    let mut conn = connect::connect(cfg, tls, &mut creds).await?;
    let mut folders = Vec::new();
    for (name, used_as) in named_folders(cfg) {
        let wire = utf7::encode(name);
        let status = timed("STATUS", COMMAND_TIMEOUT, async {
            conn.session
                .status(&wire, "(MESSAGES UNSEEN UIDVALIDITY UIDNEXT)")
                .await
                .map_err(|e| ImapError::on_folder("STATUS", name, e))
        })
        .await;
        let status = match status {
            Ok(s) => s,
            Err(e) => {
                conn.logout().await;
                return Err(e);
            }
        };
        folders.push(FolderStatus {
            name: name.to_owned(),
            used_as,
            messages: status.exists,
            unseen: status.unseen,
            uidvalidity: status.uid_validity,
            uid_next: status.uid_next,
        });
    }
    let caps = conn.caps;
    conn.logout().await;
    Ok(Probe { caps, folders })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_folder_the_config_names_is_probed() {
        let cfg = crate::config::Config::from_str(
            r#"
[[mailboxes]]
name = "support"
address = "support@example.com"
[mailboxes.imap]
host = "127.0.0.1"
username = "support@example.com"
password = { env = "X" }
sent_folder = "Sent Items"
after_ingest = "move"
move_to = "Archive"
"#,
            std::path::Path::new("/etc/postdesk/postdesk.toml"),
        )
        .expect("valid config");
        let Some(crate::config::SourceConfig::Imap(imap)) = &cfg.mailboxes[0].source else {
            panic!("an IMAP mailbox");
        };
        assert_eq!(
            named_folders(imap),
            [
                ("INBOX", FolderUse::Inbox),
                ("Sent Items", FolderUse::Sent),
                ("Archive", FolderUse::MoveTo)
            ]
        );
    }
}
