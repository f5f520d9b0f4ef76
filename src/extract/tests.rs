//! Unit tests for `extract`, on messages written for these tests
//! (`tests/fixtures/extract/`).

use super::*;

/// A `ParsedMail` with only a body: `parse` is another stage, and these
/// tests must not depend on it.
pub(crate) fn mail(text: &str, html: Option<&str>) -> ParsedMail {
    ParsedMail {
        message_id: "test@example.com".to_owned(),
        message_id_synthetic: false,
        in_reply_to: Vec::new(),
        references: Vec::new(),
        from: None,
        sender: None,
        reply_to: Vec::new(),
        to: Vec::new(),
        cc: Vec::new(),
        return_path: None,
        subject: String::new(),
        date: None,
        content_language: None,
        headers: Vec::new(),
        text: text.to_owned(),
        html: html.map(str::to_owned),
        text_from_html: text.is_empty() && html.is_some(),
        attachments: Vec::new(),
        report: None,
        content_hash: String::new(),
        size_bytes: text.len(),
    }
}

fn text_of(body: &str) -> CustomerText {
    extract(&mail(body, None))
}

const REPLY: &str = "Thanks, the new password works now.";

/// A reply above `header` and a `>` quote.
fn reply_above(header: &str) -> String {
    format!("{REPLY}\n\n{header}\n\n> Please try to reset your password.\n> Support\n")
}

#[test]
fn plain_reply_is_kept() {
    let out = text_of("Hello,\n\nmy printer is broken.\n");
    assert_eq!(out.text, "Hello,\n\nmy printer is broken.");
    assert!(!out.quote_removed);
    assert!(!out.signature_removed);
}

#[test]
fn attribution_lines_in_many_languages() {
    let headers = [
        "On Mon, Jun 3, 2024 at 10:15 AM Support <support@example.com> wrote:",
        "Am 03.06.2024 um 10:15 schrieb Support <support@example.com>:",
        "Support <support@example.com> schrieb am Mo., 3. Juni 2024, 10:15:",
        "Le lun. 3 juin 2024 à 10:15, Support <support@example.com> a écrit :",
        "El lun, 3 jun 2024 a las 10:15, Support (<support@example.com>) escribió:",
        "Il giorno lun 3 giu 2024 alle ore 10:15 Support <support@example.com> ha scritto:",
        "Em seg., 3 de jun. de 2024 às 10:15, Support <support@example.com> escreveu:",
        "Op ma 3 jun. 2024 om 10:15 schreef Support <support@example.com>:",
        "Den mån 3 juni 2024 kl 10:15 skrev Support <support@example.com>:",
        "Den 3. jun. 2024 kl. 10.15 skrev Support <support@example.com>:",
        "W dniu 3.06.2024 o 10:15, Support pisze:",
        "pon., 3 cze 2024 o 10:15 Support <support@example.com> napisał(a):",
        "пн, 3 июн. 2024 г. в 10:15, Support <support@example.com>:",
        "3 июня 2024 г., 10:15 пользователь Support <support@example.com> написал:",
        "Support <support@example.com> пишет:",
        "пн, 3 черв. 2024 р. о 10:15 Support <support@example.com> пише:",
        "ma 3. kesäk. 2024 klo 10.15 Support <support@example.com> kirjoitti:",
        "po 3. 6. 2024 v 10:15 odesílatel Support <support@example.com> napsal:",
        "3 Haz 2024 Pzt, saat 10:15 tarihinde Support <support@example.com> şunu yazdı:",
        "2024年6月3日(月) 10:15 Support <support@example.com>:",
        "2024年6月3日 10:15 Support さんは書きました:",
        "Support <support@example.com> 于2024年6月3日周一 10:15写道：",
        "在 2024年6月3日，上午10:15，Support <support@example.com> 寫道：",
    ];
    for header in headers {
        let out = text_of(&reply_above(header));
        assert_eq!(out.text, REPLY, "header {header:?}");
        assert!(out.quote_removed, "header {header:?}");
    }
}

