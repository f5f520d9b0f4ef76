//! The IMAP source against a real Dovecot: the `run` daemon and `run
//! --once`, exactly-once ingestion, IDLE latency, the Sent folder,
//! UIDVALIDITY, size limit, certificates, a wrong password, and a server
//! restart while idling. Non-destructive tests share the harness stack
//! with a user of their own; those that stop Dovecot start their own.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::{Postdesk, stdout_ok};
use crate::harness::{MailStack, User, shared};

/// Generous deadlines: they bound a hang, they do not measure speed.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// How postdesk reaches the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    Implicit,
    Starttls,
    None,
}

/// `[mailboxes.imap]` for `user` on `stack`, plus `extra` keys. The
/// password goes into a file in the test's temp dir.
pub fn imap_section(
    pd: &Postdesk,
    stack: &MailStack,
    user: &User,
    tls: Tls,
    extra: &str,
) -> String {
    let pw_file = pd.path(&format!("{}.pass", user.address));
    std::fs::write(&pw_file, format!("{}\n", user.password)).expect("write password file");
    let (tls, port) = match tls {
        Tls::Implicit => ("implicit", stack.imaps_port()),
        Tls::Starttls => ("starttls", stack.imap_port()),
        Tls::None => ("none", stack.imap_port()),
    };
    format!(
        "[mailboxes.imap]\nhost = \"{host}\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{ca}\"\n\
         username = \"{user}\"\npassword = {{ file = \"{pw}\" }}\nmax_backoff = \"2s\"\n{extra}\n",
        host = stack.host(),
        ca = stack.ca_file().display(),
        user = user.address,
        pw = pw_file.display(),
    )
}

/// A postdesk whose mailbox "support" reads `user`'s INBOX.
pub fn postdesk(stack: &MailStack, user: &User, tls: Tls, extra: &str) -> Postdesk {
    let pd = Postdesk::new("");
    let section = imap_section(&pd, stack, user, tls, extra);
    append_config(&pd, &section);
    pd
}

pub fn append_config(pd: &Postdesk, text: &str) {
    let mut cfg = std::fs::read_to_string(&pd.config).expect("read config");
    cfg.push_str(text);
    std::fs::write(&pd.config, cfg).expect("write config");
}

/// A plausible customer mail: several languages, one per `i`.
pub fn customer_mail(i: usize, to: &str) -> Vec<u8> {
    const SAMPLES: [(&str, &str); 6] = [
        (
            "Order not delivered",
            "Hello,\r\n\r\nmy order from last week has still not arrived. The tracking page says it left the warehouse on Monday.\r\nCould you please check where it is?\r\n\r\nThanks,\r\nAlex",
        ),
        (
            "Rechnung doppelt abgebucht",
            "Guten Tag,\r\n\r\nmir wurde die Rechnung für März zweimal von meinem Konto abgebucht. Bitte erstatten Sie den doppelten Betrag.\r\n\r\nMit freundlichen Grüßen\r\nJonas",
        ),
        (
            "Problème de connexion",
            "Bonjour,\r\n\r\nje n'arrive plus à me connecter à mon compte depuis hier soir. Le mot de passe est refusé alors que je ne l'ai pas changé.\r\n\r\nCordialement,\r\nCamille",
        ),
        (
            "Pedido incompleto",
            "Hola,\r\n\r\nhe recibido mi pedido pero faltan dos artículos de los cinco que compré. ¿Pueden enviarme los que faltan?\r\n\r\nSaludos,\r\nLucía",
        ),
        (
            "注文のキャンセルについて",
            "お世話になっております。\r\n\r\n昨日注文した商品をキャンセルしたいのですが、手続きの方法を教えていただけますか。\r\n\r\nよろしくお願いいたします。\r\n佐藤",
        ),
        (
            "Вопрос о возврате",
            "Здравствуйте,\r\n\r\nя хотел бы вернуть купленный товар, он не подошёл по размеру. Подскажите, пожалуйста, как оформить возврат.\r\n\r\nС уважением,\r\nИван",
        ),
    ];
    let (subject, body) = SAMPLES[i % SAMPLES.len()];
    format!(
        "From: Customer {i} <customer{i}@example.org>\r\nTo: {to}\r\nSubject: {subject} ({i})\r\n\
         Date: Mon, 2 Mar 2026 10:{m:02}:{s:02} +0100\r\nMessage-ID: <c{i}.test@example.org>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{body}\r\n",
        m = (i / 60) % 60,
        s = i % 60,
    )
    .into_bytes()
}

