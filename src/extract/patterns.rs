//! The line patterns `extract` recognises, compiled once.
//!
//! Every pattern is matched against one line, or a window of at most
//! [`MAX_WINDOW_LINES`] lines joined by spaces and at most
//! [`MAX_WINDOW_CHARS`] characters long, so the work per message stays
//! linear in its size whatever the input. The `regex` crate guarantees
//! linear-time matching, which a hand-written matcher for this many
//! localized forms would not make easier to review.

use std::sync::LazyLock;

use regex::Regex;

/// Attribution lines are wrapped by some clients over up to three lines
/// ("Le 4 janv. 2016 19:03, "Neil" / <info@…> / a écrit :").
pub(crate) const MAX_WINDOW_LINES: usize = 3;

/// A real attribution line is short; longer windows are prose and are
/// never matched, which also bounds the regex work per line. (The
/// patterns use `.*` rather than bounded repeats: the window is already
/// bounded, and `.{0,500}` over Unicode compiles to a huge automaton.)
pub(crate) const MAX_WINDOW_CHARS: usize = 600;

/// Compiles a pattern written in this file. The patterns are constants,
/// not mail data: every one is compiled by the unit tests, so a typo fails
/// `cargo test`, never a running daemon.
pub(crate) fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("invalid built-in pattern {pattern:?}: {e}"))
}

/// "On … wrote:" and its localized forms that *start* with a known word,
/// so they need no further evidence (the window is already anchored at
/// both ends). Names and dates in between are free text.
pub(crate) static ATTRIBUTION_STRONG: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"(?i)^(?:",
        // en (Gmail, Apple Mail, Thunderbird, Zoho "---- On … wrote ----")
        r"(?:on|at)\s.*\b(?:wrote|writes)\s*:?",
        // de
        r"|am\s.*\bschrieb\b.*[:：]",
        // fr
        r"|le\s.*\bécrit\s*[:：]",
        // es
        r"|el\s.*\bescribió\s*[:：]",
        // it
        r"|il\s.*\bscritto\s*[:：]",
        // pt
        r"|(?:em|no dia|a)\s.*\bescreveu\s*[:：]",
        // nl (Apple: "Op … heeft X het volgende geschreven:")
        r"|op\s.*\b(?:schreef|geschreven)\b.*[:：]",
        // sv, da, nb ("Den 15. jun. 2016 kl. 20.42 skrev X:")
        r"|den\s.*\bskrev\b.*[:：]",
        // pl
        r"|(?:w dniu|dnia)\s.*\b(?:pisze|napisał|napisała|napisał\(a\))\s*[:：]",
        // cs
        r"|dne\s.*\b(?:napsal|napsala|napsal\(a\))\s*[:：]",
        // zh (Apple Mail: "在 2016年12月12日，下午8:45，X 写道：")
        r"|在.*(?:写道|寫道)\s*[:：]",
        // ja ("… さんは書きました:", "… のメッセージ:")
        r"|.*(?:書きました|のメッセージ)\s*[:：]",
        r")$"
    ))
});

/// Localized "wrote:" at the end of a line that does not start with a
/// known word ("Max <max@example.com> schrieb am Fr., 28. Apr. 2017:",
/// "понедельник, 6 октября 2014 г. пользователь lidel написал:"). These
/// need a date or an address in the window too; see
/// [`looks_like_attribution_evidence`].
pub(crate) static ATTRIBUTION_GENERIC: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"(?i)^.*(?:",
        r"\b(?:wrote|writes)",
        r"|\bschrieb\b.*",
        r"|\bécrit",
        r"|\bescribió",
        r"|\bha scritto",
        r"|\bescreveu",
        r"|\b(?:schreef|geschreven)",
        r"|\bskrev\b.*",
        r"|\bkirjoitti",
        r"|\b(?:pisze|napisał|napisała|napisał\(a\))",
        r"|\b(?:пишет|написал|написала|написал\(а\)|пише|написав)",
        r"|\b(?:napsal|napsala|napsal\(a\))",
        r"|\byazdı",
        r"|\bírta",
        r"|\ba scris",
        r"|\bέγραψε",
        r"|(?:כתב|כתבה)",
        r"|كتب",
        r"|작성",
        r"|(?:写道|寫道|書きました)",
        r")\s*[:：]$"
    ))
});

