//! Unit tests for `detect` and `resolve`.

use super::*;
use crate::extract::extract;

fn text(s: &str) -> CustomerText {
    CustomerText {
        text: s.to_owned(),
        quote_removed: false,
        signature_removed: false,
    }
}

/// The languages a typical deployment configures.
const SUPPORT: [&str; 30] = [
    "en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "nb", "fi", "pl", "cs", "ru", "uk", "tr",
    "ar", "he", "hi", "ja", "zh", "ko", "th", "vi", "id", "el", "hu", "ro", "bg", "hr",
];

fn support_lang_of(s: &str) -> (String, bool) {
    let d = Detector::with_languages(SUPPORT)
        .unwrap_or_else(|e| panic!("{e:?}"))
        .detect(&text(s), "")
        .unwrap_or_else(|| panic!("no detection for {s:?}"));
    (d.language, d.reliable)
}

fn lang_of(s: &str) -> (String, bool) {
    let d = detect(&text(s), "").unwrap_or_else(|| panic!("no detection for {s:?}"));
    (d.language, d.reliable)
}

#[test]
fn sentences_in_support_languages() {
    let cases = [
        (
            "en",
            "Hello, my order has not arrived yet and the tracking page shows no update.",
        ),
        (
            "de",
            "Guten Tag, mein Drucker funktioniert seit gestern nicht mehr.",
        ),
        (
            "fr",
            "Bonjour, je n'arrive plus à me connecter à mon compte depuis hier soir.",
        ),
        (
            "es",
            "Hola, todavía no he recibido el reembolso de mi pedido y ya pasaron dos semanas.",
        ),
        (
            "it",
            "Buongiorno, non riesco più ad accedere al mio account dal telefono.",
        ),
        (
            "pt",
            "Olá, não consigo acessar minha conta desde ontem à noite.",
        ),
        (
            "nl",
            "Hallo, ik kan sinds gisteren niet meer inloggen op mijn account en ik krijg ook geen wachtwoordmail.",
        ),
        (
            "sv",
            "Hej, jag kan inte logga in på mitt konto sedan i går kväll.",
        ),
        (
            "pl",
            "Dzień dobry, od wczoraj nie mogę zalogować się do swojego konta.",
        ),
        (
            "cs",
            "Dobrý den, od včerejška se nemohu přihlásit ke svému účtu.",
        ),
        (
            "ru",
            "Здравствуйте, я не могу войти в свой аккаунт со вчерашнего вечера.",
        ),
        (
            "uk",
            "Добрий день, я не можу увійти до свого облікового запису з учорашнього дня.",
        ),
        (
            "tr",
            "Merhaba, dün akşamdan beri hesabıma giriş yapamıyorum.",
        ),
        (
            "el",
            "Καλησπέρα, δεν μπορώ να συνδεθώ στον λογαριασμό μου από χθες.",
        ),
        ("ar", "مرحبا، لا أستطيع تسجيل الدخول إلى حسابي منذ أمس."),
        ("he", "שלום, אני לא מצליח להתחבר לחשבון שלי מאתמול."),
        ("ja", "こんにちは、昨日からアカウントにログインできません。"),
        ("zh", "你好，我从昨天开始就无法登录我的账户了。"),
        ("ko", "안녕하세요, 어제부터 계정에 로그인할 수 없습니다."),
        ("th", "สวัสดีครับ ผมไม่สามารถเข้าสู่ระบบบัญชีได้ตั้งแต่เมื่อวาน"),
        ("hi", "नमस्ते, मैं कल से अपने खाते में लॉग इन नहीं कर पा रहा हूँ।"),
    ];
    let mut reliable = 0;
    for (want, s) in cases {
        let d = Detector::with_languages(SUPPORT)
            .unwrap_or_else(|e| panic!("{e:?}"))
            .detect(&text(s), "");
        let d = d.unwrap_or_else(|| panic!("no detection for {s:?}"));
        assert_eq!(d.language, want, "{s:?}");
        reliable += usize::from(d.reliable);
    }
    // One short sentence in a Latin or Cyrillic script may stay below the
    // bar (whatlang's confidence between neighbours is low); most pass.
    assert!(
        reliable * 10 >= cases.len() * 8,
        "{reliable}/{}",
        cases.len()
    );
}

#[test]
fn one_word_is_not_reliable() {
    for s in ["Danke", "OK thanks", "Merci!", "Gracias"] {
        if let Some(d) = detect(&text(s), "") {
            assert!(!d.reliable, "{s:?} -> {d:?}");
        }
    }
}

