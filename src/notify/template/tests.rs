use std::fs;
use std::path::Path;

use super::*;

fn due() -> LocalTime {
    // Tuesday 24 November 2026, 09:00 UTC, seen from UTC+01:00.
    let ts: jiff::Timestamp = "2026-11-24T09:00:00Z".parse().expect("timestamp");
    LocalTime::with_offset(ts, jiff::tz::offset(1))
}

fn ack(subject: &str) -> AckContext {
    AckContext {
        ticket: "PD-42".to_owned(),
        subject: subject.to_owned(),
        customer_name: Some("Anna Schmidt".to_owned()),
        team_name: "Acme Support".to_owned(),
        response: ResponseTarget {
            hours: 24,
            business_hours: false,
            due: due(),
        },
    }
}

fn alert(level: u32) -> AlertContext {
    AlertContext {
        ticket: "PD-42".to_owned(),
        subject: "Drucker offline".to_owned(),
        customer_name: Some("Anna Schmidt".to_owned()),
        customer_address: "anna@example.com".to_owned(),
        language: "de".to_owned(),
        clock: Clock::FirstResponse,
        level,
        age: "22 h 10 min".to_owned(),
        due_local: "2026-11-24 10:00".to_owned(),
        due_utc: "2026-11-24 09:00".to_owned(),
        queue: "support".to_owned(),
        timezone: "Europe/Berlin".to_owned(),
        excerpt: "Guten Tag,\n\nder Drucker druckt nicht.".to_owned(),
        mailbox_address: "support@example.com".to_owned(),
    }
}

fn reply() -> ReplyContext {
    ReplyContext {
        ticket: "PD-42".to_owned(),
        subject: "Printer offline".to_owned(),
        body: "Hello Anna,\n\nplease restart the printer.\n".to_owned(),
        team_name: "Acme Support".to_owned(),
        agent_name: Some("Sam".to_owned()),
    }
}

fn shipped() -> Templates {
    Templates::load(None).expect("shipped templates load")
}

fn render_sample(t: &Templates, kind: TemplateKind, lang: &str) -> Rendered {
    let rendered = match kind {
        TemplateKind::Ack => t.render(kind, lang, "en", &ack("Printer offline")),
        TemplateKind::Warning => t.render(kind, lang, "en", &alert(0)),
        TemplateKind::Escalation => t.render(kind, lang, "en", &alert(2)),
        TemplateKind::Reply => t.render(kind, lang, "en", &reply()),
    };
    rendered.unwrap_or_else(|e| panic!("{kind}/{lang}: {e}"))
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create dir");
    }
    fs::write(path, text).expect("write template");
}

#[test]
fn every_shipped_template_renders() {
    let t = shipped();
    for &lang in SHIPPED_LANGUAGES {
        for kind in TemplateKind::ALL {
            let r = render_sample(&t, kind, lang);
            let at = format!("{kind}/{lang}");
            assert_eq!(r.language, lang, "{at}");
            assert!(!r.subject.contains(['\r', '\n']), "{at}: {:?}", r.subject);
            assert!(r.subject.starts_with("[PD-42] "), "{at}: {:?}", r.subject);
            assert!(r.text.contains("PD-42"), "{at}");
            assert!(r.text.contains("[PD-42]"), "{at}: says how to keep the tag");
            assert!(r.text.ends_with('\n') && !r.text.ends_with("\n\n"), "{at}");
            assert!(!r.text.contains("{{") && !r.text.contains("{%"), "{at}");
            assert!(!r.text.contains("\n\n\n"), "{at}: double blank line");
            match kind {
                TemplateKind::Ack => {
                    let when = locale::date_time(lang, &locale::Moment::new(&due()).expect("due"));
                    assert!(r.text.contains(&when), "{at}: no due time {when:?}");
                    assert!(r.text.contains("Acme Support"), "{at}: signed");
                    assert!(r.text.contains("Printer offline"), "{at}: subject");
                }
                TemplateKind::Warning | TemplateKind::Escalation => {
                    for field in ["anna@example.com", "2026-11-24 10:00", "2026-11-24 09:00"] {
                        assert!(r.text.contains(field), "{at}: no {field}");
                    }
                    assert!(r.text.contains("Europe/Berlin"), "{at}");
                    assert!(r.text.contains("> der Drucker druckt nicht."), "{at}");
                    assert!(r.text.contains("postdesk reply PD-42 --file"), "{at}");
                    assert!(r.text.contains("support@example.com"), "{at}");
                }
                TemplateKind::Reply => {
                    assert!(r.text.starts_with("Hello Anna,\n\nplease restart"), "{at}");
                    assert!(r.text.contains("\n-- \n"), "{at}: signature delimiter");
                    assert!(r.subject.contains("Printer offline"), "{at}");
                }
            }
            if kind == TemplateKind::Escalation {
                assert!(r.subject.contains('2'), "{at}: level in subject");
            }
        }
    }
}

