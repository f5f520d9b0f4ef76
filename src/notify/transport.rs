//! Where composed mail goes: a folder of `.eml` files, the local MTA's
//! sendmail, or an SMTP relay. Each send ends in one of three ways, and
//! the outbox decides what happens next from that alone.

use std::path::{Path, PathBuf};

use super::compose::Composed;

/// A failed send, classified once here so the outbox need not parse
/// error text: temporary failures are retried with backoff, permanent
/// ones mark the row failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("temporary failure: {0}")]
    Temporary(String),
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Writes each message as `<dir>/<row id>-<kind>.eml`. A resend after a
/// crash rewrites the same file, so the folder never holds a message twice.
#[derive(Debug, Clone)]
pub struct FileTransport {
    pub dir: PathBuf,
}

impl FileTransport {
    /// Writes atomically (temp file, fsync, rename). Blocking.
    pub fn send(&self, row_id: i64, kind: &str, mail: &Composed) -> Result<String, SendError> {
        write_atomically(&self.dir, &format!("{row_id:06}-{kind}.eml"), &mail.bytes).map_err(
            |e| SendError::Temporary(format!("cannot write to {}: {e}", self.dir.display())),
        )?;
        Ok(format!(
            "written to {}",
            self.dir.join(format!("{row_id:06}-{kind}.eml")).display()
        ))
    }
}

fn write_atomically(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_transport_writes_one_file_per_row() {
        let dir = tempfile::tempdir().unwrap();
        let t = FileTransport {
            dir: dir.path().join("out"),
        };
        let m = Composed {
            message_id: "a@b".into(),
            envelope_from: "s@x".into(),
            recipients: vec!["c@y".into()],
            bytes: b"X: y\r\n\r\nbody".to_vec(),
        };
        t.send(7, "ack", &m).unwrap();
        t.send(7, "ack", &m).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path().join("out"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("000007-ack.eml")]);
    }
}
