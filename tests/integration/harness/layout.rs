//! Where an instance keeps its files: one directory holds config, TLS
//! material, Maildirs, the Postfix queue, logs, sockets and pid files.

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

/// Unix socket paths are limited to 107 bytes; Dovecot's longest socket
/// below the root is about 30 bytes, so the root must stay short.
const MAX_ROOT_LEN: usize = 70;

/// Owner of the Maildirs: `nobody`. Dovecot refuses uid 0 ("userdb returned
/// 0 as uid") and system uids below `first_valid_uid`.
pub const MAIL_UID: u32 = 65534;
pub const MAIL_GID: u32 = 65534;

/// /dev/shm if it has room (no disk I/O: Maildir file creation on ext4
/// costs ~0.6 ms each), else /tmp. Docker's /dev/shm is only 64 MB.
pub fn default_base_dir() -> PathBuf {
    const NEEDED: u64 = 512 << 20;
    let shm = Path::new("/dev/shm");
    if super::sys::free_bytes(shm).is_some_and(|free| free >= NEEDED) {
        shm.to_owned()
    } else {
        PathBuf::from("/tmp")
    }
}

/// The paths of one instance, all below `root`.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
    /// Dovecot config and passwd-file.
    pub etc: PathBuf,
    /// Dovecot `base_dir`: sockets (LMTP, SASL for Postfix) and master.pid.
    pub run: PathBuf,
    pub tls: PathBuf,
    pub mail: PathBuf,
    pub log: PathBuf,
    /// Postfix `config_directory` (main.cf, master.cf, lookup tables).
    pub postfix_etc: PathBuf,
    /// Postfix `queue_directory`.
    pub postfix_spool: PathBuf,
    /// Postfix `data_directory`.
    pub postfix_data: PathBuf,
}

impl Layout {
    pub fn new(root: PathBuf) -> Layout {
        let p = |s: &str| root.join(s);
        Layout {
            etc: p("etc"),
            run: p("run"),
            tls: p("tls"),
            mail: p("mail"),
            log: p("log"),
            postfix_etc: p("postfix/etc"),
            postfix_spool: p("postfix/spool"),
            postfix_data: p("postfix/data"),
            root,
        }
    }

    pub fn dovecot_conf(&self) -> PathBuf {
        self.etc.join("dovecot.conf")
    }
    pub fn users_file(&self) -> PathBuf {
        self.etc.join("users")
    }
    /// The XOAUTH2 access tokens Dovecot accepts, one per user, in
    /// passwd-file format (see `MailStack::set_oauth_token`).
    pub fn oauth_tokens_file(&self) -> PathBuf {
        self.etc.join("oauth-tokens")
    }
    pub fn dovecot_log(&self) -> PathBuf {
        self.log.join("dovecot.log")
    }
    /// stdout and stderr of the Dovecot master (start-up errors land here).
    pub fn dovecot_out(&self) -> PathBuf {
        self.log.join("dovecot.out")
    }
    pub fn postfix_log(&self) -> PathBuf {
        self.log.join("postfix.log")
    }
    pub fn postfix_out(&self) -> PathBuf {
        self.log.join("postfix.out")
    }
    pub fn lmtp_socket(&self) -> PathBuf {
        self.run.join("lmtp")
    }
    pub fn ca_file(&self) -> PathBuf {
        self.tls.join("ca.crt")
    }

    /// Creates a fresh, uniquely named root below `base` with the
    /// permissions the daemons' users need, and the directories below it.
    pub fn create_unique(base: &Path) -> io::Result<Layout> {
        check_traversable(base)?;
        let mut attempt = 0;
        let root = loop {
            let candidate = base.join(format!("pdms.{:08x}", super::ports::random_u64() as u32));
            match fs::create_dir(&candidate) {
                Ok(()) => break candidate,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt < 100 => attempt += 1,
                Err(e) => return Err(e),
            }
        };
        if root.as_os_str().len() > MAX_ROOT_LEN {
            let _ = fs::remove_dir(&root);
            return Err(io::Error::other(format!(
                "{} is longer than {MAX_ROOT_LEN} bytes: unix socket paths below it would exceed 107 bytes; use a shorter base directory",
                root.display()
            )));
        }
        super::process::watch_dir(&root);
        let layout = Layout::new(root);
        // postfix, dovecot's auth process and the mail uid all traverse it
        set_mode(&layout.root, 0o755)?;
        for dir in [&layout.etc, &layout.run, &layout.tls, &layout.log] {
            fs::create_dir(dir)?;
        }
        fs::create_dir(layout.root.join("dovecot-state"))?;
        fs::create_dir(&layout.mail)?;
        chown(&layout.mail, Some(MAIL_UID), Some(MAIL_GID))?;
        set_mode(&layout.mail, 0o750)?;
        Ok(layout)
    }

    /// The queue directories with the owners and modes of Postfix's
    /// `postfix-files`, so that `post-install` and the `postfix-script`
    /// checks (150 forks, about 1 s) are never needed.
    pub fn create_postfix_dirs(&self) -> io::Result<()> {
        let postfix = system_id("/etc/passwd", "postfix")?;
        let postdrop = system_id("/etc/group", "postdrop")?;
        fs::create_dir_all(&self.postfix_etc)?;
        fs::create_dir_all(self.postfix_spool.join("pid"))?;
        for q in [
            "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming",
            "private", "saved", "trace",
        ] {
            make_dir(&self.postfix_spool.join(q), postfix, 0, 0o700)?;
        }
        make_dir(
            &self.postfix_spool.join("maildrop"),
            postfix,
            postdrop,
            0o1730,
        )?;
        make_dir(
            &self.postfix_spool.join("public"),
            postfix,
            postdrop,
            0o2710,
        )?;
        // must belong to mail_owner, or master cannot create master.lock
        make_dir(&self.postfix_data, postfix, 0, 0o700)
    }
}

/// Dovecot's auth process runs as `dovecot` and reads the passwd-file.
pub fn make_readable_by_dovecot(path: &Path) -> io::Result<()> {
    let dovecot = system_id("/etc/group", "dovecot")?;
    chown(path, Some(0), Some(dovecot))?;
    set_mode(path, 0o640)
}

fn make_dir(path: &Path, uid: u32, gid: u32, mode: u32) -> io::Result<()> {
    fs::create_dir(path)?;
    chown(path, Some(uid), Some(gid))?;
    // after chown: chown clears the setgid bit
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// The numeric id of a system user (`/etc/passwd`) or group (`/etc/group`).
pub fn system_id(file: &str, name: &str) -> io::Result<u32> {
    let text = fs::read_to_string(file)?;
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let n = fields.next()?;
            let id = fields.nth(1)?;
            (n == name).then(|| id.parse().ok()).flatten()
        })
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no '{name}' in {file}")))
}

/// Every ancestor must be searchable by others, or the daemons' users
/// cannot reach the instance (pytest's `/tmp/pytest-of-root` is 0700).
fn check_traversable(base: &Path) -> io::Result<()> {
    for dir in base.ancestors() {
        let mode = fs::metadata(dir)?.permissions().mode();
        if mode & 0o001 == 0 {
            return Err(io::Error::other(format!(
                "{} (mode {mode:o}) is not searchable by other users, so postfix, dovecot and the mail uid could not reach the instance; use a base directory under /tmp or /dev/shm",
                dir.display()
            )));
        }
    }
    Ok(())
}
