//! The I/O edge where mail comes in: bytes in, [`RawMail`] out.
//!
//! A source only reads and, after the store has committed a message,
//! applies its post-action (a Maildir file moves to `cur/`, an IMAP
//! message is flagged or moved). It never decides anything about a
//! message; the pipeline does.

pub mod imap;
pub mod maildir;
pub mod mbox;

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::mail::{Direction, Origin, RawMail};

/// What a command-line input path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputKind {
    /// `-`: one message on standard input.
    Stdin,
    /// A single message file.
    File(PathBuf),
    /// A Maildir (a folder with `cur/`, `new/` and `tmp/`).
    Maildir(PathBuf),
    /// An mbox file (messages separated by `From ` lines).
    Mbox(PathBuf),
}

/// Why an input cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0}: a folder that is not a Maildir (it needs cur/, new/ and tmp/); give a Maildir, an mbox or .eml files"
    )]
    NotMaildir(PathBuf),
}

impl SourceError {
    pub fn io(path: &Path, source: std::io::Error) -> SourceError {
        SourceError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Decides what an input path is: `-`, a Maildir, an mbox or a message.
pub fn classify_input(arg: &Path) -> Result<InputKind, SourceError> {
    if arg.as_os_str() == "-" {
        return Ok(InputKind::Stdin);
    }
    let meta = std::fs::metadata(arg).map_err(|e| SourceError::io(arg, e))?;
    if meta.is_dir() {
        return if maildir::is_maildir(arg) {
            Ok(InputKind::Maildir(arg.to_owned()))
        } else {
            Err(SourceError::NotMaildir(arg.to_owned()))
        };
    }
    let mut head = [0u8; 5];
    let n = std::fs::File::open(arg)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| SourceError::io(arg, e))?;
    if head.get(..n) == Some(b"From ".as_slice()) {
        Ok(InputKind::Mbox(arg.to_owned()))
    } else {
        Ok(InputKind::File(arg.to_owned()))
    }
}

/// Reads one message from standard input, up to `limit + 1` bytes (so an
/// oversized message is recognized without reading all of it) and then
/// drains the rest, so the MTA sees the pipe consumed.
pub fn read_stdin(limit: usize) -> std::io::Result<(RawMail, usize)> {
    let mut stdin = std::io::stdin().lock();
    let mut bytes = Vec::new();
    (&mut stdin)
        .take(limit as u64 + 1)
        .read_to_end(&mut bytes)?;
    let mut total = bytes.len();
    if total > limit {
        total += std::io::copy(&mut stdin, &mut std::io::sink())? as usize;
    }
    Ok((
        RawMail {
            origin: Origin::Pipe,
            mailbox: None,
            direction: Direction::Inbound,
            arrived: None,
            bytes,
        },
        total,
    ))
}

/// Reads a single message file.
pub fn read_file(path: &Path) -> Result<RawMail, SourceError> {
    let bytes = std::fs::read(path).map_err(|e| SourceError::io(path, e))?;
    Ok(RawMail {
        origin: Origin::File {
            path: path.display().to_string(),
        },
        mailbox: None,
        direction: Direction::Inbound,
        arrived: None,
        bytes,
    })
}
