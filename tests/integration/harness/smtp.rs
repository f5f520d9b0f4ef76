//! A minimal synchronous SMTP client: plain TCP, no AUTH, one message.
//! Enough to inject mail into Postfix; tests of postdesk's own sending use
//! lettre against the submission port.

use std::fmt;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a message was not accepted.
#[derive(Debug)]
pub enum SmtpError {
    /// Connecting, reading or writing failed (e.g. `ConnectionRefused`
    /// while Postfix is stopped).
    Io(io::Error),
    /// The server answered a command with a 4xx or 5xx reply.
    Rejected {
        command: String,
        code: u16,
        text: String,
    },
}

impl SmtpError {
    /// The reply code of a rejection.
    pub fn code(&self) -> Option<u16> {
        match self {
            SmtpError::Rejected { code, .. } => Some(*code),
            SmtpError::Io(_) => None,
        }
    }

    pub fn is_connection_refused(&self) -> bool {
        matches!(self, SmtpError::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused)
    }
}

impl fmt::Display for SmtpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmtpError::Io(e) => write!(f, "smtp connection failed: {e}"),
            SmtpError::Rejected {
                command,
                code,
                text,
            } => {
                write!(f, "smtp server rejected {command:?} with {code} {text}")
            }
        }
    }
}

impl std::error::Error for SmtpError {}

impl From<io::Error> for SmtpError {
    fn from(e: io::Error) -> Self {
        SmtpError::Io(e)
    }
}

/// Sends `message` from `from` to `to` via the SMTP server at host:port.
/// Bare LF line endings become CRLF and lines starting with "." are stuffed.
pub fn send(
    host: &str,
    port: u16,
    from: &str,
    to: &[&str],
    message: &[u8],
) -> Result<(), SmtpError> {
    let tcp = TcpStream::connect((host, port))?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut conn = BufReader::new(tcp);
    expect(&mut conn, "greeting", 220)?;
    command(&mut conn, "EHLO client.test", 250)?;
    command(&mut conn, &format!("MAIL FROM:<{from}>"), 250)?;
    for rcpt in to {
        command(&mut conn, &format!("RCPT TO:<{rcpt}>"), 250)?;
    }
    command(&mut conn, "DATA", 354)?;
    conn.get_mut().write_all(&data_encode(message))?;
    expect(&mut conn, "end of DATA", 250)?;
    // the message is queued; a failing QUIT changes nothing
    let _ = command(&mut conn, "QUIT", 221);
    Ok(())
}

fn command(conn: &mut BufReader<TcpStream>, line: &str, want: u16) -> Result<(), SmtpError> {
    conn.get_mut().write_all(format!("{line}\r\n").as_bytes())?;
    expect(conn, line, want)
}

/// Reads a (multi-line) reply and checks its code.
fn expect(conn: &mut BufReader<TcpStream>, after: &str, want: u16) -> Result<(), SmtpError> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("smtp server closed the connection after {after:?}"),
            )
            .into());
        }
        let line = line.trim_end();
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad smtp reply {line:?}")))?;
        text.push_str(line.get(4..).unwrap_or_default());
        if line.as_bytes().get(3) != Some(&b'-') {
            if code == want {
                return Ok(());
            }
            return Err(SmtpError::Rejected {
                command: after.to_owned(),
                code,
                text,
            });
        }
        text.push('\n');
    }
}

/// CRLF line endings, dot-stuffing and the final `.` line.
fn data_encode(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + message.len() / 32 + 8);
    let mut line_start = true;
    let mut prev = 0u8;
    for &b in message {
        if line_start && b == b'.' {
            out.push(b'.');
        }
        if b == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(b);
        line_start = b == b'\n';
        prev = b;
    }
    if !line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}
