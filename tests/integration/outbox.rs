//! The outbox against real servers: the `postdesk` binary reads a support
//! Maildir that Dovecot delivers to, and sends through the harness's
//! Postfix (plain SMTP on loopback, STARTTLS submission and implicit TLS
//! with AUTH). What the customer gets is read back over IMAP.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cli::{Postdesk, stdout_ok};
use crate::harness::{DOMAIN, HOST, MailStack, shared};

const DELIVERY: Duration = Duration::from_secs(15);

// ---- a postdesk instance --------------------------------------------------

/// A postdesk whose mailbox `support` is `support_address`, read from that
/// user's Maildir in `stack`, sending as `transport` says (the rest of the
/// `[outbox]` table, see [`plain_smtp`]).
fn desk(stack: &MailStack, support_address: &str, transport: &str, extra: &str) -> Postdesk {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("postdesk.toml");
    let maildir = maildir_of(stack, support_address);
    std::fs::write(
        &config,
        format!(
            r#"[store]
path = "state/postdesk.db"
[log]
format = "human"
level = "debug"
[outbox]
retry = ["1s", "2s"]
send_timeout = "10s"
{transport}
{extra}
[[mailboxes]]
name = "support"
address = "{support_address}"
display_name = "Example Support"
[mailboxes.maildir]
path = "{maildir}"
after_ingest = "none"
poll_interval = "100ms"
"#,
            maildir = maildir.display()
        ),
    )
    .expect("write config");
    Postdesk { dir, config }
}

/// Plain SMTP to the harness's Postfix: allowed in clear on loopback.
fn plain_smtp(stack: &MailStack) -> String {
    smtp(&format!(
        "host = \"{HOST}\"\nport = {}\ntls = \"none\"",
        stack.smtp_port()
    ))
}

/// The SMTP transport with `settings` as its `[outbox.smtp]` table.
fn smtp(settings: &str) -> String {
    format!("transport = \"smtp\"\n[outbox.smtp]\n{settings}\nhello_name = \"postdesk.test\"")
}

/// Where Dovecot keeps `user`'s mail (home = <mail>/<domain>/<local>).
fn maildir_of(stack: &MailStack, user: &str) -> PathBuf {
    let (local, domain) = user.split_once('@').expect("user@domain");
    stack
        .dir()
        .join("mail")
        .join(domain)
        .join(local)
        .join("Maildir")
}

/// `postdesk run --once`, which must succeed; returns its log (stderr).
fn run_once(pd: &Postdesk) -> String {
    let out = pd.run(&["run", "--once"]);
    stdout_ok(&out);
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `postdesk run` in the background, logging to a file.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(pd: &Postdesk, name: &str) -> Daemon {
        let log = pd.path(&format!("{name}.log"));
        let child = pd
            .command()
            .arg("run")
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("start postdesk run");
        Daemon { child, log }
    }

    /// SIGTERM, then waits for it to exit; returns its log.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                _ if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    panic!("postdesk run did not stop on SIGTERM:\n{}", self.log());
                }
                _ => thread::sleep(Duration::from_millis(20)),
            }
        }
        self.log()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Polls `done` until it holds; panics with `context()` after `limit`.
fn eventually(
    limit: Duration,
    what: &str,
    context: impl Fn() -> String,
    mut done: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {limit:?}\n{}",
            context()
        );
        thread::sleep(Duration::from_millis(25));
    }
}

// ---- the database -----------------------------------------------------------

fn db(pd: &Postdesk) -> Option<rusqlite::Connection> {
    rusqlite::Connection::open_with_flags(
        pd.path("state/postdesk.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()
}

fn count(pd: &Postdesk, sql: &str, params: impl rusqlite::Params) -> i64 {
    db(pd)
        .and_then(|c| c.query_row(sql, params, |r| r.get(0)).ok())
        .unwrap_or(0)
}

/// One outbox row as the tests look at it.
#[derive(Debug, Clone)]
struct Row {
    to: String,
    message_id: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    server_reply: Option<String>,
}

fn outbox(pd: &Postdesk) -> Vec<Row> {
    let Some(c) = db(pd) else { return Vec::new() };
    let Ok(mut stmt) = c.prepare(
        "SELECT to_addr, message_id, status, attempts, last_error, server_reply FROM outbox ORDER BY id",
    ) else {
        return Vec::new();
    };
    stmt.query_map([], |r| {
        Ok(Row {
            to: r.get(0)?,
            message_id: r.get(1)?,
            status: r.get(2)?,
            attempts: r.get(3)?,
            last_error: r.get(4)?,
            server_reply: r.get(5)?,
        })
    })
    .and_then(|rows| rows.collect())
    .unwrap_or_default()
}

// ---- mail -------------------------------------------------------------------

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A Message-ID no other test uses.
fn unique_id(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{tag}.{}.{}.{nanos}@customer.test",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
    )
}

fn date() -> String {
    jiff::Timestamp::now()
        .strftime("%a, %d %b %Y %H:%M:%S +0000")
        .to_string()
}

/// A customer's message; `headers` are added as they are.
fn mail(
    from: &str,
    to: &str,
    subject: &str,
    message_id: &str,
    headers: &str,
    body: &str,
) -> Vec<u8> {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\nDate: {}\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n{headers}\r\n{body}\r\n",
        date()
    )
    .into_bytes()
}

