//! Getting a logged-in IMAP session: TCP (keepalive on, Nagle off), TLS
//! (implicit or STARTTLS, names always verified) or plain text where the
//! config allows it, the greeting, authentication (LOGIN / PLAIN or
//! XOAUTH2) and the capabilities that decide how the folder is watched.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_imap::imap_proto::{Capability, Response, ResponseCode, Status};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::{COMMAND_TIMEOUT, ImapError, timed};
use crate::config::{ImapAuth, ImapConfig, TlsMode};
use crate::secret::{SecretSource, SecretString};

/// How long the TCP connect, the TLS handshake and the greeting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// TCP keepalive: a peer that vanished (NAT timeout, pulled cable) is
/// noticed within about two minutes even while IDLE waits for nothing.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_RETRIES: u32 = 4;

/// The byte stream under the IMAP session: plain TCP (loopback, or when
/// allowed) or TLS over TCP. One type so the session type is the same
/// whatever the config says.
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Plain(_) => "Transport::Plain",
            Transport::Tls(_) => "Transport::Tls",
        })
    }
}

impl AsyncRead for Transport {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A logged-in session over [`Transport`].
pub type Session = async_imap::Session<Transport>;
/// A connection before login.
type Client = async_imap::Client<Transport>;

/// What the server can do that changes how postdesk works with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    /// RFC 2177: push instead of polling.
    pub idle: bool,
    /// RFC 6851: move in one step; else COPY + STORE \Deleted + EXPUNGE.
    pub r#move: bool,
    /// RFC 4315: UID EXPUNGE, so only our messages are expunged.
    pub uidplus: bool,
}

/// A logged-in session and what its server can do.
#[derive(Debug)]
pub struct Connection {
    pub session: Session,
    pub caps: Capabilities,
    /// An EXISTS arrived outside IDLE (while other commands ran): there
    /// may be new mail, so sync again before idling.
    pub maybe_new_mail: bool,
}

impl Connection {
    /// Empties the queue of unsolicited responses (async-imap keeps at most
    /// 100 and drops the rest), noting whether new mail may have arrived.
    /// Call after every command that can cause many of them (a MOVE sends
    /// one EXPUNGE per message).
    pub fn drain_unsolicited(&mut self) {
        let mut n = 0usize;
        while let Ok(r) = self.session.unsolicited_responses.try_recv() {
            n += 1;
            if matches!(
                r,
                async_imap::types::UnsolicitedResponse::Exists(_)
                    | async_imap::types::UnsolicitedResponse::Recent(_)
            ) {
                self.maybe_new_mail = true;
            }
        }
        // A full queue may have dropped an EXISTS: assume the worst.
        if n >= UNSOLICITED_CAPACITY {
            self.maybe_new_mail = true;
        }
    }

    /// LOGOUT, politely and briefly; failures do not matter any more.
    pub async fn logout(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.session.logout()).await;
    }
}

/// async-imap's queue of unsolicited responses holds this many.
const UNSOLICITED_CAPACITY: usize = 100;

/// The secret that logs in: a password, re-read at every connect (so a
/// rotated password is picked up), or an OAuth access token, kept until
/// the server refuses it and then fetched again.
#[derive(Debug)]
pub struct Credentials {
    auth: ImapAuth,
    token: Option<SecretString>,
}

impl Credentials {
    pub fn new(auth: ImapAuth) -> Credentials {
        Credentials { auth, token: None }
    }

    async fn read(src: &SecretSource) -> Result<SecretString, ImapError> {
        let src = src.clone();
        tokio::task::spawn_blocking(move || src.read())
            .await
            .map_err(|e| ImapError::Task(e.to_string()))?
            .map_err(ImapError::Secret)
    }

    /// Where the secret comes from, for error messages (never the value).
    fn describe(&self) -> String {
        match &self.auth {
            ImapAuth::Password(s) => format!("password from {s}"),
            ImapAuth::XOAuth2(s) => format!("OAuth token from {s}"),
        }
    }
}

/// SASL PLAIN: authorization id empty, then user and password.
struct Plain<'a> {
    user: &'a str,
    password: &'a SecretString,
}

impl async_imap::Authenticator for Plain<'_> {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        let mut r = Vec::with_capacity(self.user.len() + self.password.expose().len() + 2);
        r.push(0);
        r.extend_from_slice(self.user.as_bytes());
        r.push(0);
        r.extend_from_slice(self.password.expose().as_bytes());
        r
    }
}

/// SASL XOAUTH2 (Google, Microsoft). On failure the server sends a JSON
/// error as a challenge and expects an empty answer before its NO.
pub(crate) struct XOAuth2<'a> {
    pub(crate) user: &'a str,
    pub(crate) token: &'a SecretString,
    pub(crate) sent: bool,
}

