//! `postdesk quarantine`: what could not be processed can be seen,
//! replayed once the cause is fixed, or dropped.

use serde_json::Value;

use crate::cli::{Postdesk, stdout_ok};

#[test]
fn quarantined_mail_can_be_listed_replayed_and_dropped() {
    let pd = Postdesk::new("[ingest]\nmax_message_size = \"4 KiB\"\n");
    // An oversized message in a Maildir (kept as headers only) and one
    // that is not mail at all.
    let md = pd.path("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(sub)).unwrap();
    }
    let mut big = b"From: big@customer.test\r\nTo: support@example.com\r\nSubject: Huge log\r\nMessage-ID: <huge@customer.test>\r\n\r\nThe export crashes, the full log follows.\r\n".to_vec();
    big.resize(20 * 1024, b'x');
    std::fs::write(md.join("new/1700000000.M1.test"), &big).unwrap();
    let junk = pd.path("junk.eml");
    std::fs::write(&junk, b"").unwrap();
    let r = pd.ingest_json(&[&md, &junk]);
    assert!(r.iter().all(|l| l["outcome"] == "quarantined"), "{r:?}");

    let list: Value =
        serde_json::from_str(&stdout_ok(&pd.run(&["quarantine", "list", "--json"]))).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    let big_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["has_raw"] == false)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let junk_id = list
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["has_raw"] == true)
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let show = stdout_ok(&pd.run(&["quarantine", "show", &big_id.to_string()]));
    assert!(
        show.contains("Subject: Huge log") && show.contains("max_message_size"),
        "{show}"
    );

    // Replaying with a larger limit reads the original from the Maildir.
    let out = pd.run(&[
        "quarantine",
        "replay",
        &big_id.to_string(),
        "--max-size",
        "1 MiB",
    ]);
    let text = stdout_ok(&out);
    assert!(text.contains("created PD-1"), "{text}");
    // Still garbage: the replay fails, the entry stays with its reason.
    let out = pd.run(&["quarantine", "replay", &junk_id.to_string()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("still cannot be processed"));
    stdout_ok(&pd.run(&["quarantine", "drop", &junk_id.to_string()]));
    let list: Value =
        serde_json::from_str(&stdout_ok(&pd.run(&["quarantine", "list", "--json"]))).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(0));
    let status: Value = serde_json::from_str(&stdout_ok(&pd.run(&["status", "--json"]))).unwrap();
    assert_eq!(status["quarantine"], 0);
}

#[test]
fn an_oversized_message_from_an_mbox_is_replayed_from_the_file() {
    let pd = Postdesk::new("[ingest]\nmax_message_size = \"4 KiB\"\n");
    let mut mbox = b"From small@customer.test Mon Nov 16 09:00:00 2026\nFrom: small@customer.test\nTo: support@example.com\nSubject: Small\nMessage-ID: <small@customer.test>\n\nHello.\n\n".to_vec();
    mbox.extend_from_slice(b"From big@customer.test Mon Nov 16 09:05:00 2026\nFrom: big@customer.test\nTo: support@example.com\nSubject: Big\nMessage-ID: <big@customer.test>\n\nThe log follows.\n");
    mbox.extend_from_slice(
        &b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n".repeat(200),
    );
    let path = pd.path("archive.mbox");
    std::fs::write(&path, &mbox).unwrap();
    let r = pd.ingest_json(&[&path]);
    let outcomes: Vec<&str> = r.iter().filter_map(|l| l["outcome"].as_str()).collect();
    assert_eq!(outcomes, ["created", "quarantined"], "{r:?}");
    let list: Value =
        serde_json::from_str(&stdout_ok(&pd.run(&["quarantine", "list", "--json"]))).unwrap();
    let id = list[0]["id"].as_i64().unwrap().to_string();
    let text = stdout_ok(&pd.run(&["quarantine", "replay", &id, "--max-size", "1 MiB"]));
    assert!(text.contains("created PD-2"), "{text}");
    let show = stdout_ok(&pd.run(&["show", "PD-2"]));
    assert!(show.contains("The log follows."), "{show}");
}