#[test]
fn attribution_wrapped_over_lines() {
    let bodies = [
        "Merci !\n\nLe 4 janv. 2024 19:03, \"Support Team\"\n<support@example.com>\na écrit :\n\n> Bonjour",
        "Danke!\n\nAm 21.04.2024 17:48 schrieb \"Support\" <support@example.com\n>:\n\n> Hallo",
        "Obrigado!\n\nEm 2 de fevereiro de 2024 10:58, Support <\nsupport@example.com> escreveu:\n\n> Olá",
        "Thanks!\nOn Thu, Jun 20, 2024 at 4:18 PM, Support via Desk <\nsupport@example.com> wrote:\n> Hi",
    ];
    for body in bodies {
        let out = text_of(body);
        assert!(
            !out.text.contains("support@example.com") && !out.text.contains('>'),
            "{body:?} -> {:?}",
            out.text
        );
        assert!(out.quote_removed);
    }
}

#[test]
fn sentence_before_attribution_is_not_part_of_it() {
    let out = text_of(
        "I tried again this morning.\nOn Dec 15, 2024, at 3:00 PM, Ana <ana@example.com> wrote:\n> Try again",
    );
    assert_eq!(out.text, "I tried again this morning.");
}

#[test]
fn outlook_header_blocks_english_and_localized() {
    let blocks = [
        "________________________________\nFrom: Support <support@example.com>\nSent: Monday, June 3, 2024 10:15 AM\nTo: Ana\nSubject: RE: Login",
        "-----Original Message-----\nFrom: Support [mailto:support@example.com]\nSent: Monday, June 3, 2024 10:15\nTo: Ana\nSubject: Login",
        "*From:* Support <support@example.com>\n*Sent:* Monday, June 3, 2024\n*To:* Ana\n*Subject:* Login",
        "De : Support <support@example.com>\nEnvoyé : lundi 3 juin 2024 10:15\nÀ : Ana\nObjet : RE: Connexion",
        "De: Support <support@example.com>\nEnviado el: lunes, 3 de junio de 2024 10:15\nPara: Ana\nAsunto: RE: Acceso",
        "Da: Support <support@example.com>\nInviato: lunedì 3 giugno 2024 10:15\nA: Ana\nOggetto: R: Accesso",
        "Van: Support <support@example.com>\nVerzonden: maandag 3 juni 2024 10:15\nAan: Ana\nOnderwerp: RE: Inloggen",
        "Från: Support <support@example.com>\nSkickat: den 3 juni 2024 10:15\nTill: Ana\nÄmne: SV: Inloggning",
        "Od: Support <support@example.com>\nWysłane: poniedziałek, 3 czerwca 2024 10:15\nDo: Ana\nTemat: RE: Logowanie",
        "От: Support <support@example.com>\nОтправлено: 3 июня 2024 г. 10:15\nКому: Ana\nТема: RE: Вход",
        "差出人: Support <support@example.com>\n送信日時: 2024年6月3日 10:15\n宛先: Ana\n件名: RE: ログイン",
        "发件人: Support <support@example.com>\n发送时间: 2024年6月3日 10:15\n收件人: Ana\n主题: 回复: 登录",
        "-----Ursprüngliche Nachricht-----\nVon: Support <support@example.com>\nGesendet: Montag, 3. Juni 2024 10:15\nAn: Ana\nBetreff: AW: Login",
        "-------- Oprindelig besked --------\nFra: Support <support@example.com>\nDato: 03.06.2024 10.15\nTil: Ana\nEmne: Login",
    ];
    for block in blocks {
        let body = format!("{REPLY}\n\n{block}\n\nHello Ana,\nplease reset your password.\n");
        let out = text_of(&body);
        assert_eq!(out.text, REPLY, "block {block:?}");
        assert!(out.quote_removed);
    }
}

#[test]
fn outlook_german_fixture_keeps_closing_and_name() {
    let out = text_of(include_str!("../../tests/fixtures/extract/outlook_de.txt"));
    assert!(out.text.starts_with("Hallo zusammen,"));
    assert!(
        out.text.ends_with("Viele Grüße\nJana Krüger"),
        "{:?}",
        out.text
    );
    assert!(!out.text.contains("Gesendet"));
    assert!(out.quote_removed);
    assert!(!out.signature_removed);
}