/// The header fields of a stored message, unfolded, in order.
fn headers(bytes: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(bytes);
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .replace("\r\n", "\n");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.split('\n') {
        if line.starts_with([' ', '\t']) {
            if let Some((_, v)) = out.last_mut() {
                v.push(' ');
                v.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            out.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    out
}

fn header(bytes: &[u8], name: &str) -> Vec<String> {
    headers(bytes)
        .into_iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

fn one_header(bytes: &[u8], name: &str) -> String {
    let v = header(bytes, name);
    assert_eq!(
        v.len(),
        1,
        "{name}: {v:?}\n{}",
        String::from_utf8_lossy(bytes)
    );
    v.into_iter().next().unwrap_or_default()
}

fn parsed(bytes: &[u8]) -> mail_parser::Message<'_> {
    mail_parser::MessageParser::default()
        .parse(bytes)
        .expect("a delivered message parses")
}

fn subject_of(bytes: &[u8]) -> String {
    parsed(bytes).subject().unwrap_or_default().to_owned()
}

fn text_of(bytes: &[u8]) -> String {
    parsed(bytes)
        .body_text(0)
        .map(|t| t.into_owned())
        .unwrap_or_default()
}

/// The address inside `Name <addr>`, or the whole value.
fn address_in(value: &str) -> String {
    match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => value.get(a + 1..b).unwrap_or_default().to_owned(),
        _ => value.trim().to_owned(),
    }
}

// ---- tests ------------------------------------------------------------------

#[test]
fn the_ack_reaches_the_customer_in_their_language_and_the_reply_threads() {
    let stack = shared();
    let support = stack.lease_user().address;
    let customer = stack.lease_user().address;
    let pd = desk(stack, &support, &plain_smtp(stack), "");

    let asked = unique_id("de");
    stack
        .send_smtp(
            &customer,
            &[&support],
            &mail(
                &format!("Erika Mustermann <{customer}>"),
                &support,
                "Lieferung fehlt",
                &asked,
                "",
                "Guten Tag,\r\n\r\nmeine Bestellung 4711 ist immer noch nicht angekommen. \
                 Können Sie bitte nachsehen, wo das Paket bleibt? Vielen Dank für Ihre Hilfe.\r\n\r\n\
                 Mit freundlichen Grüßen\r\nErika Mustermann",
            ),
        )
        .expect("customer mail accepted");
    stack
        .wait_for_messages(&support, "INBOX", 1, DELIVERY)
        .expect("customer mail delivered");

    let log = run_once(&pd);
    let rows = outbox(&pd);
    assert_eq!(rows.len(), 1, "{rows:?}\n{log}");
    let ack = &rows[0];
    assert_eq!(ack.status, "sent", "{ack:?}\n{log}");
    assert_eq!(ack.to, customer);
    assert!(
        ack.server_reply
            .as_deref()
            .is_some_and(|r| r.starts_with("250 ")),
        "the server's reply is recorded: {ack:?}"
    );

    stack
        .wait_for_messages(&customer, "INBOX", 1, DELIVERY)
        .expect("the ack reaches the customer");
    let got = stack.fetch_all(&customer, "INBOX");
    assert_eq!(got.len(), 1);
    let m = &got[0];
    let raw = String::from_utf8_lossy(m);
    assert_eq!(one_header(m, "Auto-Submitted"), "auto-replied", "{raw}");
    assert_eq!(one_header(m, "X-Auto-Response-Suppress"), "OOF, AutoReply");
    assert_eq!(one_header(m, "Precedence"), "bulk");
    assert_eq!(one_header(m, "Message-ID"), format!("<{}>", ack.message_id));
    assert_eq!(one_header(m, "In-Reply-To"), format!("<{asked}>"));
    assert!(one_header(m, "References").contains(&format!("<{asked}>")));
    assert_eq!(one_header(m, "Content-Language"), "de");
    assert_eq!(address_in(&one_header(m, "To")), customer);
    let from = one_header(m, "From");
    assert_eq!(address_in(&from), support);
    assert!(from.contains("Example Support"), "{from}");
    let subject = subject_of(m);
    assert!(
        subject.starts_with("[PD-1] ") && subject.contains("Lieferung fehlt"),
        "{subject}"
    );
    let text = text_of(m);
    assert!(
        text.contains("PD-1") && text.contains("Erika Mustermann") && text.contains("Anfrage"),
        "German text: {text}"
    );
    // Recorded on the ticket as what the customer received.
    assert_eq!(
        count(
            &pd,
            "SELECT count(*) FROM messages WHERE ticket_id = 1 AND direction = 'outbound' AND message_id = ?1",
            [&ack.message_id]
        ),
        1
    );

    // The customer answers the ack from their mail client.
    let reply = unique_id("reply");
    let ack_id = format!("<{}>", ack.message_id);
    stack
        .send_smtp(
            &customer,
            &[&support],
            &mail(
                &format!("Erika Mustermann <{customer}>"),
                &support,
                &format!("Re: {}", one_header(m, "Subject")),
                &reply,
                &format!("In-Reply-To: {ack_id}\r\nReferences: <{asked}> {ack_id}\r\n"),
                "Die Sendungsnummer lautet 123456.\r\n\r\n> Ihre Anfrage ist bei uns eingegangen",
            ),
        )
        .expect("reply accepted");
    stack
        .wait_for_messages(&support, "INBOX", 2, DELIVERY)
        .expect("reply delivered");
    let log = run_once(&pd);
    assert_eq!(
        count(
            &pd,
            "SELECT count(*) FROM messages WHERE message_id = ?1 AND ticket_id = 1 AND outcome = 'threaded'",
            [&reply]
        ),
        1,
        "the reply threads onto PD-1\n{log}"
    );
    assert_eq!(count(&pd, "SELECT count(*) FROM tickets", []), 1);
    assert_eq!(outbox(&pd).len(), 1, "a reply gets no second ack");
}

#[test]
fn mail_queued_while_postfix_is_down_is_delivered_once_it_returns() {
    let stack = MailStack::builder().spare_users(4).start();
    let support = stack.lease_user().address;
    let customers: Vec<String> = (0..3).map(|_| stack.lease_user().address).collect();
    let pd = desk(&stack, &support, &plain_smtp(&stack), "");
    stack.stop_postfix();
    // Dovecot still takes mail; Postfix is what the outbox needs.
    let asked: Vec<String> = customers.iter().map(|_| unique_id("down")).collect();
    let mails: Vec<Vec<u8>> = customers
        .iter()
        .zip(&asked)
        .enumerate()
        .map(|(i, (c, id))| {
            mail(
                c,
                &support,
                &format!("Order {i} missing"),
                id,
                "",
                "Hello, my order has not arrived. Can you check?",
            )
        })
        .collect();
    stack.append_many(&support, "INBOX", &mails);

    let daemon = Daemon::start(&pd, "first");
    let context = || {
        format!(
            "{:?}\n{}",
            outbox(&pd),
            std::fs::read_to_string(pd.path("first.log")).unwrap_or_default()
        )
    };
    eventually(
        Duration::from_secs(15),
        "three acks tried twice",
        context,
        || {
            let rows = outbox(&pd);
            rows.len() == 3 && rows.iter().all(|r| r.attempts >= 2)
        },
    );
    let started = Instant::now();
    let log = daemon.stop();
    let rows = outbox(&pd);
    assert!(
        rows.iter().all(|r| r.status == "pending"
            && r.last_error
                .as_deref()
                .is_some_and(|e| e.contains("cannot reach"))),
        "{rows:?}\n{log}"
    );
    assert!(log.contains("will retry"), "{log}");

    // A new daemon takes over the rows; backoff keeps it from hammering.
    let daemon = Daemon::start(&pd, "second");
    thread::sleep(Duration::from_millis(1500));
    let attempts_before: i64 = outbox(&pd).iter().map(|r| r.attempts).max().unwrap_or(0);
    stack.start_postfix();
    let context = || format!("{:?}\n{}", outbox(&pd), stack.log_tail(20));
    eventually(DELIVERY, "every ack sent", context, || {
        outbox(&pd).iter().all(|r| r.status == "sent")
    });
    let log = daemon.stop();
    let rows = outbox(&pd);
    assert!(
        attempts_before <= 6,
        "backoff: at most a handful of attempts in {:?}: {rows:?}",
        started.elapsed()
    );
    for (c, row) in customers.iter().zip(&rows) {
        assert_eq!(&row.to, c);
        stack
            .wait_for_messages(c, "INBOX", 1, DELIVERY)
            .unwrap_or_else(|e| panic!("{e}\n{log}"));
    }
    // None lost, none twice: each customer holds exactly its ack.
    for c in &customers {
        let got = stack.fetch_all(c, "INBOX");
        let ids: Vec<String> = got.iter().map(|m| one_header(m, "Message-ID")).collect();
        let row = rows
            .iter()
            .find(|r| &r.to == c)
            .expect("a row per customer");
        assert_eq!(ids, vec![format!("<{}>", row.message_id)], "{c}");
    }
}

#[test]
fn a_recipient_refused_with_5xx_ends_failed_and_status_shows_it() {
    let stack = shared();
    let support = stack.lease_user().address;
    let ghost = format!("nobody-{}@{DOMAIN}", SEQ.fetch_add(1, Ordering::Relaxed));
    let pd = desk(stack, &support, &plain_smtp(stack), "");
    stack.append(
        &support,
        "INBOX",
        &mail(
            &ghost,
            &support,
            "Help",
            &unique_id("ghost"),
            "",
            "Hello, please help me with my account.",
        ),
    );
    let log = run_once(&pd);
    let rows = outbox(&pd);
    assert_eq!(rows.len(), 1, "{log}");
    assert_eq!(rows[0].status, "failed", "{rows:?}\n{log}");
    assert_eq!(rows[0].attempts, 1, "a 5xx is not retried");
    let why = rows[0].last_error.clone().unwrap_or_default();
    assert!(why.starts_with("550 5.1.1"), "the server's own text: {why}");
    assert!(log.contains("refused permanently"), "{log}");

    let out = pd.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "degraded while a mail failed");
    let status: Value = serde_json::from_slice(&out.stdout).expect("status JSON");
    assert_eq!(status["outbox"]["failed"], 1, "{status}");
    assert_eq!(status["healthy"], false);
}

#[test]
fn starttls_and_implicit_tls_with_auth_and_a_wrong_password_is_a_clear_error() {
    let stack = shared();
    let support = stack.lease_user();
    let customer = stack.lease_user().address;
    let ca = stack.ca_file();
    let password_file = |pd: &Postdesk, pw: &str| {
        let p = pd.path("smtp.pass");
        std::fs::write(&p, format!("{pw}\n")).expect("password file");
        p
    };
    let tls = |port: u16, mode: &str, ca: Option<&std::path::Path>| {
        format!(
            "host = \"{HOST}\"\nport = {port}\ntls = \"{mode}\"\nusername = \"{}\"\npassword = {{ file = \"smtp.pass\" }}\n{}",
            support.address,
            ca.map(|c| format!("ca_file = \"{}\"", c.display()))
                .unwrap_or_default()
        )
    };
    stack.append(
        &support.address,
        "INBOX",
        &mail(
            &customer,
            &support.address,
            "Invoice question",
            &unique_id("tls"),
            "",
            "Hello, I have a question about my invoice.",
        ),
    );

    // STARTTLS on submission with the harness CA: delivered.
    let pd = desk(
        stack,
        &support.address,
        &smtp(&tls(stack.submission_port(), "starttls", Some(&ca))),
        "",
    );
    password_file(&pd, &support.password);
    let log = run_once(&pd);
    assert_eq!(
        outbox(&pd).first().map(|r| r.status.as_str()),
        Some("sent"),
        "{log}"
    );
    stack
        .wait_for_messages(&customer, "INBOX", 1, DELIVERY)
        .expect("delivered over STARTTLS");

    // Implicit TLS on smtps: delivered too.
    let pd = desk(
        stack,
        &support.address,
        &smtp(&tls(stack.smtps_port(), "implicit", Some(&ca))),
        "",
    );
    password_file(&pd, &support.password);
    let log = run_once(&pd);
    assert_eq!(
        outbox(&pd).first().map(|r| r.status.as_str()),
        Some("sent"),
        "{log}"
    );
    stack
        .wait_for_messages(&customer, "INBOX", 2, DELIVERY)
        .expect("delivered over implicit TLS");

    // Implicit TLS, wrong password: kept for retry, an error that says
    // what to fix, and the password nowhere.
    let wrong = "Wr0ng-Pa55word-Zebra";
    let pd = desk(
        stack,
        &support.address,
        &smtp(&tls(stack.smtps_port(), "implicit", Some(&ca))),
        "",
    );
    password_file(&pd, wrong);
    let log = run_once(&pd);
    let rows = outbox(&pd);
    assert_eq!(rows.len(), 1, "{log}");
    assert_eq!(rows[0].status, "pending", "a login problem keeps the mail");
    let why = rows[0].last_error.clone().unwrap_or_default();
    assert!(
        why.contains("refused the login")
            && why.contains("535")
            && why.contains("outbox.smtp.password"),
        "{why}"
    );
    assert!(
        log.contains("misconfigured") && log.contains("outbox.smtp.password"),
        "{log}"
    );
    assert!(
        !log.contains(wrong) && !why.contains(wrong),
        "the password leaked:\n{log}"
    );
    let dump = std::fs::read(pd.path("state/postdesk.db")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&dump).contains(wrong),
        "the password is in the database"
    );

    // Without the harness CA the certificate is not trusted: a setup
    // error naming ca_file.
    let pd = desk(
        stack,
        &support.address,
        &smtp(&tls(stack.smtps_port(), "implicit", None)),
        "",
    );
    password_file(&pd, &support.password);
    let log = run_once(&pd);
    let why = outbox(&pd)
        .first()
        .and_then(|r| r.last_error.clone())
        .unwrap_or_default();
    assert!(
        why.contains("unknown authority") && why.contains("outbox.smtp.ca_file"),
        "{why}\n{log}"
    );
}

