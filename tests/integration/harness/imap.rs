//! A small synchronous IMAP client for the harness and for tests that need
//! the raw protocol (greetings, STARTTLS, MULTIAPPEND). Not a general
//! client: responses are kept as text plus the literals they carried.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long any single read or write may block.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One untagged response (`* ...`) or continuation.
#[derive(Debug, Clone, Default)]
pub struct Untagged {
    /// The response text; each literal is replaced by `{N}`.
    pub text: String,
    /// The literals in order of appearance.
    pub literals: Vec<Vec<u8>>,
}

/// The untagged responses of a command and its tagged completion line.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub untagged: Vec<Untagged>,
    /// E.g. `a3 OK [APPENDUID 1700000000 5] Append completed.`
    pub tagged: String,
}

/// A connection in any state; `S` is a `TcpStream` or a TLS stream.
pub struct ImapSession<S: Read + Write> {
    stream: BufReader<S>,
    next_tag: u32,
    /// The server greeting (`* OK ...`), empty after STARTTLS.
    pub greeting: String,
}

impl ImapSession<TcpStream> {
    /// Connects over plain TCP and reads the greeting.
    pub fn connect(host: &str, port: u16) -> io::Result<Self> {
        let tcp = TcpStream::connect((host, port))?;
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        Self::after_greeting(tcp)
    }
}

impl<S: Read + Write> ImapSession<S> {
    /// Reads the greeting from a fresh connection; fails unless it is `* OK`.
    pub fn after_greeting(stream: S) -> io::Result<Self> {
        let mut session = Self::without_greeting(stream);
        let line = session.read_line()?;
        let greeting = String::from_utf8_lossy(&line).trim_end().to_owned();
        if !greeting.starts_with("* OK") {
            return Err(io::Error::other(format!(
                "unexpected IMAP greeting: {greeting:?}"
            )));
        }
        session.greeting = greeting;
        Ok(session)
    }

    /// Wraps a stream whose greeting was already consumed (after STARTTLS).
    pub fn without_greeting(stream: S) -> Self {
        ImapSession {
            stream: BufReader::new(stream),
            next_tag: 1,
            greeting: String::new(),
        }
    }

    /// The stream, e.g. to start TLS after `STARTTLS`. Fails if the server
    /// sent more than was read (nothing may follow a STARTTLS reply).
    pub fn into_inner(self) -> io::Result<S> {
        if !self.stream.buffer().is_empty() {
            return Err(io::Error::other(
                "IMAP server sent data after the last response",
            ));
        }
        Ok(self.stream.into_inner())
    }

    /// Runs one command (without tag) and fails unless it completes with OK.
    pub fn command(&mut self, command: &str) -> io::Result<Response> {
        let tag = self.tag();
        self.send(format!("{tag} {command}\r\n").as_bytes())?;
        self.read_response(&tag)
    }

    pub fn login(&mut self, user: &str, password: &str) -> io::Result<()> {
        self.command(&format!("LOGIN {} {}", quote(user), quote(password)))
            .map(drop)
    }

    /// Appends `messages` to `folder` with one MULTIAPPEND command using
    /// non-synchronizing literals (LITERAL+): no round trip per message.
    /// Returns the UIDs Dovecot assigned (UIDPLUS).
    pub fn multiappend<M: AsRef<[u8]>>(
        &mut self,
        folder: &str,
        messages: &[M],
    ) -> io::Result<Vec<u32>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        let tag = self.tag();
        let total: usize = messages.iter().map(|m| m.as_ref().len() + 16).sum();
        let mut buf = Vec::with_capacity(total + 64);
        buf.extend_from_slice(format!("{tag} APPEND {}", quote(folder)).as_bytes());
        for m in messages {
            buf.extend_from_slice(format!(" {{{}+}}\r\n", m.as_ref().len()).as_bytes());
            buf.extend_from_slice(m.as_ref());
        }
        buf.extend_from_slice(b"\r\n");
        self.send(&buf)?;
        let response = self.read_response(&tag)?;
        let uids = appenduid(&response.tagged);
        if uids.len() != messages.len() {
            return Err(io::Error::other(format!(
                "APPEND of {} messages answered {:?}",
                messages.len(),
                response.tagged
            )));
        }
        Ok(uids)
    }

    fn tag(&mut self) -> String {
        let tag = format!("a{}", self.next_tag);
        self.next_tag += 1;
        tag
    }

    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        let stream = self.stream.get_mut();
        stream.write_all(bytes)?;
        stream.flush()
    }

    /// Reads untagged responses until the line tagged `tag`.
    pub fn read_response(&mut self, tag: &str) -> io::Result<Response> {
        let mut response = Response::default();
        loop {
            let mut item = Untagged::default();
            loop {
                let line = self.read_line()?;
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\r', '\n']);
                match literal_size(text) {
                    Some(n) => {
                        let mut literal = vec![0; n];
                        self.stream.read_exact(&mut literal)?;
                        item.text.push_str(text);
                        item.literals.push(literal);
                    }
                    None => {
                        item.text.push_str(text);
                        break;
                    }
                }
            }
            if let Some(rest) = item
                .text
                .strip_prefix(tag)
                .and_then(|r| r.strip_prefix(' '))
            {
                response.tagged = item.text.clone();
                if rest.starts_with("OK") {
                    return Ok(response);
                }
                return Err(io::Error::other(format!(
                    "IMAP command failed: {}",
                    item.text
                )));
            }
            response.untagged.push(item);
        }
    }

    fn read_line(&mut self) -> io::Result<Vec<u8>> {
        let mut line = Vec::new();
        if self.stream.read_until(b'\n', &mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "IMAP server closed the connection",
            ));
        }
        Ok(line)
    }
}

/// `{123}` or `{123+}` at the end of a line announces a literal.
fn literal_size(line: &str) -> Option<usize> {
    let open = line.rfind('{')?;
    let inner = line.get(open + 1..)?.strip_suffix('}')?;
    inner.trim_end_matches('+').parse().ok()
}

/// An IMAP quoted string (ASCII only; folder names here are ASCII).
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The UIDs of `[APPENDUID <validity> <uid-set>]`, e.g. `5:7,9`.
fn appenduid(tagged: &str) -> Vec<u32> {
    let Some(set) = tagged
        .split("[APPENDUID ")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .and_then(|r| r.split_whitespace().nth(1))
    else {
        return Vec::new();
    };
    let mut uids = Vec::new();
    for part in set.split(',') {
        let mut bounds = part.splitn(2, ':').map(str::parse::<u32>);
        match (bounds.next(), bounds.next()) {
            (Some(Ok(a)), None) => uids.push(a),
            (Some(Ok(a)), Some(Ok(b))) => uids.extend(a.min(b)..=a.max(b)),
            _ => return Vec::new(),
        }
    }
    uids
}

/// The number after `name ` in a FETCH response text, e.g. `UID 5`.
pub fn fetch_number(text: &str, name: &str) -> Option<u32> {
    let start = text.find(&format!("{name} "))? + name.len() + 1;
    text.get(start..)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The flags of `FLAGS (...)` in a FETCH response text.
pub fn fetch_flags(text: &str) -> Vec<String> {
    let Some(start) = text.find("FLAGS (") else {
        return Vec::new();
    };
    let rest = text.get(start + 7..).unwrap_or_default();
    let inner = rest.split(')').next().unwrap_or_default();
    inner.split_whitespace().map(str::to_owned).collect()
}
