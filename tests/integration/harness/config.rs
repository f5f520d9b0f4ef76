//! The configuration files of an instance, rendered from the templates below.
//!
//! Placeholders are `{{NAME}}`; neither Dovecot nor Postfix uses `{{`.
//! Every setting that differs from the packaged defaults says why.

use std::fs::{self, File};
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::User;
use super::layout::{Layout, MAIL_GID, MAIL_UID, make_readable_by_dovecot};

/// Address the wrong-certificate listeners bind to. Dovecot 2.3 chooses a
/// certificate by local IP (`local` blocks), not by port, so the wrong one
/// is served on a second loopback address.
pub const WRONG_CERT_HOST: &str = "127.0.0.2";

/// The TCP ports of an instance.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub imap: u16,
    pub imaps: u16,
    /// Plain + STARTTLS on [`WRONG_CERT_HOST`], serving the wrong certificate.
    pub wrong_imap: u16,
    /// Implicit TLS on [`WRONG_CERT_HOST`], serving the wrong certificate.
    pub wrong_imaps: u16,
    pub smtp: u16,
    pub submission: u16,
    pub smtps: u16,
}

impl Ports {
    pub const COUNT: usize = 7;

    pub fn from_slice(p: &[u16]) -> Ports {
        let [
            imap,
            imaps,
            wrong_imap,
            wrong_imaps,
            smtp,
            submission,
            smtps,
        ] = p
        else {
            panic!("expected {} ports, got {}", Ports::COUNT, p.len());
        };
        Ports {
            imap: *imap,
            imaps: *imaps,
            wrong_imap: *wrong_imap,
            wrong_imaps: *wrong_imaps,
            smtp: *smtp,
            submission: *submission,
            smtps: *smtps,
        }
    }
}

/// What an instance serves; fixed at creation.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every mailbox user, spare users included.
    pub users: Vec<User>,
    /// Domains Postfix delivers locally; the first one names the host.
    pub domains: Vec<String>,
    /// Where mail for other domains goes; `None`: relaying is refused.
    pub catch_all: Option<String>,
    pub postfix: bool,
}

impl Settings {
    pub fn mail_host(&self) -> String {
        format!("mail.{}", self.first_domain())
    }
    fn first_domain(&self) -> &str {
        self.domains.first().map_or("example.test", String::as_str)
    }
}

/// Writes the Dovecot config and passwd-file, and the Postfix config if
/// Postfix is part of the instance. Called again with new ports after a
/// port collision.
pub fn write_all(layout: &Layout, settings: &Settings, ports: &Ports) -> io::Result<()> {
    let users: String = settings
        .users
        .iter()
        .map(|u| format!("{}:{{PLAIN}}{}::::::\n", u.address, u.password))
        .collect();
    fs::write(layout.users_file(), users)?;
    make_readable_by_dovecot(&layout.users_file())?;
    fs::write(layout.oauth_tokens_file(), "")?;
    make_readable_by_dovecot(&layout.oauth_tokens_file())?;
    fs::write(layout.dovecot_conf(), dovecot_conf(layout, settings, ports))?;
    if settings.postfix {
        write_postfix(layout, settings, ports)?;
    }
    Ok(())
}

fn dovecot_conf(layout: &Layout, settings: &Settings, ports: &Ports) -> String {
    let instance = layout
        .root
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let mut conf = render(
        DOVECOT_CONF,
        &[
            ("INSTANCE", instance),
            ("ROOT", path(&layout.root)),
            ("RUN", path(&layout.run)),
            ("LOG", path(&layout.dovecot_log())),
            ("TLS", path(&layout.tls)),
            ("USERS", path(&layout.users_file())),
            ("OAUTH_TOKENS", path(&layout.oauth_tokens_file())),
            ("MAIL", path(&layout.mail)),
            ("UID", MAIL_UID.to_string()),
            ("GID", MAIL_GID.to_string()),
            ("HOST", settings.mail_host()),
            ("DOMAIN", settings.first_domain().to_owned()),
            ("IMAP_PORT", ports.imap.to_string()),
            ("IMAPS_PORT", ports.imaps.to_string()),
            ("WRONG_HOST", WRONG_CERT_HOST.to_owned()),
            ("WRONG_IMAP_PORT", ports.wrong_imap.to_string()),
            ("WRONG_IMAPS_PORT", ports.wrong_imaps.to_string()),
        ],
    );
    if settings.postfix {
        conf.push_str(&render(DOVECOT_SASL_FOR_POSTFIX, &[]));
    }
    conf
}