/// How a customer's auto-responder answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Robot {
    /// Sets no Auto-Submitted, no In-Reply-To: keeps only the subject.
    Naive,
    /// RFC 3834: Auto-Submitted, In-Reply-To, "Automatic reply:".
    Polite,
    /// Drops the subject too: every answer looks like a new request.
    Rude,
}

/// Answers every message arriving in `me`'s inbox until `stop`; returns
/// how many answers it sent.
fn robot(
    stack: &'static MailStack,
    me: String,
    kind: Robot,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<usize> {
    thread::spawn(move || {
        let mut answered = 0u32;
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) {
            for m in stack.messages(&me, "INBOX") {
                if m.uid <= answered {
                    continue;
                }
                answered = m.uid;
                let to = address_in(&header(&m.bytes, "From").concat());
                let subject = header(&m.bytes, "Subject").concat();
                let id = header(&m.bytes, "Message-ID").concat();
                let (subject, extra) = match kind {
                    Robot::Naive => (format!("Re: {subject}"), String::new()),
                    Robot::Polite => (
                        format!("Automatic reply: {subject}"),
                        format!(
                            "Auto-Submitted: auto-replied\r\nIn-Reply-To: {id}\r\nReferences: {id}\r\n"
                        ),
                    ),
                    Robot::Rude => ("Thank you for your message".to_owned(), String::new()),
                };
                let bytes = mail(
                    &me,
                    &to,
                    &subject,
                    &unique_id("robot"),
                    &extra,
                    "Thank you for your message. We will get back to you as soon as possible.",
                );
                stack
                    .send_smtp(&me, &[&to], &bytes)
                    .expect("robot answer accepted");
                sent += 1;
            }
            thread::sleep(Duration::from_millis(50));
        }
        sent
    })
}

