//! Sending through an SMTP relay: lettre 0.11 speaks the protocol (EHLO,
//! STARTTLS, AUTH, dot-stuffed DATA) over tokio with rustls + ring; this
//! module decides how connections are opened, kept and reused, and what
//! each failure means for the outbox ([`SendError`]).
//!
//! **Why not lettre's `AsyncSmtpTransport` pool.** Every send runs inside
//! `outbox.send_timeout` (lettre's own timeout covers only the TCP
//! connect). When that timeout drops a send in the middle of an exchange,
//! lettre's `PooledConnection::drop` parks the connection again, because
//! only `abort()` marks one broken; the next message on it would read the
//! previous message's replies, or be written into its DATA. Here a
//! connection is parked only after a complete exchange: a cancelled or
//! failed send drops (closes) its connection. At most `pool_size`
//! connections exist, in use or parked.
//!
//! **Sockets are ours, with `TCP_NODELAY`.** lettre writes the message and
//! then the final `\r\n.\r\n` as a second small write; with Nagle's
//! algorithm on, that write waits for the server's delayed ACK (40 ms on
//! Linux) on every message, which capped a connection at about 18
//! messages a second. So the TCP connection (and, for implicit TLS, the
//! handshake, with tokio-rustls and [`crate::tls::client_config`]) is made
//! here and handed to lettre with `connect_with_transport`; STARTTLS is
//! lettre's, over the same socket.
//!
//! The message goes out as composed, byte for byte, with an explicit
//! envelope (`MAIL FROM` = the mailbox address, `RCPT TO` = the row's
//! recipients), so the Message-ID fixed when the row was written is the one
//! the customer gets, and header fields never decide who receives it.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::Address;
use lettre::address::Envelope;
use lettre::transport::smtp::Error as SmtpError;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use lettre::transport::smtp::response::{Response, Severity};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_rustls::TlsConnector;

use super::compose::one_line;
use super::transport::{SendError, TransportError};
use crate::config::{SmtpConfig, TlsMode};

/// A parked connection unused for longer than this is closed instead of
/// reused: well below the five minutes servers keep an idle session (RFC
/// 5321 §4.5.3.2.7, Postfix `smtpd_timeout`), so a reused connection is
/// rarely one the server has dropped already; the NOOP check catches the
/// rest.
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// SASL mechanisms we offer; both need TLS to be safe, which the config
/// enforces for anything but loopback.
const MECHANISMS: &[Mechanism] = &[Mechanism::Plain, Mechanism::Login];
/// Server replies are kept to this many characters in logs and rows.
const MAX_REPLY_CHARS: usize = 500;

/// An SMTP relay and the connections open to it. Cheap to clone; clones
/// share the pool.
#[derive(Clone)]
pub struct SmtpTransport {
    relay: Arc<Relay>,
}

/// Everything needed to open a session, resolved once at start-up (the
/// password read from its secret source, the CA file parsed).
struct Relay {
    host: String,
    port: u16,
    security: Security,
    hello: ClientId,
    login: Option<Login>,
    /// For the TCP connect only; the whole send is bounded by the outbox.
    connect_timeout: Duration,
    /// `outbox.smtp.pool_size`: sessions open at most, in use or parked.
    pool: usize,
    /// One permit per connection: at most `pool_size` sessions at once.
    slots: Semaphore,
    /// Sessions that completed their last exchange, newest last.
    idle: Mutex<Vec<Parked>>,
}

/// How the session is protected. Both TLS forms verify with the platform
/// verifier plus `ca_file`, against the configured host name.
enum Security {
    /// TLS from the first byte: our handshake (tokio-rustls).
    Implicit {
        connector: TlsConnector,
        name: ServerName<'static>,
    },
    /// lettre's STARTTLS upgrade with these parameters.
    StartTls(TlsParameters),
    Plain,
}

/// SMTP AUTH credentials. lettre's `Credentials` redacts itself in
/// `Debug`; the username is kept apart for error messages.
struct Login {
    username: String,
    credentials: Credentials,
}

/// An idle session and since when.
struct Parked {
    conn: AsyncSmtpConnection,
    since: Instant,
}

