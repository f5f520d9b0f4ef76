//! Waiting for new mail with IDLE (RFC 2177).
//!
//! The IDLE handle is read as a plain stream of server responses rather
//! than through async-imap's `wait_with_timeout`, because that helper
//! hides two things postdesk must see: a server `* BYE` (shutdown, idle
//! timeout) arrives there as ordinary "new data", and a bare EOF (the
//! server process died) looks like a local interrupt. Here EXISTS means
//! new mail, BYE and EOF mean the session is over, and everything else
//! (`* OK Still here`, flag changes, EXPUNGE) is ignored. The wait wakes
//! every few seconds to beat the heartbeat, ends after `renew` (servers
//! drop an IDLE after 30 minutes) and when postdesk stops.

use std::time::Duration;

use async_imap::imap_proto::{MailboxDatum, Response, Status};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use super::connect::Connection;
use super::{COMMAND_TIMEOUT, ImapError, timed};
use crate::daemon::HEARTBEAT_STEP;
use crate::health::Heartbeat;

/// Why an IDLE ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The server reported EXISTS: fetch.
    NewMail,
    /// `idle_renew` passed: sync (a cheap poll) and IDLE again.
    Renew,
    /// postdesk is stopping.
    Stop,
}

/// What one server response during IDLE means.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    NewMail,
    Bye(String),
    Ignore,
}

fn classify(response: &Response<'_>) -> Event {
    match response {
        Response::MailboxData(MailboxDatum::Exists(_) | MailboxDatum::Recent(_)) => Event::NewMail,
        Response::Data {
            status: Status::Bye,
            outcome,
        } => Event::Bye(outcome.information.as_deref().unwrap_or("").to_owned()),
        _ => Event::Ignore,
    }
}

/// IDLEs on the selected folder; returns the connection (after DONE) and
/// why the wait ended.
pub async fn idle(
    conn: Connection,
    renew: Duration,
    heartbeat: &Heartbeat,
    stop: &CancellationToken,
) -> Result<(Connection, Wake), ImapError> {
    let Connection {
        session,
        caps,
        maybe_new_mail,
    } = conn;
    let mut handle = session.idle();
    timed("IDLE", COMMAND_TIMEOUT, async {
        handle
            .init()
            .await
            .map_err(|e| ImapError::protocol("IDLE", e))
    })
    .await?;
    tracing::debug!("Waiting in IDLE.");
    let until = tokio::time::Instant::now() + renew;
    let wake = loop {
        heartbeat.beat();
        let left = until.saturating_duration_since(tokio::time::Instant::now());
        if left.is_zero() {
            break Wake::Renew;
        }
        tokio::select! {
            biased;
            _ = stop.cancelled() => break Wake::Stop,
            item = handle.next() => match item {
                None => return Err(ImapError::ConnectionLost("IDLE")),
                Some(Err(e)) => return Err(ImapError::io("IDLE", e)),
                Some(Ok(response)) => match classify(response.parsed()) {
                    Event::NewMail => {
                        tracing::debug!("New mail reported (EXISTS).");
                        break Wake::NewMail;
                    }
                    Event::Bye(text) => return Err(ImapError::Bye(text)),
                    Event::Ignore => {}
                },
            },
            _ = tokio::time::sleep(left.min(HEARTBEAT_STEP)) => {}
        }
    };
    let session = timed("DONE", COMMAND_TIMEOUT, async {
        handle
            .done()
            .await
            .map_err(|e| ImapError::protocol("DONE", e))
    })
    .await?;
    Ok((
        Connection {
            session,
            caps,
            maybe_new_mail,
        },
        wake,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &[u8]) -> Event {
        let (_, r) = Response::parse(line).unwrap();
        classify(&r)
    }

    #[test]
    fn responses_during_idle() {
        assert_eq!(parse(b"* 23 EXISTS\r\n"), Event::NewMail);
        assert_eq!(
            parse(b"* BYE Server shutting down.\r\n"),
            Event::Bye("Server shutting down.".into())
        );
        assert_eq!(parse(b"* OK Still here\r\n"), Event::Ignore);
        assert_eq!(parse(b"* 3 EXPUNGE\r\n"), Event::Ignore);
        assert_eq!(parse(b"* 4 FETCH (FLAGS (\\Seen))\r\n"), Event::Ignore);
    }
}
