//! Running the real `postdesk` binary against a config in a temp dir.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A temp dir with a config file, and the binary to run against it.
pub struct Postdesk {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Postdesk {
    /// A config with one mailbox `support@example.com`, a file outbox, the
    /// database in the temp dir, plus `extra` TOML.
    pub fn new(extra: &str) -> Postdesk {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("postdesk.toml");
        std::fs::write(
            &config,
            format!(
                "[store]\npath = \"state/postdesk.db\"\n[outbox]\ndir = \"state/outbox\"\n[acknowledge]\nmax_age = \"3650d\"\n\
                 [[mailboxes]]\nname = \"support\"\naddress = \"support@example.com\"\ndisplay_name = \"Support\"\n{extra}"
            ),
        )
        .expect("write config");
        Postdesk { dir, config }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_postdesk"));
        c.arg("--config")
            .arg(&self.config)
            .env_remove("POSTDESK_CONFIG")
            .env_remove("RUST_LOG");
        c
    }

    /// Runs `postdesk <args>`; returns the output whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run postdesk")
    }

    /// Runs `postdesk <args>` with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn postdesk");
        // postdesk may exit before it reads its input (a broken config, a
        // database it cannot open), as it may under a real MTA: the exit
        // code is what counts then, not the unread input.
        if let Err(e) = child.stdin.take().expect("stdin").write_all(input) {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe,
                "write postdesk's stdin: {e}"
            );
        }
        child.wait_with_output().expect("wait postdesk")
    }

    /// `postdesk ingest --json <file>`: the one JSON line per message.
    pub fn ingest_json(&self, files: &[&Path]) -> Vec<serde_json::Value> {
        let mut args = vec!["ingest".to_owned(), "--json".to_owned()];
        args.extend(files.iter().map(|f| f.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run(&args);
        assert!(
            out.status.success(),
            "ingest failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// Opens the database read-only.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.path("state/postdesk.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open db")
    }
}

/// Asserts a command succeeded and returns its stdout.
pub fn stdout_ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
