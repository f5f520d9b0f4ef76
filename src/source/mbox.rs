//! mbox files: messages separated by `From ` lines.
//!
//! Hand-written: the format is a line rule, and reading it as a stream
//! keeps multi-gigabyte archives out of memory. Both common variants are
//! read: mboxo/mboxrd quote body lines starting with `From ` as
//! `>From `; mboxrd also quotes `>From ` as `>>From `. One `>` is removed
//! from such lines, which is exact for mboxrd and the best reading of
//! mboxo. A separator is a `From ` line at the start of the file or after
//! an empty line, so an unquoted `From ` inside a paragraph stays text.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use super::SourceError;
use crate::mail::{Direction, Origin, RawMail};

/// Streams the messages of an mbox file.
pub struct MboxReader<R> {
    reader: R,
    path: PathBuf,
    index: usize,
    /// The separator line already read for the next message.
    pending_separator: bool,
    previous_blank: bool,
    done: bool,
}

impl MboxReader<std::io::BufReader<std::fs::File>> {
    pub fn open(path: &Path) -> Result<Self, SourceError> {
        let f = std::fs::File::open(path).map_err(|e| SourceError::io(path, e))?;
        Ok(MboxReader::new(
            std::io::BufReader::with_capacity(256 * 1024, f),
            path,
        ))
    }
}

impl<R: BufRead> MboxReader<R> {
    pub fn new(reader: R, path: &Path) -> Self {
        MboxReader {
            reader,
            path: path.to_owned(),
            index: 0,
            pending_separator: false,
            previous_blank: true,
            done: false,
        }
    }

    fn next_message(&mut self) -> Result<Option<Vec<u8>>, SourceError> {
        let mut msg: Vec<u8> = Vec::new();
        let mut line = Vec::new();
        let mut started = self.pending_separator;
        loop {
            line.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut line)
                .map_err(|e| SourceError::io(&self.path, e))?;
            if n == 0 {
                self.done = true;
                break;
            }
            let is_separator = line.starts_with(b"From ") && self.previous_blank;
            let blank = line == b"\n" || line == b"\r\n";
            if is_separator {
                if started {
                    self.pending_separator = true;
                    self.previous_blank = false;
                    // The empty line before a separator belongs to the format.
                    if msg.ends_with(b"\r\n") {
                        msg.truncate(msg.len() - 2);
                    } else if msg.ends_with(b"\n") {
                        msg.truncate(msg.len() - 1);
                    }
                    return Ok(Some(msg));
                }
                started = true;
                self.previous_blank = false;
                continue;
            }
            self.previous_blank = blank;
            if !started {
                // Text before the first separator is not a message.
                continue;
            }
            let unquoted = line
                .iter()
                .position(|&b| b != b'>')
                .filter(|&p| p > 0)
                .and_then(|p| line.get(p..))
                .is_some_and(|rest| rest.starts_with(b"From "));
            msg.extend_from_slice(if unquoted {
                line.get(1..).unwrap_or(&line)
            } else {
                &line
            });
        }
        self.pending_separator = false;
        Ok(started.then_some(msg))
    }
}

impl<R: BufRead> Iterator for MboxReader<R> {
    type Item = Result<RawMail, SourceError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_message() {
            Ok(Some(bytes)) => {
                let origin = Origin::Mbox {
                    path: self.path.display().to_string(),
                    index: self.index,
                };
                self.index += 1;
                Some(Ok(RawMail {
                    origin,
                    mailbox: None,
                    direction: Direction::Inbound,
                    arrived: None,
                    bytes,
                }))
            }
            Ok(None) => None,
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Vec<String> {
        MboxReader::new(
            std::io::Cursor::new(text.as_bytes().to_vec()),
            Path::new("x.mbox"),
        )
        .map(|m| String::from_utf8(m.unwrap().bytes).unwrap())
        .collect()
    }

    #[test]
    fn splits_and_unquotes() {
        let text = "From a@b Mon Jan 1 00:00:00 2024\nSubject: one\n\nHello\n>From the start\n>>From deeper\nFrom inside a paragraph\n\nFrom c@d Mon Jan 1 00:00:01 2024\nSubject: two\n\nBye\n";
        let msgs = read_all(text);
        assert_eq!(msgs.len(), 2);
        assert_eq!(
            msgs[0],
            "Subject: one\n\nHello\nFrom the start\n>From deeper\nFrom inside a paragraph\n"
        );
        assert_eq!(msgs[1], "Subject: two\n\nBye\n");
    }

    #[test]
    fn empty_and_preamble_only_files_have_no_messages() {
        assert!(read_all("").is_empty());
        assert!(read_all("not an mbox\n").is_empty());
    }

    #[test]
    fn crlf_mbox() {
        let msgs =
            read_all("From a\r\nSubject: x\r\n\r\nbody\r\n\r\nFrom b\r\nSubject: y\r\n\r\nz\r\n");
        assert_eq!(
            msgs,
            vec!["Subject: x\r\n\r\nbody\r\n", "Subject: y\r\n\r\nz\r\n"]
        );
    }
}