impl fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.relay;
        f.debug_struct("SmtpTransport")
            .field("host", &r.host)
            .field("port", &r.port)
            .field(
                "tls",
                &match r.security {
                    Security::Implicit { .. } => "implicit",
                    Security::StartTls(_) => "starttls",
                    Security::Plain => "none",
                },
            )
            .field("username", &r.login.as_ref().map(|l| l.username.as_str()))
            .finish_non_exhaustive()
    }
}

/// Where in the session a failure happened: the same reply code means
/// different things at different stages (a 535 at AUTH is our
/// configuration, a 550 at RCPT is this recipient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// TCP connect, greeting, EHLO, and the handshake of implicit TLS.
    Connect,
    /// STARTTLS and its handshake.
    StartTls,
    Login,
    /// MAIL, RCPT, DATA.
    Send,
}

impl SmtpTransport {
    /// Resolves the relay's settings. Blocking: reads the password from
    /// its secret source and the CA file; call it from `spawn_blocking`.
    pub fn new(cfg: &SmtpConfig, connect_timeout: Duration) -> Result<Self, TransportError> {
        let security = match cfg.tls {
            TlsMode::Implicit => {
                let config = crate::tls::client_config(cfg.ca_file.as_deref())
                    .map_err(TransportError::TlsSetup)?;
                let name =
                    ServerName::try_from(cfg.host.clone()).map_err(|e| TransportError::Tls {
                        host: cfg.host.clone(),
                        reason: format!("not a host name or address: {e}"),
                    })?;
                Security::Implicit {
                    connector: TlsConnector::from(config),
                    name,
                }
            }
            TlsMode::StartTls => {
                Security::StartTls(tls_parameters(&cfg.host, cfg.ca_file.as_deref())?)
            }
            TlsMode::None => Security::Plain,
        };
        let hello = match &cfg.hello_name {
            Some(name) => hello_name(name)?,
            None => ClientId::default(),
        };
        let login = match (&cfg.username, &cfg.password) {
            (Some(username), Some(source)) => {
                let password = source.read().map_err(TransportError::Secret)?;
                Some(Login {
                    username: username.clone(),
                    credentials: Credentials::new(username.clone(), password.expose().to_owned()),
                })
            }
            (Some(_), None) => return Err(TransportError::MissingPassword),
            (None, _) => None,
        };
        let pool = usize::try_from(cfg.pool_size.max(1)).unwrap_or(1);
        Ok(SmtpTransport {
            relay: Arc::new(Relay {
                host: cfg.host.clone(),
                port: cfg.port,
                security,
                hello,
                login,
                connect_timeout,
                pool,
                slots: Semaphore::new(pool),
                idle: Mutex::new(Vec::with_capacity(pool)),
            }),
        })
    }

    /// How many messages may be in flight at once: one per connection.
    pub fn pool_size(&self) -> usize {
        self.relay.pool
    }

    /// Sends `bytes` as they are to `recipients`, with `from` as the
    /// envelope sender. Returns the server's reply to the message
    /// (`250 2.0.0 Ok: queued as …`). Cancel-safe: a send dropped by the
    /// outbox's timeout closes its connection.
    pub async fn send(
        &self,
        from: &str,
        recipients: &[String],
        bytes: &[u8],
    ) -> Result<String, SendError> {
        let envelope = envelope(from, recipients)?;
        let _slot = self
            .relay
            .slots
            .acquire()
            .await
            .map_err(|_| SendError::Temporary("the SMTP transport is shutting down".into()))?;
        let mut conn = self.checkout().await?;
        match conn.send(&envelope, bytes).await {
            Ok(reply) => {
                self.park(conn);
                Ok(reply_text(&reply))
            }
            // lettre has sent QUIT and closed the session for SMTP errors;
            // for the rest, dropping the connection closes it.
            Err(e) => Err(self.relay.classify(Stage::Send, &e)),
        }
    }

    /// Opens a session as a send would (TCP, TLS or STARTTLS, EHLO, AUTH)
    /// and closes it with QUIT, sending nothing: for `postdesk
    /// check-config --connect`.
    pub async fn check(&self) -> Result<(), SendError> {
        let mut conn = self.relay.connect().await?;
        let _ = conn.quit().await;
        Ok(())
    }