#[test]
fn interleaved_answers_are_kept_and_quotes_dropped() {
    let out = text_of(include_str!("../../tests/fixtures/extract/interleaved.txt"));
    assert_eq!(
        out.text,
        "Version 3.2 on Android 14.\n\nYes, on Wi-Fi and on mobile data."
    );
    assert!(out.quote_removed);
    assert!(out.signature_removed);
}

#[test]
fn quote_wrapped_without_prefix_stays_quoted() {
    let body = "Fine now.\n\n> Please try this: a very long line that the client\nwrapped without repeating the marker\n> and more quote\n";
    assert_eq!(text_of(body).text, "Fine now.");
}

#[test]
fn leading_quote_then_answer() {
    let out = text_of("> Can you send the log?\n\nHere it is, see attachment.\n");
    assert_eq!(out.text, "Here it is, see attachment.");
}

#[test]
fn only_a_quote_falls_back_to_the_whole_text() {
    let body = "On Mon, Jun 3, 2024 at 10:15 AM Support <support@example.com> wrote:\n> Hello\n> Did this help?\n";
    let out = text_of(body);
    assert_eq!(out.text, body.trim());
    assert!(!out.quote_removed);
    let outlook =
        "From: Support <support@example.com>\nSent: Monday\nTo: Ana\nSubject: Hi\n\nOld text";
    let out = text_of(outlook);
    assert_eq!(out.text, outlook);
    assert!(!out.quote_removed);
}

#[test]
fn empty_body_stays_empty() {
    assert_eq!(text_of("").text, "");
    assert_eq!(text_of(" \n\n").text, "");
}

#[test]
fn forward_with_nothing_written_keeps_forwarded_message() {
    let body = "---------- Forwarded message ---------\nFrom: Shop <shop@example.com>\nDate: Mon, Jun 3, 2024 at 10:15 AM\nSubject: Your invoice is\n overdue\nTo: <ana@example.com>\n\nYour invoice 1234 is overdue. Please pay.\n";
    let p = pieces(&mail(body, None));
    assert_eq!(p.reply, "Your invoice 1234 is overdue. Please pay.");
    assert!(p.forwarded);
}

#[test]
fn apple_quoted_forward_is_unpacked() {
    let body = "> Begin forwarded message:\n>\n> From: Shop <shop@example.com>\n> Subject: Order\n>\n> Your order has shipped.\n";
    assert_eq!(text_of(body).text, "Your order has shipped.");
}

#[test]
fn forward_with_a_note_keeps_the_note() {
    let body = "Can you explain this charge?\n\n---------- Forwarded message ---------\nFrom: Bank <bank@example.com>\nSubject: Charge\n\nYou were charged 30 EUR.\n";
    let out = text_of(body);
    assert_eq!(out.text, "Can you explain this charge?");
    assert!(out.quote_removed);
}

#[test]
fn outlook_forward_by_subject() {
    let mut m = mail(
        "From: Bank <bank@example.com>\nSent: Monday\nTo: Ana\nSubject: Charge\n\nYou were charged 30 EUR.\n",
        None,
    );
    m.subject = "WG: Charge".to_owned();
    assert_eq!(extract(&m).text, "You were charged 30 EUR.");
}

#[test]
fn signatures_in_many_languages() {
    let lines = [
        "-- \nAna Lima\n+55 11 5555 0000",
        "--\nAna",
        "Sent from my iPhone",
        "Sent from my iPad",
        "Sent from my Samsung Galaxy smartphone.",
        "Sent from Outlook for iOS",
        "Get Outlook for Android",
        "Von meinem iPhone gesendet",
        "Envoyé de mon iPhone",
        "Enviado desde mi iPhone",
        "Inviato da iPhone",
        "Verstuurd vanaf mijn iPhone",
        "Skickat från min iPhone",
        "Sendt fra min iPhone",
        "Wysłane z iPhone'a",
        "Отправлено с iPhone",
        "iPhoneから送信",
        "发自我的iPhone",
    ];
    for sig in lines {
        let out = text_of(&format!("{REPLY}\n\n{sig}\n"));
        assert_eq!(out.text, REPLY, "signature {sig:?}");
        assert!(out.signature_removed, "signature {sig:?}");
    }
}

