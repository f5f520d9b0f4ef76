//! Operations: the systemd notify protocol, config reload, metrics and
//! health endpoints, the status exit code, and secrets kept out of logs.
//! The daemon is the real binary; its signals are real signals.

use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::Postdesk;

/// A running `postdesk run`, killed on drop; its stderr goes to a file.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(pd: &Postdesk, env: &[(&str, &str)]) -> Daemon {
        let log = pd.path("daemon.log");
        let err = std::fs::File::create(&log).unwrap();
        let mut cmd = pd.command();
        cmd.args(["--log-format", "human", "run"])
            .stdout(Stdio::null())
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon {
            child: cmd.spawn().expect("start postdesk run"),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args(["-s", sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -s {sig}");
    }

    /// SIGTERM, then the exit status within `limit`.
    fn stop(mut self, limit: Duration) -> Option<i32> {
        self.signal("TERM");
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "postdesk did not stop within {limit:?}; log:\n{}",
            self.log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` after `limit`.
fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn maildir(root: &Path) -> PathBuf {
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(root.join(sub)).unwrap();
    }
    root.to_owned()
}

fn deliver(md: &Path, name: &str, from: &str, subject: &str) {
    let msg = format!(
        "From: {from}\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <{name}@customer.test>\r\n\r\nHello, the export button does nothing when I click it. Please help.\r\n"
    );
    let tmp = md.join("tmp").join(name);
    std::fs::write(&tmp, msg).unwrap();
    std::fs::rename(&tmp, md.join("new").join(name)).unwrap();
}

fn tickets(pd: &Postdesk) -> i64 {
    let path = pd.path("state/postdesk.db");
    if !path.exists() {
        return 0;
    }
    rusqlite::Connection::open_with_flags(&path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .and_then(|c| c.query_row("SELECT count(*) FROM tickets", [], |r| r.get(0)))
        .unwrap_or(0)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bare HTTP/1.0 GET on loopback: (status code, body).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut resp = String::new();
    s.read_to_string(&mut resp).ok()?;
    let code = resp.split_whitespace().nth(1)?.parse().ok()?;
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Some((code, body))
}

#[test]
fn notify_protocol_ready_watchdog_status_stopping() {
    let pd = Postdesk::new("[mailboxes.maildir]\npath = \"Maildir\"\npoll_interval = \"1s\"\n");
    let md = maildir(&pd.path("Maildir"));
    deliver(&md, "m1", "ann@customer.test", "Export broken");
    let sock_path = pd.path("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let daemon = Daemon::start(
        &pd,
        &[
            ("NOTIFY_SOCKET", sock_path.to_str().unwrap()),
            ("WATCHDOG_USEC", "2000000"),
        ],
    );
    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(n) = sock.recv(&mut buf) {
            seen.extend(
                String::from_utf8_lossy(&buf[..n])
                    .lines()
                    .map(str::to_owned),
            );
        }
        let has = |k: &str| seen.iter().any(|l| l.starts_with(k));
        if has("READY=1") && has("WATCHDOG=1") && has("STATUS=") {
            break;
        }
    }
    let all = seen.join("\n");
    assert!(
        seen.iter().any(|l| l == "READY=1"),
        "no READY=1 in:\n{all}\nlog:\n{}",
        daemon.log()
    );
    assert!(
        seen.iter().any(|l| l == "WATCHDOG=1"),
        "no WATCHDOG=1 in:\n{all}"
    );
    let status = seen
        .iter()
        .find(|l| l.starts_with("STATUS=") && l.contains("open"))
        .cloned();
    let status = status.unwrap_or_else(|| panic!("no STATUS= summary in:\n{all}"));
    assert!(
        status.contains("1 open") && status.contains("support@ synced"),
        "{status}"
    );
    assert_eq!(tickets(&pd), 1);
    assert_eq!(daemon.stop(Duration::from_secs(25)), Some(0));
    let mut tail = Vec::new();
    while let Ok(n) = sock.recv(&mut buf) {
        tail.extend(
            String::from_utf8_lossy(&buf[..n])
                .lines()
                .map(str::to_owned),
        );
    }
    assert!(
        tail.iter().any(|l| l == "STOPPING=1"),
        "no STOPPING=1 after SIGTERM: {tail:?}"
    );
}

#[test]
fn sighup_applies_a_valid_config_and_refuses_an_invalid_one() {
    let base = "[[mailboxes]]\nname = \"support\"\naddress = \"support@example.com\"\n[mailboxes.maildir]\npath = \"A\"\npoll_interval = \"1s\"\n";
    let pd = Postdesk::new("");
    let write_config = |extra: &str| {
        std::fs::write(
            &pd.config,
            format!("[store]\npath = \"state/postdesk.db\"\n[outbox]\ndir = \"state/outbox\"\n{base}{extra}"),
        )
        .unwrap()
    };
    write_config("");
    let a = maildir(&pd.path("A"));
    let b = maildir(&pd.path("B"));
    deliver(&a, "a1", "ann@customer.test", "First");
    deliver(&b, "b1", "bob@customer.test", "Second");
    let daemon = Daemon::start(&pd, &[]);
    wait_for(Duration::from_secs(20), "the first ticket", || {
        (tickets(&pd) == 1).then_some(())
    });

    // A valid config adds a mailbox: its mail is read after the reload.
    write_config(
        "[[mailboxes]]\nname = \"sales\"\naddress = \"sales@example.com\"\n[mailboxes.maildir]\npath = \"B\"\npoll_interval = \"1s\"\n",
    );
    daemon.signal("HUP");
    wait_for(Duration::from_secs(20), "the new mailbox's ticket", || {
        (tickets(&pd) == 2).then_some(())
    });
    assert!(daemon.log().contains("Config reloaded"), "{}", daemon.log());

    // An invalid config is refused with the reason; the old one stays.
    std::fs::write(
        &pd.config,
        "[[mailboxes]]\nname = \"x\"\naddress = \"not an address\"\n",
    )
    .unwrap();
    daemon.signal("HUP");
    wait_for(Duration::from_secs(10), "the refusal in the log", || {
        daemon.log().contains("Config reload refused").then_some(())
    });
    assert!(
        daemon.log().contains("mailboxes[0].address"),
        "the reason names the key: {}",
        daemon.log()
    );
    deliver(&b, "b2", "carl@customer.test", "Third");
    deliver(&a, "a2", "dora@customer.test", "Fourth");
    wait_for(
        Duration::from_secs(20),
        "mail after the refused reload",
        || (tickets(&pd) == 4).then_some(()),
    );
    assert_eq!(daemon.stop(Duration::from_secs(25)), Some(0));
    // Nothing was read twice across the reload.
    let n: i64 = pd
        .db()
        .query_row(
            "SELECT count(*) FROM messages WHERE direction = 'inbound'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 4);
}

#[test]
fn metrics_and_healthz_during_an_ingest() {
    let port = free_port();
    let pd = Postdesk::new(&format!(
        "[mailboxes.maildir]\npath = \"Maildir\"\npoll_interval = \"1s\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n"
    ));
    let md = maildir(&pd.path("Maildir"));
    let daemon = Daemon::start(&pd, &[]);
    wait_for(Duration::from_secs(20), "the HTTP listener", || {
        http_get(port, "/healthz")
    });
    for i in 0..30 {
        deliver(
            &md,
            &format!("m{i}"),
            &format!("c{i}@customer.test"),
            &format!("Question {i}"),
        );
    }
    // Scrape while the messages are being ingested, until all are counted
    // and the gauges (read from the database at each scrape) show the pass
    // that ingested them: the in-memory counters run a moment ahead of
    // the pass's record in the database.
    let expected = [
        "postdesk_ingest_latency_seconds_bucket",
        "postdesk_source_syncs_total{source=\"maildir:support\"}",
        "postdesk_source_sync_lag_seconds{source=\"maildir:support\"}",
        "postdesk_sla_open_tickets{queue=\"general\"} 30",
        "postdesk_outbox_pending",
        "postdesk_quarantine_messages 0",
        "postdesk_healthy 1",
    ];
    let mut scrapes = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) = http_get(port, "/metrics").expect("/metrics answers");
        assert_eq!(code, 200);
        scrapes += 1;
        let ingested = body
            .lines()
            .find(|l| {
                l.starts_with("postdesk_messages_ingested_total")
                    && l.contains("outcome=\"created\"")
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok());
        if ingested == Some(30.0) && expected.iter().all(|name| body.contains(name)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {scrapes} scrapes, /metrics still lacks one of {expected:?}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, health) = http_get(port, "/healthz").unwrap();
    let v: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(
        (code, v["status"].as_str()),
        (200, Some("healthy")),
        "{health}"
    );
    assert_eq!(daemon.stop(Duration::from_secs(25)), Some(0));
}

#[test]
fn status_is_degraded_while_a_mailbox_server_is_down_and_no_password_is_logged() {
    let secret = "Sup3r-Secr3t-pw-91";
    let dead = free_port();
    let pd = Postdesk::new(&format!(
        "[mailboxes.imap]\nhost = \"127.0.0.1\"\nport = {dead}\ntls = \"none\"\nusername = \"support@example.com\"\npassword = {{ file = \"imap.pass\" }}\nmax_backoff = \"1s\"\n"
    ));
    std::fs::write(pd.path("imap.pass"), secret).unwrap();
    let daemon = Daemon::start(&pd, &[("RUST_LOG", "debug")]);
    // While it runs, `status` (a read-only reader) sees the failing mailbox.
    let v: serde_json::Value = wait_for(Duration::from_secs(20), "a degraded status", || {
        let out = pd.run(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        (out.status.code() == Some(1) && v["mailboxes"][0]["last_error"].is_string()).then_some(v)
    });
    let problems = v["problems"].to_string();
    assert!(problems.contains("mailbox support"), "{problems}");
    assert_eq!(v["mailboxes"][0]["stale"], true);
    assert!(v["mailboxes"][0]["last_error"].is_string(), "{v}");
    let log_path = daemon.log.clone();
    assert_eq!(daemon.stop(Duration::from_secs(25)), Some(0));
    let log = std::fs::read_to_string(log_path).unwrap();
    assert!(
        log.contains("support@example.com") || log.contains("127.0.0.1"),
        "the failure is logged: {log}"
    );
    assert!(!log.contains(secret), "the password leaked into the log");
}
