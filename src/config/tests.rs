use super::*;

fn load(text: &str) -> Result<Config, ConfigErrors> {
    Config::from_str(text, Path::new("/etc/postdesk/postdesk.toml"))
}

const MINIMAL: &str = r#"
[[mailboxes]]
name = "support"
address = "Support@Example.com"
"#;

#[test]
fn minimal_config_gets_defaults() {
    let c = load(MINIMAL).unwrap();
    assert_eq!(c.tickets.prefix, "PD");
    assert_eq!(c.mailboxes[0].address, "support@example.com");
    assert_eq!(c.mailboxes[0].default_queue, "general");
    assert_eq!(c.queues[0].name, "general");
    assert_eq!(c.security.message_id_domain, "example.com");
    assert_eq!(c.acknowledge.max_age, Duration::from_secs(3 * 24 * 3600));
    assert!(matches!(c.outbox.transport, TransportConfig::File { .. }));
    assert_eq!(c.ticket_ref(42), "PD-42");
    assert_eq!(c.parse_ticket_ref("pd-42"), Some(42));
    assert_eq!(c.parse_ticket_ref("42"), Some(42));
    assert_eq!(c.parse_ticket_ref("XX-42"), None);
    assert!(c.is_own_address("SUPPORT@example.com"));
    assert!(
        c.is_own_address("support+PD-42@example.com"),
        "subaddresses are ours too"
    );
    assert!(!c.is_own_address("+support@example.com"));
    assert!(!c.is_own_address("supporter@example.com"));
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let c = Config::from_str(
        &format!("{MINIMAL}\n[store]\npath = \"state/pd.db\"\n[outbox]\ndir = \"out\"\n"),
        Path::new("/srv/pd/postdesk.toml"),
    )
    .unwrap();
    assert_eq!(c.store.path, PathBuf::from("/srv/pd/state/pd.db"));
    assert_eq!(
        c.outbox.transport,
        TransportConfig::File {
            dir: PathBuf::from("/srv/pd/out")
        }
    );
}

#[test]
fn every_error_is_reported_with_its_line() {
    let text = r#"
[tickets]
prefix = "P D"

[[queues]]
name = "dach"
timezone = "CEST"
first_response = "soon"

[[mailboxes]]
name = "support"
address = "not-an-address"
default_queue = "nowhere"
"#;
    let e = load(text).unwrap_err();
    let all = e.to_string();
    assert_eq!(e.errors.len(), 5, "{all}");
    assert!(all.contains("postdesk.toml:3:10: tickets.prefix"), "{all}");
    assert!(
        all.contains(":7:12: queues[0].timezone: unknown time zone \"CEST\"; use an IANA name"),
        "{all}"
    );
    assert!(
        all.contains("queues[0].first_response: \"soon\" is not a duration"),
        "{all}"
    );
    assert!(
        all.contains("mailboxes[0].address: \"not-an-address\" is not an e-mail address"),
        "{all}"
    );
    assert!(
        all.contains("mailboxes[0].default_queue: there is no queue \"nowhere\""),
        "{all}"
    );
}