#[test]
fn two_auto_responders_exchange_at_most_one_acknowledgement() {
    let stack = shared();
    let support = stack.lease_user().address;
    let robots = [Robot::Naive, Robot::Polite, Robot::Rude];
    let customers: Vec<String> = robots.iter().map(|_| stack.lease_user().address).collect();
    let pd = desk(
        stack,
        &support,
        &plain_smtp(stack),
        "[acknowledge]\nmax_age = \"1d\"\nper_sender_per_hour = 2",
    );
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = robots
        .iter()
        .zip(&customers)
        .map(|(kind, c)| robot(stack, c.clone(), *kind, stop.clone()))
        .collect();
    for (i, c) in customers.iter().enumerate() {
        stack
            .send_smtp(
                c,
                &[&support],
                &mail(
                    c,
                    &support,
                    &format!("Question {i}"),
                    &unique_id("ask"),
                    "",
                    "Hello, how do I reset my password?",
                ),
            )
            .expect("accepted");
    }
    stack
        .wait_for_messages(&support, "INBOX", 3, DELIVERY)
        .expect("questions delivered");
    let daemon = Daemon::start(&pd, "daemon");

    let inbound = |c: &str| {
        count(
            &pd,
            "SELECT count(*) FROM messages WHERE direction = 'inbound' AND from_addr = ?1",
            [c],
        )
    };
    let acks = |c: &str| count(&pd, "SELECT count(*) FROM outbox WHERE to_addr = ?1", [c]);
    let sent = |c: &str| {
        count(
            &pd,
            "SELECT count(*) FROM outbox WHERE to_addr = ?1 AND status = 'sent'",
            [c],
        )
    };
    let context = || {
        let per: HashMap<&str, (i64, i64)> = customers
            .iter()
            .map(|c| (c.as_str(), (inbound(c), acks(c))))
            .collect();
        format!(
            "(inbound, acks) per customer: {per:?}\n{}",
            std::fs::read_to_string(pd.path("daemon.log")).unwrap_or_default()
        )
    };
    // Settled: every ack sent and answered by its robot, and the last
    // answer (already planned, in the same transaction) queued nothing.
    eventually(
        Duration::from_secs(30),
        "the robots fall silent",
        context,
        || {
            customers.iter().all(|c| {
                let a = acks(c);
                a >= 1 && sent(c) == a && inbound(c) == a + 1
            })
        },
    );
    let log = daemon.stop();
    stop.store(true, Ordering::Relaxed);
    let answers: Vec<usize> = handles
        .into_iter()
        .map(|h| h.join().expect("robot"))
        .collect();

    let [naive, polite, rude] = [&customers[0], &customers[1], &customers[2]];
    assert_eq!(acks(naive), 1, "naive robot: one ack\n{log}");
    assert_eq!(acks(polite), 1, "polite robot: one ack\n{log}");
    assert_eq!(stack.fetch_all(naive, "INBOX").len(), 1);
    assert_eq!(stack.fetch_all(polite, "INBOX").len(), 1);
    // The naive answer threads by the subject tag; the polite one is
    // recognised as automatic.
    let classes = |c: &str| -> Vec<(String, Option<i64>)> {
        let conn = db(&pd).expect("db");
        let mut s = conn
            .prepare("SELECT class, ticket_id FROM messages WHERE direction = 'inbound' AND from_addr = ?1 ORDER BY id")
            .expect("query");
        s.query_map([c], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("rows")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    let n = classes(naive);
    assert_eq!(n.len(), 2);
    assert_eq!(
        n[0].1, n[1].1,
        "the naive answer threads onto its ticket: {n:?}"
    );
    let p = classes(polite);
    assert_eq!(p[1].0, "auto-replied", "{p:?}");
    // A robot that even drops the subject opens new tickets; the
    // per-sender cap ends the exchange.
    let r = acks(rude);
    assert!(
        (1..=2).contains(&r),
        "rude robot got {r} acks (cap 2)\n{log}"
    );
    assert!(
        r == 1
            || count(
                &pd,
                "SELECT count(*) FROM events WHERE kind = 'ack.suppressed' AND detail LIKE '%per_sender_per_hour%'",
                []
            ) == 1,
        "the cap is what stopped it\n{log}"
    );
    assert_eq!(answers.iter().sum::<usize>() as i64, 2 + r);
}

#[test]
fn header_injection_from_inbound_mail_is_neutralised_end_to_end() {
    let stack = shared();
    let support = stack.lease_user().address;
    let customer = stack.lease_user().address;
    let victim = stack.lease_user().address;
    let pd = desk(stack, &support, &plain_smtp(stack), "");
    // Encoded CR/LF in the subject and in display names, folded garbage
    // after the message-ids, a Reply-To whose name tries the same.
    let evil = |n: u8| {
        format!(
            "=?utf-8?q?Hi=0D=0ABcc:_{}=0D=0AX-Injected:_{n}?=",
            victim.replace('@', "=40")
        )
    };
    let asked = unique_id("inj");
    let extra = format!(
        "Reply-To: {} <{customer}>\r\nIn-Reply-To: <x@y.test>\r\n Bcc: {victim}\r\nReferences: <ok@customer.test> <\"q\r\n X-Injected: 4\"@y.test>\r\n",
        evil(3)
    );
    let bytes = mail(
        &format!("{} <{customer}>", evil(2)),
        &support,
        &format!(
            "Order =?utf-8?q?problem=0D=0ABcc:_{}?=",
            victim.replace('@', "=40")
        ),
        &asked,
        &extra,
        "Hello, my order never arrived. Please help.",
    );
    stack.append(&support, "INBOX", &bytes);
    let log = run_once(&pd);
    assert_eq!(
        outbox(&pd).first().map(|r| r.status.as_str()),
        Some("sent"),
        "{log}"
    );
    stack
        .wait_for_messages(&customer, "INBOX", 1, DELIVERY)
        .expect("ack delivered");
    let got = stack.fetch_all(&customer, "INBOX");
    let m = &got[0];
    let hs = headers(m);
    for (name, value) in &hs {
        assert!(
            name != "bcc" && name != "x-injected" && !value.contains('\r'),
            "injected {name}: {value}\n{}",
            String::from_utf8_lossy(m)
        );
    }
    assert_eq!(one_header(m, "In-Reply-To"), format!("<{asked}>"));
    assert_eq!(address_in(&one_header(m, "To")), customer);
    assert_eq!(address_in(&one_header(m, "From")), support);
    let subject = subject_of(m);
    assert!(
        subject.starts_with("[PD-1] ") && !subject.contains('\n') && !subject.contains('\r'),
        "{subject:?}"
    );
    assert!(
        one_header(m, "References")
            .split_whitespace()
            .all(|id| id.starts_with('<') && id.ends_with('>') && !id.contains('"')),
        "{hs:?}"
    );
    // The display name is shown on one line in the text, too.
    let text = text_of(m);
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("Bcc:") || l.starts_with("X-Injected:")),
        "{text}"
    );
    // Nobody else got anything.
    assert_eq!(stack.mailbox_status(&victim, "INBOX").messages, 0);
}

