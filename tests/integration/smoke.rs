//! The harness itself: real Dovecot and Postfix come up, speak TLS with the
//! harness CA, deliver, survive restarts, and go away without a trace.

use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::harness::{self, HOST, ImapSession, MailStack, SINK, TLS_SERVER_NAME, shared};

const DELIVERY: Duration = Duration::from_secs(15);

type TlsStream = StreamOwned<ClientConnection, TcpStream>;

fn tls_config(ca_file: &Path) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).expect("read the harness CA") {
        roots
            .add(cert.expect("parse the harness CA"))
            .expect("trust the harness CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

fn tls_over(tcp: TcpStream, ca_file: &Path, name: &str) -> TlsStream {
    let name = ServerName::try_from(name.to_owned()).expect("server name");
    let conn = ClientConnection::new(tls_config(ca_file), name).expect("TLS client");
    StreamOwned::new(conn, tcp)
}

fn connect(host: &str, port: u16) -> TcpStream {
    let tcp =
        TcpStream::connect((host, port)).unwrap_or_else(|e| panic!("connect {host}:{port}: {e}"));
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    tcp
}

/// Implicit TLS: the handshake happens while reading the greeting.
fn imaps(host: &str, port: u16, ca_file: &Path, name: &str) -> io::Result<ImapSession<TlsStream>> {
    ImapSession::after_greeting(tls_over(connect(host, port), ca_file, name))
}

/// STARTTLS; the handshake happens with the first command after it.
fn starttls(host: &str, port: u16, ca_file: &Path, name: &str) -> ImapSession<TlsStream> {
    let mut plain = ImapSession::connect(host, port).expect("plain connect");
    let caps = plain.command("CAPABILITY").expect("CAPABILITY");
    assert!(
        caps.untagged.iter().any(|u| u.text.contains("STARTTLS")),
        "{caps:?}"
    );
    plain.command("STARTTLS").expect("STARTTLS");
    let tcp = plain.into_inner().expect("nothing after STARTTLS");
    ImapSession::without_greeting(tls_over(tcp, ca_file, name))
}

fn is_name_mismatch(e: &io::Error) -> bool {
    let rustls_error = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    matches!(
        rustls_error,
        Some(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        ))
    )
}

/// UIDVALIDITY as reported by SELECT.
fn select_uidvalidity<S: io::Read + io::Write>(s: &mut ImapSession<S>, folder: &str) -> u32 {
    let r = s.command(&format!("SELECT {folder}")).expect("SELECT");
    r.untagged
        .iter()
        .find_map(|u| harness::imap::fetch_number(&u.text, "[UIDVALIDITY"))
        .unwrap_or_else(|| panic!("no UIDVALIDITY in {r:?}"))
}

fn eventually(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn message(to: &str, subject: &str) -> Vec<u8> {
    format!("From: Customer <customer@example.test>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{subject}@client.test>\r\n\r\nHello from {subject}.\r\n")
        .into_bytes()
}

#[test]
fn imap_greets_and_logs_in_over_plain_starttls_and_implicit_tls() {
    let stack = shared();
    let user = stack.lease_user();
    let ca = stack.ca_file();

    let mut plain = ImapSession::connect(HOST, stack.imap_port()).expect("plain IMAP");
    assert!(plain.greeting.starts_with("* OK"), "{}", plain.greeting);
    plain
        .login(&user.address, &user.password)
        .expect("plain login");
    let validity = select_uidvalidity(&mut plain, "INBOX");

    let mut tls = starttls(HOST, stack.imap_port(), &ca, TLS_SERVER_NAME);
    tls.login(&user.address, &user.password)
        .expect("login after STARTTLS");
    assert_eq!(select_uidvalidity(&mut tls, "INBOX"), validity);

    for name in [TLS_SERVER_NAME, "127.0.0.1"] {
        let mut tls = imaps(HOST, stack.imaps_port(), &ca, name).expect("implicit TLS");
        tls.login(&user.address, &user.password)
            .expect("login over implicit TLS");
        assert_eq!(select_uidvalidity(&mut tls, "INBOX"), validity);
    }

    let mut other = ImapSession::connect(HOST, stack.imap_port()).expect("plain IMAP");
    let err = other
        .login(&user.address, "wrong")
        .expect_err("wrong password");
    assert!(err.to_string().contains("AUTHENTICATIONFAILED"), "{err}");

    let folders = plain.command("LIST \"\" \"*\"").expect("LIST");
    for special in ["\\Sent", "\\Archive", "\\Trash", "\\Junk", "\\Drafts"] {
        assert!(
            folders.untagged.iter().any(|u| u.text.contains(special)),
            "{special} missing: {folders:?}"
        );
    }
}

#[test]
fn wrong_certificate_is_refused_for_its_name_only() {
    let stack = shared();
    let wrong = stack.wrong_cert();
    let ca = stack.ca_file();

    let err = imaps(wrong.host, wrong.imaps_port, &ca, TLS_SERVER_NAME)
        .err()
        .expect("name mismatch must fail");
    assert!(is_name_mismatch(&err), "{err:?}");

    let mut session = starttls(wrong.host, wrong.imap_port, &ca, TLS_SERVER_NAME);
    let err = session
        .command("NOOP")
        .expect_err("name mismatch must fail after STARTTLS");
    assert!(is_name_mismatch(&err), "{err:?}");

    // same CA: asked for its own name, the certificate is fine
    let ok = imaps(wrong.host, wrong.imaps_port, &ca, wrong.name)
        .expect("the wrong cert chains to the CA");
    assert!(ok.greeting.starts_with("* OK"));
    assert!(wrong.cert_file.exists());
}

#[test]
fn smtp_to_a_local_user_lands_in_its_inbox() {
    let stack = shared();
    let to = stack.lease_user();
    let sent = message(&to.address, "local-delivery");
    stack
        .send_smtp("customer@example.test", &[&to.address], &sent)
        .expect("Postfix accepts");

    let status = stack
        .wait_for_messages(&to.address, "INBOX", 1, DELIVERY)
        .expect("delivered");
    assert_eq!(status.messages, 1);
    let stored = stack.messages(&to.address, "INBOX");
    let [only] = stored.as_slice() else {
        panic!("{stored:?}")
    };
    let text = String::from_utf8_lossy(&only.bytes);
    assert!(text.contains("Subject: local-delivery\r\n"), "{text}");
    assert!(text.ends_with("Hello from local-delivery.\r\n"), "{text}");
    assert!(
        text.contains("Received: from"),
        "went through Postfix: {text}"
    );
    assert!(
        only.flags.is_empty(),
        "BODY.PEEK leaves \\Seen alone: {:?}",
        only.flags
    );
}

#[test]
fn mail_to_another_domain_lands_in_sink() {
    let stack = shared();
    let token = format!("external-{}", std::process::id());
    stack
        .send_smtp(
            "support@example.test",
            &["someone@elsewhere.example"],
            &message("someone@elsewhere.example", &token),
        )
        .expect("loopback may relay");
    eventually(DELIVERY, "mail for elsewhere.example in sink@", || {
        stack
            .fetch_all(SINK, "INBOX")
            .iter()
            .any(|m| String::from_utf8_lossy(m).contains(&token))
    });
}

#[test]
fn unknown_local_user_is_rejected_at_rcpt() {
    let err = shared()
        .send_smtp(
            "customer@example.test",
            &["nobody-here@example.test"],
            &message("x", "unknown"),
        )
        .expect_err("unknown user");
    assert_eq!(err.code(), Some(550), "{err}");
}

#[test]
fn without_catch_all_relaying_is_refused() {
    let stack = MailStack::builder().catch_all(false).spare_users(0).start();
    let err = stack
        .send_smtp(
            "support@example.test",
            &["someone@elsewhere.example"],
            &message("x", "relay"),
        )
        .expect_err("relay must be refused");
    assert_eq!(err.code(), Some(554), "{err}");
    stack
        .send_smtp(
            "customer@example.test",
            &["support@example.test"],
            &message("x", "local"),
        )
        .expect("local still works");
    stack
        .wait_for_messages("support@example.test", "INBOX", 1, DELIVERY)
        .expect("delivered");
}

#[test]
fn submission_needs_tls_and_auth_and_then_delivers() {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let stack = shared();
    let from = stack.lease_user();
    let to = stack.lease_user();
    let pem = std::fs::read(stack.ca_file()).expect("CA");
    let tls = TlsParameters::builder(TLS_SERVER_NAME.to_owned())
        .certificate_store(CertificateStore::None)
        .add_root_certificate(Certificate::from_pem(&pem).expect("CA PEM"))
        .build_rustls()
        .expect("TLS parameters");
    let mailer = |password: &str| {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(HOST)
            .port(stack.submission_port())
            .tls(Tls::Required(tls.clone()))
            .credentials(Credentials::new(from.address.clone(), password.to_owned()))
            .build()
    };
    let mail = || {
        Message::builder()
            .from(from.address.parse().expect("from"))
            .to(to.address.parse().expect("to"))
            .subject("via submission")
            .body(String::from("Hello over submission.\r\n"))
            .expect("message")
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let err = mailer("wrong")
            .send(mail())
            .await
            .expect_err("wrong password");
        assert_eq!(
            err.status().map(|c| c.to_string()),
            Some("535".to_owned()),
            "{err}"
        );
        mailer(&from.password)
            .send(mail())
            .await
            .expect("authenticated submission");
    });
    stack
        .wait_for_messages(&to.address, "INBOX", 1, DELIVERY)
        .expect("delivered");

    // the plain port does not offer AUTH before STARTTLS, and there is
    // no relaying to other domains without AUTH on submission
    let err = harness::smtp::send(
        HOST,
        stack.submission_port(),
        &from.address,
        &[&to.address],
        b"x",
    )
    .expect_err("submission without TLS");
    assert_eq!(err.code(), Some(530), "{err}");
}

#[test]
fn mail_helpers_append_flags_uidvalidity_expunge() {
    let stack = shared();
    let user = stack.lease_user();
    let u = user.address.as_str();

    let first = stack.append(u, "INBOX", &message(u, "one"));
    let second = stack.append(u, "INBOX", &message(u, "two"));
    assert_eq!((first, second), (1, 2));
    let before = stack.mailbox_status(u, "INBOX");
    assert_eq!((before.messages, before.uidnext, before.unseen), (2, 3, 2));

    let mut session = stack.imap_session(u);
    session.command("SELECT INBOX").expect("SELECT");
    session
        .command("UID STORE 2 +FLAGS (\\Seen \\Flagged)")
        .expect("STORE");
    drop(session);
    assert_eq!(
        stack.flags(u, "INBOX"),
        vec![
            (1, vec![]),
            (2, vec!["\\Flagged".to_owned(), "\\Seen".to_owned()])
        ]
    );
    assert_eq!(stack.mailbox_status(u, "INBOX").unseen, 1);

    let new_validity = before.uidvalidity.wrapping_add(1000);
    stack.set_uidvalidity(u, "INBOX", new_validity);
    let after = stack.mailbox_status(u, "INBOX");
    assert_eq!(after.uidvalidity, new_validity);
    assert_eq!(after.messages, 2);
    assert_eq!(
        select_uidvalidity(&mut stack.imap_session(u), "INBOX"),
        new_validity
    );

    stack.create_folder(u, "Tickets.Done");
    stack.create_folder(u, "Tickets.Done");
    stack.append(u, "Tickets.Done", &message(u, "three"));
    assert_eq!(
        stack.fetch_all(u, "Tickets.Done"),
        vec![message(u, "three")]
    );

    stack.expunge_all(u, "INBOX");
    assert_eq!(stack.mailbox_status(u, "INBOX").messages, 0);
}

#[test]
fn append_many_loads_two_thousand_messages() {
    let stack = shared();
    let user = stack.lease_user();
    let messages: Vec<Vec<u8>> = (0..2000)
        .map(|i| message(&user.address, &format!("bulk-{i}")))
        .collect();
    let started = Instant::now();
    let uids = stack.append_many(&user.address, "Archive", &messages);
    let took = started.elapsed();
    eprintln!(
        "append_many: 2000 messages in {took:?} ({:.0}/s)",
        2000.0 / took.as_secs_f64()
    );
    assert_eq!(uids, (1..=2000).collect::<Vec<u32>>());
    assert_eq!(
        stack.mailbox_status(&user.address, "Archive").messages,
        2000
    );
    assert_eq!(stack.fetch_all(&user.address, "Archive"), messages);
}

#[test]
fn dovecot_stop_start_kill_crash_keep_mail_and_uidvalidity() {
    let stack = MailStack::builder().spare_users(0).start();
    let user = "support@example.test";
    stack.append(user, "INBOX", &message(user, "keep"));
    let before = stack.mailbox_status(user, "INBOX");
    let port = stack.imap_port();

    stack.stop_dovecot();
    assert!(!stack.is_dovecot_running());
    let refused = TcpStream::connect((HOST, port)).expect_err("IMAP port closed");
    assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    stack.start_dovecot();
    assert_eq!(stack.imap_port(), port);
    assert_eq!(stack.mailbox_status(user, "INBOX"), before);

    stack.kill_dovecot();
    // imap-login processes hold the listener too, until they notice
    eventually(
        Duration::from_secs(5),
        "IMAP port closed after kill",
        || TcpStream::connect((HOST, port)).is_err(),
    );
    stack.start_dovecot();
    assert_eq!(stack.mailbox_status(user, "INBOX"), before);

    let mut idle = stack.imap_session(user);
    idle.command("SELECT INBOX").expect("SELECT");
    stack.crash_dovecot();
    idle.command("NOOP")
        .expect_err("session dies with the crash");
    stack.start_dovecot();
    assert_eq!(stack.mailbox_status(user, "INBOX"), before);
    assert_eq!(stack.fetch_all(user, "INBOX"), vec![message(user, "keep")]);
}

#[test]
fn mail_sent_while_dovecot_is_down_is_delivered_after_restart() {
    let stack = MailStack::builder().spare_users(0).start();
    stack.crash_dovecot();
    stack
        .send_smtp(
            "customer@example.test",
            &["support@example.test"],
            &message("support", "queued"),
        )
        .expect("queued");
    eventually(DELIVERY, "the message deferred in Postfix's queue", || {
        std::fs::read_to_string(stack.postfix_log())
            .is_ok_and(|log| log.contains("status=deferred"))
    });
    // a snapshot of the queue directories: the retry loop moves the file
    eventually(DELIVERY, "one message in the queue", || {
        stack.postfix_queue_len() == 1
    });
    stack.start_dovecot();
    stack.flush_postfix();
    stack
        .wait_for_messages("support@example.test", "INBOX", 1, DELIVERY)
        .expect("delivered after restart");
    eventually(DELIVERY, "empty queue", || stack.postfix_queue_len() == 0);
}

#[test]
fn postfix_stopped_refuses_smtp_and_works_after_start() {
    let stack = MailStack::builder().spare_users(0).start();
    stack.stop_postfix();
    assert!(!stack.is_postfix_running());
    let err = stack
        .send_smtp(
            "customer@example.test",
            &["support@example.test"],
            &message("support", "refused"),
        )
        .expect_err("Postfix is stopped");
    assert!(err.is_connection_refused(), "{err}");

    stack.start_postfix();
    stack
        .send_smtp(
            "customer@example.test",
            &["support@example.test"],
            &message("support", "works"),
        )
        .expect("accepted");
    stack
        .wait_for_messages("support@example.test", "INBOX", 1, DELIVERY)
        .expect("delivered");

    stack.kill_postfix();
    eventually(Duration::from_secs(5), "SMTP port closed", || {
        TcpStream::connect((HOST, stack.smtp_port())).is_err()
    });
    stack.start_postfix();
    stack.crash_postfix();
    stack.start_postfix();
    stack
        .send_smtp(
            "customer@example.test",
            &["support@example.test"],
            &message("support", "again"),
        )
        .expect("accepted");
    stack
        .wait_for_messages("support@example.test", "INBOX", 2, DELIVERY)
        .expect("delivered");
}

#[test]
fn frozen_dovecot_accepts_connections_but_never_greets() {
    let stack = MailStack::builder()
        .spare_users(0)
        .without_postfix()
        .start();
    stack.freeze_dovecot();
    let tcp = connect(HOST, stack.imap_port());
    tcp.set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    let err = ImapSession::after_greeting(tcp)
        .err()
        .expect("no greeting while frozen");
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err:?}"
    );
    stack.thaw_dovecot();
    ImapSession::connect(HOST, stack.imap_port()).expect("greeting after thaw");
}