#[test]
fn optional_fields_missing_render_cleanly() {
    let t = shipped();
    for &lang in SHIPPED_LANGUAGES {
        let mut a = ack("");
        a.customer_name = None;
        a.response.business_hours = true;
        let r = t.render(TemplateKind::Ack, lang, "en", &a).expect("ack");
        assert!(!r.text.contains("none"), "ack/{lang}");
        assert!(!r.subject.ends_with(':'), "ack/{lang}: {:?}", r.subject);

        let mut w = alert(0);
        (w.customer_name, w.excerpt, w.subject) = (None, String::new(), String::new());
        w.clock = Clock::NextResponse;
        let r = t
            .render(TemplateKind::Warning, lang, "en", &w)
            .expect("warning");
        assert!(!r.text.contains("none"), "warning/{lang}");

        let mut p = reply();
        (p.agent_name, p.subject) = (None, String::new());
        let r = t
            .render(TemplateKind::Reply, lang, "en", &p)
            .expect("reply");
        assert!(
            r.subject.len() > "[PD-42] ".len(),
            "reply/{lang}: {:?}",
            r.subject
        );
    }
}

/// A line ending in an inline `{% … %}` loses its line break under
/// `trim_blocks`; shipped templates keep block tags on lines of their own.
#[test]
fn shipped_templates_do_not_end_text_lines_with_tags() {
    for &(kind, lang, text) in SHIPPED {
        for (i, line) in text.lines().enumerate().skip(1) {
            let line = line.trim();
            let standalone = line.starts_with("{%") && line.matches("%}").count() == 1;
            assert!(
                !line.ends_with("%}") || standalone,
                "{kind}/{lang}.txt:{}: {line}",
                i + 1
            );
        }
    }
}

#[test]
fn due_dates_use_the_language_words() {
    let t = shipped();
    let cases = [
        ("en", "by Tuesday 24 November 2026, 10:00 (UTC+01:00)"),
        (
            "de",
            "bis Dienstag, 24. November 2026, 10:00 Uhr (UTC+01:00)",
        ),
        ("ja", "2026年11月24日（火）10:00（UTC+01:00）まで"),
        ("ar", "الثلاثاء، 24 نوفمبر 2026، الساعة 10:00 (UTC+01:00)"),
        ("fr", "le mardi 24 novembre 2026 à 10 h (UTC+01:00)"),
        ("ru", "24 ноября 2026 г. (вторник), 10:00 (UTC+01:00)"),
        ("th", "วันอังคารที่ 24 พฤศจิกายน 2569 เวลา 10:00 น. (UTC+01:00)"),
    ];
    for (lang, expected) in cases {
        let r = t
            .render(TemplateKind::Ack, lang, "en", &ack("x"))
            .expect("ack");
        assert!(
            r.text.contains(expected),
            "{lang}: {expected:?} not in\n{}",
            r.text
        );
    }
}