#[test]
fn the_sendmail_transport_hands_mail_to_the_local_postfix() {
    let stack = shared();
    let support = stack.lease_user().address;
    let customer = stack.lease_user().address;
    let pd = desk(
        stack,
        &support,
        "transport = \"sendmail\"\nsendmail = \"/usr/sbin/sendmail\"",
        "",
    );
    let asked = unique_id("sendmail");
    stack.append(
        &support,
        "INBOX",
        &mail(
            &customer,
            &support,
            "Via sendmail",
            &asked,
            "",
            "Hello, can you help me with my order?",
        ),
    );
    // Postfix's sendmail finds this stack's queue through MAIL_CONFIG.
    let out = pd
        .command()
        .args(["run", "--once"])
        .env("MAIL_CONFIG", stack.postfix_config_dir())
        .output()
        .expect("run postdesk");
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    stdout_ok(&out);
    let rows = outbox(&pd);
    assert_eq!(
        rows.first().map(|r| r.status.as_str()),
        Some("sent"),
        "{rows:?}\n{log}"
    );
    stack
        .wait_for_messages(&customer, "INBOX", 1, DELIVERY)
        .expect("delivered through sendmail and pickup");
    let got = stack.fetch_all(&customer, "INBOX");
    assert_eq!(
        one_header(&got[0], "Message-ID"),
        format!("<{}>", rows[0].message_id)
    );
    assert_eq!(one_header(&got[0], "In-Reply-To"), format!("<{asked}>"));
    assert!(
        one_header(&got[0], "Return-Path").contains(&support),
        "envelope sender from -f"
    );
}