/// Polls `f` every 20 ms until it returns `Some`, or panics after `limit`.
#[track_caller]
pub fn eventually<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            started.elapsed() < limit,
            "gave up after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A read-only count from the database, `None` while it does not exist yet.
pub fn count(pd: &Postdesk, sql: &str) -> Option<i64> {
    let path = pd.path("state/postdesk.db");
    let conn =
        rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.busy_timeout(Duration::from_secs(5)).ok()?;
    conn.query_row(sql, [], |r| r.get(0)).ok()
}

/// `postdesk run` as a child process, logging to a file; SIGKILLed on drop.
pub struct Daemon {
    pub child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(pd: &Postdesk, rust_log: &str) -> Daemon {
        let n = std::fs::read_dir(pd.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let log = pd.path(&format!("daemon-{n}.log"));
        let child = pd
            .command()
            .arg("run")
            .env("RUST_LOG", rust_log)
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn postdesk run");
        Daemon { child, log }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for a log line containing `needle`, `times` times.
    #[track_caller]
    pub fn wait_log(&mut self, needle: &str, times: usize, limit: Duration) {
        let started = Instant::now();
        loop {
            let text = self.log_text();
            if text.matches(needle).count() >= times {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("postdesk exited ({status}) while waiting for {needle:?}:\n{text}");
            }
            assert!(
                started.elapsed() < limit,
                "no {needle:?} ({times}x) in the log after {limit:?}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends a signal with the `kill` program (the crate forbids unsafe
    /// code, so no libc::kill).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id();
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid}");
    }

    /// SIGTERM, then the exit status (panics after `limit`).
    #[track_caller]
    pub fn stop(mut self, limit: Duration) -> std::process::ExitStatus {
        self.signal("TERM");
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                started.elapsed() < limit,
                "postdesk did not stop within {limit:?}:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The line `postdesk run --once` prints about messages.
fn once_line(out: &str) -> &str {
    out.lines().find(|l| l.contains("read:")).unwrap_or("")
}

#[test]
fn idle_push_makes_a_ticket_quickly_and_sigterm_stops_cleanly() {
    let stack = shared();
    let user = stack.lease_user();
    let pd = postdesk(stack, &user, Tls::Starttls, "");
    let mut daemon = Daemon::start(&pd, "postdesk=debug");
    daemon.wait_log("Waiting in IDLE.", 1, DEADLINE);
    let mut latencies = Vec::new();
    let mut appends = Vec::new();
    for i in 0..5 {
        let started = Instant::now();
        stack.append(&user.address, "INBOX", &customer_mail(i, &user.address));
        appends.push(started.elapsed());
        let want = i64::try_from(i + 1).unwrap_or(i64::MAX);
        eventually(DEADLINE, "the ticket", || {
            (count(&pd, "SELECT count(*) FROM tickets")? >= want).then_some(())
        });
        latencies.push(started.elapsed());
        // Back in IDLE before the next one, so each measures a push.
        daemon.wait_log("Waiting in IDLE.", i + 2, DEADLINE);
    }
    let mut sorted = latencies.clone();
    sorted.sort();
    eprintln!(
        "IMAP IDLE: APPEND → ticket latencies {latencies:?}, median {:?} (the APPENDs themselves took {appends:?})",
        sorted[2]
    );
    if std::env::var_os("POSTDESK_SHOW_LOG").is_some() {
        eprintln!("{}", daemon.log_text());
    }
    assert!(
        sorted[2] < Duration::from_secs(5),
        "median APPEND → ticket latency {:?} (target: 1 s)",
        sorted[2]
    );
    // Committed, then flagged \Seen; nothing owed any more.
    let flags = stack.flags(&user.address, "INBOX");
    assert_eq!(flags.len(), 5);
    assert!(
        flags.iter().all(|(_, f)| f.contains(&"\\Seen".to_owned())),
        "{flags:?}"
    );
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "exit {status}");
    assert_eq!(count(&pd, "SELECT count(*) FROM mailbox_actions"), Some(0));
    assert_eq!(
        count(
            &pd,
            "SELECT count(*) FROM messages WHERE direction = 'inbound'"
        ),
        Some(5)
    );
}

#[test]
fn a_thousand_messages_make_a_thousand_tickets_and_a_second_run_none() {
    let stack = shared();
    let user = stack.lease_user();
    let mails: Vec<Vec<u8>> = (0..1000).map(|i| customer_mail(i, &user.address)).collect();
    stack.append_many(&user.address, "INBOX", &mails);
    let pd = postdesk(stack, &user, Tls::Implicit, "");
    let started = Instant::now();
    let out = stdout_ok(&pd.run(&["run", "--once"]));
    let took = started.elapsed();
    eprintln!("IMAP run --once, 1,000 messages (debug build): {took:?}");
    assert!(
        once_line(&out).starts_with("1000 messages read: 1000 new tickets"),
        "{out}"
    );
    assert_eq!(count(&pd, "SELECT count(*) FROM tickets"), Some(1000));
    assert_eq!(
        count(
            &pd,
            "SELECT count(DISTINCT message_id) FROM messages WHERE direction = 'inbound'"
        ),
        Some(1000)
    );
    let again = stdout_ok(&pd.run(&["run", "--once"]));
    assert!(once_line(&again).starts_with("0 messages read"), "{again}");
    assert_eq!(count(&pd, "SELECT count(*) FROM tickets"), Some(1000));
    let unseen = stack.mailbox_status(&user.address, "INBOX").unseen;
    assert_eq!(unseen, 0, "every committed message is flagged \\Seen");
    assert_eq!(count(&pd, "SELECT count(*) FROM mailbox_actions"), Some(0));
    // The arrival time is the server's INTERNALDATE, not the Date header.
    let arrival_ok = count(
        &pd,
        "SELECT count(*) FROM messages WHERE origin LIKE 'imap:support/INBOX/%'",
    );
    assert_eq!(arrival_ok, Some(1000));
}

#[test]
fn sent_folder_messages_thread_as_outbound_replies() {
    let stack = shared();
    let user = stack.lease_user();
    stack.create_folder(&user.address, "Sent");
    let pd = postdesk(stack, &user, Tls::None, "sent_folder = \"Sent\"\n");
    stack.append(&user.address, "INBOX", &customer_mail(7, &user.address));
    let out = stdout_ok(&pd.run(&["run", "--once"]));
    assert!(
        once_line(&out).starts_with("1 message read: 1 new ticket"),
        "{out}"
    );
    let reply = "From: Support <support@example.com>\r\nTo: Customer 7 <customer7@example.org>\r\n\
         Subject: Re: Pedido incompleto (7)\r\nDate: Mon, 2 Mar 2026 11:00:00 +0100\r\n\
         Message-ID: <agent-reply-1@example.com>\r\nIn-Reply-To: <c7.test@example.org>\r\n\
         References: <c7.test@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Hola Lucía, le enviamos hoy los dos artículos que faltan.\r\n";
    stack.append(&user.address, "Sent", reply.as_bytes());
    let out = stdout_ok(&pd.run(&["run", "--once"]));
    assert!(
        once_line(&out).starts_with("1 message read: 0 new tickets, 1 threaded"),
        "{out}"
    );
    let db = pd.db();
    let (direction, ticket): (String, i64) = db
        .query_row(
            "SELECT direction, ticket_id FROM messages WHERE message_id = 'agent-reply-1@example.com'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("the reply is stored");
    assert_eq!((direction.as_str(), ticket), ("outbound", 1));
    // The agents' Sent folder is left as it was.
    let flags = stack.flags(&user.address, "Sent");
    assert_eq!(flags.len(), 1);
    assert!(!flags[0].1.contains(&"\\Seen".to_owned()), "{flags:?}");
}

#[test]
fn first_contact_takes_unseen_mail_by_default_or_none_when_asked() {
    let stack = shared();
    let user = stack.lease_user();
    let mails: Vec<Vec<u8>> = (0..4).map(|i| customer_mail(i, &user.address)).collect();
    let uids = stack.append_many(&user.address, "INBOX", &mails);
    // Somebody read the first two with a mail client already.
    let mut s = stack.imap_session(&user.address);
    s.command("SELECT INBOX").expect("select");
    s.command(&format!(
        "UID STORE {}:{} +FLAGS (\\Seen)",
        uids[0], uids[1]
    ))
    .expect("store");
    let _ = s.command("LOGOUT");
    let pd = postdesk(stack, &user, Tls::None, "");
    let out = stdout_ok(&pd.run(&["run", "--once"]));
    assert!(
        once_line(&out).starts_with("2 messages read: 2 new tickets"),
        "{out}"
    );
    stack.append(&user.address, "INBOX", &customer_mail(4, &user.address));
    let out = stdout_ok(&pd.run(&["run", "--once"]));
    assert!(once_line(&out).starts_with("1 message read"), "{out}");
    assert_eq!(count(&pd, "SELECT count(*) FROM tickets"), Some(3));

    // backlog = "none": only what arrives from now on.
    let pd = postdesk(stack, &user, Tls::None, "backlog = \"none\"\n");
    let out = stdout_ok(&pd.run(&["run", "--once"]));
    assert!(once_line(&out).starts_with("0 messages read"), "{out}");
    stack.append(&user.address, "INBOX", &customer_mail(5, &user.address));
    let out = stdout_ok(&pd.run(&["run", "--once"]));
    assert!(
        once_line(&out).starts_with("1 message read: 1 new ticket"),
        "{out}"
    );
}

#[test]
fn a_uidvalidity_change_rescans_without_duplicates() {
    let stack = shared();
    let user = stack.lease_user();
    let mails: Vec<Vec<u8>> = (0..3).map(|i| customer_mail(i, &user.address)).collect();
    stack.append_many(&user.address, "INBOX", &mails);
    let pd = postdesk(stack, &user, Tls::None, "backlog = \"all\"\n");
    let out = stdout_ok(&pd.run(&["run", "--once"]));
    assert!(
        once_line(&out).starts_with("3 messages read: 3 new tickets"),
        "{out}"
    );
    let before = stack.mailbox_status(&user.address, "INBOX").uidvalidity;
    stack.set_uidvalidity(&user.address, "INBOX", before.wrapping_add(1000));
    stack.append(&user.address, "INBOX", &customer_mail(3, &user.address));
    let out = stdout_ok(&pd.run(&["run", "--once"]));
    assert!(
        once_line(&out)
            .starts_with("4 messages read: 1 new ticket, 0 threaded, 0 ignored, 3 duplicate"),
        "{out}"
    );
    assert_eq!(
        count(
            &pd,
            "SELECT count(*) FROM messages WHERE direction = 'inbound'"
        ),
        Some(4)
    );
    assert_eq!(count(&pd, "SELECT count(*) FROM mailbox_actions"), Some(0));
    let out = stdout_ok(&pd.run(&["run", "--once"]));
    assert!(once_line(&out).starts_with("0 messages read"), "{out}");
}

#[test]
fn a_message_over_the_size_limit_is_quarantined_with_its_headers() {
    let stack = shared();
    let user = stack.lease_user();
    let mut big = b"From: Big Sender <big@example.org>\r\nTo: support@example.com\r\nSubject: huge attachment\r\nMessage-ID: <big@example.org>\r\n\r\n".to_vec();
    for _ in 0..4000 {
        big.extend_from_slice(
            b"0123456789012345678901234567890123456789012345678901234567890123456789\r\n",
        );
    }
    stack.append(&user.address, "INBOX", &big);
    stack.append(&user.address, "INBOX", &customer_mail(1, &user.address));
    let pd = Postdesk::new("[ingest]\nmax_message_size = \"64 KiB\"\n");
    let section = imap_section(&pd, stack, &user, Tls::Starttls, "");
    append_config(&pd, &section);
    let out = stdout_ok(&pd.run(&["run", "--once"]));
    assert!(
        once_line(&out).starts_with("2 messages read: 1 new ticket")
            && out.contains("1 quarantined"),
        "{out}"
    );
    let db = pd.db();
    let (reason, raw_is_null, headers): (String, bool, String) = db
        .query_row(
            "SELECT reason, raw IS NULL, headers FROM quarantine",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("a quarantine row");
    assert!(reason.contains("max_message_size"), "{reason}");
    assert!(raw_is_null, "the body is not kept");
    assert!(headers.contains("Subject: huge attachment"), "{headers}");
    // The big one is left for a person to see; the other one is done.
    let flags = stack.flags(&user.address, "INBOX");
    assert!(!flags[0].1.contains(&"\\Seen".to_owned()), "{flags:?}");
    assert!(flags[1].1.contains(&"\\Seen".to_owned()), "{flags:?}");
    let out = stdout_ok(&pd.run(&["run", "--once"]));
    assert!(once_line(&out).starts_with("0 messages read"), "{out}");
    // Once the limit is raised, the replay fetches it from the server
    // (read-only: the message stays unseen for the person who looks).
    let id: i64 = db
        .query_row("SELECT id FROM quarantine", [], |r| r.get(0))
        .expect("the quarantine id");
    let out = stdout_ok(&pd.run(&[
        "quarantine",
        "replay",
        &id.to_string(),
        "--max-size",
        "1 MiB",
    ]));
    assert!(out.contains("created PD-2"), "{out}");
    let row: i64 = db
        .query_row(
            "SELECT id FROM messages WHERE message_id = 'big@example.org'",
            [],
            |r| r.get(0),
        )
        .expect("the replayed message");
    let stored = postdesk::store::raw::read(&db, row)
        .expect("readable")
        .expect("stored");
    assert!(
        stored == big,
        "the stored original differs from what was appended"
    );
    let flags = stack.flags(&user.address, "INBOX");
    assert!(!flags[0].1.contains(&"\\Seen".to_owned()), "{flags:?}");
}

#[test]
fn a_certificate_for_another_name_is_refused() {
    let stack = shared();
    let user = stack.lease_user();
    let wrong = stack.wrong_cert();
    for (tls, port) in [
        ("implicit", wrong.imaps_port),
        ("starttls", wrong.imap_port),
    ] {
        let pd = Postdesk::new("");
        let pw = pd.path("pw");
        std::fs::write(&pw, &user.password).expect("write password");
        append_config(
            &pd,
            &format!(
                "[mailboxes.imap]\nhost = \"{}\"\nport = {port}\ntls = \"{tls}\"\nca_file = \"{}\"\n\
                 username = \"{}\"\npassword = {{ file = \"{}\" }}\n",
                wrong.host,
                stack.ca_file().display(),
                user.address,
                pw.display()
            ),
        );
        let out = pd.run(&["run", "--once"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{tls}: {stderr}");
        assert!(
            stderr.contains("certificate is not valid for the name \"127.0.0.2\""),
            "{tls}: {stderr}"
        );
        assert!(
            !stderr.contains(&user.password),
            "{tls}: password in the log"
        );
    }
}

#[test]
fn a_wrong_password_backs_off_and_leaves_other_mailboxes_alone() {
    // A stack of its own: Dovecot delays every login from an address that
    // failed to log in (anvil's auth penalty, up to seconds), which would
    // slow down every other test on the shared stack.
    let stack = &MailStack::builder().without_postfix().start();
    let good = stack.lease_user();
    let bad = stack.lease_user();
    let wrong_password = "definitely-not-the-password-42";
    let pd = postdesk(stack, &good, Tls::Implicit, "");
    let bad_user = User {
        address: bad.address.clone(),
        password: wrong_password.to_owned(),
    };
    let section = imap_section(&pd, stack, &bad_user, Tls::Implicit, "");
    append_config(
        &pd,
        &format!("[[mailboxes]]\nname = \"sales\"\naddress = \"sales@example.com\"\n{section}"),
    );
    let started = Instant::now();
    let mut daemon = Daemon::start(&pd, "postdesk=debug");
    daemon.wait_log("Waiting in IDLE.", 1, DEADLINE);
    stack.append(&good.address, "INBOX", &customer_mail(1, &good.address));
    stack.append(&bad.address, "INBOX", &customer_mail(2, &bad.address));
    eventually(DEADLINE, "the good mailbox's ticket", || {
        (count(&pd, "SELECT count(*) FROM tickets")? == 1).then_some(())
    });
    // Three more attempts (backoff about 1, 2, 2 s): still one error line.
    daemon.wait_log("Still failing.", 3, DEADLINE);
    let elapsed = started.elapsed();
    assert!(daemon.is_running(), "{}", daemon.log_text());
    let log = daemon.log_text();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("refused the login"))
        .collect();
    assert_eq!(errors.len(), 1, "one line per cause:\n{log}");
    assert!(errors[0].contains("mailbox=sales"), "{}", errors[0]);
    assert!(
        errors[0].contains("check the password from file"),
        "says what to do: {}",
        errors[0]
    );
    let attempts = log.matches("Still failing.").count() + 1;
    assert!(
        attempts as f64 <= elapsed.as_secs_f64() + 2.0,
        "{attempts} attempts in {elapsed:?}: no backoff?\n{log}"
    );
    for secret in [wrong_password, good.password.as_str()] {
        assert!(!log.contains(secret), "a password is in the log:\n{log}");
    }
    assert_eq!(count(&pd, "SELECT count(*) FROM tickets"), Some(1));
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "exit {status}");
    let last_error: String = pd
        .db()
        .query_row(
            "SELECT last_error FROM sources WHERE source = 'imap:sales/INBOX'",
            [],
            |r| r.get(0),
        )
        .expect("the error is recorded");
    assert!(last_error.contains("refused the login"), "{last_error}");
    // `run --once` says so with its exit code.
    let out = pd.run(&["run", "--once"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn xoauth2_logs_in_and_fetches_a_new_token_when_the_cached_one_is_refused() {
    // A stack of its own: Dovecot is restarted to end the session.
    let stack = MailStack::builder().without_postfix().start();
    let user = stack.lease_user();
    let (first, second) = ("first-token-1111", "second-token-22222222");
    stack.set_oauth_token(&user.address, first);
    let pd = Postdesk::new("");
    let token_file = pd.path("token");
    std::fs::write(&token_file, format!("{first}\n")).expect("write the token");
    // The token from a command, as from an OAuth helper; its output is
    // kept until the server refuses it.
    append_config(
        &pd,
        &format!(
            "[mailboxes.imap]\nhost = \"{host}\"\nport = {port}\ntls = \"implicit\"\nca_file = \"{ca}\"\n\
             username = \"{user}\"\nauth = \"xoauth2\"\noauth_token = {{ command = [\"cat\", \"{token}\"] }}\n\
             max_backoff = \"2s\"\n",
            host = stack.host(),
            port = stack.imaps_port(),
            ca = stack.ca_file().display(),
            user = user.address,
            token = token_file.display(),
        ),
    );
    let inbound = "SELECT count(*) FROM messages WHERE direction = 'inbound'";
    let mut daemon = Daemon::start(&pd, "postdesk=debug");
    daemon.wait_log("Waiting in IDLE.", 1, DEADLINE);
    stack.append(&user.address, "INBOX", &customer_mail(1, &user.address));
    eventually(DEADLINE, "ticket 1", || {
        (count(&pd, inbound)? == 1).then_some(())
    });
    daemon.wait_log("Waiting in IDLE.", 2, DEADLINE);

    // The token expires while the server is away: it accepts only the new
    // one, which the command now prints. The daemon's next login offers
    // the cached token, is refused, runs the command again and logs in.
    stack.stop_dovecot();
    daemon.wait_log("IMAP connection failed.", 1, DEADLINE);
    stack.set_oauth_token(&user.address, second);
    std::fs::write(&token_file, format!("{second}\n")).expect("write the token");
    stack.start_dovecot();
    stack.append(&user.address, "INBOX", &customer_mail(2, &user.address));
    eventually(DEADLINE, "ticket 2 with the new token", || {
        (count(&pd, inbound)? == 2).then_some(())
    });
    assert!(daemon.is_running(), "{}", daemon.log_text());
    let log = daemon.log_text();
    assert!(
        !log.contains("refused the login"),
        "the refused token was replaced at once, without an error:\n{log}"
    );
    for secret in [first, second] {
        assert!(!log.contains(secret), "a token is in the log:\n{log}");
    }
    let server_log = std::fs::read_to_string(stack.dovecot_log()).expect("the Dovecot log");
    let logins = server_log
        .lines()
        .filter(|l| l.contains(&format!("Login: user=<{}>, method=XOAUTH2", user.address)))
        .count();
    // Only the token passdb answers XOAUTH2 (auth_verbose logs its "no").
    let refused = server_log
        .lines()
        .filter(|l| {
            l.contains(&format!("passwd-file({},", user.address)) && l.contains("Password mismatch")
        })
        .count();
    assert_eq!(
        (logins, refused),
        (2, 1),
        "two XOAUTH2 logins, one refused token:\n{server_log}"
    );
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "exit {status}");
}

#[test]
fn dovecot_stopped_or_crashed_while_idling_loses_nothing() {
    let stack = MailStack::builder().without_postfix().start();
    let user = stack.lease_user();
    let pd = postdesk(&stack, &user, Tls::Starttls, "");
    let mut daemon = Daemon::start(&pd, "postdesk=debug");
    daemon.wait_log("Waiting in IDLE.", 1, DEADLINE);
    stack.append(&user.address, "INBOX", &customer_mail(1, &user.address));
    eventually(DEADLINE, "ticket 1", || {
        (count(
            &pd,
            "SELECT count(*) FROM messages WHERE direction = 'inbound'",
        )? == 1)
            .then_some(())
    });
    daemon.wait_log("Waiting in IDLE.", 2, DEADLINE);

    // Graceful stop: the server ends the session during IDLE.
    stack.stop_dovecot();
    daemon.wait_log("IMAP connection failed.", 1, DEADLINE);
    stack.start_dovecot();
    stack.append(&user.address, "INBOX", &customer_mail(2, &user.address));
    eventually(DEADLINE, "ticket 2 after the restart", || {
        (count(
            &pd,
            "SELECT count(*) FROM messages WHERE direction = 'inbound'",
        )? == 2)
            .then_some(())
    });
    daemon.wait_log("Waiting in IDLE.", 3, DEADLINE);

    // Crash: every Dovecot process killed, the socket just closes (EOF).
    stack.crash_dovecot();
    daemon.wait_log("the server closed the connection during IDLE", 2, DEADLINE);
    stack.start_dovecot();
    stack.append(&user.address, "INBOX", &customer_mail(3, &user.address));
    eventually(DEADLINE, "ticket 3 after the crash", || {
        (count(
            &pd,
            "SELECT count(*) FROM messages WHERE direction = 'inbound'",
        )? == 3)
            .then_some(())
    });
    assert!(daemon.is_running());
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "exit {status}");
    assert_eq!(
        count(
            &pd,
            "SELECT count(DISTINCT message_id) FROM messages WHERE direction = 'inbound'"
        ),
        Some(3)
    );
    assert_eq!(count(&pd, "SELECT count(*) FROM mailbox_actions"), Some(0));
}

#[test]
fn move_without_the_move_extension_copies_flags_and_expunges() {
    use postdesk::source::imap::actions::{MoveStrategy, move_messages};
    let stack = shared();
    let user = stack.lease_user();
    let mails: Vec<Vec<u8>> = (0..3).map(|i| customer_mail(i, &user.address)).collect();
    let uids = stack.append_many(&user.address, "INBOX", &mails);
    let pd = postdesk(stack, &user, Tls::None, "");
    let cfg = postdesk::config::Config::load(&pd.config).expect("config");
    let Some(postdesk::config::SourceConfig::Imap(imap)) = cfg.mailboxes[0].source.clone() else {
        panic!("no IMAP source")
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut creds = postdesk::source::imap::Credentials::new(imap.auth.clone());
        let mut conn = postdesk::source::imap::connect::connect(&imap, None, &mut creds)
            .await
            .expect("connect");
        conn.session.select("INBOX").await.expect("select");
        let some = uids.get(..2).expect("two uids");
        move_messages(
            &mut conn.session,
            some,
            "Archive",
            MoveStrategy::CopyDelete { uidplus: true },
        )
        .await
        .expect("copy + delete");
        conn.logout().await;
    });
    assert_eq!(stack.mailbox_status(&user.address, "INBOX").messages, 1);
    assert_eq!(stack.mailbox_status(&user.address, "Archive").messages, 2);
}

#[test]
fn without_idle_the_folder_is_polled() {
    let stack = shared();
    let user = stack.lease_user();
    let pd = postdesk(
        stack,
        &user,
        Tls::None,
        "idle = false\npoll_interval = \"1s\"\n",
    );
    let mut daemon = Daemon::start(&pd, "postdesk=debug");
    daemon.wait_log("Folder opened.", 1, DEADLINE);
    stack.append(&user.address, "INBOX", &customer_mail(1, &user.address));
    eventually(DEADLINE, "the polled message's ticket", || {
        (count(&pd, "SELECT count(*) FROM tickets")? == 1).then_some(())
    });
    assert!(!daemon.log_text().contains("Waiting in IDLE."));
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "exit {status}");
}

#[test]
fn a_config_reload_while_idling_reconnects_and_keeps_ingesting() {
    let stack = shared();
    let user = stack.lease_user();
    let pd = postdesk(stack, &user, Tls::Implicit, "");
    let mut daemon = Daemon::start(&pd, "postdesk=debug");
    daemon.wait_log("Waiting in IDLE.", 1, DEADLINE);
    daemon.signal("HUP");
    daemon.wait_log("Config reloaded", 1, DEADLINE);
    // The old generation's task logged out; the new one idles again.
    daemon.wait_log("Waiting in IDLE.", 2, DEADLINE);
    stack.append(&user.address, "INBOX", &customer_mail(1, &user.address));
    eventually(DEADLINE, "the ticket after the reload", || {
        (count(&pd, "SELECT count(*) FROM tickets")? == 1).then_some(())
    });
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "exit {status}");
}

#[test]
fn check_config_connect_reports_what_the_daemon_will_find_and_changes_nothing() {
    let stack = shared();
    let user = stack.lease_user();
    let pd = postdesk(
        stack,
        &user,
        Tls::Implicit,
        "sent_folder = \"Sent\"\nafter_ingest = \"move\"\nmove_to = \"Archive\"\n",
    );
    // The SMTP relay too: implicit TLS and AUTH as the mailbox's user.
    let cfg = std::fs::read_to_string(&pd.config).expect("config");
    let smtp = format!(
        "[outbox]\ntransport = \"smtp\"\n[outbox.smtp]\nhost = \"{host}\"\nport = {port}\ntls = \"implicit\"\n\
         ca_file = \"{ca}\"\nusername = \"{user}\"\npassword = {{ file = \"{pw}\" }}\n",
        host = stack.host(),
        port = stack.smtps_port(),
        ca = stack.ca_file().display(),
        user = user.address,
        pw = pd.path(&format!("{}.pass", user.address)).display(),
    );
    std::fs::write(
        &pd.config,
        cfg.replacen("[outbox]\ndir = \"state/outbox\"\n", &smtp, 1),
    )
    .expect("config");
    for i in 0..3 {
        stack.append(&user.address, "INBOX", &customer_mail(i, &user.address));
    }
    let out = pd.run(&["check-config", "--connect"]);
    let text = stdout_ok(&out);
    for want in [
        "note: store.path: the folder",
        &format!(
            "logged in as {}; IDLE yes, MOVE yes, UIDPLUS yes",
            user.address
        ),
        "INBOX (folder): 3 messages, 3 unseen; never read: the first run takes the 3 unseen (backlog = \"unseen\")",
        "Sent (sent_folder): 0 messages",
        "Archive (move_to): 0 messages",
        "outbox: the SMTP relay",
        &format!("and the login as {}; nothing was sent", user.address),
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    // Read-only: no flag set, nothing moved, no database created.
    let flags = stack.flags(&user.address, "INBOX");
    assert_eq!(flags.len(), 3);
    assert!(
        flags.iter().all(|(_, f)| !f.iter().any(|f| f == "\\Seen")),
        "{flags:?}"
    );
    assert!(!pd.path("state/postdesk.db").exists());

    // After a run, it says where the checkpoint is.
    let out = pd.run(&["run", "--once"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout_ok(&pd.run(&["check-config", "--connect"]));
    assert!(text.contains("INBOX (folder): 0 messages"), "{text}");
    assert!(text.contains("Archive (move_to): 3 messages"), "{text}");
    assert!(
        text.contains("read up to UID 3, the server's next UID is 4"),
        "{text}"
    );

    // A folder the server does not have, and a refused SMTP login: exit 1,
    // each problem named, nothing printed as OK.
    let cfg = std::fs::read_to_string(&pd.config).expect("config");
    std::fs::write(
        &pd.config,
        // The [outbox.smtp] table comes first in the file.
        cfg.replace("move_to = \"Archive\"", "move_to = \"Archiv\"")
            .replacen(
                "password = { file",
                "password = { env = \"NO_SUCH\" }\n#",
                1,
            ),
    )
    .expect("config");
    let out = pd
        .command()
        .args(["check-config", "--connect"])
        .env("NO_SUCH", "wrong-password")
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("mailboxes[0].imap") && err.contains("folder \"Archiv\" cannot be opened"),
        "{err}"
    );
    assert!(
        err.contains("outbox.smtp") && err.contains("refused the login"),
        "{err}"
    );
    assert!(
        !err.contains("wrong-password"),
        "a password in the output: {err}"
    );
}