    /// A parked session that still answers NOOP, else a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SendError> {
        while let Some(parked) = self.unpark() {
            if parked.since.elapsed() > IDLE_LIMIT {
                continue;
            }
            let mut conn = parked.conn;
            if conn.test_connected().await {
                return Ok(conn);
            }
        }
        self.relay.connect().await
    }

    fn unpark(&self) -> Option<Parked> {
        self.relay
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
    }

    fn park(&self, conn: AsyncSmtpConnection) {
        if conn.has_broken() {
            return;
        }
        self.relay
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Parked {
                conn,
                since: Instant::now(),
            });
    }
}

impl Relay {
    /// Opens a session: connect (and handshake for implicit TLS), EHLO,
    /// STARTTLS when required (refusing a server that does not offer it),
    /// AUTH when configured.
    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let at = || format!("{}:{}", self.host, self.port);
        let tcp = tcp_connect(&self.host, self.port, self.connect_timeout)
            .await
            .map_err(|e| SendError::Temporary(format!("cannot reach {}: {e}", at())))?;
        let stream: Box<dyn AsyncTokioStream> = match &self.security {
            Security::Implicit { connector, name } => {
                let tls = connector.connect(name.clone(), tcp).await.map_err(|e| {
                    if tls_io_error(&e).is_some() {
                        self.tls_setup_error(&e)
                    } else {
                        SendError::Temporary(format!("TLS handshake with {} failed: {e}", at()))
                    }
                })?;
                Box::new(TlsSocket(tls))
            }
            Security::StartTls(_) | Security::Plain => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(|e| self.classify(Stage::Connect, &e))?;
        if let Security::StartTls(params) = &self.security {
            if !conn.can_starttls() {
                conn.abort().await;
                return Err(SendError::Setup(format!(
                    "{}:{} does not offer STARTTLS, and outbox.smtp.tls = \"starttls\" forbids sending in clear text; use tls = \"implicit\" if the relay speaks TLS from the first byte (usually port 465)",
                    self.host, self.port
                )));
            }
            conn.starttls(params.clone(), &self.hello)
                .await
                .map_err(|e| self.classify(Stage::StartTls, &e))?;
        }
        if let Some(login) = &self.login
            && let Err(e) = conn.auth(MECHANISMS, &login.credentials).await
        {
            conn.abort().await;
            return Err(self.classify(Stage::Login, &e));
        }
        Ok(conn)
    }

    /// What a lettre error means for the outbox, and what to tell the
    /// operator. The only place SMTP failures are interpreted.
    fn classify(&self, stage: Stage, e: &SmtpError) -> SendError {
        let at = format!("{}:{}", self.host, self.port);
        if let Some(io) = tls_io_error(e) {
            return self.tls_setup_error(io);
        }
        let reply = error_text(e);
        let severity = e.status().map(|c| c.severity);
        if matches!(severity, Some(Severity::TransientNegativeCompletion)) {
            return SendError::Temporary(format!("{at} answered {reply}"));
        }
        let refused = matches!(severity, Some(Severity::PermanentNegativeCompletion));
        match stage {
            Stage::Connect | Stage::StartTls if refused => SendError::Setup(format!(
                "{at} refused the session: {reply}; check outbox.smtp.host, port and tls, and that this host may use the relay"
            )),
            Stage::Login if refused => SendError::Setup(format!(
                "{at} refused the login as {:?}: {reply}; check outbox.smtp.username and outbox.smtp.password",
                self.login
                    .as_ref()
                    .map(|l| l.username.as_str())
                    .unwrap_or("")
            )),
            Stage::Login if e.is_client() => SendError::Setup(format!(
                "{at} offers no login postdesk can use (PLAIN or LOGIN): {reply}{}",
                if matches!(self.security, Security::Plain) {
                    "; servers usually offer AUTH only after TLS: set outbox.smtp.tls = \"starttls\" or \"implicit\""
                } else {
                    ""
                }
            )),
            Stage::Send if refused && e.status().map(u16::from) == Some(530) => {
                SendError::Setup(format!(
                    "{at} requires a login: {reply}; set outbox.smtp.username and outbox.smtp.password"
                ))
            }
            Stage::Send if refused => SendError::Permanent(reply),
            // The message itself cannot be sent this way (e.g. 8-bit data
            // to a server without 8BITMIME): no retry will change that.
            Stage::Send if e.is_client() => SendError::Permanent(reply),
            // Refused, reset, timed out, cut off mid-reply: try again.
            Stage::Connect => SendError::Temporary(format!("cannot reach {at}: {reply}")),
            _ => SendError::Temporary(format!("{at}: {reply}")),
        }
    }