/// Acks per second through Postfix (plain SMTP on loopback) by pool size:
/// the figures in BENCHMARKS.md "## Outbox". Not part of the suite:
/// `cargo test --test integration -- --ignored --nocapture outbox::bench`.
#[test]
#[ignore = "benchmark"]
fn bench_acks_through_postfix() {
    const N: usize = 400;
    let stack = MailStack::builder().spare_users(1).start();
    let user = stack.lease_user();
    let support = user.address.clone();
    let mails: Vec<Vec<u8>> = (0..N)
        .map(|i| {
            let from = format!("c{i}@customer{i}.test");
            mail(
                &from,
                &support,
                &format!("Question {i}"),
                &unique_id("bench"),
                "",
                "Hello, my parcel has not arrived yet. Could you check?",
            )
        })
        .collect();
    stack.append_many(&support, "INBOX", &mails);
    for (name, transport) in [
        (
            "file (no network)",
            "transport = \"file\"\ndir = \"state/outbox\"".to_owned(),
        ),
        (
            "smtp, pool_size = 1",
            format!("{}\npool_size = 1", plain_smtp(&stack)),
        ),
        (
            "smtp, pool_size = 4",
            format!("{}\npool_size = 4", plain_smtp(&stack)),
        ),
        (
            "smtp, pool_size = 8",
            format!("{}\npool_size = 8", plain_smtp(&stack)),
        ),
        (
            "smtp, implicit TLS + AUTH, pool_size = 4",
            smtp(&format!(
                "host = \"{HOST}\"\nport = {}\ntls = \"implicit\"\nca_file = \"{}\"\nusername = \"{support}\"\npassword = {{ env = \"BENCH_SMTP_PASSWORD\" }}\npool_size = 4",
                stack.smtps_port(),
                stack.ca_file().display()
            )),
        ),
        (
            "sendmail (Postfix's, one process per mail)",
            "transport = \"sendmail\"\nsendmail = \"/usr/sbin/sendmail\"".to_owned(),
        ),
    ] {
        let pd = desk(
            &stack,
            &support,
            &transport,
            "[acknowledge]\nmax_age = \"1d\"\nper_hour = 100000",
        );
        let ingest = pd.run(&[
            "ingest",
            "--mailbox",
            "support",
            &maildir_of(&stack, &support).display().to_string(),
        ]);
        stdout_ok(&ingest);
        assert_eq!(outbox(&pd).len(), N);
        let started = Instant::now();
        let out = pd
            .command()
            .args(["run", "--once"])
            .env("BENCH_SMTP_PASSWORD", &user.password)
            .env("MAIL_CONFIG", stack.postfix_config_dir())
            .output()
            .expect("run postdesk");
        let took = started.elapsed();
        stdout_ok(&out);
        let sent = outbox(&pd).iter().filter(|r| r.status == "sent").count();
        assert_eq!(sent, N, "{}", String::from_utf8_lossy(&out.stderr));
        // The flush alone, from the log's first and last "Mail sent.".
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        let stamps: Vec<jiff::Timestamp> = log
            .lines()
            .filter(|l| l.contains("Mail sent."))
            .filter_map(|l| l.split_whitespace().next()?.parse().ok())
            .collect();
        let flush = match (stamps.first(), stamps.last()) {
            (Some(a), Some(b)) => b.duration_since(*a).as_secs_f64(),
            _ => took.as_secs_f64(),
        };
        println!(
            "{name}: {N} acks in {flush:.2} s = {:.0} acks/s (run --once total {:.2} s)",
            (N as f64 - 1.0) / flush.max(1e-6),
            took.as_secs_f64()
        );
    }
}