#[test]
fn two_stacks_run_side_by_side() {
    let stacks: Vec<MailStack> = thread::scope(|s| {
        let handles: Vec<_> = (0..2).map(|_| s.spawn(MailStack::start)).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("start"))
            .collect()
    });
    let [a, b] = stacks.as_slice() else {
        unreachable!()
    };
    assert_ne!(a.dir(), b.dir());
    assert_ne!(a.imap_port(), b.imap_port());
    assert_ne!(a.smtp_port(), b.smtp_port());

    for (i, stack) in stacks.iter().enumerate() {
        stack
            .send_smtp(
                "customer@example.test",
                &["lead@example.test"],
                &message("lead", &format!("stack-{i}")),
            )
            .expect("accepted");
    }
    for (i, stack) in stacks.iter().enumerate() {
        stack
            .wait_for_messages("lead@example.test", "INBOX", 1, DELIVERY)
            .expect("delivered");
        let only = stack.fetch_all("lead@example.test", "INBOX");
        assert_eq!(only.len(), 1);
        let text = String::from_utf8_lossy(only.first().expect("one"));
        assert!(text.contains(&format!("stack-{i}")), "{text}");
    }
}

#[test]
fn drop_leaves_no_process_and_no_directory() {
    let stack = MailStack::start();
    let dir = stack.dir().to_owned();
    let masters = [
        stack.dovecot_pid().expect("dovecot"),
        stack.postfix_pid().expect("postfix"),
    ];
    assert!(
        masters
            .iter()
            .all(|&sid| !harness::group_members(sid).is_empty())
    );
    drop(stack);
    for sid in masters {
        assert_eq!(
            harness::group_members(sid),
            Vec::<u32>::new(),
            "left over in session {sid}"
        );
        assert!(
            !Path::new(&format!("/proc/{sid}")).exists(),
            "master {sid} reaped"
        );
    }
    assert!(!dir.exists(), "{} removed", dir.display());
}