    /// A certificate problem (unknown CA, wrong name, expired): the
    /// operator's to fix, so a setup error naming the settings.
    fn tls_setup_error(&self, e: &io::Error) -> SendError {
        SendError::Setup(format!(
            "TLS with {}:{}: {} (settings: outbox.smtp.host, outbox.smtp.ca_file)",
            self.host,
            self.port,
            crate::tls::describe_handshake_error(&self.host, e)
        ))
    }
}

/// A TCP connection to the first address of `host` that answers within
/// `timeout`, with Nagle's algorithm off (see the module documentation).
async fn tcp_connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("{host} has no address"));
    for addr in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => {
                tcp.set_nodelay(true)?;
                return Ok(tcp);
            }
            Ok(Err(e)) => last = e,
            Err(_) => {
                last = io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no answer from {addr} within {}",
                        humantime::format_duration(timeout)
                    ),
                );
            }
        }
    }
    Err(last)
}

/// A TLS session over our socket, in the form lettre takes
/// (`AsyncTokioStream`); reads and writes go straight to tokio-rustls.
#[derive(Debug)]
struct TlsSocket(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncRead for TlsSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for TlsSocket {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

/// The envelope; an address lettre will not take is permanent for this row.
fn envelope(from: &str, recipients: &[String]) -> Result<Envelope, SendError> {
    let from: Address = from.parse().map_err(|e| {
        SendError::Permanent(format!(
            "the envelope sender {from:?} is not an address: {e}"
        ))
    })?;
    let to = recipients
        .iter()
        .map(|r| {
            r.parse::<Address>().map_err(|e| {
                SendError::Permanent(format!("the recipient {r:?} is not an address: {e}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(from), to)
        .map_err(|e| SendError::Permanent(format!("no usable envelope: {e}")))
}

/// TLS settings for `host`: the platform's trust store, plus the CA in
/// `ca_file` when given. Blocking (reads the file).
fn tls_parameters(
    host: &str,
    ca_file: Option<&std::path::Path>,
) -> Result<TlsParameters, TransportError> {
    let mut builder = TlsParameters::builder(host.to_owned());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| TransportError::CaFile {
            path: path.to_owned(),
            source,
        })?;
        use rustls_pki_types::pem::PemObject;
        let count = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
            .try_fold(0usize, |n, c| c.map(|_| n + 1));
        match count {
            Ok(n) if n > 0 => {}
            Ok(_) => {
                return Err(TransportError::CaPem {
                    path: path.to_owned(),
                    reason: "no certificate in it".into(),
                });
            }
            Err(e) => {
                return Err(TransportError::CaPem {
                    path: path.to_owned(),
                    reason: e.to_string(),
                });
            }
        }
        let cert = Certificate::from_pem(&pem).map_err(|e| TransportError::CaPem {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        builder = builder.add_root_certificate(cert);
    }
    builder.build_rustls().map_err(|e| TransportError::Tls {
        host: host.to_owned(),
        reason: e.to_string(),
    })
}

/// The EHLO argument: a host name or an address literal.
fn hello_name(name: &str) -> Result<ClientId, TransportError> {
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => return Ok(ClientId::Ipv4(ip)),
        Ok(std::net::IpAddr::V6(ip)) => return Ok(ClientId::Ipv6(ip)),
        Err(_) => {}
    }
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid {
        Ok(ClientId::Domain(name.to_owned()))
    } else {
        Err(TransportError::HelloName(name.to_owned()))
    }
}

/// `250 2.0.0 Ok: queued as 4Xy…`, on one line.
fn reply_text(r: &Response) -> String {
    let text = r.message().collect::<Vec<_>>().join(" ");
    one_line(&format!("{} {text}", r.code()), MAX_REPLY_CHARS)
}

/// The server's reply (`550 5.1.1 <x@y>: Recipient address rejected: …`)
/// when there is one, else lettre's description with its cause.
fn error_text(e: &SmtpError) -> String {
    let text = match (e.status(), std::error::Error::source(e)) {
        (Some(code), Some(server)) => format!("{code} {server}"),
        _ => e.to_string(),
    };
    one_line(&text, MAX_REPLY_CHARS)
}

/// The I/O error carrying a rustls error (a certificate the platform or
/// `ca_file` does not trust, a name mismatch) among `e`'s causes.
fn tls_io_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<io::Error>()
            && io
                .get_ref()
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return Some(io);
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretSource;
    use std::path::PathBuf;

    fn config(port: u16) -> SmtpConfig {
        SmtpConfig {
            host: "127.0.0.1".into(),
            port,
            tls: TlsMode::None,
            ca_file: None,
            username: None,
            password: None,
            hello_name: Some("postdesk.test".into()),
            pool_size: 2,
        }
    }

    #[test]
    fn hello_names() {
        assert_eq!(
            hello_name("mail.example.com").ok(),
            Some(ClientId::Domain("mail.example.com".into()))
        );
        assert!(matches!(hello_name("[127.0.0.1]"), Ok(ClientId::Ipv4(_))));
        for bad in ["", "a b", "-x.example", "x..y", "evil\r\nRCPT TO:<a@b>"] {
            assert!(hello_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn unreadable_ca_file_and_secret_say_which_key() {
        let mut c = config(25);
        c.tls = TlsMode::StartTls;
        c.ca_file = Some(PathBuf::from("/nonexistent/ca.pem"));
        let e = SmtpTransport::new(&c, Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().contains("outbox.smtp.ca_file"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("ca.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        c.ca_file = Some(not_pem);
        let e = SmtpTransport::new(&c, Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().contains("no certificate"), "{e}");

        let mut c = config(25);
        c.username = Some("u".into());
        c.password = Some(SecretSource::File(dir.path().join("missing")));
        let e = SmtpTransport::new(&c, Duration::from_secs(5)).unwrap_err();
        assert!(e.to_string().contains("outbox.smtp.password"), "{e}");
    }

    #[test]
    fn debug_shows_no_password() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "hunter2-very-secret\n").unwrap();
        let mut c = config(25);
        c.username = Some("agent@example.test".into());
        c.password = Some(SecretSource::File(p));
        let t = SmtpTransport::new(&c, Duration::from_secs(5)).unwrap();
        let d = format!("{t:?}");
        assert!(
            d.contains("agent@example.test") && !d.contains("hunter2"),
            "{d}"
        );
    }

    #[test]
    fn envelope_rejects_what_is_not_an_address() {
        assert!(envelope("s@example.com", &["c@example.org".into()]).is_ok());
        assert!(matches!(
            envelope("s@example.com", &["not an address".into()]),
            Err(SendError::Permanent(_))
        ));
        assert!(matches!(
            envelope("s@example.com", &[]),
            Err(SendError::Permanent(_))
        ));
    }

    /// A scripted SMTP server on loopback: answers each line with the next
    /// reply, so every stage's classification is checked without Postfix.
    /// One message to x@example.test through a new transport, which must
    /// fail; its error.
    async fn send_error(c: &SmtpConfig) -> SendError {
        SmtpTransport::new(c, Duration::from_secs(5))
            .unwrap()
            .send(
                "s@example.test",
                &["x@example.test".into()],
                b"X: y\r\n\r\nhi\r\n",
            )
            .await
            .unwrap_err()
    }

    async fn scripted(replies: Vec<(&'static str, &'static str)>) -> u16 {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (sock, _) = listener.accept().await.unwrap();
            let (r, mut w) = sock.into_split();
            let mut r = BufReader::new(r);
            w.write_all(b"220 test ESMTP\r\n").await.unwrap();
            let mut in_data = false;
            let mut line = String::new();
            let mut replies = replies.into_iter();
            loop {
                line.clear();
                if r.read_line(&mut line).await.unwrap_or(0) == 0 {
                    return;
                }
                if in_data {
                    if line == ".\r\n" {
                        in_data = false;
                    } else {
                        continue;
                    }
                }
                let Some((expect, reply)) = replies.next() else {
                    return;
                };
                assert!(
                    line.to_ascii_uppercase().starts_with(expect),
                    "expected {expect}, got {line:?}"
                );
                if reply.is_empty() {
                    // Hold the session open and never answer.
                    std::future::pending::<()>().await;
                }
                if expect == "DATA" && reply.starts_with("354") {
                    in_data = true;
                }
                w.write_all(reply.as_bytes()).await.unwrap();
            }
        });
        port
    }

    const EHLO: (&str, &str) = ("EHLO", "250-test\r\n250 8BITMIME\r\n");

    #[tokio::test]
    async fn a_5xx_at_rcpt_is_permanent_with_the_server_text() {
        let port = scripted(vec![
            EHLO,
            ("MAIL", "250 2.1.0 Ok\r\n"),
            (
                "RCPT",
                "550 5.1.1 <x@example.test>: Recipient address rejected: User unknown\r\n",
            ),
            ("QUIT", "221 bye\r\n"),
        ])
        .await;
        let e = send_error(&config(port)).await;
        assert_eq!(
            e,
            SendError::Permanent(
                "550 5.1.1 <x@example.test>: Recipient address rejected: User unknown".into()
            )
        );
    }

    #[tokio::test]
    async fn a_4xx_is_temporary_and_success_returns_the_reply() {
        let port = scripted(vec![
            EHLO,
            ("MAIL", "451 4.3.0 try later\r\n"),
            ("QUIT", "221 bye\r\n"),
        ])
        .await;
        let e = send_error(&config(port)).await;
        assert!(
            matches!(&e, SendError::Temporary(t) if t.contains("451 4.3.0 try later")),
            "{e:?}"
        );

        let port = scripted(vec![
            EHLO,
            ("MAIL", "250 ok\r\n"),
            ("RCPT", "250 ok\r\n"),
            ("DATA", "354 go\r\n"),
            (".", "250 2.0.0 Ok: queued as ABC\r\n"),
            ("NOOP", "250 ok\r\n"),
            ("MAIL", "250 ok\r\n"),
            ("RCPT", "250 ok\r\n"),
            ("DATA", "354 go\r\n"),
            (".", "250 2.0.0 Ok: queued as DEF\r\n"),
        ])
        .await;
        let t = SmtpTransport::new(&config(port), Duration::from_secs(5)).unwrap();
        let msg = b"X: y\r\n\r\nhi\r\n";
        let to = ["x@example.test".to_owned()];
        assert_eq!(
            t.send("s@example.test", &to, msg).await.unwrap(),
            "250 2.0.0 Ok: queued as ABC"
        );
        // The second message reuses the parked session (the script accepts
        // one connection only).
        assert_eq!(
            t.send("s@example.test", &to, msg).await.unwrap(),
            "250 2.0.0 Ok: queued as DEF"
        );
    }

    #[tokio::test]
    async fn a_refused_connection_is_temporary() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = send_error(&config(port)).await;
        assert!(
            matches!(&e, SendError::Temporary(t) if t.contains("cannot reach 127.0.0.1")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn starttls_not_offered_is_a_setup_error() {
        let port = scripted(vec![EHLO, ("QUIT", "221 bye\r\n")]).await;
        let mut c = config(port);
        c.tls = TlsMode::StartTls;
        let e = send_error(&c).await;
        assert!(
            matches!(&e, SendError::Setup(t) if t.contains("does not offer STARTTLS")),
            "{e:?}"
        );
    }

    #[tokio::test]
    async fn a_cancelled_send_never_parks_its_connection() {
        // The server takes the message but never answers the final dot.
        let port = scripted(vec![
            EHLO,
            ("MAIL", "250 ok\r\n"),
            ("RCPT", "250 ok\r\n"),
            ("DATA", "354 go\r\n"),
            (".", ""),
        ])
        .await;
        let t = SmtpTransport::new(&config(port), Duration::from_secs(5)).unwrap();
        let to = ["x@example.test".to_owned()];
        let r = tokio::time::timeout(
            Duration::from_millis(300),
            t.send("s@example.test", &to, b"X: y\r\n\r\nhi\r\n"),
        )
        .await;
        assert!(r.is_err(), "the send was cut off");
        assert!(
            t.unpark().is_none(),
            "a half-used session must not be reused"
        );
        assert_eq!(
            t.relay.slots.available_permits(),
            2,
            "its slot is free again"
        );
    }
}