#[test]
fn unknown_keys_are_rejected_with_their_location() {
    let e = load(&format!("{MINIMAL}colour = \"blue\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("postdesk.toml:5:1") && e.contains("unknown field `colour`"),
        "{e}"
    );
}

#[test]
fn inline_secrets_are_refused() {
    let text = format!(
        "{MINIMAL}[mailboxes.imap]\nhost = \"imap.example.com\"\nusername = \"support\"\npassword = \"hunter2\"\n"
    );
    let e = load(&text).unwrap_err().to_string();
    assert!(
        e.contains("secrets are not written in the config file"),
        "{e}"
    );
    assert!(
        !e.contains("hunter2"),
        "the error must not echo the secret: {e}"
    );
}

#[test]
fn plaintext_imap_is_refused_unless_loopback_or_allowed() {
    let imap = |host: &str, extra: &str| {
        format!(
            "{MINIMAL}[mailboxes.imap]\nhost = \"{host}\"\ntls = \"none\"\nusername = \"u\"\npassword = {{ file = \"pw\" }}\n{extra}"
        )
    };
    assert!(
        load(&imap("imap.example.com", ""))
            .unwrap_err()
            .to_string()
            .contains("clear text")
    );
    assert!(load(&imap("127.0.0.1", "")).is_ok());
    assert!(load(&imap("imap.example.com", "allow_plaintext = true\n")).is_ok());
    let c = load(&imap("127.0.0.1", "")).unwrap();
    let Some(SourceConfig::Imap(i)) = &c.mailboxes[0].source else {
        panic!("no imap source")
    };
    assert_eq!(i.port, 143);
    assert_eq!(
        i.auth,
        ImapAuth::Password(SecretSource::File(PathBuf::from("/etc/postdesk/pw")))
    );
    assert_eq!(i.backlog, Backlog::Unseen);
}

#[test]
fn folders_that_would_feed_mail_back_are_refused() {
    let imap = |extra: &str| {
        format!(
            "{MINIMAL}[mailboxes.imap]\nhost = \"127.0.0.1\"\nusername = \"u\"\npassword = {{ file = \"pw\" }}\n{extra}"
        )
    };
    let err = |extra: &str| load(&imap(extra)).unwrap_err().to_string();
    let e = err("after_ingest = \"move\"\nmove_to = \"inbox\"\n");
    assert!(e.contains("move_to") && e.contains("watched"), "{e}");
    let e = err("sent_folder = \"INBOX\"\n");
    assert!(e.contains("sent_folder"), "{e}");
    let e = err("sent_folder = \"Sent\"\nafter_ingest = \"move\"\nmove_to = \"Sent\"\n");
    assert!(e.contains("agents' replies"), "{e}");
    // Names other than INBOX are case-sensitive on the server.
    assert!(
        load(&imap(
            "folder = \"Support\"\nafter_ingest = \"move\"\nmove_to = \"support\"\n"
        ))
        .is_ok()
    );
    assert!(
        load(&imap(
            "sent_folder = \"Sent\"\nafter_ingest = \"move\"\nmove_to = \"Archive\"\n"
        ))
        .is_ok()
    );
}

#[test]
fn queues_routes_and_agents() {
    let text = r#"
[[queues]]
name = "dach"
languages = ["de-DE"]
timezone = "Europe/Berlin"
hours = { mon = "09:00-17:00", fri = "09:00-15:00" }
holidays = ["2026-12-25"]
warn = "4h"
agents = ["alice@example.com", "@agents.example.com"]
[[queues.escalation]]
contacts = ["lead@example.com"]
[[queues.escalation]]
after = "4h"
contacts = ["head@example.com"]

[[queues]]
name = "world"
warn = "75%"

[[routes]]
languages = ["de"]
queue = "dach"

[[mailboxes]]
name = "support"
address = "support@example.com"
default_queue = "world"
"#;
    let c = load(text).unwrap();
    let q = c.queue("dach").unwrap();
    assert_eq!(q.languages, vec!["de"]);
    assert_eq!(q.warn, WarnPoint::Before(Duration::from_secs(4 * 3600)));
    assert_eq!(q.escalation.len(), 2);
    assert!(q.is_agent("alice@example.com"));
    assert!(q.is_agent("bob@agents.example.com"));
    assert!(!q.is_agent("bob@example.com"));
    assert!(!q.calendar.week().is_always_open());
    assert_eq!(q.calendar.holidays().len(), 1);
    assert_eq!(c.queue("world").unwrap().warn, WarnPoint::Percent(75));
    assert_eq!(c.routes[0].queue, "dach");
}

#[test]
fn sizes_and_durations() {
    assert_eq!(parse_size("25 MiB"), Ok(25 << 20));
    assert_eq!(parse_size("30MB"), Ok(30_000_000));
    assert_eq!(parse_size("1024"), Ok(1024));
    assert!(parse_size("lots").is_err());
    assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
    assert_eq!(parse_duration("3d"), Ok(Duration::from_secs(3 * 86400)));
}

#[test]
fn language_tags() {
    assert_eq!(normalize_language("de-DE").as_deref(), Some("de"));
    assert_eq!(normalize_language("EN").as_deref(), Some("en"));
    assert_eq!(normalize_language("no").as_deref(), Some("nb"));
    assert_eq!(normalize_language("zh_Hant_TW").as_deref(), Some("zh"));
    assert_eq!(normalize_language("deutsch"), None);
    assert_eq!(normalize_language("1"), None);
}

#[test]
fn no_mailbox_is_an_error_that_says_what_to_add() {
    let e = load("").unwrap_err().to_string();
    assert!(e.contains("add a [[mailboxes]] table"), "{e}");
}

#[test]
fn the_example_config_is_valid() {
    let text = include_str!("../../config.example.toml");
    let c = Config::from_str(text, Path::new("/etc/postdesk/postdesk.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.mailboxes.len(), 1);
    assert!(matches!(c.mailboxes[0].source, Some(SourceConfig::Imap(_))));
    assert_eq!(c.queues[0].escalation.len(), 2);
}

#[test]
fn the_demo_config_is_valid() {
    let text = include_str!("../../examples/postdesk.toml");
    Config::from_str(text, Path::new("examples/postdesk.toml")).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn business_hours_and_ical_holidays_build_the_calendar() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sla");
    let text = format!(
        "{MINIMAL}[[queues]]\nname = \"dach\"\ntimezone = \"Europe/Berlin\"\nhours = {{ mon = \"09:00-17:00\" }}\nholidays_ical = \"de-holidays-2026-2027.ics\"\n"
    );
    let c =
        Config::from_str(&text, &fixtures.join("postdesk.toml")).unwrap_or_else(|e| panic!("{e}"));
    let q = c.queue("dach").unwrap();
    let christmas = jiff::civil::date(2026, 12, 25);
    assert!(
        q.calendar.holidays().contains(&christmas),
        "{:?}",
        q.calendar.holidays()
    );

    let bad = format!(
        "{MINIMAL}[[queues]]\nname = \"q\"\nhours = {{ mon = \"17:00-09:00\" }}\nholidays_ical = \"missing.ics\"\n"
    );
    let e = load(&bad).unwrap_err().to_string();
    assert!(e.contains("queues[0].hours"), "{e}");
    assert!(e.contains("queues[0].holidays_ical: cannot read"), "{e}");
}