/// A line ending in an address and a colon, with a date in it:
/// "26.06.2014, 14:41, "Alexander L" <abc@example.com>:" (Yandex, Mail.ru).
/// Weak evidence: it only counts when quoted text or nothing follows.
pub(crate) static ATTRIBUTION_WEAK: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"^.*(?:\d{1,2}[:.]\d{2}|\d{4}).*",
        r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+[\]>)\x22'\s]*[:：]$"
    ))
});

/// Gmail's date-first attribution in some locales, without "wrote" and
/// sometimes without the colon: "2013/7/20 sam <sam@example.com>",
/// "2016-10-24 15:36 GMT+02:00 Foo <foo@example.com>:".
pub(crate) static ATTRIBUTION_DATE_FIRST: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"^\d{4}\s?[-/.年]\s?\d{1,2}\s?[-/.月]\s?\d{1,2}日?\b.*<[^<>\s]+@[^<>\s]+>\s*[:：]?$")
});

/// True when an attribution window without a leading keyword carries the
/// date or address every real one has; "Here is what my colleague
/// wrote:" does not.
pub(crate) fn looks_like_attribution_evidence(window: &str) -> bool {
    window.chars().any(|c| c.is_ascii_digit() || c == '@')
}

/// Header names that open a quoted header block ("From:", "Von:", "De :",
/// "差出人:"…).
const FROM_KEYS: &str = concat!(
    "from|von|de|da|van|från|fra|od|от|від|lähettäjä|kimden|gönderen|feladó|",
    "差出人|发件人|寄件者|寄件人|보낸 사람|afzender|avsändare|absender|mittente|",
    "remetente|expéditeur|nadawca|odesílatel|από|expeditor|saatja"
);

/// Header names that follow "From:" in a quoted header block.
const OTHER_KEYS: &str = concat!(
    "sent|date|to|cc|bcc|subject|reply-to|on behalf of|",
    "gesendet|datum|an|betreff|kopie|antwort an|",
    "envoyé|à|objet|répondre à|",
    "enviado|enviado el|fecha|para|asunto|responder a|",
    "inviato|data|a|oggetto|risposta|rispondi a|",
    "verzonden|aan|onderwerp|",
    "skickat|till|ämne|kopia|",
    "sendt|til|emne|dato|kopi|",
    "lähetetty|vastaanottaja|aihe|päivämäärä|",
    "wysłane|wysłano|do|temat|dw|",
    "отправлено|дата|кому|тема|копия|",
    "надіслано|тема|кому|",
    "odesláno|komu|předmět|",
    "gönderildi|tarih|kime|konu|bilgi|",
    "送信日時|宛先|件名|日付|",
    "发送时间|日期|收件人|主题|抄送|",
    "寄件日期|收件者|主旨|傳送時間|副本|",
    "보낸 날짜|받는 사람|제목|",
    "ημερομηνία|προς|θέμα|στάλθηκε|",
    "elküldve|címzett|tárgy|dátum|",
    "trimis|către|subiect|",
    "message du|copie à|sujet"
);

/// "From: …" (bold "*From:*" from HTML conversions, French "De :").
pub(crate) static HEADER_FROM: LazyLock<Regex> =
    LazyLock::new(|| compile(&format!(r"(?i)^[\s>*]*(?:{FROM_KEYS})[\s*]*[:：]")));

/// Any other header name of a quoted header block.
pub(crate) static HEADER_OTHER: LazyLock<Regex> = LazyLock::new(|| {
    compile(&format!(
        r"(?i)^[\s>*]*(?:{OTHER_KEYS}|{FROM_KEYS})[\s*]*[:：]"
    ))
});

/// The most characters a header name of [`FROM_KEYS`] or [`OTHER_KEYS`]
/// has.
static HEADER_KEY_MAX_CHARS: LazyLock<usize> = LazyLock::new(|| {
    FROM_KEYS
        .split('|')
        .chain(OTHER_KEYS.split('|'))
        .map(|k| k.chars().count())
        .max()
        .unwrap_or(0)
});