#[test]
fn sentences_that_look_like_signatures_are_kept() {
    let bodies = [
        "Sent from my desk, which is much easier than my phone.",
        "I use the app sent from my company, is that a problem? It crashes.",
        "Here is the output:\n-- begin --\nok\n-- end --",
        "Best regards,\nAna",
    ];
    for body in bodies {
        let out = text_of(body);
        assert_eq!(out.text, body, "{body:?}");
        assert!(!out.signature_removed);
    }
}

#[test]
fn mailing_list_footer_is_a_signature() {
    let body = "Works for me.\n\n_______________________________________________\nusers mailing list\nusers@lists.example.org\nhttps://lists.example.org/listinfo/users\n";
    let out = text_of(body);
    assert_eq!(out.text, "Works for me.");
    assert!(out.signature_removed);
}

#[test]
fn crlf_line_endings() {
    let out =
        text_of("Done.\r\n\r\nOn Mon, Jun 3, 2024, Support <s@example.com> wrote:\r\n> Hi\r\n");
    assert_eq!(out.text, "Done.");
}

#[test]
fn html_gmail_quote_is_removed() {
    let html = include_str!("../../tests/fixtures/extract/gmail_reply.html");
    let p = pieces(&mail("", Some(html)));
    assert!(p.used_html);
    assert!(p.reply.contains("the export still fails"));
    assert!(p.reply.contains("Omar"));
    assert!(
        !p.reply.contains("please try the export again"),
        "{:?}",
        p.reply
    );
    assert!(!p.reply.contains("wrote"));
}

#[test]
fn html_outlook_reply_header_cuts_the_rest() {
    let html = include_str!("../../tests/fixtures/extract/outlook_web.html");
    let out = extract(&mail("", Some(html)));
    assert!(out.text.contains("je n'arrive toujours pas"));
    assert!(!out.text.contains("réessayer"), "{:?}", out.text);
    assert!(out.quote_removed);
}

#[test]
fn html_apple_mail_blockquote_is_removed() {
    let html = include_str!("../../tests/fixtures/extract/apple_mail.html");
    let out = extract(&mail(
        "Yes, that worked. Thank you!\n\n> Please restart",
        Some(html),
    ));
    assert_eq!(out.text, "Yes, that worked. Thank you!");
}

#[test]
fn html_reply_header_after_a_horizontal_rule_is_cut() {
    // Outlook on the web and others: the answer, an <hr>, then the old
    // message's header in bold. html2text drops the <hr> and with it the
    // line break, so "Jana" and "Von:" used to share a line.
    let html = "<div>Danke, das hat geholfen.<br>Grüße<br>Jana<hr>\
                <b>Von:</b> Support &lt;support@example.com&gt;<br><b>Gesendet:</b> Montag, 3. Juni 2024 10:15<br>\
                <b>An:</b> Jana<br><b>Betreff:</b> Ihr Konto<br><br>Bitte versuchen Sie es erneut.</div>";
    let out = extract(&mail("", Some(html)));
    assert!(
        out.text.starts_with("Danke, das hat geholfen."),
        "{:?}",
        out.text
    );
    assert!(!out.text.contains("Bitte versuchen"), "{:?}", out.text);
    assert!(!out.text.contains("Von:"), "{:?}", out.text);
    assert!(out.quote_removed);
}

#[test]
fn html_without_markers_uses_the_text_rules() {
    let html = "<p>Hello</p><p>On Mon, Jun 3, 2024 Support &lt;s@example.com&gt; wrote:</p>";
    let text = "Hello\n\nOn Mon, Jun 3, 2024 Support <s@example.com> wrote:\n> old";
    let p = pieces(&mail(text, Some(html)));
    assert!(!p.used_html);
    assert_eq!(p.reply, "Hello");
}

#[test]
fn html_only_quote_falls_back() {
    let html = "<blockquote type=\"cite\">Only the old message</blockquote>";
    let out = extract(&mail("> Only the old message", Some(html)));
    assert_eq!(out.text, "> Only the old message");
    assert!(!out.quote_removed);
}