impl async_imap::Authenticator for XOAuth2<'_> {
    type Response = Vec<u8>;
    fn process(&mut self, _challenge: &[u8]) -> Vec<u8> {
        if self.sent {
            return Vec::new();
        }
        self.sent = true;
        format!(
            "user={}\x01auth=Bearer {}\x01\x01",
            self.user,
            self.token.expose()
        )
        .into_bytes()
    }
}

/// Connects, protects, greets, logs in and reads the capabilities.
pub async fn connect(
    cfg: &ImapConfig,
    tls: Option<&Arc<ClientConfig>>,
    creds: &mut Credentials,
) -> Result<Connection, ImapError> {
    let tcp = tcp(&cfg.host, cfg.port).await?;
    let (client, greeting_caps) = match cfg.tls {
        TlsMode::Implicit => {
            let stream = handshake(cfg, tls, tcp).await?;
            greet(Client::new(stream), &cfg.host).await?
        }
        TlsMode::StartTls => {
            let (mut client, _) = greet(Client::new(Transport::Plain(tcp)), &cfg.host).await?;
            timed("STARTTLS", CONNECT_TIMEOUT, async {
                client
                    .run_command_and_check_ok("STARTTLS", None)
                    .await
                    .map_err(|e| match e {
                        async_imap::error::Error::Bad(_) | async_imap::error::Error::No(_) => {
                            ImapError::NoStartTls(cfg.host.clone())
                        }
                        e => ImapError::protocol("STARTTLS", e),
                    })
            })
            .await?;
            // Anything the server sent after its answer is dropped with
            // the plain-text buffer: nothing may be injected before TLS.
            let Transport::Plain(tcp) = client.into_inner() else {
                return Err(ImapError::Task("STARTTLS on a TLS stream".into()));
            };
            let stream = handshake(cfg, tls, tcp).await?;
            // The capabilities may change under TLS; ask after login.
            (Client::new(stream), None)
        }
        TlsMode::None => greet(Client::new(Transport::Plain(tcp)), &cfg.host).await?,
    };
    let mut session = login(client, cfg, creds, greeting_caps.as_deref()).await?;
    let caps = timed("CAPABILITY", COMMAND_TIMEOUT, async {
        session
            .capabilities()
            .await
            .map_err(|e| ImapError::protocol("CAPABILITY", e))
    })
    .await?;
    Ok(Connection {
        caps: Capabilities {
            idle: caps.has_str("IDLE"),
            r#move: caps.has_str("MOVE"),
            uidplus: caps.has_str("UIDPLUS"),
        },
        session,
        maybe_new_mail: false,
    })
}

async fn tcp(host: &str, port: u16) -> Result<TcpStream, ImapError> {
    let connect_error = |source| ImapError::Connect {
        host: host.to_owned(),
        port,
        source,
    };
    let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await {
        Ok(r) => r.map_err(connect_error)?,
        Err(_) => {
            return Err(connect_error(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
            )));
        }
    };
    // Commands are small and answered one by one: Nagle + delayed ACK
    // would add up to 40 ms to each round trip.
    tcp.set_nodelay(true).map_err(connect_error)?;
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL)
        .with_retries(KEEPALIVE_RETRIES);
    socket2::SockRef::from(&tcp)
        .set_tcp_keepalive(&keepalive)
        .map_err(connect_error)?;
    Ok(tcp)
}

async fn handshake(
    cfg: &ImapConfig,
    tls: Option<&Arc<ClientConfig>>,
    tcp: TcpStream,
) -> Result<Transport, ImapError> {
    let Some(tls) = tls else {
        return Err(ImapError::Task(
            "TLS is on but no TLS config was built".into(),
        ));
    };
    let name = ServerName::try_from(cfg.host.clone()).map_err(|_| {
        ImapError::Tls(format!(
            "{:?} is neither a host name nor an IP address; fix host",
            cfg.host
        ))
    })?;
    let connector = TlsConnector::from(tls.clone());
    match tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp)).await {
        Ok(Ok(s)) => Ok(Transport::Tls(Box::new(s))),
        Ok(Err(e)) => Err(ImapError::Tls(crate::tls::describe_handshake_error(
            &cfg.host, &e,
        ))),
        Err(_) => Err(ImapError::Timeout {
            what: "the TLS handshake",
            secs: CONNECT_TIMEOUT.as_secs(),
        }),
    }
}