/// A necessary condition for [`HEADER_FROM`] and [`HEADER_OTHER`], which
/// are asked about nearly every line with a colon (log lines have many):
/// after the leading `[\s>*]` the line holds a header name (letters,
/// spaces and hyphens, at most as long as the longest name) and then only
/// spaces or `*` up to its first colon. No header name contains a colon,
/// so the colon the patterns match is the first one.
pub(crate) fn may_be_header_line(line: &str) -> bool {
    let rest = line.trim_start_matches(|c: char| c.is_whitespace() || c == '>' || c == '*');
    let max = *HEADER_KEY_MAX_CHARS;
    // One scan that stops early: at the first character no header line
    // has before its colon, or once more letters were seen than a name
    // has (the spaces and `*` after the name hold none). A `find` for the
    // colon first would scan whole log lines.
    let mut letters = 0;
    let mut colon = None;
    for (pos, c) in rest.char_indices() {
        if c == ':' || c == '：' {
            colon = Some(pos);
            break;
        }
        if c.is_alphabetic() || c == '-' {
            letters += 1;
            if letters > max {
                return false;
            }
        } else if !(c.is_whitespace() || c == '*') {
            return false;
        }
    }
    let Some(colon) = colon else {
        return false;
    };
    let key = rest
        .get(..colon)
        .unwrap_or_default()
        .trim_end_matches(|c: char| c.is_whitespace() || c == '*');
    is_short_phrase(key, max)
}

/// "-----Original Message-----" and its translations, with any number of
/// dashes (Outlook, Lotus, Yahoo and mobile clients differ).
pub(crate) static ORIGINAL_MESSAGE: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"(?i)^[\s*_]*-{2,}\s*(?:",
        r"original message|original e-?mail|reply message|",
        r"ursprüngliche nachricht|originalnachricht|",
        r"message d'origine|message original|",
        r"mensaje original|messaggio originale|mensagem original|",
        r"oorspronkelijk bericht|origineel bericht|",
        r"oprindelig besked|originalmeddelelse|",
        r"ursprungligt meddelande|opprinnelig melding|oprindelig meddelelse|",
        r"alkuperäinen viesti|",
        r"wiadomość oryginalna|oryginalna wiadomość|",
        r"původní zpráva|pôvodná správa|",
        r"исходное сообщение|оригинальное сообщение|вихідне повідомлення|",
        r"orijinal mesaj|",
        r"原始邮件|原始郵件|元のメッセージ|원본 메시지|",
        r"αρχικό μήνυμα|eredeti üzenet|mesaj original",
        r")\s*-{2,}[\s*_]*$"
    ))
});

/// Forwarded-message markers, as alternatives of [`FORWARD_MARKER`]
/// (a `?` makes the character before it optional). Kept as a list so
/// [`may_be_forward_marker`] can bound their length.
const FORWARD_PHRASES: &[&str] = &[
    "begin forwarded message",
    "forwarded message",
    "forwarded e-?mail",
    "weitergeleitete nachricht",
    "anfang der weitergeleiteten nachricht",
    "message transféré",
    "début du message réexpédié",
    "début du message transféré",
    "mensaje reenviado",
    "comienzo del mensaje reenviado",
    "messaggio inoltrato",
    "inizio messaggio inoltrato",
    "mensagem encaminhada",
    "início da mensagem reencaminhada",
    "doorgestuurd bericht",
    "begin doorgestuurd bericht",
    "vidarebefordrat meddelande",
    "vidarebefordrat brev",
    "videresendt meddelelse",
    "videresendt melding",
    "videresendt e-post",
    "välitetty viesti",
    "przekazana wiadomość",
    "wiadomość przekazana",
    "пересылаемое сообщение",
    "пересланное сообщение",
    "переслане повідомлення",
    "přeposlaná zpráva",
    "iletilen ileti",
    "转发的邮件",
    "轉寄的郵件",
    "転送されたメッセージ",
    "전달된 메시지",
];

/// Forwarded-message markers. The content after them is the request when
/// the customer wrote nothing above.
pub(crate) static FORWARD_MARKER: LazyLock<Regex> = LazyLock::new(|| {
    compile(&format!(
        r"(?i)^[\s>*_-]*(?:{})\s*[:：]?[\s*_-]*$",
        FORWARD_PHRASES.join("|")
    ))
});

/// The most characters a [`FORWARD_PHRASES`] entry can match (a `?` is
/// not a character of the match).
static FORWARD_PHRASE_MAX_CHARS: LazyLock<usize> = LazyLock::new(|| {
    FORWARD_PHRASES
        .iter()
        .map(|p| p.chars().filter(|&c| c != '?').count())
        .max()
        .unwrap_or(0)
});

