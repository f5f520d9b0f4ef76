//! Handing mail to the local MTA through its `sendmail` program, for hosts
//! where Postfix, Exim or OpenSMTPD already relays (and knows the smart
//! host and its password).
//!
//! The program gets `-i -f <envelope sender> -- <recipient>…`: `-i` so a
//! line holding a single dot does not end the message, `-f` to set the
//! envelope sender (bounces come back to the mailbox), `--` so no
//! recipient can be read as an option. Recipients come from the row, never
//! from header fields (no `-t`). The message is written with LF line ends,
//! as local submission expects.
//!
//! The exit code is read as Postfix's pipe(8) reads a delivery program's
//! (`sys_exits.c`, after sendmail's `sysexits.h`): `EX_TEMPFAIL` (75) and
//! `EX_OSERR` (71) are temporary; `EX_USAGE`, `EX_UNAVAILABLE`,
//! `EX_OSFILE`, `EX_NOPERM` and `EX_CONFIG` say the program or the MTA is
//! set up wrong, not that this message is bad, so they are kept and
//! retried as [`SendError::Setup`]; any other failure is permanent.

use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

use super::compose::one_line;
use super::transport::SendError;

/// `sysexits.h`.
const EX_USAGE: i32 = 64;
const EX_UNAVAILABLE: i32 = 69;
const EX_OSERR: i32 = 71;
const EX_OSFILE: i32 = 72;
const EX_TEMPFAIL: i32 = 75;
const EX_NOPERM: i32 = 77;
const EX_CONFIG: i32 = 78;

/// Stderr is kept to this many characters in logs and rows.
const MAX_STDERR_CHARS: usize = 500;

/// The local MTA's sendmail program (`outbox.sendmail`).
#[derive(Debug, Clone)]
pub struct SendmailTransport {
    pub command: PathBuf,
}

impl SendmailTransport {
    /// Pipes `bytes` to the program and waits for it. Cancel-safe: a send
    /// dropped by the outbox's timeout kills the program.
    pub async fn send(
        &self,
        from: &str,
        recipients: &[String],
        bytes: &[u8],
    ) -> Result<String, SendError> {
        let program = self.command.display().to_string();
        let mut child = tokio::process::Command::new(&self.command)
            .arg("-i")
            .arg("-f")
            .arg(from)
            .arg("--")
            .args(recipients)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                SendError::Setup(format!(
                    "cannot run {program}: {e}; set outbox.sendmail to the MTA's sendmail program, e.g. /usr/sbin/sendmail"
                ))
            })?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| SendError::Temporary(format!("{program} has no standard input")))?;
        let data = lf_line_ends(bytes);
        let write = async move {
            let r = stdin.write_all(&data).await;
            // Closing stdin ends the message.
            drop(stdin);
            r
        };
        let (written, output) = tokio::join!(write, child.wait_with_output());
        let output = output
            .map_err(|e| SendError::Temporary(format!("waiting for {program} failed: {e}")))?;
        let stderr = one_line(&String::from_utf8_lossy(&output.stderr), MAX_STDERR_CHARS);
        let said = if stderr.is_empty() {
            String::new()
        } else {
            format!(": {stderr}")
        };
        match output.status.code() {
            Some(0) => match written {
                // It exited 0 without reading everything: it did not take
                // the whole message.
                Err(e) => Err(SendError::Temporary(format!(
                    "{program} exited before reading the whole message ({e}){said}"
                ))),
                Ok(()) => Ok(format!("accepted by {program}")),
            },
            Some(code @ (EX_TEMPFAIL | EX_OSERR)) => Err(SendError::Temporary(format!(
                "{program} exited with {code} (temporary failure){said}"
            ))),
            Some(code @ (EX_USAGE | EX_UNAVAILABLE | EX_OSFILE | EX_NOPERM | EX_CONFIG)) => {
                Err(SendError::Setup(format!(
                    "{program} exited with {code}{said}; check outbox.sendmail and the MTA's configuration"
                )))
            }
            Some(code) => Err(SendError::Permanent(format!(
                "{program} exited with {code}{said}"
            ))),
            None => Err(SendError::Temporary(format!(
                "{program} was killed by a signal{said}"
            ))),
        }
    }
}

/// CRLF → LF, the line end a local sendmail expects on its input.
fn lf_line_ends(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while let Some(i) = memchr::memmem::find(rest, b"\r\n") {
        let (line, tail) = rest.split_at(i);
        out.extend_from_slice(line);
        out.push(b'\n');
        rest = tail.get(2..).unwrap_or_default();
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A fake sendmail: records its arguments and input, exits with `code`.
    fn fake(dir: &std::path::Path, code: i32) -> SendmailTransport {
        let script = dir.join(format!("sendmail-{code}"));
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$@\" > {dir}/args\ncat > {dir}/input\necho 'said something' >&2\nexit {code}\n",
                dir = dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        SendmailTransport { command: script }
    }

    #[tokio::test]
    async fn pipes_the_message_with_an_explicit_envelope() {
        let dir = tempfile::tempdir().unwrap();
        let t = fake(dir.path(), 0);
        let reply = t
            .send(
                "support@example.com",
                &["-oQ/tmp@x.test".into(), "c@example.org".into()],
                b"Subject: x\r\n\r\nline\r\n.\r\nend\r\n",
            )
            .await
            .unwrap();
        assert!(reply.starts_with("accepted by"), "{reply}");
        let args = std::fs::read_to_string(dir.path().join("args")).unwrap();
        assert_eq!(
            args,
            "-i\n-f\nsupport@example.com\n--\n-oQ/tmp@x.test\nc@example.org\n"
        );
        let input = std::fs::read(dir.path().join("input")).unwrap();
        assert_eq!(input, b"Subject: x\n\nline\n.\nend\n");
    }

    #[tokio::test]
    async fn exit_codes_follow_sysexits() {
        let dir = tempfile::tempdir().unwrap();
        let send = |code| {
            let t = fake(dir.path(), code);
            async move { t.send("s@x.test", &["c@y.test".into()], b"x\r\n").await }
        };
        assert!(
            matches!(send(75).await, Err(SendError::Temporary(e)) if e.contains("said something"))
        );
        assert!(matches!(send(71).await, Err(SendError::Temporary(_))));
        assert!(matches!(send(78).await, Err(SendError::Setup(_))));
        assert!(matches!(send(64).await, Err(SendError::Setup(_))));
        assert!(matches!(send(67).await, Err(SendError::Permanent(e)) if e.contains("67")));
        assert!(matches!(send(1).await, Err(SendError::Permanent(_))));
    }

    #[tokio::test]
    async fn a_missing_program_is_a_setup_error() {
        let t = SendmailTransport {
            command: "/nonexistent/sendmail".into(),
        };
        assert!(matches!(
            t.send("s@x.test", &["c@y.test".into()], b"x").await,
            Err(SendError::Setup(e)) if e.contains("outbox.sendmail")
        ));
    }

    #[test]
    fn line_ends() {
        assert_eq!(lf_line_ends(b"a\r\nb\r\n\r\nc"), b"a\nb\n\nc");
        assert_eq!(lf_line_ends(b"a\rb\n"), b"a\rb\n");
    }
}