/// Reads the greeting; returns the client and, when the greeting carried
/// them, the capabilities (to pick LOGIN or AUTHENTICATE PLAIN).
async fn greet(mut client: Client, host: &str) -> Result<(Client, Option<Vec<String>>), ImapError> {
    let response = match tokio::time::timeout(CONNECT_TIMEOUT, client.read_response()).await {
        Err(_) => {
            return Err(ImapError::Timeout {
                what: "the server greeting",
                secs: CONNECT_TIMEOUT.as_secs(),
            });
        }
        Ok(Err(e)) => return Err(ImapError::io("the greeting", e)),
        Ok(Ok(None)) => return Err(ImapError::ConnectionLost("the greeting")),
        Ok(Ok(Some(r))) => r,
    };
    match response.parsed() {
        Response::Data {
            status: Status::Ok | Status::PreAuth,
            outcome,
        } => {
            let caps = match &outcome.code {
                Some(ResponseCode::Capabilities(c)) => Some(
                    c.iter()
                        .map(|c| match c {
                            Capability::Imap4rev1 => "IMAP4rev1".to_owned(),
                            Capability::Auth(a) => format!("AUTH={a}"),
                            Capability::Atom(a) => a.to_string(),
                        })
                        .collect(),
                ),
                _ => None,
            };
            Ok((client, caps))
        }
        Response::Data { outcome, .. } => Err(ImapError::Greeting(format!(
            "{host}: {}",
            outcome.information.as_deref().unwrap_or("")
        ))),
        other => Err(ImapError::Greeting(format!("{host}: unexpected {other:?}"))),
    }
}

async fn login(
    client: Client,
    cfg: &ImapConfig,
    creds: &mut Credentials,
    greeting_caps: Option<&[String]>,
) -> Result<Session, ImapError> {
    let refused = |e: async_imap::error::Error, creds: &Credentials| match e {
        async_imap::error::Error::No(text) | async_imap::error::Error::Bad(text) => {
            ImapError::Auth {
                user: cfg.username.clone(),
                reason: server_text(&text),
                secret: creds.describe(),
            }
        }
        e => ImapError::protocol("login", e),
    };
    match creds.auth.clone() {
        ImapAuth::Password(src) => {
            let password = Credentials::read(&src).await?;
            let plain = greeting_caps
                .is_some_and(|c| c.iter().any(|c| c.eq_ignore_ascii_case("AUTH=PLAIN")));
            let result = timed("login", COMMAND_TIMEOUT, async {
                Ok(if plain {
                    client
                        .authenticate(
                            "PLAIN",
                            Plain {
                                user: &cfg.username,
                                password: &password,
                            },
                        )
                        .await
                } else {
                    client.login(&cfg.username, password.expose()).await
                })
            })
            .await?;
            result.map_err(|(e, _)| refused(e, creds))
        }
        ImapAuth::XOAuth2(src) => {
            let had_token = creds.token.is_some();
            let token = match &creds.token {
                Some(t) => t.clone(),
                None => Credentials::read(&src).await?,
            };
            creds.token = Some(token.clone());
            let first = timed("login", COMMAND_TIMEOUT, async {
                Ok(client
                    .authenticate(
                        "XOAUTH2",
                        XOAuth2 {
                            user: &cfg.username,
                            token: &token,
                            sent: false,
                        },
                    )
                    .await)
            })
            .await?;
            match first {
                Ok(s) => Ok(s),
                Err((e, client)) => {
                    // The token may have expired: fetch it again, and try
                    // once more at once if it was a cached one.
                    creds.token = None;
                    let refused_first = refused(e, creds);
                    if !had_token || !matches!(refused_first, ImapError::Auth { .. }) {
                        return Err(refused_first);
                    }
                    let fresh = Credentials::read(&src).await?;
                    creds.token = Some(fresh.clone());
                    let second = timed("login", COMMAND_TIMEOUT, async {
                        Ok(client
                            .authenticate(
                                "XOAUTH2",
                                XOAuth2 {
                                    user: &cfg.username,
                                    token: &fresh,
                                    sent: false,
                                },
                            )
                            .await)
                    })
                    .await?;
                    second.map_err(|(e, _)| {
                        creds.token = None;
                        refused(e, creds)
                    })
                }
            }
        }
    }
}

/// The human part of async-imap's `code: …, info: Some("…")` error text.
fn server_text(text: &str) -> String {
    text.split_once("info: Some(\"")
        .and_then(|(_, rest)| rest.rsplit_once("\")"))
        .map(|(info, _)| info.replace("\\\"", "\""))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_imap::Authenticator;

    #[test]
    fn server_text_is_extracted() {
        assert_eq!(
            server_text("code: Some(AuthenticationFailed), info: Some(\"Authentication failed.\")"),
            "Authentication failed."
        );
        assert_eq!(server_text("odd"), "odd");
    }

    #[test]
    fn plain_and_xoauth2_responses() {
        let pw = SecretString::new("pw");
        let mut p = Plain {
            user: "u@x",
            password: &pw,
        };
        assert_eq!(p.process(b""), b"\0u@x\0pw");
        let tok = SecretString::new("tok");
        let mut x = XOAuth2 {
            user: "u@x",
            token: &tok,
            sent: false,
        };
        assert_eq!(x.process(b""), b"user=u@x\x01auth=Bearer tok\x01\x01");
        assert!(
            x.process(b"{\"status\":\"401\"}").is_empty(),
            "the error challenge gets an empty answer"
        );
    }

    #[test]
    fn credentials_describe_the_source_not_the_value() {
        let c = Credentials::new(ImapAuth::Password(SecretSource::Env("IMAP_PW".into())));
        assert_eq!(c.describe(), "password from environment variable IMAP_PW");
    }
}