fn write_postfix(layout: &Layout, settings: &Settings, ports: &Ports) -> io::Result<()> {
    let etc = &layout.postfix_etc;
    let vmailbox: String = settings
        .users
        .iter()
        .map(|u| format!("{} OK\n", u.address))
        .collect();
    fs::write(etc.join("vmailbox"), vmailbox)?;
    let catch_all = match &settings.catch_all {
        Some(target) => {
            let ours: Vec<String> = settings
                .domains
                .iter()
                .map(|d| d.replace('.', "\\."))
                .collect();
            format!("!/@({})$/ {target}\n", ours.join("|"))
        }
        None => String::new(),
    };
    fs::write(etc.join("virtual_alias.regexp"), catch_all)?;
    let relay = if settings.catch_all.is_some() {
        // loopback clients may send anywhere; the regexp above rewrites it
        "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination"
    } else {
        // synchronous "554 Relay access denied" instead of a bounce
        "permit_sasl_authenticated, reject_unauth_destination"
    };
    let main_cf = render(
        POSTFIX_MAIN_CF,
        &[
            ("SPOOL", path(&layout.postfix_spool)),
            ("DATA", path(&layout.postfix_data)),
            ("LOG", path(&layout.postfix_log())),
            ("LOGDIR", path(&layout.log)),
            ("ETC", path(etc)),
            ("RUN", path(&layout.run)),
            ("TLS", path(&layout.tls)),
            ("HOST", settings.mail_host()),
            ("DOMAIN", settings.first_domain().to_owned()),
            ("DOMAINS", settings.domains.join(", ")),
            ("RELAY", relay.to_owned()),
        ],
    );
    fs::write(etc.join("main.cf"), main_cf)?;
    let master_cf = render(
        POSTFIX_MASTER_CF,
        &[
            ("SMTP_PORT", ports.smtp.to_string()),
            ("SUBMISSION_PORT", ports.submission.to_string()),
            ("SMTPS_PORT", ports.smtps.to_string()),
        ],
    );
    fs::write(etc.join("master.cf"), master_cf)?;
    // Postfix does not trust a main.cf or table modified in the current
    // second and re-reads it every 300 ms until it is older: 1.5 s lost on
    // every start. Backdate them.
    let past = SystemTime::now() - Duration::from_secs(5);
    for name in ["main.cf", "master.cf", "vmailbox", "virtual_alias.regexp"] {
        File::options()
            .write(true)
            .open(etc.join(name))?
            .set_modified(past)?;
    }
    Ok(())
}

fn path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

fn render(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.to_owned();
    for (name, value) in values {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    assert!(!out.contains("{{"), "unrendered placeholder in:\n{out}");
    out
}

const DOVECOT_CONF: &str = r#"# generated by tests/integration/harness: an isolated Dovecot instance
instance_name = postdesk-{{INSTANCE}}
# the packaged defaults point at /run/dovecot, /var/lib/dovecot and syslog
base_dir = {{RUN}}
state_dir = {{ROOT}}/dovecot-state
log_path = {{LOG}}
log_timestamp = "%Y-%m-%d %H:%M:%S "
auth_verbose = yes
verbose_proctitle = yes

protocols = imap lmtp
listen = 127.0.0.1
hostname = {{HOST}}
shutdown_clients = yes

ssl = yes
ssl_cert = <{{TLS}}/server-chain.crt
ssl_key = <{{TLS}}/server.key
ssl_min_protocol = TLSv1.2
# the "certificate does not match" listeners: same CA, name wrong.invalid
local {{WRONG_HOST}} {
  ssl_cert = <{{TLS}}/wrong-chain.crt
  ssl_key = <{{TLS}}/wrong.key
}

# tests log in over the plain port too
disable_plaintext_auth = no
auth_mechanisms = plain login xoauth2
# the default 2 s per failed login would slow down auth-failure tests
auth_failure_delay = 0
# and anvil's per-IP penalty (up to 15 s) would slow down every later login
# from 127.0.0.1, in every test sharing this stack, after one wrong password
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}
auth_username_format = %Lu
passdb {
  driver = passwd-file
  mechanisms = plain login
  args = scheme=PLAIN username_format=%Lu {{USERS}}
}
# XOAUTH2 checks the bearer token like a password (Dovecot 2.3 passes it to
# the passdb); a file of its own keeps tokens apart from passwords, so a
# test can make a token expire while the harness still logs in to APPEND
passdb {
  driver = passwd-file
  mechanisms = xoauth2
  args = scheme=PLAIN username_format=%Lu {{OAUTH_TOKENS}}
}
userdb {
  driver = passwd-file
  args = username_format=%Lu {{USERS}}
  default_fields = uid={{UID}} gid={{GID}} home={{MAIL}}/%d/%n
}
# the mail uid is nobody (65534); uid 0 is refused, system uids too by default
first_valid_uid = 1
first_valid_gid = 1

