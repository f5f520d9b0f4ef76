//! `postdesk ingest` on our own fixtures: the CLI contract end to end.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::cli::{Postdesk, stdout_ok};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ingest")
        .join(name)
}

/// A `.tmpl` fixture with `{{ACK_ID}}` replaced, written into the temp dir.
fn from_template(pd: &Postdesk, name: &str, ack_id: &str) -> PathBuf {
    let text = std::fs::read_to_string(fixture(name)).expect("template");
    let out = pd.path(name.trim_end_matches(".tmpl"));
    std::fs::write(&out, text.replace("{{ACK_ID}}", ack_id)).expect("write");
    out
}

fn ack_id(pd: &Postdesk, ticket: i64) -> String {
    pd.db()
        .query_row(
            "SELECT message_id FROM outbox WHERE kind = 'ack' AND ticket_id = ?1",
            [ticket],
            |r| r.get(0),
        )
        .expect("an ack for the ticket")
}

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

#[test]
fn the_ingest_contract() {
    let pd = Postdesk::new("");
    // New requests in several languages, scripts and legacy charsets.
    let news = [
        ("01-en-new.eml", "en"),
        ("02-de-latin1-undeclared.eml", "de"),
        ("03-ja-iso2022jp.eml", "ja"),
        ("04-zh-gb2312.eml", "zh"),
        ("05-ru-koi8r.eml", "ru"),
        ("06-fr-html-only.eml", "fr"),
        ("07-ar-utf8.eml", "ar"),
        ("08-en-from-spanish-speaker.eml", "en"),
    ];
    let files: Vec<PathBuf> = news.iter().map(|(f, _)| fixture(f)).collect();
    let lines = pd.ingest_json(&files.iter().map(PathBuf::as_path).collect::<Vec<_>>());
    assert_eq!(lines.len(), news.len());
    for (i, (line, (file, lang))) in lines.iter().zip(news).enumerate() {
        assert_eq!(field(line, "outcome"), "created", "{file}: {line}");
        assert_eq!(field(line, "ticket"), format!("PD-{}", i + 1), "{file}");
        assert_eq!(field(line, "class"), "human", "{file}");
        assert_eq!(field(line, "language"), lang, "{file}: {line}");
        assert_eq!(line["ack"], true, "{file}: {line}");
        for key in ["message_id", "reason"] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }
    // The decoded text is stored, not mojibake.
    let show = stdout_ok(&pd.run(&["show", "PD-2"]));
    assert!(
        show.contains("Grüßen") && show.contains("München"),
        "undeclared Latin-1: {show}"
    );
    let show = stdout_ok(&pd.run(&["show", "PD-3"]));
    assert!(
        show.contains("商品") || show.contains("配送状況"),
        "ISO-2022-JP: {show}"
    );
    let show = stdout_ok(&pd.run(&["show", "PD-5"]));
    assert!(show.contains("Здравствуйте"), "KOI8-R: {show}");
    let show = stdout_ok(&pd.run(&["show", "PD-6"]));
    assert!(
        show.contains("48213") && !show.contains("<b>"),
        "HTML converted to text: {show}"
    );

    // `show --raw` gives back the message exactly as it came in (the store
    // keeps it compressed), and says what to do with a wrong number.
    let raw = pd.run(&["show", "PD-3", "--raw", "1"]);
    assert!(raw.status.success(), "{raw:?}");
    assert!(
        raw.stdout == std::fs::read(fixture("03-ja-iso2022jp.eml")).unwrap(),
        "show --raw differs from the file"
    );
    let wrong = pd.run(&["show", "PD-3", "--raw", "2"]);
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr).contains("from 1 to 1"),
        "{wrong:?}"
    );

    // A duplicate delivery is recognized and stored once.
    let dup = pd.ingest_json(&[&fixture("01-en-new.eml")]);
    assert_eq!(field(&dup[0], "outcome"), "duplicate");
    assert_eq!(field(&dup[0], "ticket"), "PD-1");

    // Each threading path.
    let ack1 = ack_id(&pd, 1);
    let token_reply = from_template(&pd, "10-reply-token.eml.tmpl", &ack1);
    let r = pd.ingest_json(&[
        &token_reply,
        &fixture("11-reply-references.eml"),
        &fixture("12-reply-subject-tag.eml"),
    ]);
    for (line, via) in r.iter().zip(["token", "references", "subject-tag"]) {
        assert_eq!(
            (field(line, "outcome"), field(line, "ticket")),
            ("threaded", "PD-1"),
            "{via}: {line}"
        );
        assert!(field(line, "reason").contains(via), "{via}: {line}");
        assert_eq!(line["ack"], false);
    }

    // The stranger's subject tag opens a new ticket, and the log says why.
    let h = pd.ingest_json(&[&fixture("13-hijack-subject-tag.eml")]);
    assert_eq!(
        (field(&h[0], "outcome"), field(&h[0], "ticket")),
        ("created", "PD-9"),
        "{}",
        h[0]
    );
    assert!(
        field(&h[0], "reason").contains("does not take part"),
        "{}",
        h[0]
    );
    let events = stdout_ok(&pd.run(&["show", "PD-9", "--events"]));
    assert!(events.contains("does not take part"), "{events}");

    // An out-of-office reply and a bounce to our acknowledgements.
    let ooo = from_template(&pd, "14-ooo-to-ack.eml.tmpl", &ack1);
    let ack8 = ack_id(&pd, 8);
    let bounce = from_template(&pd, "15-bounce-of-ack.eml.tmpl", &ack8);
    let r = pd.ingest_json(&[&ooo, &bounce]);
    assert_eq!(
        (
            field(&r[0], "outcome"),
            field(&r[0], "ticket"),
            field(&r[0], "class")
        ),
        ("threaded", "PD-1", "auto-replied"),
        "{}",
        r[0]
    );
    assert_eq!(
        (
            field(&r[1], "outcome"),
            field(&r[1], "ticket"),
            field(&r[1], "class")
        ),
        ("threaded", "PD-8", "bounce"),
        "{}",
        r[1]
    );
    let bouncing: i64 = pd
        .db()
        .query_row("SELECT count(*) FROM address_state WHERE address = 'carlos@ruiz.test' AND bouncing_since IS NOT NULL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(bouncing, 1);

    // A reply in Spanish quoting our English acknowledgement is Spanish.
    let es = from_template(&pd, "18-es-reply-quoting-en-ack.eml.tmpl", &ack8);
    let r = pd.ingest_json(&[&es]);
    assert_eq!(
        (field(&r[0], "outcome"), field(&r[0], "ticket")),
        ("threaded", "PD-8"),
        "{}",
        r[0]
    );
    let lang: String = pd
        .db()
        .query_row(
            "SELECT language FROM messages WHERE message_id = 'carlos-2@ruiz.test'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(lang, "es");

    // A mailing-list message opens a ticket but is never acknowledged.
    let l = pd.ingest_json(&[&fixture("16-mailing-list.eml")]);
    assert_eq!(
        (field(&l[0], "class"), &l[0]["ack"]),
        ("bulk", &Value::Bool(false)),
        "{}",
        l[0]
    );

    // Malformed MIME is parsed best-effort: the text survives.
    let m = pd.ingest_json(&[&fixture("17-malformed-mime.eml")]);
    assert_eq!(field(&m[0], "outcome"), "created", "{}", m[0]);
    let show = stdout_ok(&pd.run(&["show", field(&m[0], "ticket")]));
    assert!(show.contains("error 500"), "{show}");

    // Only the acks that were due: 8 first tickets + hijacker + malformed.
    let acks: i64 = pd
        .db()
        .query_row("SELECT count(*) FROM outbox WHERE kind = 'ack'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(acks, 10);
}

#[test]
fn a_thirty_megabyte_message_is_stored_whole() {
    let pd = Postdesk::new("");
    let mut msg = b"From: big@customer.test\r\nTo: support@example.com\r\nSubject: Logs attached\r\nMessage-ID: <big-1@customer.test>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThe server crashes nightly; the full log is attached.\r\n--b\r\nContent-Type: text/plain; name=\"server.log\"\r\nContent-Disposition: attachment; filename=\"server.log\"\r\n\r\n".to_vec();
    let line = b"2026-11-22T03:00:00Z ERROR worker-7: connection reset by peer while flushing batch 991\r\n";
    while msg.len() < 30 * 1024 * 1024 {
        msg.extend_from_slice(line);
    }
    msg.extend_from_slice(b"--b--\r\n");
    let path = pd.path("big.eml");
    std::fs::write(&path, &msg).unwrap();
    let r = pd.ingest_json(&[&path]);
    assert_eq!(field(&r[0], "outcome"), "created", "{}", r[0]);
    let db = pd.db();
    let (row, att): (i64, i64) = db
        .query_row(
            "SELECT message, (SELECT size_bytes FROM attachments LIMIT 1) FROM message_raw LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let stored = postdesk::store::raw::read(&db, row).unwrap().unwrap();
    assert!(stored == msg, "the stored original differs from the file");
    assert!(att > 29 * 1024 * 1024, "attachment size {att}");
}

#[test]
fn a_message_over_the_limit_is_quarantined_and_the_pipe_says_stored() {
    let pd = Postdesk::new("[ingest]\nmax_message_size = \"64 KiB\"\n");
    let mut msg =
        b"From: big@customer.test\r\nSubject: big\r\nMessage-ID: <q@x.test>\r\n\r\n".to_vec();
    msg.resize(200 * 1024, b'x');
    let out = pd.run_stdin(&["ingest", "--json", "-"], &msg);
    let stdout = stdout_ok(&out);
    let v: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(field(&v, "outcome"), "quarantined");
    assert!(field(&v, "reason").contains("max_message_size"));
    let (raw, headers): (Option<Vec<u8>>, String) = pd
        .db()
        .query_row("SELECT raw, headers FROM quarantine", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert!(raw.is_none(), "an oversized message is not kept whole");
    assert!(headers.contains("Subject: big"));
}

#[test]
fn the_mta_pipe_exits_75_when_the_message_cannot_be_stored() {
    let pd = Postdesk::new("");
    // The database path is a directory: nothing can be stored.
    std::fs::create_dir_all(pd.path("state/postdesk.db")).unwrap();
    let out = pd.run_stdin(
        &["ingest", "-"],
        b"From: a@b.test\r\nSubject: x\r\n\r\nhello\r\n",
    );
    assert_eq!(
        out.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A broken config is also temporary for the MTA.
    std::fs::write(&pd.config, "this is not toml [").unwrap();
    let out = pd.run_stdin(
        &["ingest", "-"],
        b"From: a@b.test\r\nSubject: x\r\n\r\nhello\r\n",
    );
    assert_eq!(out.status.code(), Some(75));
}

#[test]
fn the_pipe_stores_and_a_dry_run_writes_nothing() {
    let pd = Postdesk::new("");
    let msg = std::fs::read(fixture("01-en-new.eml")).unwrap();
    let out = pd.run_stdin(&["ingest", "--dry-run", "--json", "-"], &msg);
    let v: Value = serde_json::from_str(stdout_ok(&out).trim()).unwrap();
    assert_eq!(
        (field(&v, "outcome"), &v["ack"]),
        ("created", &Value::Bool(true))
    );
    assert!(
        !pd.path("state/postdesk.db").exists(),
        "a dry run creates no database"
    );
    let out = pd.run_stdin(&["ingest", "--json", "-"], &msg);
    assert_eq!(out.status.code(), Some(0));
    let n: i64 = pd
        .db()
        .query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1);
}

#[test]
fn maildir_and_mbox_imports_are_idempotent() {
    let pd = Postdesk::new("");
    let md = pd.path("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    for (i, f) in ["01-en-new.eml", "03-ja-iso2022jp.eml", "05-ru-koi8r.eml"]
        .iter()
        .enumerate()
    {
        std::fs::copy(
            fixture(f),
            md.join("new").join(format!("17000000{i}.M{i}.test")),
        )
        .unwrap();
    }
    let first = pd.ingest_json(&[&md]);
    assert_eq!(
        first
            .iter()
            .filter(|l| field(l, "outcome") == "created")
            .count(),
        3
    );
    let second = pd.ingest_json(&[&md]);
    assert!(
        second.iter().all(|l| field(l, "outcome") == "duplicate"),
        "{second:?}"
    );
    assert_eq!(
        std::fs::read_dir(md.join("new")).unwrap().count(),
        3,
        "an import leaves the Maildir alone"
    );

    let mut mbox = Vec::new();
    for f in ["02-de-latin1-undeclared.eml", "07-ar-utf8.eml"] {
        mbox.extend_from_slice(b"From MAILER-DAEMON Sun Nov 22 10:00:00 2026\n");
        mbox.extend_from_slice(&std::fs::read(fixture(f)).unwrap());
        mbox.extend_from_slice(b"\n");
    }
    let p = pd.path("archive.mbox");
    std::fs::write(&p, mbox).unwrap();
    let r = pd.ingest_json(&[&p]);
    assert_eq!(
        r.iter().map(|l| field(l, "outcome")).collect::<Vec<_>>(),
        ["created", "created"]
    );
    let r = pd.ingest_json(&[&p]);
    assert_eq!(
        r.iter().map(|l| field(l, "outcome")).collect::<Vec<_>>(),
        ["duplicate", "duplicate"]
    );
}

#[test]
fn tickets_show_status_and_check_config() {
    let pd = Postdesk::new("");
    pd.ingest_json(&[&fixture("01-en-new.eml")]);
    let list = stdout_ok(&pd.run(&["tickets"]));
    assert!(
        list.contains("PD-1") && list.contains("Order problem"),
        "{list}"
    );
    let json: Value = serde_json::from_str(&stdout_ok(
        &pd.run(&["tickets", "--json", "--status", "open"]),
    ))
    .unwrap();
    assert_eq!(json[0]["ticket"], "PD-1");
    let show: Value =
        serde_json::from_str(&stdout_ok(&pd.run(&["show", "pd-1", "--json"]))).unwrap();
    assert_eq!(show["messages"][0]["direction"], "inbound");
    assert_eq!(show["messages"][0]["class"], "human");
    assert_eq!(show["messages"][0]["language"], "en");
    let status: Value = serde_json::from_str(&stdout_ok(&pd.run(&["status", "--json"]))).unwrap();
    assert_eq!(status["outbox"]["pending"], 1);
    assert!(stdout_ok(&pd.run(&["check-config"])).contains("OK"));
    std::fs::write(
        &pd.config,
        "[[mailboxes]]\nname = \"x\"\naddress = \"nope\"\n",
    )
    .unwrap();
    let out = pd.run(&["check-config"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("mailboxes[0].address"));
    let out = pd.run(&["show", "PD-99"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn show_writes_an_attachment_back_decoded() {
    let pd = Postdesk::new("");
    // A binary attachment (NUL bytes, every byte value) and a text one.
    let png: Vec<u8> = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"
        .iter()
        .copied()
        .chain((0..=255u8).cycle().take(3000))
        .collect();
    let log = "2026-03-02 10:00:01 ERROR export failed: timeout\n2026-03-02 10:00:02 retrying\n";
    let mail = format!(
        "From: Dana <dana@customer.test>\r\nTo: support@example.com\r\nSubject: Export broken\r\n\
         Message-ID: <att-1@customer.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         The export button fails, screenshot and log attached.\r\n\
         --b1\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"screen shot.png\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{png64}\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Disposition: attachment; filename=\"app.log\"\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\r\n{log_qp}\r\n\
         --b1--\r\n",
        png64 = data_encoding::BASE64
            .encode(&png)
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\r\n"),
        log_qp = log.replace('=', "=3D").replace('\n', "\r\n"),
    );
    let file = pd.path("attachments.eml");
    std::fs::write(&file, mail).unwrap();
    let lines = pd.ingest_json(&[&file]);
    assert_eq!(field(&lines[0], "ticket"), "PD-1", "{}", lines[0]);

    let show = stdout_ok(&pd.run(&["show", "PD-1"]));
    assert!(
        show.contains(&format!(
            "[attachment 1: screen shot.png · image/png · {} bytes]",
            png.len()
        )),
        "{show}"
    );
    assert!(
        show.contains("[attachment 2: app.log · text/plain"),
        "{show}"
    );

    let out = pd.run(&["show", "PD-1", "--attachment", "1"]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stdout == png, "the image comes back byte for byte");
    let out = pd.run(&["show", "PD-1", "--attachment", "2"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"),
        log
    );
    let wrong = pd.run(&["show", "PD-1", "--attachment", "3"]);
    assert!(!wrong.status.success());
    assert!(
        String::from_utf8_lossy(&wrong.stderr)
            .contains("has 2 attachment(s); --attachment takes a number from 1 to 2"),
        "{wrong:?}"
    );
    let both = pd.run(&["show", "PD-1", "--attachment", "1", "--raw", "1"]);
    assert!(
        !both.status.success(),
        "--raw and --attachment exclude each other"
    );
}

#[test]
fn mail_cannot_drive_the_operators_terminal() {
    let pd = Postdesk::new("");
    // ESC ] 0 ; … BEL retitles a terminal window, ESC [ 2 J clears it.
    let mail = "From: Eve <eve@evil.test>\r\nTo: support@example.com\r\n\
                Subject: =?utf-8?q?Refund=1B]0;pwned=07=1B[2J?=\r\nMessage-ID: <esc-1@evil.test>\r\n\r\n\
                My order \x1b[8mhidden\x1b[0m never came.\r\n";
    let file = pd.path("esc.eml");
    std::fs::write(&file, mail).unwrap();
    pd.ingest_json(&[&file]);
    for args in [&["show", "PD-1"][..], &["tickets"]] {
        let out = stdout_ok(&pd.run(args));
        assert!(!out.contains('\x1b'), "{args:?}: {out:?}");
        assert!(out.contains("Refund\u{fffd}]0;pwned"), "{args:?}: {out:?}");
    }
    // JSON escapes them; a pipe gets the original bytes.
    let json = stdout_ok(&pd.run(&["show", "PD-1", "--json"]));
    assert!(json.contains("\\u001b]0;pwned"), "{json}");
    let raw = pd.run(&["show", "PD-1", "--raw", "1"]);
    assert!(raw.stdout == mail.as_bytes(), "{raw:?}");
    // On a terminal (script(1) gives the command one), --raw refuses.
    let out = std::process::Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} --config {} show PD-1 --raw 1",
            env!("CARGO_BIN_EXE_postdesk"),
            pd.config.display()
        ))
        .arg("/dev/null")
        .env_remove("POSTDESK_CONFIG")
        .output()
        .expect("script(1), from util-linux, runs the command on a terminal");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("redirect it to a file") && !text.contains('\x1b'),
        "{text:?}"
    );
}

#[test]
fn a_reader_that_goes_away_ends_the_output_quietly() {
    let pd = Postdesk::new("");
    // A pasted log: `show` prints far more than a pipe buffers (64 KiB).
    let log: String = (0..4000)
        .map(|i| {
            format!(
                "2026-03-02 10:00:{:02} ERROR export job {i} failed\r\n",
                i % 60
            )
        })
        .collect();
    let mail = format!(
        "From: Dana <dana@customer.test>\r\nTo: support@example.com\r\nSubject: Export log\r\n\
         Message-ID: <log-1@customer.test>\r\n\r\nThe export fails, here is the log:\r\n{log}"
    );
    let file = pd.path("log.eml");
    std::fs::write(&file, mail).unwrap();
    pd.ingest_json(&[&file]);
    for args in ["show PD-1", "show PD-1 --raw 1"] {
        // `head` reads one line and exits; postdesk's next write fails
        // with EPIPE (Rust ignores SIGPIPE).
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!(
                "'{}' --config '{}' {args} | head -n 1 >/dev/null; echo \"exit=${{PIPESTATUS[0]}}\"",
                env!("CARGO_BIN_EXE_postdesk"),
                pd.config.display()
            ))
            .env_remove("POSTDESK_CONFIG")
            .output()
            .expect("bash");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stdout.trim(), "exit=0", "{args}: {stderr}");
        assert!(stderr.is_empty(), "{args}: {stderr}");
    }
}
