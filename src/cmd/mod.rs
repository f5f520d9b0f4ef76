//! Command glue: each subcommand turns its arguments into library calls
//! and prints the result. Errors here are `anyhow` chains for people.

/// `println!` for people: text that may come from mail made safe (see
/// [`terminal_safe`]), and a reader that went away (`| head`) ends the
/// command quietly instead of a panic (see [`say_line`]).
macro_rules! say {
    () => {
        $crate::cmd::say_line("")
    };
    ($($arg:tt)*) => {
        $crate::cmd::say_line(&format!($($arg)*))
    };
}

mod agent;
mod check;
mod ingest;
mod quarantine;
mod run;
mod status;
mod tickets;

use std::process::ExitCode;

use anyhow::Context;

use crate::cli::{Cli, Command, QuarantineAction};
use crate::config::Config;

/// Text from mail made safe to print on a terminal: control characters
/// other than newline and tab become U+FFFD. ESC above all: a subject
/// carrying `ESC ] 0 ;` retitles the operator's window, others move the
/// cursor, clear or hide text, or (OSC 52) write the clipboard. The JSON
/// output needs none of this, serde_json escapes them.
pub fn terminal_safe(s: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !s.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(s);
    }
    std::borrow::Cow::Owned(
        s.chars()
            .map(|c| if unsafe_char(c) { '\u{fffd}' } else { c })
            .collect(),
    )
}

/// Whether bytes are text a terminal only displays: UTF-8 without control
/// characters but line ends and tabs. Anything else (a NUL of a binary
/// file, the ESC of an escape sequence that a message can carry to
/// retitle the window or write the clipboard) goes to a file, not to the
/// operator's screen.
pub(crate) fn terminal_can_show(bytes: &[u8]) -> bool {
    std::str::from_utf8(bytes).is_ok_and(|s| {
        !s.chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    })
}

/// Writes one line to stdout through [`terminal_safe`]. `println!`
/// panics when the reader has gone (`postdesk tickets | head`: Rust
/// ignores SIGPIPE, so the write fails with EPIPE); a closed pipe means
/// nobody wants the rest, so the command ends there with success, as
/// ripgrep does. Any other write error ends it with a message.
pub(crate) fn say_line(line: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{}", terminal_safe(line)) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("postdesk: cannot write to standard output: {e}");
        std::process::exit(1);
    }
}

/// Writes bytes as they are (`--raw`, `--attachment`); a reader that went
/// away is not a failure (see [`say_line`]).
pub(crate) fn write_bytes(out: &mut impl std::io::Write, bytes: &[u8]) -> anyhow::Result<Exit> {
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(Exit::Success),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Exit::Success),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to standard output")),
    }
}

/// How the process ends; the codes are part of the CLI contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Success,
    /// Something failed (also: `status` found postdesk degraded).
    Failure,
    /// EX_TEMPFAIL (75): the MTA should deliver the message again later.
    TempFail,
}