#[test]
fn date_filters_format_pieces() {
    let m = locale::Moment::new(&due()).expect("due");
    assert_eq!(locale::long_date("en", &m), "Tuesday 24 November 2026");
    assert_eq!(locale::long_date("de", &m), "Dienstag, 24. November 2026");
    assert_eq!(locale::long_date("ja", &m), "2026年11月24日（火）");
    assert_eq!(locale::long_date("ar", &m), "الثلاثاء، 24 نوفمبر 2026");
    assert_eq!(
        locale::long_date("pt-br", &m),
        "terça-feira, 24 de novembro de 2026"
    );
    assert_eq!(locale::long_date("xx", &m), "2026-11-24");
    assert_eq!(locale::clock("fi", &m), "klo 10.00");
    assert_eq!(locale::date_time("xx", &m), "2026-11-24 10:00 (UTC+01:00)");

    let one_am = LocalTime {
        time: "01:05".to_owned(),
        utc_offset: "+00:00".to_owned(),
        ..due()
    };
    let m = locale::Moment::new(&one_am).expect("one am");
    assert_eq!(
        locale::date_time("es", &m),
        "martes, 24 de noviembre de 2026, a la 1:05 (UTC)"
    );
    assert_eq!(locale::clock("fr", &m), "1 h 05");

    let bad = LocalTime {
        time: "25:00".to_owned(),
        ..due()
    };
    assert!(locale::Moment::new(&bad).is_err());
}

#[test]
fn local_time_from_timestamp() {
    assert_eq!(
        due(),
        LocalTime {
            date: jiff::civil::date(2026, 11, 24),
            time: "10:00".to_owned(),
            weekday: 2,
            utc_offset: "+01:00".to_owned(),
        }
    );
    let ts: jiff::Timestamp = "2026-11-30T02:30:59Z".parse().expect("timestamp");
    let offset = jiff::tz::Offset::from_seconds(-(5 * 3600 + 30 * 60)).expect("offset");
    let lt = LocalTime::new(ts, &jiff::tz::TimeZone::fixed(offset));
    assert_eq!(lt.date, jiff::civil::date(2026, 11, 29));
    assert_eq!((lt.time.as_str(), lt.weekday), ("21:00", 7));
    assert_eq!(lt.utc_offset, "-05:30");
}

#[test]
fn plural_rules() {
    let ru: Vec<usize> = [1, 2, 5, 11, 21, 22, 24, 25]
        .iter()
        .map(|&n| locale::plural_index("ru", n))
        .collect();
    assert_eq!(ru, [0, 1, 2, 2, 0, 1, 1, 2]);
    let pl: Vec<usize> = [1, 2, 5, 21, 22]
        .iter()
        .map(|&n| locale::plural_index("pl", n))
        .collect();
    assert_eq!(pl, [0, 1, 2, 2, 1]);
    let ar: Vec<usize> = [0, 1, 2, 3, 10, 11, 24, 100]
        .iter()
        .map(|&n| locale::plural_index("ar", n))
        .collect();
    assert_eq!(ar, [0, 1, 2, 3, 3, 4, 4, 5]);
    assert_eq!(locale::plural_index("fr", 0), 0);
    assert_eq!(locale::plural_index("en", 0), 1);
    assert_eq!(locale::plural_index("ja", 24), 0);

    let t = shipped();
    let mut a = ack("x");
    a.response.hours = 1;
    let r = t.render(TemplateKind::Ack, "en", "en", &a).expect("en");
    assert!(r.text.contains("within 1 hour,"), "{}", r.text);
    a.response.hours = 22;
    let r = t.render(TemplateKind::Ack, "ru", "en", &a).expect("ru");
    assert!(r.text.contains("в течение 22 часов"), "{}", r.text);
}

