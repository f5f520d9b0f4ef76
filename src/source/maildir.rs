//! Maildir: one file per message in `new/` (unread) and `cur/` (seen).
//!
//! Hand-written rather than the `maildir` crate, which pulls in a second
//! MIME parser; what postdesk needs is a directory listing and a rename.
//! A file's identity is the part of its name before the `:2,` flags
//! suffix, which stays the same when a client moves or flags it, so the
//! store can remember it (`origins`) across passes.

use std::path::{Path, PathBuf};

use super::SourceError;
use crate::mail::{Direction, Origin, RawMail};

/// True when `dir` has the three Maildir subfolders.
pub fn is_maildir(dir: &Path) -> bool {
    ["cur", "new", "tmp"].iter().all(|d| dir.join(d).is_dir())
}

/// One message file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub path: PathBuf,
    /// The file name without the `:2,…` info suffix.
    pub unique: String,
    /// In `new/` (not yet seen by anyone).
    pub is_new: bool,
    pub size_bytes: u64,
    /// The file's modification time: when it was delivered.
    pub modified: Option<jiff::Timestamp>,
}

impl Entry {
    pub fn origin(&self, dir: &Path) -> Origin {
        Origin::Maildir {
            dir: dir.display().to_string(),
            unique: self.unique.clone(),
        }
    }
}

/// Lists `new/` (and `cur/` when `include_cur`), oldest name first, which
/// for Maildir's time-prefixed names is delivery order.
pub fn scan(dir: &Path, include_cur: bool) -> Result<Vec<Entry>, SourceError> {
    let mut out = Vec::new();
    let subdirs: &[(&str, bool)] = if include_cur {
        &[("new", true), ("cur", false)]
    } else {
        &[("new", true)]
    };
    for (sub, is_new) in subdirs {
        let d = dir.join(sub);
        let rd = std::fs::read_dir(&d).map_err(|e| SourceError::io(&d, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| SourceError::io(&d, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let meta = match entry.metadata() {
                Ok(m) if m.is_file() => m,
                // Vanished (another reader moved it) or not a file: skip.
                _ => continue,
            };
            let unique = name.split(":2,").next().unwrap_or(&name).to_owned();
            let modified = meta
                .modified()
                .ok()
                .and_then(|t| jiff::Timestamp::try_from(t).ok());
            out.push(Entry {
                path: entry.path(),
                unique,
                is_new: *is_new,
                size_bytes: meta.len(),
                modified,
            });
        }
    }
    out.sort_by(|a, b| a.unique.cmp(&b.unique));
    Ok(out)
}

/// Reads a message file.
pub fn read(dir: &Path, entry: &Entry, mailbox: Option<&str>) -> Result<RawMail, SourceError> {
    let bytes = std::fs::read(&entry.path).map_err(|e| SourceError::io(&entry.path, e))?;
    Ok(RawMail {
        origin: entry.origin(dir),
        mailbox: mailbox.map(str::to_owned),
        direction: Direction::Inbound,
        arrived: entry.modified,
        bytes,
    })
}

/// Reads only the start of a file (for the headers of a message too large
/// to load).
pub fn read_head(entry: &Entry, limit: usize) -> Result<Vec<u8>, SourceError> {
    use std::io::Read;
    let mut f = std::fs::File::open(&entry.path).map_err(|e| SourceError::io(&entry.path, e))?;
    let mut buf = Vec::new();
    f.by_ref()
        .take(limit as u64)
        .read_to_end(&mut buf)
        .map_err(|e| SourceError::io(&entry.path, e))?;
    Ok(buf)
}

/// Marks a committed message as seen, as a mail client would: `new/x` →
/// `cur/x:2,S`. A file already gone (moved by someone else) is fine.
pub fn mark_seen(dir: &Path, entry: &Entry) -> Result<(), SourceError> {
    if !entry.is_new {
        return Ok(());
    }
    let target = dir.join("cur").join(format!("{}:2,S", entry.unique));
    match std::fs::rename(&entry.path, &target) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(SourceError::io(&entry.path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maildir() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        for s in ["cur", "new", "tmp"] {
            std::fs::create_dir(d.path().join(s)).unwrap();
        }
        d
    }

    #[test]
    fn scan_read_and_mark_seen() {
        let d = maildir();
        std::fs::write(
            d.path().join("new/1700000002.M1.host"),
            b"Subject: b\r\n\r\nb",
        )
        .unwrap();
        std::fs::write(
            d.path().join("new/1700000001.M1.host"),
            b"Subject: a\r\n\r\na",
        )
        .unwrap();
        std::fs::write(
            d.path().join("cur/1600000000.M1.host:2,S"),
            b"Subject: old\r\n\r\nold",
        )
        .unwrap();
        std::fs::write(d.path().join("new/.hidden"), b"x").unwrap();
        assert!(is_maildir(d.path()));
        let entries = scan(d.path(), false).unwrap();
        assert_eq!(
            entries
                .iter()
                .map(|e| e.unique.as_str())
                .collect::<Vec<_>>(),
            ["1700000001.M1.host", "1700000002.M1.host"]
        );
        assert_eq!(scan(d.path(), true).unwrap().len(), 3);
        let raw = read(d.path(), &entries[0], Some("support")).unwrap();
        assert_eq!(raw.bytes, b"Subject: a\r\n\r\na");
        assert_eq!(
            raw.origin.key(),
            format!("maildir:{}#1700000001.M1.host", d.path().display())
        );
        mark_seen(d.path(), &entries[0]).unwrap();
        assert!(d.path().join("cur/1700000001.M1.host:2,S").exists());
        assert_eq!(scan(d.path(), false).unwrap().len(), 1);
        // Idempotent: a second call after a crash finds the file gone.
        mark_seen(d.path(), &entries[0]).unwrap();
    }

    #[test]
    fn a_plain_folder_is_not_a_maildir() {
        let d = tempfile::tempdir().unwrap();
        assert!(!is_maildir(d.path()));
    }
}