impl Exit {
    pub fn code(self) -> ExitCode {
        match self {
            Exit::Success => ExitCode::SUCCESS,
            Exit::Failure => ExitCode::from(1),
            Exit::TempFail => ExitCode::from(75),
        }
    }
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    let config_path = Config::locate(cli.config.as_deref());
    match cli.command {
        Command::CheckConfig { connect } => check::check_config(&config_path, connect),
        Command::Ingest {
            json,
            dry_run,
            mailbox,
            outbound,
            paths,
        } => {
            let cfg = load(&config_path, Exit::TempFail)?;
            crate::telemetry::init_cli(&cfg, cli.log_format.as_deref());
            ingest::ingest(
                &cfg,
                &ingest::IngestArgs {
                    json,
                    dry_run,
                    mailbox,
                    outbound,
                    paths,
                },
            )
        }
        Command::Tickets {
            status,
            queue,
            limit,
            json,
            due,
            breached,
        } => {
            let cfg = load(&config_path, Exit::Failure)?;
            tickets::list(
                &cfg,
                &tickets::ListArgs {
                    status,
                    queue,
                    limit,
                    json,
                    due,
                    breached,
                },
            )
        }
        Command::Reply { ticket, file } => {
            let cfg = load(&config_path, Exit::Failure)?;
            agent::reply(&cfg, &agent::TextArgs { ticket, file })
        }
        Command::Note { ticket, file } => {
            let cfg = load(&config_path, Exit::Failure)?;
            agent::note(&cfg, &agent::TextArgs { ticket, file })
        }
        Command::Close { ticket } => {
            let cfg = load(&config_path, Exit::Failure)?;
            agent::close(&cfg, &ticket)
        }
        Command::Reopen { ticket } => {
            let cfg = load(&config_path, Exit::Failure)?;
            agent::reopen(&cfg, &ticket)
        }
        Command::Show {
            ticket,
            events,
            json,
            raw,
            attachment,
        } => {
            let cfg = load(&config_path, Exit::Failure)?;
            match (raw, attachment) {
                (Some(n), _) => tickets::show_raw(&cfg, &ticket, n),
                (None, Some(n)) => tickets::show_attachment(&cfg, &ticket, n),
                (None, None) => tickets::show(&cfg, &ticket, events, json),
            }
        }
        Command::Status { json } => {
            let cfg = load(&config_path, Exit::Failure)?;
            status::status(&cfg, json)
        }
        Command::Quarantine { action } => {
            let cfg = load(&config_path, Exit::Failure)?;
            match action {
                QuarantineAction::List { all, json } => quarantine::list(&cfg, all, json),
                QuarantineAction::Show { id, raw } => quarantine::show(&cfg, id, raw),
                QuarantineAction::Drop { ids } => quarantine::drop(&cfg, &ids),
                QuarantineAction::Replay { ids, all, max_size } => {
                    let max = max_size
                        .as_deref()
                        .map(crate::config::parse_size)
                        .transpose()
                        .map_err(anyhow::Error::msg)?;
                    quarantine::replay(&cfg, &ids, all, max)
                }
            }
        }
        Command::Run { once } => {
            let cfg = load(&config_path, Exit::Failure)?;
            crate::telemetry::init_daemon(&cfg, cli.log_format.as_deref());
            run::run(cfg, once)
        }
    }
}

/// Loads the config or explains every problem. `on_error` matters for the
/// MTA pipe: a broken config is temporary from the MTA's point of view (an
/// operator will fix it), so the message must be retried, not bounced.
fn load(path: &std::path::Path, on_error: Exit) -> anyhow::Result<Config> {
    match Config::load(path) {
        Ok(c) => Ok(c),
        Err(e) => {
            eprintln!(
                "postdesk: the config has errors:\n{e}\n(run `postdesk check-config` after fixing them)"
            );
            Err(ExitWith(on_error)).context("invalid config")
        }
    }
}

/// An error that already printed its explanation and wants a specific
/// exit code.
#[derive(Debug)]
pub struct ExitWith(pub Exit);

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}", self.0)
    }
}

impl std::error::Error for ExitWith {}

/// The exit code an error asks for (default: failure).
pub fn exit_of(e: &anyhow::Error) -> Exit {
    e.chain()
        .find_map(|c| c.downcast_ref::<ExitWith>())
        .map(|x| x.0)
        .unwrap_or(Exit::Failure)
}

/// `2026-11-22 10:04` in UTC, for tables.
pub(crate) fn short_time(t: jiff::Timestamp) -> String {
    t.strftime("%Y-%m-%d %H:%M").to_string()
}

#[cfg(test)]
mod tests {
    use super::{terminal_can_show, terminal_safe};

    #[test]
    fn control_characters_from_mail_do_not_reach_the_terminal() {
        assert_eq!(terminal_safe("Grüße,\tJana\nPD-4"), "Grüße,\tJana\nPD-4");
        assert_eq!(
            terminal_safe("Hi\u{1b}]0;pwned\u{7}\r\u{9b}2J"),
            "Hi\u{fffd}]0;pwned\u{fffd}\u{fffd}\u{fffd}2J"
        );
    }

    #[test]
    fn a_terminal_gets_only_text_without_escape_sequences() {
        assert!(terminal_can_show(
            b"Subject: Hi\r\n\r\nGr\xc3\xbc\xc3\x9fe,\tJana\r\n"
        ));
        for bytes in [
            &b"Subject: \x1b]0;pwned\x07\r\n"[..],
            b"\x1b[2J",
            b"PNG\0\0",
            b"\xff\xfe latin-1 \xe9",
            "C1 \u{9b}31m".as_bytes(),
        ] {
            assert!(!terminal_can_show(bytes), "{bytes:?}");
        }
    }
}