#[test]
fn short_texts_in_own_scripts_are_reliable() {
    for (want, s) in [
        ("ja", "ありがとう"),
        ("ko", "감사합니다"),
        ("el", "Ευχαριστώ"),
        ("th", "ขอบคุณ"),
        ("he", "תודה רבה"),
        ("ka", "მადლობა"),
        ("hy", "Շնորհակալություն"),
    ] {
        let (got, reliable) = lang_of(s);
        assert_eq!(got, want, "{s:?}");
        assert!(reliable, "{s:?}");
    }
}

#[test]
fn han_only_text_is_chinese_and_kana_makes_it_japanese() {
    assert_eq!(lang_of("我的订单还没有到。").0, "zh");
    assert_eq!(lang_of("注文した商品がまだ届いていません。").0, "ja");
    // Two Han characters: Chinese or Japanese, nobody can tell.
    let d = detect(&text("東京"), "").unwrap_or_else(|| panic!("no detection"));
    assert!(!d.reliable);
}

#[test]
fn urls_addresses_numbers_and_code_are_ignored() {
    let s = "Bonjour, le lien https://example.com/account/reset?id=12345 ne fonctionne pas.\n\
             Mon adresse est jean.dupont@example.com et ma commande 2024-118.\n\
             Error: NullPointerException at com.example.App.main(App.java:42)\n\
             {\"status\": 500, \"error\": \"internal\"}\n\
             Pouvez-vous m'aider s'il vous plaît ?";
    let (got, reliable) = lang_of(s);
    assert_eq!(got, "fr");
    assert!(reliable);
    let cleaned = clean_text(s);
    assert!(!cleaned.contains("https"));
    assert!(!cleaned.contains('@'));
    assert!(!cleaned.contains("NullPointerException"));
    assert!(!cleaned.chars().any(|c| c.is_ascii_digit()));
}

#[test]
fn dropped_tokens_leave_no_stray_spaces() {
    // Tokens that are not language are taken back out of the output, with
    // the space before them; a line of only such tokens adds nothing.
    assert_eq!(
        clean_text(
            "v2.3 Hello 123 world foo@bar.com https://x.y\nhttp://a.b 42\n  Grüße,  2016年12月12日 ok"
        ),
        "Hello world\nGrüße, 年月日 ok"
    );
    assert_eq!(clean_text("12 34\n\nx_y"), "");
    assert_eq!(clean_text("a:b Uhr: 10:30"), "a:b Uhr:");
}

#[test]
fn subject_prefixes_and_ticket_tags_are_stripped() {
    assert_eq!(
        clean_subject("Re: AW: [PD-42] Rechnung falsch"),
        "Rechnung falsch"
    );
    assert_eq!(
        clean_subject("RV: Fwd: Pedido no recibido"),
        "Pedido no recibido"
    );
    assert_eq!(clean_subject("回复: 订单问题"), "订单问题");
    assert_eq!(clean_subject("SV: Antw: Re[2]: Hej"), "Hej");
    assert!(is_reply_subject("Re: [PD-42] We received your request"));
    assert!(is_reply_subject("AW: Frage"));
    assert!(!is_reply_subject("[PD-42] Printer broken"));
    assert!(!is_reply_subject("Request: new account"));
}

#[test]
fn subject_helps_a_new_message_but_not_a_reply() {
    // A new message: the subject is the customer's words.
    let d = detect(&text("Danke"), "Mein Drucker druckt nicht mehr richtig")
        .unwrap_or_else(|| panic!("no detection"));
    assert_eq!(d.language, "de");
    // A reply: the subject is ours; the Spanish body decides.
    let d = detect(
        &text("Hola, todavía no he recibido el reembolso de mi pedido."),
        "Re: [PD-42] We have received your request and will reply soon",
    )
    .unwrap_or_else(|| panic!("no detection"));
    assert_eq!(d.language, "es");
}

#[test]
fn spanish_reply_quoting_english_ack_is_spanish() {
    let body = include_str!("../../tests/fixtures/extract/es_reply_to_en_ack.txt");
    let mut mail = crate::extract::tests_support::mail(body, None);
    mail.subject = "Re: [PD-42] We received your request".to_owned();
    let customer = extract(&mail);
    assert!(customer.quote_removed);
    assert!(customer.signature_removed);
    assert!(!customer.text.contains("Thank you"));
    let d = detect(&customer, &mail.subject).unwrap_or_else(|| panic!("no detection"));
    assert_eq!(d.language, "es");
    assert!(d.reliable);
    // Without extraction the English quote would dominate.
    let raw = detect(&text(body), &mail.subject).unwrap_or_else(|| panic!("no detection"));
    assert_eq!(raw.language, "en");
}

