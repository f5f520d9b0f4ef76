//! Secrets (passwords, OAuth tokens, the token key) are never written in the
//! config file itself: the file says where to get them. This keeps them out
//! of backups of the config, out of `ps`, and out of every log line, since
//! the only type that holds one redacts itself in `Debug` and `Display`.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;

/// Where a secret comes from. Exactly one of the keys is given in the
/// config, e.g. `password = { file = "/etc/postdesk/imap.pass" }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum SecretSource {
    /// Read a file; one trailing newline is removed.
    File(PathBuf),
    /// Run a program (argv, no shell) and read its standard output.
    Command(Vec<String>),
    /// Read an environment variable.
    Env(String),
    /// Read `$CREDENTIALS_DIRECTORY/<name>`, as set by systemd's
    /// `LoadCredential=` / `SetCredentialEncrypted=`.
    Credential(String),
}

/// How long a secret command may run before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a secret could not be read. The messages name the source, never the
/// value.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret command {program:?} failed: {reason}")]
    Command { program: String, reason: String },
    #[error("environment variable {0} is not set (or is not UTF-8)")]
    Env(String),
    #[error(
        "systemd credential {name:?} is not available: {reason}; add `LoadCredential={name}:/path/to/file` to the unit"
    )]
    Credential { name: String, reason: String },
    #[error("the secret from {0} is empty")]
    Empty(String),
}

/// A secret value. `Debug` and `Display` print `<redacted>`; the value is
/// only reachable through [`SecretString::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }

    /// The secret itself. Call sites are few and easy to audit.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::File(p) => write!(f, "file {}", p.display()),
            SecretSource::Command(argv) => {
                write!(
                    f,
                    "command {:?}",
                    argv.first().map(String::as_str).unwrap_or("")
                )
            }
            SecretSource::Env(v) => write!(f, "environment variable {v}"),
            SecretSource::Credential(n) => write!(f, "systemd credential {n}"),
        }
    }
}

impl SecretSource {
    /// Makes a relative file path relative to `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let SecretSource::File(p) = self
            && p.is_relative()
        {
            *p = base.join(&*p);
        }
    }

    /// Reads the secret now. Blocking: call from a blocking context.
    pub fn read(&self) -> Result<SecretString, SecretError> {
        let value = match self {
            SecretSource::File(path) => {
                std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?
            }
            SecretSource::Command(argv) => run_command(argv)?,
            SecretSource::Env(var) => {
                std::env::var(var).map_err(|_| SecretError::Env(var.clone()))?
            }
            SecretSource::Credential(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| {
                    SecretError::Credential {
                        name: name.clone(),
                        reason: "CREDENTIALS_DIRECTORY is not set (not started by systemd?)".into(),
                    }
                })?;
                if name.contains('/') {
                    return Err(SecretError::Credential {
                        name: name.clone(),
                        reason: "a credential name cannot contain '/'".into(),
                    });
                }
                let path = Path::new(&dir).join(name);
                std::fs::read_to_string(&path).map_err(|e| SecretError::Credential {
                    name: name.clone(),
                    reason: e.to_string(),
                })?
            }
        };
        let value = value.strip_suffix('\n').unwrap_or(&value);
        let value = value.strip_suffix('\r').unwrap_or(value);
        if value.is_empty() {
            return Err(SecretError::Empty(self.to_string()));
        }
        Ok(SecretString(value.to_owned()))
    }
}

fn run_command(argv: &[String]) -> Result<String, SecretError> {
    let program = argv.first().cloned().unwrap_or_default();
    let fail = |reason: String| SecretError::Command {
        program: program.clone(),
        reason,
    };
    if program.is_empty() {
        return Err(fail("the command is empty".into()));
    }
    let mut child = Command::new(&program)
        .args(argv.get(1..).unwrap_or(&[]))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null()) // stderr may echo the secret; never log it
        .spawn()
        .map_err(|e| fail(format!("cannot start it: {e}")))?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| fail("no stdout".into()))?;
    // Read on a thread so a command that fills the pipe cannot deadlock the wait.
    let reader = std::thread::spawn(move || {
        let mut buf = String::new();
        stdout.read_to_string(&mut buf).map(|_| buf)
    });
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "it did not finish within {}s",
                    COMMAND_TIMEOUT.as_secs()
                )));
            }
            Err(e) => return Err(fail(e.to_string())),
        }
    };
    let out = reader
        .join()
        .map_err(|_| fail("reading its output failed".into()))?
        .map_err(|e| fail(format!("its output is not UTF-8 text: {e}")))?;
    if !status.success() {
        return Err(fail(format!("it exited with {status}")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_secret_strips_one_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "hunter2\n").unwrap();
        let s = SecretSource::File(p).read().unwrap();
        assert_eq!(s.expose(), "hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
    }

    #[test]
    fn command_secret_reads_stdout() {
        let s = SecretSource::Command(vec!["printf".into(), "tok en".into()])
            .read()
            .unwrap();
        assert_eq!(s.expose(), "tok en");
    }

    #[test]
    fn failing_command_names_the_program_not_the_output() {
        let e = SecretSource::Command(vec!["sh".into(), "-c".into(), "echo s3cret; exit 3".into()])
            .read()
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"sh\"") && e.contains("exit"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn missing_sources_say_what_is_missing() {
        let e = SecretSource::Env("POSTDESK_TEST_SURELY_UNSET".into())
            .read()
            .unwrap_err();
        assert!(e.to_string().contains("POSTDESK_TEST_SURELY_UNSET"));
        let e = SecretSource::File("/nonexistent/pw".into())
            .read()
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/pw"));
    }

    #[test]
    fn empty_secret_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "\n").unwrap();
        assert!(matches!(
            SecretSource::File(p).read(),
            Err(SecretError::Empty(_))
        ));
    }
}