mail_location = maildir:~/Maildir
# throwaway data: fsync makes APPEND 3x slower
mail_fsync = never
# parallel tests log in as the same user from 127.0.0.1 (default 10)
mail_max_userip_connections = 200
mailbox_idle_check_interval = 1 secs

namespace inbox {
  inbox = yes
  separator = .
  prefix =
  mailbox Drafts {
    special_use = \Drafts
    auto = subscribe
  }
  mailbox Sent {
    special_use = \Sent
    auto = subscribe
  }
  mailbox Archive {
    special_use = \Archive
    auto = subscribe
  }
  mailbox Trash {
    special_use = \Trash
    auto = subscribe
  }
  mailbox Junk {
    special_use = \Junk
    auto = subscribe
  }
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = {{IMAP_PORT}}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = {{IMAPS_PORT}}
    ssl = yes
  }
  inet_listener imap_wrong_cert {
    address = {{WRONG_HOST}}
    port = {{WRONG_IMAP_PORT}}
  }
  inet_listener imaps_wrong_cert {
    address = {{WRONG_HOST}}
    port = {{WRONG_IMAPS_PORT}}
    ssl = yes
  }
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
protocol lmtp {
  postmaster_address = postmaster@{{DOMAIN}}
}
recipient_delimiter = +
lmtp_hdr_delivery_address = original
"#;

const DOVECOT_SASL_FOR_POSTFIX: &str = r#"
# SASL backend for Postfix's smtpd (smtpd_sasl_type = dovecot)
service auth {
  unix_listener auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
"#;

const POSTFIX_MAIN_CF: &str = r#"# generated by tests/integration/harness: an isolated Postfix instance
# (without it main.cf runs at level 0 and warns on every start)
compatibility_level = 3.6
queue_directory = {{SPOOL}}
data_directory = {{DATA}}
mail_owner = postfix
setgid_group = postdrop

# no syslog here; the file must be below maillog_file_prefixes
maillog_file = {{LOG}}
maillog_file_prefixes = {{LOGDIR}}

myhostname = {{HOST}}
mydomain = {{DOMAIN}}
myorigin = $mydomain
mydestination =
local_recipient_maps =
local_transport = error:local delivery is disabled
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
# there is no DNS in a sandbox
smtpd_peername_lookup = no
smtp_dns_support_level = disabled
biff = no
append_dot_mydomain = no
smtpd_banner = $myhostname ESMTP postdesk-test
recipient_delimiter = +
message_size_limit = 67108864
mailbox_size_limit = 0
virtual_mailbox_limit = 0

virtual_mailbox_domains = {{DOMAINS}}
virtual_mailbox_maps = texthash:{{ETC}}/vmailbox
virtual_alias_maps = regexp:{{ETC}}/virtual_alias.regexp
# must be empty: the default ($virtual_alias_maps) would look the bare
# domain up in the negated regexp and turn our domain into an alias domain
virtual_alias_domains =
virtual_transport = lmtp:unix:{{RUN}}/lmtp
default_transport = error:the test stack does not deliver outside its domains
relay_transport = error:the test stack does not relay

# Dovecot 2.3's LMTP does not offer SMTPUTF8: with "yes" a client sending
# MAIL FROM:<..> SMTPUTF8 gets 250 and then an asynchronous bounce. With
# "no" it fails at MAIL FROM; raw UTF-8 headers without the flag pass.
smtputf8_enable = no

smtpd_tls_chain_files = {{TLS}}/server.key, {{TLS}}/server-chain.crt
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = {{RUN}}/auth-postfix
smtpd_sasl_auth_enable = yes
broken_sasl_auth_clients = no
smtpd_relay_restrictions = {{RELAY}}
smtpd_recipient_restrictions = reject_unlisted_recipient

# test timings: no throttling, retries within about a second of recovery
in_flow_delay = 0
smtpd_error_sleep_time = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 5s
transport_retry_time = 1s
lmtp_connect_timeout = 5s
delay_warning_time = 0
maximal_queue_lifetime = 1h
bounce_queue_lifetime = 1h
"#;

// The chroot column is "n" everywhere: a chroot needs copies of /etc files
// in the queue directory and relative socket paths.
const POSTFIX_MASTER_CF: &str = r#"# generated by tests/integration/harness
# service type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:{{SMTP_PORT}} inet n - n - - smtpd
127.0.0.1:{{SUBMISSION_PORT}} inet n - n - - smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
127.0.0.1:{{SMTPS_PORT}} inet n - n - - smtpd
  -o syslog_name=postfix/smtps
  -o smtpd_tls_wrappermode=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=permit_sasl_authenticated,reject
  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"#;