#[test]
fn language_fallback_chain() {
    let t = shipped();
    let lang = |requested: &str, fallback: &str| {
        t.render(TemplateKind::Ack, requested, fallback, &ack("x"))
            .expect("render")
            .language
    };
    assert_eq!(lang("xx", "de"), "de");
    assert_eq!(lang("xx", "yy"), "en");
    assert_eq!(lang("", ""), "en");
    assert_eq!(lang("pt-BR", "de"), "pt");
    assert_eq!(lang("pt_PT.UTF-8", "de"), "pt");
    assert_eq!(lang("zh-Hant-TW", "de"), "zh");
    assert_eq!(lang("no", "de"), "nb");
    assert_eq!(lang("nn-NO", "de"), "nb");
    assert_eq!(lang("DE", "fr"), "de");
    assert_eq!(lang("xx", "fr-CA"), "fr");
}

#[test]
fn override_replaces_one_template_and_adds_languages() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(
        &dir.path().join("ack/de.txt"),
        "Subject: [{{ ticket }}] Eingang bestätigt\n\nHallo {{ customer_name }}, Ticket {{ ticket }}.\n",
    );
    write(
        &dir.path().join("ack/pt-BR.txt"),
        "Subject: [{{ ticket }}] Recebemos\n\nOlá! {{ ticket }} até {{ response.due | datetime }}\n",
    );
    write(&dir.path().join("README.md"), "notes");
    write(&dir.path().join("ack/de.txt~"), "editor backup");
    let t = Templates::load(Some(dir.path())).expect("load");

    let r = t
        .render(TemplateKind::Ack, "de", "en", &ack("x"))
        .expect("de");
    assert_eq!(r.subject, "[PD-42] Eingang bestätigt");
    assert_eq!(r.text, "Hallo Anna Schmidt, Ticket PD-42.\n");

    let r = t
        .render(TemplateKind::Ack, "pt-BR", "en", &ack("x"))
        .expect("pt-br");
    assert_eq!(r.language, "pt-br");
    assert!(
        r.text
            .contains("terça-feira, 24 de novembro de 2026, às 10h00"),
        "{}",
        r.text
    );
    let r = t
        .render(TemplateKind::Ack, "pt-PT", "en", &ack("x"))
        .expect("pt-pt");
    assert_eq!(r.language, "pt");

    // The other templates are still the shipped ones.
    let r = t
        .render(TemplateKind::Warning, "de", "en", &alert(0))
        .expect("warning");
    assert_eq!(r.language, "de");
    assert!(t.languages(TemplateKind::Ack).contains(&"pt-br"));
}

#[test]
fn broken_override_is_a_load_error_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("warning/fr.txt");
    write(
        &path,
        "Subject: [{{ ticket }}] Alerte\n\nTicket {{ ticket }}\n{% if level %}\nniveau {{ level }}\n",
    );
    let err = Templates::load(Some(dir.path())).expect_err("must fail");
    let text = err.to_string();
    assert!(text.contains(&format!("{}:", path.display())), "{text}");
    assert!(text.contains("syntax error"), "{text}");
    let TemplateError::Invalid(problems) = err else {
        panic!("not Invalid: {text}");
    };
    assert_eq!(problems.len(), 1);
    assert!(
        problems[0].line.is_some_and(|l| l >= 4),
        "{:?}",
        problems[0]
    );
}

