//! The response clock through the real binary and a real SQLite file:
//! `reply`, `note`, `close`, `reopen`; `tickets --due/--breached`;
//! `status` per queue; warnings and escalations queued exactly once by
//! `run --once`, also when it runs again; and a reply in the Sent folder of
//! a real Dovecot that stops the clock.

use crate::cli::{Postdesk, stdout_ok};
use crate::harness::shared;
use crate::imap::{DEADLINE, Daemon, Tls, customer_mail, eventually, postdesk as imap_postdesk};

/// Three queues reached through three mailboxes: `general` (24 h), `late`
/// (1 ms: breached as soon as it starts) and `soon` (10 days, warning
/// 1 ms after the start: inside its warning window at once).
const QUEUES: &str = r#"
[[mailboxes]]
name = "late"
address = "late@example.com"
default_queue = "late"
[[mailboxes]]
name = "soon"
address = "soon@example.com"
default_queue = "soon"

[[queues]]
name = "general"
timezone = "Europe/Berlin"
hours = "24/7"
agents = ["@example.com"]
[[queues.escalation]]
after = "0m"
contacts = ["lead@example.com"]

[[queues]]
name = "late"
timezone = "America/Sao_Paulo"
hours = "24/7"
first_response = "1ms"
warn = "50%"
operator_language = "pt"
[[queues.escalation]]
after = "0m"
contacts = ["lead@example.com", "deputy@example.com"]

[[queues]]
name = "soon"
timezone = "Asia/Tokyo"
hours = "24/7"
first_response = "10d"
next_response = "10d"
warn = "239h 59m 59s 999ms"
[[queues.escalation]]
after = "0m"
contacts = ["lead@example.com"]
"#;