/// A necessary condition for [`FORWARD_MARKER`], checked first because
/// that regex ran on every line (~300 instructions of regex set-up each):
/// without the decoration the pattern allows around it, a marker line is
/// one phrase, made only of letters, spaces and hyphens (a case variant
/// of a letter is a letter), and no longer than the longest phrase. Log
/// and prose lines fail at their first digit, comma or full stop.
pub(crate) fn may_be_forward_marker(line: &str) -> bool {
    // The pattern's own leading and trailing decoration; every phrase
    // starts and ends with a letter, so trimming never cuts into one.
    let core = line
        .trim_start_matches(|c: char| c.is_whitespace() || matches!(c, '>' | '*' | '_' | '-'))
        .trim_end_matches(|c: char| c.is_whitespace() || matches!(c, ':' | '：' | '*' | '_' | '-'));
    is_short_phrase(core, *FORWARD_PHRASE_MAX_CHARS)
}

/// True when `s` is one non-empty phrase of at most `max` characters made
/// of letters, spaces and hyphens: the shape every marker phrase and
/// header name has once its decoration is trimmed, so anything else cannot
/// match the regex behind the prefilter.
fn is_short_phrase(s: &str, max: usize) -> bool {
    let mut n = 0;
    for c in s.chars() {
        n += 1;
        if n > max || !(c.is_alphabetic() || c == ' ' || c == '-') {
            return false;
        }
    }
    n > 0
}

/// Subject prefixes of a forward: an Outlook forward looks exactly like a
/// reply in the body, only the subject tells them apart.
pub(crate) static FORWARD_SUBJECT: LazyLock<Regex> = LazyLock::new(|| {
    compile(r"(?i)^\s*(?:fwd?|wg|tr|rv|enc|i|doorst|vs|vb|vl|pd|pr|ynt|trs|转发|轉寄|転送)\s*[:：]")
});

/// Mobile and mail-app signature lines in many languages. Matched against
/// a short trimmed line only (see `text::is_mobile_signature`).
pub(crate) static MOBILE_SIGNATURE: LazyLock<Regex> =
    LazyLock::new(|| compile(MOBILE_SIGNATURE_PATTERN));

/// [`MOBILE_SIGNATURE`] without its word boundaries and with its bounded
/// repeats unbounded: it matches every line the strict pattern matches
/// (and a few more), so a line it rejects is decided. It runs first on
/// every line because it is much cheaper: a Unicode `\b` makes the regex
/// crate's DFA give up on any non-ASCII line and fall back to a
/// backtracker, which cost ~1,800 instructions a line on multilingual
/// mail; without `\b` the DFA decides in a few bytes.
pub(crate) static MOBILE_SIGNATURE_LOOSE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        &MOBILE_SIGNATURE_PATTERN
            .replace(r"\b", "")
            .replace("{1,30}", "+")
            .replace("{0,60}", "*")
            .replace("{0,30}", "*"),
    )
});

/// The source of [`MOBILE_SIGNATURE`], shared with its loose prefilter.
const MOBILE_SIGNATURE_PATTERN: &str = concat!(
    r"(?i)^(?:",
    // en: "Sent from my X" is checked separately for the device word.
    r"sent (?:from|via|with|using|by|on)\b",
    r"|get (?:\[)?outlook\b|download outlook\b|outlook for (?:ios|android)\b",
    r"|from my (?:iphone|ipad|android|mobile|phone|samsung|galaxy|blackberry)",
    // de
    r"|von meinem\b.{0,60}\bgesendet|gesendet (?:von|mit|vom|über)\b",
    r"|diese nachricht wurde von meinem\b",
    // fr
    r"|envoyé (?:de|depuis|à partir de|avec|par)\b|obtenir outlook\b",
    // es
    r"|enviado (?:desde|con|a través de|por)\b|obtener outlook\b",
    // it
    r"|inviato (?:da|dal|dalla|con|tramite)\b|ottieni outlook\b",
    // pt
    r"|enviado (?:do|pelo|pela|a partir do|a partir de|de)\s+(?:meu|minha)\b|enviado do\b|obter o outlook\b",
    // nl
    r"|(?:verzonden|verstuurd) (?:vanaf|van|met|via)\b|outlook voor\b",
    // sv, da, nb
    r"|skickat? (?:från|med)\b|skickades från\b|sendt (?:fra|från|med)\b|hent outlook\b|hämta outlook\b",
    // fi
    r"|lähetetty\b",
    // pl
    r"|wysłane (?:z|ze|przy pomocy|za pomocą)\b|wysłano (?:z|ze)\b",
    // ru, uk
    r"|отправлено (?:с|со|из)\b|послано с\b|надіслано з\b",
    // cs
    r"|odesláno (?:z|ze)\b|odeslané (?:z|ze)\b",
    // tr ("iPhone'umdan gönderildi")
    r"|\S{1,30}(?:dan|den|tan|ten) gönderildi",
    // ja, zh, ko
    r"|\S{1,30}\s?から送信",
    r"|发自我的|发自|從我的.{0,30}傳送|从我的.{0,30}发送|來自我的|来自我的",
    r"|\S{1,30}\s?에서 보냄",
    r")"
);