#[test]
fn restricted_detector_fixes_close_languages() {
    let no =
        "Jeg har ikke fått pakken min ennå, og sporingen viser ingenting. Kan dere hjelpe meg?";
    let d = Detector::with_languages(["en", "de", "nb"])
        .unwrap_or_else(|e| panic!("{e:?}"))
        .detect(&text(no), "")
        .unwrap_or_else(|| panic!("no detection"));
    assert_eq!(d.language, "nb");
    let da = "Jeg har ikke fået min pakke endnu, og sporingen viser ingenting. Kan I hjælpe mig?";
    assert_eq!(lang_of(da).0, "da");
    assert_eq!(lang_of(no).0, "nb");
}

#[test]
fn language_outside_the_list_is_never_reliable() {
    let det = Detector::with_languages(["en", "de"]).unwrap_or_else(|e| panic!("{e:?}"));
    let d = det
        .detect(
            &text("안녕하세요, 어제부터 계정에 로그인할 수 없습니다."),
            "",
        )
        .unwrap_or_else(|| panic!("no detection"));
    assert_eq!(d.language, "ko");
    assert!(!d.reliable);
    assert_eq!(det.languages(), vec!["en", "de"]);
}

#[test]
fn unknown_configured_languages_are_all_reported() {
    let err = Detector::with_languages(["en", "xx", "klingon", "de-DE"])
        .err()
        .unwrap_or_default();
    let codes: Vec<&str> = err.iter().map(|e| e.code.as_str()).collect();
    assert_eq!(codes, ["xx", "klingon"]);
    assert!(Detector::with_languages(["pt-BR", "no", "zh-Hant", "deu"]).is_ok());
}

#[test]
fn rtl_text_is_detected() {
    assert_eq!(
        lang_of("שלום, ההזמנה שלי עדיין לא הגיעה ואני מחכה כבר שבועיים.").0,
        "he"
    );
    // Unrestricted, whatlang may call a short Arabic sentence Persian; a
    // desk that serves Arabic and not Persian gets Arabic.
    assert_eq!(
        support_lang_of("مرحبا، طلبي لم يصل بعد وأنا أنتظر منذ أسبوعين.").0,
        "ar"
    );
}

#[test]
fn empty_or_letterless_text_has_no_detection() {
    assert!(detect(&text(""), "").is_none());
    assert!(detect(&text("12345 https://example.com a@b.c"), "").is_none());
}

#[test]
fn bcp47_mapping() {
    assert_eq!(bcp47(Lang::Nob), "nb");
    assert_eq!(bcp47(Lang::Cmn), "zh");
    assert_eq!(bcp47(Lang::Pes), "fa");
    assert_eq!(bcp47(Lang::Eng), "en");
    for l in Lang::all() {
        let code = bcp47(*l);
        assert!(code.len() == 2 || code.len() == 3, "{l:?}");
        assert_eq!(lang_from_code(code), Some(*l), "{code}");
    }
}

#[test]
fn tag_normalisation() {
    let cases = [
        ("de-DE", Some("de")),
        ("zh-Hant-TW", Some("zh")),
        ("EN", Some("en")),
        ("en_US", Some("en")),
        ("pt-BR, en;q=0.8", Some("pt")),
        ("no", Some("nb")),
        ("nb-NO", Some("nb")),
        ("iw", Some("he")),
        ("deu", Some("de")),
        ("fil", Some("fil")),
        ("*", None),
        ("", None),
        ("garbage-value", None),
        ("x-klingon", None),
        ("und", None),
        ("12", None),
    ];
    for (tag, want) in cases {
        assert_eq!(normalize_tag(tag).as_deref(), want, "{tag:?}");
    }
}

fn detection(lang: &str, reliable: bool) -> Detection {
    Detection {
        language: lang.to_owned(),
        confidence: 0.95,
        reliable,
    }
}

#[test]
fn resolve_fallback_order() {
    let d = resolve(Some(&detection("es", true)), Some("de"), Some("fr"), "en");
    assert_eq!(
        (d.code.as_str(), d.source),
        ("es", LanguageSource::Detected)
    );
    assert!((d.confidence - 0.95).abs() < f64::EPSILON);

    let d = resolve(Some(&detection("es", false)), Some("de"), Some("fr"), "en");
    assert_eq!(
        (d.code.as_str(), d.source),
        ("de", LanguageSource::PreviousTicket)
    );
    assert_eq!(d.confidence, 0.0);

    let d = resolve(None, None, Some("fr-CA"), "en");
    assert_eq!(
        (d.code.as_str(), d.source),
        ("fr", LanguageSource::ContentLanguage)
    );

    let d = resolve(None, None, Some("garbage-value"), "en-GB");
    assert_eq!(
        (d.code.as_str(), d.source),
        ("en", LanguageSource::MailboxDefault)
    );

    let d = resolve(None, Some("*"), None, "de");
    assert_eq!(
        (d.code.as_str(), d.source),
        ("de", LanguageSource::MailboxDefault)
    );
}