fn customer(id: &str, from: &str, subject: &str, body: &str) -> String {
    format!(
        "From: {from}\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <{id}>\r\n\
         Date: Sun, 22 Nov 2026 10:59:00 +0100\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    )
}

const BODY: &str =
    "Hello, I cannot log in to my account since this morning. Could you please help me reset it?";

/// Writes a message to a file and ingests it into `mailbox`.
fn ingest(pd: &Postdesk, name: &str, mailbox: &str, bytes: &str) -> serde_json::Value {
    let file = pd.path(name);
    std::fs::write(&file, bytes).expect("write message");
    let out = stdout_ok(&pd.run(&[
        "ingest",
        "--json",
        "--mailbox",
        mailbox,
        &file.display().to_string(),
    ]));
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn one(pd: &Postdesk, sql: &str) -> String {
    pd.db()
        .query_row(sql, [], |r| r.get::<_, String>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn count(pd: &Postdesk, sql: &str) -> i64 {
    pd.db()
        .query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The files the file transport wrote, sorted by name.
fn outbox_files(pd: &Postdesk) -> Vec<(String, String)> {
    let dir = pd.path("state/outbox");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read_to_string(e.path()).unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn failed(out: &std::process::Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn reply_note_close_and_reopen_drive_status_and_clock() {
    let pd = Postdesk::new(QUEUES);
    let r = ingest(
        &pd,
        "a1.eml",
        "support",
        &customer(
            "a1@customer.test",
            "Ann <ann@customer.test>",
            "Cannot log in",
            BODY,
        ),
    );
    assert_eq!(r["ticket"], "PD-1", "{r}");
    assert_eq!(
        one(
            &pd,
            "SELECT state || ':' || kind FROM sla_clocks WHERE ticket_id = 1"
        ),
        "running:first"
    );

    // The answer, from a file.
    std::fs::write(
        pd.path("answer.txt"),
        "Hello Ann,\n\nwe have reset your password.\nThe link is valid for a day.\n",
    )
    .expect("write answer");
    let answer = pd.path("answer.txt").display().to_string();
    let out = stdout_ok(&pd.run(&["reply", "PD-1", "--file", &answer]));
    assert!(
        out.contains("reply to ann@customer.test queued")
            && out.contains("in reply to <a1@customer.test>")
            && out.contains("response clock 1 stopped"),
        "{out}"
    );
    assert_eq!(
        one(&pd, "SELECT status FROM tickets WHERE id = 1"),
        "waiting"
    );
    assert_eq!(
        one(
            &pd,
            "SELECT state || ':' || stop_reason FROM sla_clocks WHERE ticket_id = 1"
        ),
        "stopped:responded"
    );

    // It goes out with the customer's thread, our tag and no robot headers.
    stdout_ok(&pd.run(&["run", "--once"]));
    let files = outbox_files(&pd);
    let (_, reply) = files
        .iter()
        .find(|(name, _)| name.ends_with("-reply.eml"))
        .unwrap_or_else(|| panic!("no reply written: {files:?}"));
    assert!(reply.contains("In-Reply-To: <a1@customer.test>"), "{reply}");
    assert!(reply.contains("References: <a1@customer.test>"), "{reply}");
    assert!(
        reply.contains("Subject: [PD-1] Re: Cannot log in"),
        "{reply}"
    );
    assert!(reply.contains("To: ann@customer.test"), "{reply}");
    assert!(!reply.contains("Auto-Submitted"), "{reply}");
    assert!(reply.contains("we have reset your password"), "{reply}");

    // A second answer from stdin; a note that is never mailed.
    let out = stdout_ok(&pd.run_stdin(
        &["reply", "pd-1"],
        b"One more thing: check your spam folder.\n",
    ));
    assert!(out.contains("queued"), "{out}");
    let out =
        stdout_ok(&pd.run_stdin(&["note", "PD-1"], b"Customer called, confirmed identity.\n"));
    assert!(out.contains("note added"), "{out}");
    assert_eq!(
        count(&pd, "SELECT count(*) FROM outbox WHERE kind = 'reply'"),
        2
    );
    let show = stdout_ok(&pd.run(&["show", "PD-1", "--events"]));
    assert!(show.contains("ticket.note"), "{show}");
    assert!(show.contains("sla.clock.stopped"), "{show}");
    assert!(show.contains("confirmed identity"), "{show}");

    // Close, close again, reply refused, reopen.
    let out = stdout_ok(&pd.run(&["close", "PD-1"]));
    assert!(out.contains("PD-1: closed"), "{out}");
    assert_eq!(
        one(&pd, "SELECT status FROM tickets WHERE id = 1"),
        "closed"
    );
    let out = stdout_ok(&pd.run(&["close", "PD-1"]));
    assert!(out.contains("already closed"), "{out}");
    let err = failed(&pd.run(&["reply", "PD-1", "--file", &answer]));
    assert!(err.contains("postdesk reopen PD-1"), "{err}");
    let out = stdout_ok(&pd.run(&["reopen", "PD-1"]));
    assert!(out.contains("reopened; response clock 2 started"), "{out}");
    assert_eq!(one(&pd, "SELECT status FROM tickets WHERE id = 1"), "open");
    assert_eq!(
        one(
            &pd,
            "SELECT kind FROM sla_clocks WHERE ticket_id = 1 AND state = 'running'"
        ),
        "next"
    );

    // Mistakes say what to do.
    let err = failed(&pd.run(&["close", "PD-99"]));
    assert!(err.contains("there is no ticket PD-99"), "{err}");
    let err = failed(&pd.run(&["note", "ticket-one"]));
    assert!(err.contains("is not a ticket"), "{err}");
    let err = failed(&pd.run_stdin(&["reply", "PD-1"], b"  \n"));
    assert!(err.contains("the text is empty"), "{err}");
}

#[test]
fn due_and_breached_tickets_status_per_queue_and_alerts_once() {
    let pd = Postdesk::new(QUEUES);
    ingest(
        &pd,
        "late.eml",
        "late",
        &customer(
            "l1@customer.test",
            "Lia <lia@customer.test>",
            "Pedido",
            BODY,
        ),
    );
    ingest(
        &pd,
        "soon.eml",
        "soon",
        &customer(
            "s1@customer.test",
            "Sora <sora@customer.test>",
            "Order",
            BODY,
        ),
    );
    ingest(
        &pd,
        "calm.eml",
        "support",
        &customer(
            "c1@customer.test",
            "Cem <cem@customer.test>",
            "Question",
            BODY,
        ),
    );

    let tickets = |args: &[&str]| -> Vec<String> {
        let out = stdout_ok(&pd.run(args));
        let v: serde_json::Value = serde_json::from_str(&out).expect("JSON");
        v.as_array()
            .expect("array")
            .iter()
            .map(|t| t["ticket"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(tickets(&["tickets", "--breached", "--json"]), vec!["PD-1"]);
    assert_eq!(tickets(&["tickets", "--due", "--json"]), vec!["PD-2"]);
    assert_eq!(
        tickets(&["tickets", "--due", "--breached", "--json"]),
        vec!["PD-1", "PD-2"]
    );
    assert!(tickets(&["tickets", "--due", "--queue", "general", "--json"]).is_empty());
    let text = stdout_ok(&pd.run(&["tickets", "--breached"]));
    assert!(
        text.contains("PD-1") && text.contains("over") && text.contains("-03"),
        "{text}"
    );
    let text = stdout_ok(&pd.run(&["tickets", "--due"]));
    assert!(
        text.contains("PD-2") && text.contains("JST") && text.contains("left"),
        "{text}"
    );

    // A breached ticket makes postdesk degraded: exit 1, with the reason.
    let out = pd.run(&["status", "--json"]);
    assert_eq!(out.status.code(), Some(1), "breaches are degraded");
    let status: serde_json::Value =
        serde_json::from_str(&String::from_utf8_lossy(&out.stdout)).expect("JSON");
    assert!(
        status["problems"]
            .as_array()
            .is_some_and(|p| p.iter().any(|x| x
                .as_str()
                .is_some_and(|x| x.contains("past the response target")))),
        "{status}"
    );
    let queue = |name: &str| {
        status["queues"]
            .as_array()
            .expect("queues")
            .iter()
            .find(|q| q["queue"] == name)
            .unwrap_or_else(|| panic!("no queue {name}: {status}"))
            .clone()
    };
    let late = queue("late");
    assert_eq!(
        (late["open"].as_u64(), late["breached"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(late["oldest_unanswered"], "PD-1");
    assert!(late["oldest_unanswered_since"].is_string(), "{late}");
    let soon = queue("soon");
    assert_eq!(
        (soon["due_soon"].as_u64(), soon["breached"].as_u64()),
        (Some(1), Some(0))
    );
    let general = queue("general");
    assert_eq!(
        (
            general["open"].as_u64(),
            general["waiting"].as_u64(),
            general["due_soon"].as_u64()
        ),
        (Some(1), Some(0), Some(0))
    );
    let text = String::from_utf8_lossy(&pd.run(&["status"]).stdout).into_owned();
    assert!(
        text.contains("1 open, 0 waiting on customer, 0 closed; 0 due soon, 1 breached; oldest unanswered PD-1"),
        "{text}"
    );

    // `run --once` queues and sends what is due: the escalation of PD-1 in
    // the late queue's operator language, the warning of PD-2.
    stdout_ok(&pd.run(&["run", "--once"]));
    let keys = |pd: &Postdesk| -> Vec<String> {
        let db = pd.db();
        let mut stmt = db
            .prepare("SELECT dedup_key FROM outbox WHERE kind IN ('warning', 'escalation') ORDER BY dedup_key")
            .expect("prepare");
        stmt.query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows")
    };
    assert_eq!(keys(&pd), vec!["escalation:1:1:1", "warning:2:1"]);
    let files = outbox_files(&pd);
    let (_, escalation) = files
        .iter()
        .find(|(n, _)| n.ends_with("-escalation.eml"))
        .unwrap_or_else(|| panic!("no escalation written: {files:?}"));
    assert!(escalation.contains("To: lead@example.com"), "{escalation}");
    assert!(
        escalation.contains("Cc: deputy@example.com"),
        "{escalation}"
    );
    assert!(escalation.contains("PD-1"), "{escalation}");
    assert!(
        escalation.contains("Auto-Submitted: auto-generated"),
        "{escalation}"
    );
    assert!(escalation.contains("Content-Language: pt"), "{escalation}");
    assert!(escalation.contains("America/Sao_Paulo"), "{escalation}");

    // Another run (a restart) queues nothing again.
    stdout_ok(&pd.run(&["run", "--once"]));
    assert_eq!(keys(&pd), vec!["escalation:1:1:1", "warning:2:1"]);
    assert_eq!(
        count(
            &pd,
            "SELECT count(*) FROM events WHERE kind = 'sla.breached'"
        ),
        1
    );
    assert_eq!(outbox_files(&pd).len(), files.len());
}

#[test]
fn a_sent_folder_reply_in_real_dovecot_stops_the_clock_and_the_customer_restarts_it() {
    let stack = shared();
    let user = stack.lease_user();
    stack.create_folder(&user.address, "Sent");
    let pd = imap_postdesk(stack, &user, Tls::None, "sent_folder = \"Sent\"\n");
    stack.append(&user.address, "INBOX", &customer_mail(3, &user.address));
    stdout_ok(&pd.run(&["run", "--once"]));
    assert_eq!(
        one(
            &pd,
            "SELECT state || ':' || kind FROM sla_clocks WHERE ticket_id = 1"
        ),
        "running:first"
    );

    // An agent answers from a mail client; the copy lands in Sent.
    let reply = "From: Support <support@example.com>\r\nTo: Customer 3 <customer3@example.org>\r\n\
         Subject: Re: Pedido incompleto (3)\r\nDate: Mon, 2 Mar 2026 11:00:00 +0100\r\n\
         Message-ID: <agent-reply-3@example.com>\r\nIn-Reply-To: <c3.test@example.org>\r\n\
         References: <c3.test@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Hola Lucía, le enviamos hoy los dos artículos que faltan.\r\n";
    stack.append(&user.address, "Sent", reply.as_bytes());
    stdout_ok(&pd.run(&["run", "--once"]));
    assert_eq!(
        one(&pd, "SELECT status FROM tickets WHERE id = 1"),
        "waiting"
    );
    assert_eq!(
        one(
            &pd,
            "SELECT state || ':' || stop_reason FROM sla_clocks WHERE ticket_id = 1"
        ),
        "stopped:responded"
    );
    let detail = one(
        &pd,
        "SELECT detail FROM events WHERE ticket_id = 1 AND kind = 'sla.clock.stopped'",
    );
    assert!(detail.contains("\"direction\":\"outbound\""), "{detail}");

    // The customer answers the agent: the next-response clock runs.
    let answer = "From: Customer 3 <customer3@example.org>\r\nTo: support@example.com\r\n\
         Subject: Re: Pedido incompleto (3)\r\nDate: Mon, 2 Mar 2026 12:00:00 +0100\r\n\
         Message-ID: <c3.answer@example.org>\r\nIn-Reply-To: <agent-reply-3@example.com>\r\n\
         References: <c3.test@example.org> <agent-reply-3@example.com>\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Gracias, pero uno de los artículos ya no está disponible. ¿Pueden devolverme el dinero?\r\n";
    stack.append(&user.address, "INBOX", answer.as_bytes());
    stdout_ok(&pd.run(&["run", "--once"]));
    assert_eq!(one(&pd, "SELECT status FROM tickets WHERE id = 1"), "open");
    assert_eq!(
        one(
            &pd,
            "SELECT state || ':' || kind || ':' || seq FROM sla_clocks WHERE ticket_id = 1 AND state = 'running'"
        ),
        "running:next:2"
    );
}

#[test]
fn the_running_daemon_escalates_a_ticket_ingested_by_another_process_once() {
    let pd = Postdesk::new(QUEUES);
    let mut daemon = Daemon::start(&pd, "postdesk=info");
    daemon.wait_log("postdesk is running", 1, DEADLINE);
    // The MTA pipe (another process) opens a ticket in the 1 ms queue.
    ingest(
        &pd,
        "late.eml",
        "late",
        &customer(
            "l1@customer.test",
            "Lia <lia@customer.test>",
            "Pedido",
            BODY,
        ),
    );
    // The timer notices within its heartbeat step, the sender sends.
    eventually(DEADLINE, "the escalation to be sent", || {
        crate::imap::count(
            &pd,
            "SELECT count(*) FROM outbox WHERE kind = 'escalation' AND status = 'sent'",
        )
        .filter(|n| *n == 1)
    });
    daemon.wait_log("Response target breached", 1, DEADLINE);
    // An answer from the command line goes out through the same daemon.
    stdout_ok(&pd.run_stdin(
        &["reply", "PD-1"],
        b"Ol\xc3\xa1 Lia, j\xc3\xa1 verificamos.\n",
    ));
    eventually(DEADLINE, "the reply to be sent", || {
        crate::imap::count(
            &pd,
            "SELECT count(*) FROM outbox WHERE kind = 'reply' AND status = 'sent'",
        )
        .filter(|n| *n == 1)
    });
    assert!(daemon.stop(DEADLINE).success());
    assert_eq!(
        count(&pd, "SELECT count(*) FROM outbox WHERE kind = 'escalation'"),
        1
    );
}