#[test]
fn nested_html_quotes_are_found() {
    let html = format!("{}<blockquote>q</blockquote>x", "<div>".repeat(500));
    let out = extract(&mail("", Some(&html)));
    assert_eq!(out.text, "x");
}

#[test]
fn hostile_html_depth_skips_the_html_parser() {
    // html5ever is quadratic in nesting depth; this must not reach it.
    let html = format!("{}<blockquote>q</blockquote>x", "<div>".repeat(50_000));
    assert!(html::too_deep(&html));
    let out = extract(&mail("", Some(&html)));
    assert_eq!(out.text, "qx");
    assert!(!html::too_deep(&"<p>a<br>b</p>".repeat(10_000)));
    assert!(!html::too_deep(&"<<<<".repeat(10_000)));
}

#[test]
fn every_pattern_compiles() {
    for re in [
        &*patterns::ATTRIBUTION_STRONG,
        &*patterns::ATTRIBUTION_GENERIC,
        &*patterns::ATTRIBUTION_WEAK,
        &*patterns::ATTRIBUTION_DATE_FIRST,
        &*patterns::HEADER_FROM,
        &*patterns::HEADER_OTHER,
        &*patterns::ORIGINAL_MESSAGE,
        &*patterns::FORWARD_MARKER,
        &*patterns::FORWARD_SUBJECT,
        &*patterns::MOBILE_SIGNATURE,
        &*patterns::MOBILE_SIGNATURE_LOOSE,
    ] {
        assert!(!re.as_str().is_empty());
    }
}

/// The rules' work (bytes handed to line checks and regexes, counted by
/// `text::WORK`) must grow linearly with hostile inputs: 8× the input may
/// cost at most 9× the work. No wall-clock time is measured.
#[test]
fn pathological_inputs_scale_linearly() {
    /// Builds a hostile body of `n` repetitions.
    type Make = fn(usize) -> String;
    let hostile: [(&str, Make); 7] = [
        ("attributions", |n| {
            "On Mon, Jun 3, 2024 at 10:15 AM, 42 <a@b.c> wrote:\nline with 1 digit wrote:\n> q\n"
                .repeat(n)
        }),
        ("unprefixed attributions", |n| {
            "x\nOn 3 Jun 2024 Ana <a@b.c> wrote:\ntext\n".repeat(n)
        }),
        ("one long line", |n| "x".repeat(1_000 * n)),
        ("long wrote line", |n| {
            format!("{}:\n", "On 1 wrote ".repeat(100 * n))
        }),
        ("alternating quotes", |n| "> a\nb\n".repeat(n)),
        ("header lines", |n| "From: a\nSent: b\nTo: c\n".repeat(n)),
        ("wrapped quote runs", |n| {
            format!("> a\n{}", "b\n".repeat(n))
        }),
    ];
    for (name, make) in hostile {
        let cost = |n: usize| {
            text::WORK.with(|w| w.set(0));
            let body = make(n);
            let out = text_of(&body);
            assert!(out.text.len() <= body.len());
            text::WORK.with(std::cell::Cell::get)
        };
        let small = cost(500);
        let large = cost(4_000);
        assert!(
            large <= small * 9 + 1_000,
            "{name}: work {small} for 1x, {large} for 8x"
        );
    }
}