#[test]
fn the_ack_goes_to_reply_to_unless_it_points_at_us() {
    let stack = shared();
    let support = stack.lease_user().address;
    let customer = stack.lease_user().address;
    let assistant = stack.lease_user().address;
    let other = stack.lease_user().address;
    let pd = desk(stack, &support, &plain_smtp(stack), "");
    let ask = |from: &str, reply_to: &str, subject: &str| {
        mail(
            from,
            &support,
            subject,
            &unique_id("rt"),
            &format!("Reply-To: {reply_to}\r\n"),
            "Hello, my invoice shows the wrong address. Can you correct it?",
        )
    };
    stack.append_many(
        &support,
        "INBOX",
        &[
            ask(
                &customer,
                &format!("Assistant <{assistant}>"),
                "Invoice address",
            ),
            ask(&other, &format!("Us <{support}>"), "Wrong invoice"),
        ],
    );
    let log = run_once(&pd);
    let rows = outbox(&pd);
    let to: Vec<&str> = rows.iter().map(|r| r.to.as_str()).collect();
    assert_eq!(to, vec![assistant.as_str(), other.as_str()], "{log}");
    assert!(rows.iter().all(|r| r.status == "sent"), "{rows:?}");
    for who in [&assistant, &other] {
        stack
            .wait_for_messages(who, "INBOX", 1, DELIVERY)
            .expect("ack delivered");
    }
    assert_eq!(stack.mailbox_status(&customer, "INBOX").messages, 0);
}
