//! Where composed mail goes: a folder of `.eml` files ([`FileTransport`]),
//! the local MTA's sendmail ([`super::sendmail`]) or an SMTP relay
//! ([`super::smtp`]). Each send ends in one of four ways, classified once
//! by the transport that saw the failure, and the outbox decides what
//! happens next from that alone.

use std::path::{Path, PathBuf};

use super::compose::Composed;

/// A failed send, classified once where the failure is understood (the
/// SMTP stage, the sendmail exit code), so the outbox never parses error
/// text. The text is what the operator sees in the log, in `last_error`
/// and in `postdesk status`: the server's own reply where there is one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// This attempt failed but a later one may succeed (4xx, connection
    /// refused or reset, timeouts): retried with backoff from
    /// `outbox.retry` until `outbox.give_up_after`.
    #[error("temporary failure: {0}")]
    Temporary(String),
    /// This message will never be accepted as it is (5xx for the recipient
    /// or the message): the row is marked failed at once.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The transport cannot work as configured (login refused, certificate
    /// not trusted, STARTTLS not offered, sendmail missing or refusing its
    /// arguments): every message would fail the same way, so the row is
    /// kept and retried like a temporary failure, but logged as an error
    /// because an operator must fix the configuration.
    #[error("transport misconfigured: {0}")]
    Setup(String),
}

/// Why a transport cannot be built from the configuration. Checked at
/// start-up (and again before each flush until it works); the outbox keeps
/// its rows meanwhile.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("outbox.smtp.password: {0}; the outbox keeps its mail until the password can be read")]
    Secret(#[source] crate::secret::SecretError),
    #[error("outbox.smtp.username is set but outbox.smtp.password is not; give both, or neither")]
    MissingPassword,
    #[error("outbox.smtp.ca_file: cannot read {}: {source}", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "outbox.smtp.ca_file: {} is not a usable PEM certificate ({reason}); give the CA certificate that signed the relay's certificate, starting with -----BEGIN CERTIFICATE-----",
        path.display()
    )]
    CaPem { path: PathBuf, reason: String },
    #[error("outbox.smtp: {0}")]
    TlsSetup(#[source] crate::tls::TlsError),
    #[error("outbox.smtp: cannot set up TLS for {host}: {reason}")]
    Tls { host: String, reason: String },
    #[error(
        "outbox.smtp.hello_name: {0:?} is not a host name; give this host's DNS name, e.g. \"mail.example.com\", or leave it out"
    )]
    HelloName(String),
    #[error("the outbox transport could not be set up: {0}")]
    Task(String),
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