#[test]
fn every_html_marker_passes_the_prefilter() {
    // Each marker `html::marker` knows, in the case a client writes it:
    // the cheap scan must let every one through to the DOM rules.
    let quoted = |attrs: &str| format!("<div>Answer above.</div><div {attrs}>old thread</div>");
    let samples = [
        "<blockquote>old thread</blockquote>".to_owned(),
        "<BLOCKQUOTE type=cite>old thread</BLOCKQUOTE>".to_owned(),
        quoted(r#"id="divRplyFwdMsg""#),
        quoted(r#"id="appendonsend""#),
        quoted(r#"id="OLK_SRC_BODY_SECTION""#),
        quoted(r#"id="_stopSpelling""#),
        quoted(r#"class="OutlookMessageHeader""#),
        quoted(r#"style="border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0in 0in 0in""#),
        quoted(r#"class="gmail_quote""#),
        quoted(r#"class="gmail_attr""#),
        quoted(r#"class="yahoo_quoted""#),
        quoted(r#"id="yahoo_quoted_123""#),
        quoted(r#"class="moz-cite-prefix""#),
        quoted(r#"class="protonmail_quote""#),
        quoted(r#"class="zmail_extra""#),
        quoted(r#"class="ms-outlook-mobile-reference-message""#),
        quoted(r#"id="mail-editor-reference-message-container""#),
        quoted(r#"id="isForwardContent""#),
        quoted(r#"data-marker="__QUOTED_TEXT__""#),
    ];
    for html in &samples {
        let text = html::strip_quotes(html);
        assert!(
            text.as_deref().is_some_and(|t| !t.contains("old thread")),
            "{html} → {text:?}"
        );
    }
    assert_eq!(
        html::strip_quotes("<div>No quote here, just a <b>bold</b> request.</div>"),
        None
    );
}

#[test]
fn newline_normalization_matches_the_two_replaces() {
    let cases = [
        "",
        "no line break",
        "lf\nonly\n",
        "crlf\r\nlines\r\n",
        "lone\rcr\r",
        "\r",
        "\r\n",
        "\r\r\n\n\r",
        "\n\r",
        "mixed\r\n\nblank\r\r\nend",
        "Grüße\r\nöäü\rçé€\r\n日本語\r",
        "trailing cr\r",
    ];
    for text in cases {
        let expected = text.replace("\r\n", "\n").replace('\r', "\n");
        assert_eq!(text::normalize_newlines(text), expected, "{text:?}");
    }
    let long = format!("{}\r\n", "ä".repeat(100_000)).repeat(3);
    assert_eq!(
        text::normalize_newlines(&long),
        long.replace("\r\n", "\n").replace('\r', "\n")
    );
    // Without a CR the text is borrowed, not copied.
    assert!(matches!(
        text::normalize_newlines("a\nb"),
        std::borrow::Cow::Borrowed(_)
    ));
}

#[test]
fn line_splitting_matches_split_on_lf() {
    let very_long = "x".repeat(100_000);
    let cases = [
        "",
        "\n",
        "\n\n",
        "one",
        "one\n",
        "one\ntwo",
        "\nleading",
        "a\n\n\nb\n",
        "Grüße\nöäü\n日本語",
        very_long.as_str(),
    ];
    for text in cases {
        let expected: Vec<&str> = text.split('\n').collect();
        assert_eq!(text::split_lines(text), expected, "{text:?}");
    }
    // CRLF and lone CR end lines as the LF they are normalized to.
    let cr_cases = [
        "crlf\r\nlines\r\n",
        "lone\rcr\r",
        "\r",
        "\r\n",
        "\r\r\n\n\r",
        "\n\r",
        "mixed\r\n\nblank\r\r\nend",
        "Grüße\r\nöäü\rçé€\r\n日本語\r",
        "\r\n\r\n\r\r\n",
    ];
    for text in cr_cases {
        let normalized = text::normalize_newlines(text);
        let expected: Vec<&str> = normalized.split('\n').collect();
        assert_eq!(text::split_lines(text), expected, "{text:?}");
    }
}

#[test]
fn crlf_lf_and_cr_bodies_extract_alike() {
    let lf = "Thanks, it works now.\n\nOn Mon, Jun 3, 2024 at 10:15 AM Support <support@example.com> wrote:\n> Try again.\n> \n>> Older quote\n\n-- \nAna\n";
    let crlf = lf.replace('\n', "\r\n");
    let cr = lf.replace('\n', "\r");
    let expected = pieces(&mail(lf, None));
    assert_eq!(expected.reply, "Thanks, it works now.");
    assert_eq!(expected.signature.as_deref(), Some("-- \nAna"));
    assert_eq!(pieces(&mail(&crlf, None)), expected);
    assert_eq!(pieces(&mail(&cr, None)), expected);
}

#[test]
fn header_blocks_and_separators_need_their_colon_and_dashes() {
    // The cheap filters in front of the regexes must let these through.
    let outlook = "Done, thanks.\n\nFrom: Support <support@example.com>\nSent: Monday, June 3, 2024 10:15\nTo: Ana\nSubject: Your request\n\nPlease try again.\n";
    assert_eq!(text_of(outlook).text, "Done, thanks.");
    let fullwidth = "好的，谢谢。\n\n发件人：Support <support@example.com>\n发送时间：2024年6月3日 10:15\n收件人：Ana\n主题：Your request\n\nPlease try again.\n";
    assert_eq!(text_of(fullwidth).text, "好的，谢谢。");
    let original = "Done - thanks.\n\n-----Original Message-----\nPlease try again.\n";
    assert_eq!(text_of(original).text, "Done - thanks.");
    let german = "Erledigt.\n\n----- Ursprüngliche Nachricht -----\nBitte erneut versuchen.\n";
    assert_eq!(text_of(german).text, "Erledigt.");
    // A "From" sentence without a colon is the customer's.
    let sentence = "From what I see it works.\nSent it twice.\nTo be sure.\n";
    assert_eq!(
        text_of(sentence).text,
        "From what I see it works.\nSent it twice.\nTo be sure."
    );
}

#[test]
fn mobile_signature_word_limits_hold() {
    // Exactly at the limits the bounded word counts must agree with a
    // full count.
    assert!(text::is_mobile_signature("Sent from my iPhone"));
    assert!(text::is_mobile_signature("Sent from my TI-85 calculator"));
    assert!(!text::is_mobile_signature(
        "Sent from my one two three four five six"
    ));
    assert!(text::is_mobile_signature(
        "Sent from my shiny new Samsung Galaxy s5 Octacore device"
    ));
    assert!(text::is_mobile_signature(
        "Von meinem iPhone gesendet a b c d e f"
    ));
    assert!(!text::is_mobile_signature(
        "Von meinem iPhone gesendet a b c d e f g"
    ));
    assert!(!text::is_mobile_signature(
        "Sent from my iPhone a b c d e f g h i j"
    ));
}

#[test]
fn loose_mobile_signature_pattern_accepts_every_strict_match() {
    // The prefilter may only ever say "maybe": every line the strict
    // pattern matches, in every language it knows, must pass it.
    let lines = [
        "Sent via the Samsung Galaxy S8",
        "Get Outlook for iOS",
        "Get [Outlook for Android]",
        "Von meinem iPhone gesendet",
        "Von meinem Samsung Galaxy Smartphone gesendet",
        "Gesendet von Mail für Windows",
        "Diese Nachricht wurde von meinem Android Mobiltelefon gesendet",
        "Envoyé de mon iPhone",
        "Envoyé à partir de Outlook",
        "Enviado desde mi iPhone",
        "Enviado a través de Outlook",
        "Inviato da iPhone",
        "Enviado do meu iPhone",
        "Verzonden vanaf mijn iPhone",
        "Skickat från min iPhone",
        "Sendt fra min iPhone",
        "Hämta Outlook för iOS",
        "Lähetetty iPhonesta",
        "Wysłane z iPhone'a",
        "Wysłano z aplikacji Poczta",
        "Отправлено с iPhone",
        "Надіслано з iPhone",
        "Odesláno z iPhonu",
        "iPhone'umdan gönderildi",
        "iPhoneから送信",
        "发自我的iPhone",
        "從我的 iPhone 傳送",
        "来自我的华为手机",
        "iPhone에서 보냄",
    ];
    for line in lines {
        assert!(patterns::MOBILE_SIGNATURE.is_match(line), "strict: {line}");
        assert!(
            patterns::MOBILE_SIGNATURE_LOOSE.is_match(line),
            "loose: {line}"
        );
        assert!(text::is_mobile_signature(line), "{line}");
    }
    // Where only the word boundary tells them apart, the strict pattern
    // still decides.
    for line in ["Sent fromage", "Lähetettyjä viestejä", "Enviado dom"] {
        assert!(!text::is_mobile_signature(line), "{line}");
    }
}
