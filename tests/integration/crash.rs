//! kill -9 during a large IMAP ingest, again and again: every message is
//! stored exactly once and every post-action (a MOVE) is carried out.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::MailStack;
use crate::imap::{DEADLINE, Daemon, Tls, count, customer_mail, eventually, postdesk};

const MESSAGES: i64 = 2000;
const KILLS: usize = 6;
/// Messages left for the SIGTERM after the kills: it must come while
/// there is still mail to ingest.
const TERM_RESERVE: i64 = 600;
const INBOUND: &str = "SELECT count(*) FROM messages WHERE direction = 'inbound'";

/// xorshift64*: a seeded, printable source of "random moments" (the seed
/// is printed so a failing run can be replayed with POSTDESK_CRASH_SEED).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("POSTDESK_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        eprintln!("crash test seed: POSTDESK_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// The Message-IDs of a folder's messages.
fn message_ids(stack: &MailStack, user: &str, folder: &str) -> Vec<String> {
    stack
        .fetch_all(user, folder)
        .iter()
        .filter_map(|m| {
            String::from_utf8_lossy(m)
                .lines()
                .find_map(|l| l.strip_prefix("Message-ID: ").map(str::to_owned))
        })
        .collect()
}

#[test]
fn kill_9_during_a_2000_message_ingest_stores_each_exactly_once() {
    let started = Instant::now();
    let stack = MailStack::builder().without_postfix().start();
    let user = stack.lease_user();
    let mails: Vec<Vec<u8>> = (0..MESSAGES as usize)
        .map(|i| customer_mail(i, &user.address))
        .collect();
    stack.append_many(&user.address, "INBOX", &mails);
    let pd = postdesk(
        &stack,
        &user,
        Tls::None,
        "after_ingest = \"move\"\nmove_to = \"Archive\"\nbatch_size = 50\n",
    );
    // Acknowledgements are not what this test is about.
    let cfg = std::fs::read_to_string(&pd.config).expect("config");
    std::fs::write(
        &pd.config,
        cfg.replacen("[acknowledge]\n", "[acknowledge]\nenabled = false\n", 1),
    )
    .expect("config");

    let mut rng = Rng::new();
    let mut progress = Vec::new();
    for round in 0..KILLS {
        let mut daemon = Daemon::start(&pd, "postdesk=info");
        let before = count(&pd, INBOUND).unwrap_or(0);
        if round == 0 {
            // Once very early: during connect, first contact or the first
            // batch (an optimized build commits its first batches within
            // 100 ms of the start).
            std::thread::sleep(Duration::from_millis(20 + rng.below(150)));
        } else {
            // Otherwise at a random point of the ingest, then a random
            // moment later: inside a commit, between a commit and its MOVE.
            // The points are spread over what is left but a reserve for
            // the SIGTERM below, and the progress is polled closely, so
            // that every kill lands before the end however fast the build
            // ingests (an optimized one: thousands of these per second).
            let left = (KILLS - round) as i64;
            let span = ((MESSAGES - TERM_RESERVE - before) / left).max(1);
            let target = (before + 1 + rng.below(span as u64) as i64).min(MESSAGES - 1);
            let deadline = Instant::now() + DEADLINE;
            while count(&pd, INBOUND).unwrap_or(0) < target {
                assert!(
                    Instant::now() < deadline,
                    "no progress to {target} messages before the kill:\n{}",
                    daemon.log_text()
                );
                std::thread::sleep(Duration::from_millis(2));
            }
            std::thread::sleep(Duration::from_millis(rng.below(20)));
        }
        assert!(
            daemon.is_running(),
            "postdesk died by itself:\n{}",
            daemon.log_text()
        );
        daemon.child.kill().expect("kill -9");
        let _ = daemon.child.wait();
        let after = count(&pd, INBOUND).unwrap_or(0);
        // Actions owed at the kill: it fell between a commit and its MOVE.
        let owed = count(&pd, "SELECT count(*) FROM mailbox_actions").unwrap_or(0);
        progress.push((before, after, owed));
    }
    assert!(
        progress
            .iter()
            .filter(|(_, after, _)| *after < MESSAGES)
            .count()
            >= 5,
        "at least five kills must land during the ingest: {progress:?}"
    );

    // SIGTERM in the middle of the ingest: the batch in hand is committed
    // and moved, then LOGOUT and exit 0: nothing owed is left behind.
    let daemon = Daemon::start(&pd, "postdesk=info");
    let before = count(&pd, INBOUND).unwrap_or(0);
    eventually(DEADLINE, "progress before SIGTERM", || {
        let n = count(&pd, INBOUND)?;
        (n > before).then_some(())
    });
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "SIGTERM during the ingest: exit {status}");
    let after_term = count(&pd, INBOUND).unwrap_or(0);
    assert!(
        after_term < MESSAGES,
        "SIGTERM came too late to test anything"
    );
    assert_eq!(
        count(&pd, "SELECT count(*) FROM mailbox_actions"),
        Some(0),
        "SIGTERM left actions owed"
    );
    assert_eq!(
        stack.mailbox_status(&user.address, "INBOX").messages as i64,
        MESSAGES - after_term,
        "what is stored is moved, the rest is still in the INBOX"
    );

    // A last run finishes the job.
    let daemon = Daemon::start(&pd, "postdesk=info");
    eventually(DEADLINE * 2, "all messages stored and moved", || {
        let stored = count(&pd, INBOUND)?;
        let owed = count(&pd, "SELECT count(*) FROM mailbox_actions")?;
        let inbox = stack.mailbox_status(&user.address, "INBOX").messages;
        (stored == MESSAGES && owed == 0 && inbox == 0).then_some(())
    });
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "exit {status}");

    assert_eq!(count(&pd, INBOUND), Some(MESSAGES));
    assert_eq!(
        count(
            &pd,
            "SELECT count(DISTINCT message_id) FROM messages WHERE direction = 'inbound'"
        ),
        Some(MESSAGES)
    );
    assert_eq!(count(&pd, "SELECT count(*) FROM tickets"), Some(MESSAGES));
    assert_eq!(count(&pd, "SELECT count(*) FROM quarantine"), Some(0));
    let archived = message_ids(&stack, &user.address, "Archive");
    let distinct: HashSet<&String> = archived.iter().collect();
    assert_eq!(archived.len() as i64, MESSAGES, "every message moved once");
    assert_eq!(distinct.len() as i64, MESSAGES, "no message moved twice");
    eprintln!(
        "crash test: {KILLS} kill -9 at (messages before, after, actions owed): {progress:?}; total {:?}",
        started.elapsed()
    );
}