/// Device words that make "Sent from my X" a signature even when X is long
/// ("Sent from my Samsung Galaxy s5 Octacore device").
pub(crate) const DEVICE_WORDS: &[&str] = &[
    "iphone",
    "ipad",
    "ipod",
    "android",
    "samsung",
    "galaxy",
    "blackberry",
    "mobile",
    "phone",
    "smartphone",
    "cell",
    "cellphone",
    "htc",
    "huawei",
    "xiaomi",
    "pixel",
    "nokia",
    "sony",
    "motorola",
    "oneplus",
    "tablet",
    "device",
    "windows",
    "mac",
    "macbook",
    "watch",
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every form the patterns accept must pass the prefilters in front
    /// of them, or a marker or header line would be missed.
    #[test]
    fn prefilters_let_every_match_through() {
        let mut lines: Vec<String> = Vec::new();
        let phrases = FORWARD_PHRASES
            .iter()
            .flat_map(|p| [p.replace("-?", "-"), p.replace("-?", "")]);
        for p in phrases {
            assert!(FORWARD_MARKER.is_match(&p), "{p:?}");
            for form in [p.clone(), p.to_uppercase(), capitalize(&p)] {
                lines.push(form.clone());
                lines.push(format!("---------- {form} ---------"));
                lines.push(format!("> > *{form}*:"));
                lines.push(format!("  _{form}_ ： "));
                lines.push(format!("-- {form}\u{a0}:--"));
            }
        }
        let keys = FROM_KEYS.split('|').chain(OTHER_KEYS.split('|'));
        for k in keys {
            let line = format!("{k}: x");
            assert!(HEADER_OTHER.is_match(&line), "{line:?}");
            for form in [k.to_owned(), k.to_uppercase(), capitalize(k)] {
                lines.push(format!("{form}:"));
                lines.push(format!("> *{form}* : Ana <a@b.c>"));
                lines.push(format!(" \u{3000}{form}：2024-01-01 10:00"));
                lines.push(format!(">>{form}\t:"));
            }
        }
        lines.extend(
            [
                "",
                ":",
                "From:",
                "2024-01-01 10:00:00 ERROR x: y",
                "Hello, world",
                "forwarded message follows: here",
                "Kelvin \u{212a}:",
            ]
            .map(str::to_owned),
        );
        let mut forwards = 0;
        let mut headers = 0;
        for l in &lines {
            if FORWARD_MARKER.is_match(l) {
                forwards += 1;
                assert!(may_be_forward_marker(l), "{l:?}");
            }
            if HEADER_FROM.is_match(l) || HEADER_OTHER.is_match(l) {
                headers += 1;
                assert!(may_be_header_line(l), "{l:?}");
            }
        }
        assert!(forwards > 300 && headers > 500, "{forwards} {headers}");
        // And they do reject the common lines.
        for l in [
            "2024-01-01 10:00:00 ERROR x: y",
            "Hello, world",
            "See: http://x",
        ] {
            assert!(!may_be_forward_marker(l) && (l.starts_with("See") || !may_be_header_line(l)));
        }
    }

    /// `s` with its first character upper-cased.
    fn capitalize(s: &str) -> String {
        let mut chars = s.chars();
        chars
            .next()
            .map(|c| c.to_uppercase().chain(chars).collect())
            .unwrap_or_default()
    }
}