#[test]
fn override_problems_are_all_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Unknown variable: found by the sample render, on its line.
    write(
        &dir.path().join("ack/en.txt"),
        "Subject: [{{ ticket }}] Hi\n\nHello\n{{ custmer_name }}\n",
    );
    // No blank line after the subject.
    write(&dir.path().join("reply/de.txt"), "Subject: x\nBody\n");
    // Not a subject line.
    write(&dir.path().join("reply/fr.txt"), "Objet: x\n\nCorps\n");
    // Unknown filter in the subject.
    write(
        &dir.path().join("escalation/it.txt"),
        "Subject: {{ ticket | shout }}\n\n{{ ticket }}\n",
    );
    // A typo in a kind directory, and a bad file name.
    write(&dir.path().join("acks/en.txt"), "Subject: x\n\ny\n");
    write(&dir.path().join("ack/German.txt"), "Subject: x\n\ny\n");
    let Err(TemplateError::Invalid(problems)) = Templates::load(Some(dir.path())) else {
        panic!("must fail");
    };
    let found: Vec<(String, Option<usize>)> = problems
        .iter()
        .map(|p| {
            let rel = Path::new(&p.file)
                .strip_prefix(dir.path())
                .map(|r| r.display().to_string())
                .unwrap_or_else(|_| p.file.clone());
            (rel, p.line)
        })
        .collect();
    let expected = [
        ("ack/German.txt", None),
        ("ack/en.txt", Some(4)),
        ("acks", None),
        ("escalation/it.txt", Some(1)),
        ("reply/de.txt", Some(2)),
        ("reply/fr.txt", Some(1)),
    ];
    let expected: Vec<(String, Option<usize>)> = expected
        .iter()
        .map(|(f, l)| ((*f).to_owned(), *l))
        .collect();
    assert_eq!(found, expected, "{problems:#?}");
}

#[test]
fn missing_override_directory_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = Templates::load(Some(&dir.path().join("nope"))).expect_err("must fail");
    assert!(matches!(err, TemplateError::Io { .. }), "{err}");
}

#[test]
fn customer_subject_cannot_inject_headers() {
    let t = shipped();
    let evil = "Hello\r\nBcc: x@evil.example\r\n\r\nbody\u{0}\u{1b}[31m\u{202e}gnp.exe";
    for &lang in SHIPPED_LANGUAGES {
        let r = t
            .render(TemplateKind::Ack, lang, "en", &ack(evil))
            .expect("ack");
        assert!(
            !r.subject
                .chars()
                .any(|c| c.is_control() || is_bidi_control(c)),
            "{lang}: {:?}",
            r.subject
        );
        assert!(
            r.subject.contains("Hello Bcc: x@evil.example body"),
            "{lang}: {:?}",
            r.subject
        );
        assert!(!r.text.contains('\r') && !r.text.contains('\u{0}') && !r.text.contains('\u{1b}'));
    }
    let mut a = ack(evil);
    a.customer_name = Some("Eve\nSubject: spoof".to_owned());
    let r = t.render(TemplateKind::Ack, "en", "en", &a).expect("ack");
    assert!(!r.subject.contains('\n'));
}

#[test]
fn long_subject_is_cut_and_keeps_the_tag() {
    let t = shipped();
    let r = t
        .render(TemplateKind::Ack, "en", "en", &ack(&"word ".repeat(100)))
        .expect("ack");
    assert!(
        r.subject.chars().count() <= MAX_SUBJECT_CHARS,
        "{}",
        r.subject
    );
    assert!(r.subject.starts_with("[PD-42] ") && r.subject.ends_with('…'));

    // A tag at the end of a long subject survives the cut.
    let long = format!("{} [PD-42]", "x".repeat(300));
    let cut = fit_subject(&long, Some("PD-42"));
    assert_eq!(cut.chars().count(), MAX_SUBJECT_CHARS);
    assert!(cut.ends_with("… [PD-42]"), "{cut}");
    assert_eq!(fit_subject("  a \t b\u{2028}c  ", None), "a b c");
}

#[test]
fn split_file_accepts_crlf_and_bom() {
    let (subject, body) =
        split_file("\u{feff}subject: [{{ ticket }}]\r\n\r\nBody\r\n").expect("split");
    assert_eq!(subject, "[{{ ticket }}]");
    assert_eq!(body, "Body\n");
    assert_eq!(split_file("Subject: x").map_err(|e| e.0), Err(3));
}

#[test]
fn quote_and_language_name_filters() {
    assert_eq!(filter_quote("a\r\n\r\nb  \n\n"), "> a\n>\n> b");
    assert_eq!(filter_language_name("ja"), "日本語");
    assert_eq!(filter_language_name("xx"), "xx");
}
