//! Per-language words and rules behind the template filters: weekday and
//! month names, date and time formats, plural rules, language names.
//!
//! There is no ICU here; each shipped language has a small table, written
//! the way that language writes a due date in running text after "by"
//! (`bis Dienstag, 24. November 2026, 10:00 Uhr`, `2026年11月24日（火）10:00までに`).
//! Month names are in the form a date uses (genitive in Polish, Czech,
//! Russian and Ukrainian; with the prefix ב in Hebrew). A language without a
//! table gets ISO dates (`2026-11-24 10:00`) and its last plural form.

use super::LocalTime;

/// A due time taken apart for formatting.
pub(super) struct Moment {
    year: i16,
    /// 1–12.
    month: i8,
    day: i8,
    /// 0 = Monday … 6 = Sunday, an index into the weekday tables.
    weekday: usize,
    hour: u8,
    minute: u8,
    /// `UTC+01:00`, or `UTC` for offset zero.
    zone: String,
}

impl Moment {
    pub(super) fn new(due: &LocalTime) -> Result<Moment, String> {
        let (hour, minute) = due
            .time
            .split_once(':')
            .and_then(|(h, m)| Some((h.parse::<u8>().ok()?, m.parse::<u8>().ok()?)))
            .filter(|&(h, m)| h < 24 && m < 60)
            .ok_or_else(|| format!("time \"{}\" is not HH:MM", due.time))?;
        let offset = due.utc_offset.as_str();
        let valid_offset = offset.len() == 6
            && offset.starts_with(['+', '-'])
            && offset.get(3..4) == Some(":")
            && offset
                .bytes()
                .enumerate()
                .all(|(i, b)| matches!(i, 0 | 3) || b.is_ascii_digit());
        if !valid_offset {
            return Err(format!("UTC offset \"{offset}\" is not +HH:MM or -HH:MM"));
        }
        let zone = if offset.get(1..) == Some("00:00") {
            "UTC".to_owned()
        } else {
            format!("UTC{offset}")
        };
        Ok(Moment {
            year: due.date.year(),
            month: due.date.month(),
            day: due.date.day(),
            weekday: usize::from(super::iso_weekday(due.date.weekday()) - 1),
            hour,
            minute,
            zone,
        })
    }
}

/// The language whose tables and templates serve `lang`: the primary
/// subtag (`pt-br` → `pt`) with legacy and macro-language codes mapped
/// (`no`, `nn` → `nb`; `iw` → `he`; `in` → `id`).
pub(super) fn canonical_language(lang: &str) -> &str {
    let primary = lang.split('-').next().unwrap_or_default();
    match primary {
        "no" | "nn" => "nb",
        "iw" => "he",
        "in" => "id",
        other => other,
    }
}

const EN_WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];
const EN_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DE_WEEKDAYS: [&str; 7] = [
    "Montag",
    "Dienstag",
    "Mittwoch",
    "Donnerstag",
    "Freitag",
    "Samstag",
    "Sonntag",
];
const DE_MONTHS: [&str; 12] = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
];
const FR_WEEKDAYS: [&str; 7] = [
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
];
const FR_MONTHS: [&str; 12] = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
];
const ES_WEEKDAYS: [&str; 7] = [
    "lunes",
    "martes",
    "miércoles",
    "jueves",
    "viernes",
    "sábado",
    "domingo",
];
const ES_MONTHS: [&str; 12] = [
    "enero",
    "febrero",
    "marzo",
    "abril",
    "mayo",
    "junio",
    "julio",
    "agosto",
    "septiembre",
    "octubre",
    "noviembre",
    "diciembre",
];
const IT_WEEKDAYS: [&str; 7] = [
    "lunedì",
    "martedì",
    "mercoledì",
    "giovedì",
    "venerdì",
    "sabato",
    "domenica",
];
const IT_MONTHS: [&str; 12] = [
    "gennaio",
    "febbraio",
    "marzo",
    "aprile",
    "maggio",
    "giugno",
    "luglio",
    "agosto",
    "settembre",
    "ottobre",
    "novembre",
    "dicembre",
];
const PT_WEEKDAYS: [&str; 7] = [
    "segunda-feira",
    "terça-feira",
    "quarta-feira",
    "quinta-feira",
    "sexta-feira",
    "sábado",
    "domingo",
];
const PT_MONTHS: [&str; 12] = [
    "janeiro",
    "fevereiro",
    "março",
    "abril",
    "maio",
    "junho",
    "julho",
    "agosto",
    "setembro",
    "outubro",
    "novembro",
    "dezembro",
];
const NL_WEEKDAYS: [&str; 7] = [
    "maandag",
    "dinsdag",
    "woensdag",
    "donderdag",
    "vrijdag",
    "zaterdag",
    "zondag",
];
const NL_MONTHS: [&str; 12] = [
    "januari",
    "februari",
    "maart",
    "april",
    "mei",
    "juni",
    "juli",
    "augustus",
    "september",
    "oktober",
    "november",
    "december",
];
const SV_WEEKDAYS: [&str; 7] = [
    "måndag", "tisdag", "onsdag", "torsdag", "fredag", "lördag", "söndag",
];
const SV_MONTHS: [&str; 12] = [
    "januari",
    "februari",
    "mars",
    "april",
    "maj",
    "juni",
    "juli",
    "augusti",
    "september",
    "oktober",
    "november",
    "december",
];
const DA_WEEKDAYS: [&str; 7] = [
    "mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag",
];
const DA_MONTHS: [&str; 12] = [
    "januar",
    "februar",
    "marts",
    "april",
    "maj",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "december",
];
const NB_WEEKDAYS: [&str; 7] = [
    "mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag",
];
const NB_MONTHS: [&str; 12] = [
    "januar",
    "februar",
    "mars",
    "april",
    "mai",
    "juni",
    "juli",
    "august",
    "september",
    "oktober",
    "november",
    "desember",
];
/// Finnish writes due dates as `ti 24.11.2026`: the abbreviation needs no
/// case ending after `viimeistään`.
const FI_WEEKDAYS: [&str; 7] = ["ma", "ti", "ke", "to", "pe", "la", "su"];
const PL_WEEKDAYS: [&str; 7] = [
    "poniedziałek",
    "wtorek",
    "środa",
    "czwartek",
    "piątek",
    "sobota",
    "niedziela",
];
/// Genitive, as in `24 listopada 2026 r.`
const PL_MONTHS: [&str; 12] = [
    "stycznia",
    "lutego",
    "marca",
    "kwietnia",
    "maja",
    "czerwca",
    "lipca",
    "sierpnia",
    "września",
    "października",
    "listopada",
    "grudnia",
];
const CS_WEEKDAYS: [&str; 7] = [
    "pondělí",
    "úterý",
    "středa",
    "čtvrtek",
    "pátek",
    "sobota",
    "neděle",
];
/// Genitive, as in `24. listopadu 2026`.
const CS_MONTHS: [&str; 12] = [
    "ledna",
    "února",
    "března",
    "dubna",
    "května",
    "června",
    "července",
    "srpna",
    "září",
    "října",
    "listopadu",
    "prosince",
];
const RU_WEEKDAYS: [&str; 7] = [
    "понедельник",
    "вторник",
    "среда",
    "четверг",
    "пятница",
    "суббота",
    "воскресенье",
];
/// Genitive, as in `24 ноября 2026 г.`
const RU_MONTHS: [&str; 12] = [
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
];
const UK_WEEKDAYS: [&str; 7] = [
    "понеділок",
    "вівторок",
    "середа",
    "четвер",
    "пʼятниця",
    "субота",
    "неділя",
];
/// Genitive, as in `24 листопада 2026 р.`
const UK_MONTHS: [&str; 12] = [
    "січня",
    "лютого",
    "березня",
    "квітня",
    "травня",
    "червня",
    "липня",
    "серпня",
    "вересня",
    "жовтня",
    "листопада",
    "грудня",
];
const TR_WEEKDAYS: [&str; 7] = [
    "Pazartesi",
    "Salı",
    "Çarşamba",
    "Perşembe",
    "Cuma",
    "Cumartesi",
    "Pazar",
];
const TR_MONTHS: [&str; 12] = [
    "Ocak", "Şubat", "Mart", "Nisan", "Mayıs", "Haziran", "Temmuz", "Ağustos", "Eylül", "Ekim",
    "Kasım", "Aralık",
];
const AR_WEEKDAYS: [&str; 7] = [
    "الاثنين",
    "الثلاثاء",
    "الأربعاء",
    "الخميس",
    "الجمعة",
    "السبت",
    "الأحد",
];
/// The month names of Egypt and the Gulf, the most widely read.
const AR_MONTHS: [&str; 12] = [
    "يناير",
    "فبراير",
    "مارس",
    "أبريل",
    "مايو",
    "يونيو",
    "يوليو",
    "أغسطس",
    "سبتمبر",
    "أكتوبر",
    "نوفمبر",
    "ديسمبر",
];
const HE_WEEKDAYS: [&str; 7] = [
    "יום שני",
    "יום שלישי",
    "יום רביעי",
    "יום חמישי",
    "יום שישי",
    "יום שבת",
    "יום ראשון",
];
/// With the prefix ב, as in `24 בנובמבר 2026`.
const HE_MONTHS: [&str; 12] = [
    "בינואר",
    "בפברואר",
    "במרץ",
    "באפריל",
    "במאי",
    "ביוני",
    "ביולי",
    "באוגוסט",
    "בספטמבר",
    "באוקטובר",
    "בנובמבר",
    "בדצמבר",
];
const HI_WEEKDAYS: [&str; 7] = [
    "सोमवार",
    "मंगलवार",
    "बुधवार",
    "गुरुवार",
    "शुक्रवार",
    "शनिवार",
    "रविवार",
];
const HI_MONTHS: [&str; 12] = [
    "जनवरी",
    "फ़रवरी",
    "मार्च",
    "अप्रैल",
    "मई",
    "जून",
    "जुलाई",
    "अगस्त",
    "सितंबर",
    "अक्तूबर",
    "नवंबर",
    "दिसंबर",
];
const JA_WEEKDAYS: [&str; 7] = ["月", "火", "水", "木", "金", "土", "日"];
const ZH_WEEKDAYS: [&str; 7] = [
    "星期一",
    "星期二",
    "星期三",
    "星期四",
    "星期五",
    "星期六",
    "星期日",
];
const KO_WEEKDAYS: [&str; 7] = ["월", "화", "수", "목", "금", "토", "일"];
const TH_WEEKDAYS: [&str; 7] = [
    "วันจันทร์",
    "วันอังคาร",
    "วันพุธ",
    "วันพฤหัสบดี",
    "วันศุกร์",
    "วันเสาร์",
    "วันอาทิตย์",
];
const TH_MONTHS: [&str; 12] = [
    "มกราคม",
    "กุมภาพันธ์",
    "มีนาคม",
    "เมษายน",
    "พฤษภาคม",
    "มิถุนายน",
    "กรกฎาคม",
    "สิงหาคม",
    "กันยายน",
    "ตุลาคม",
    "พฤศจิกายน",
    "ธันวาคม",
];
const VI_WEEKDAYS: [&str; 7] = [
    "thứ Hai",
    "thứ Ba",
    "thứ Tư",
    "thứ Năm",
    "thứ Sáu",
    "thứ Bảy",
    "Chủ nhật",
];
const ID_WEEKDAYS: [&str; 7] = [
    "Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu",
];
const ID_MONTHS: [&str; 12] = [
    "Januari",
    "Februari",
    "Maret",
    "April",
    "Mei",
    "Juni",
    "Juli",
    "Agustus",
    "September",
    "Oktober",
    "November",
    "Desember",
];

/// Numeric months: the language writes `24.11.2026` or `2026年11月24日`.
const NO_MONTHS: [&str; 12] = [""; 12];

/// The weekday names (Monday first) and month names of a language with a
/// table.
fn words(lang: &str) -> Option<(&'static [&'static str; 7], &'static [&'static str; 12])> {
    let words = match lang {
        "en" => (&EN_WEEKDAYS, &EN_MONTHS),
        "de" => (&DE_WEEKDAYS, &DE_MONTHS),
        "fr" => (&FR_WEEKDAYS, &FR_MONTHS),
        "es" => (&ES_WEEKDAYS, &ES_MONTHS),
        "it" => (&IT_WEEKDAYS, &IT_MONTHS),
        "pt" => (&PT_WEEKDAYS, &PT_MONTHS),
        "nl" => (&NL_WEEKDAYS, &NL_MONTHS),
        "sv" => (&SV_WEEKDAYS, &SV_MONTHS),
        "da" => (&DA_WEEKDAYS, &DA_MONTHS),
        "nb" => (&NB_WEEKDAYS, &NB_MONTHS),
        "fi" => (&FI_WEEKDAYS, &NO_MONTHS),
        "pl" => (&PL_WEEKDAYS, &PL_MONTHS),
        "cs" => (&CS_WEEKDAYS, &CS_MONTHS),
        "ru" => (&RU_WEEKDAYS, &RU_MONTHS),
        "uk" => (&UK_WEEKDAYS, &UK_MONTHS),
        "tr" => (&TR_WEEKDAYS, &TR_MONTHS),
        "ar" => (&AR_WEEKDAYS, &AR_MONTHS),
        "he" => (&HE_WEEKDAYS, &HE_MONTHS),
        "hi" => (&HI_WEEKDAYS, &HI_MONTHS),
        "ja" => (&JA_WEEKDAYS, &NO_MONTHS),
        "zh" => (&ZH_WEEKDAYS, &NO_MONTHS),
        "ko" => (&KO_WEEKDAYS, &NO_MONTHS),
        "th" => (&TH_WEEKDAYS, &TH_MONTHS),
        "vi" => (&VI_WEEKDAYS, &NO_MONTHS),
        "id" => (&ID_WEEKDAYS, &ID_MONTHS),
        _ => return None,
    };
    Some(words)
}

/// The long date with weekday, e.g. `Tuesday 24 November 2026`,
/// `Dienstag, 24. November 2026`, `2026年11月24日（火）`.
pub(super) fn long_date(lang: &str, m: &Moment) -> String {
    let lang = canonical_language(lang);
    let (y, n, d) = (m.year, m.month, m.day);
    let Some((weekdays, months)) = words(lang) else {
        return format!("{y:04}-{n:02}-{d:02}");
    };
    let w = weekdays.get(m.weekday).copied().unwrap_or_default();
    let mo = usize::try_from(n - 1)
        .ok()
        .and_then(|i| months.get(i))
        .copied()
        .unwrap_or_default();
    match lang {
        "en" | "it" | "nl" | "sv" => format!("{w} {d} {mo} {y}"),
        "de" => format!("{w}, {d}. {mo} {y}"),
        "fr" if d == 1 => format!("{w} 1er {mo} {y}"),
        "fr" => format!("{w} {d} {mo} {y}"),
        "es" | "pt" => format!("{w}, {d} de {mo} de {y}"),
        "da" => format!("{w} den {d}. {mo} {y}"),
        "nb" => format!("{w} {d}. {mo} {y}"),
        "fi" => format!("{w} {d}.{n}.{y}"),
        "pl" => format!("{d} {mo} {y} r. ({w})"),
        "cs" => format!("{d}. {mo} {y} ({w})"),
        "ru" => format!("{d} {mo} {y} г. ({w})"),
        "uk" => format!("{d} {mo} {y} р. ({w})"),
        "tr" => format!("{d} {mo} {y} {w}"),
        "ar" => format!("{w}، {d} {mo} {y}"),
        "he" | "hi" | "id" => format!("{w}, {d} {mo} {y}"),
        "ja" | "zh" => format!("{y}年{n}月{d}日（{w}）"),
        "ko" => format!("{y}년 {n}월 {d}일({w})"),
        // Thai dates count years in the Buddhist Era: 2026 is 2569.
        "th" => format!("{w}ที่ {d} {mo} {}", i32::from(y) + 543),
        "vi" => format!("{w}, ngày {d} tháng {n} năm {y}"),
        _ => format!("{y:04}-{n:02}-{d:02}"),
    }
}

/// The time of day as running text writes it: `10:00`, `10:00 Uhr`,
/// `10 h 30`, `kl. 10.00`, `10:00 น.`.
pub(super) fn clock(lang: &str, m: &Moment) -> String {
    let (h, min) = (m.hour, m.minute);
    match canonical_language(lang) {
        "de" => format!("{h}:{min:02} Uhr"),
        "fr" if min == 0 => format!("{h} h"),
        "fr" => format!("{h} h {min:02}"),
        "es" => format!("{h}:{min:02}"),
        "pt" => format!("{h}h{min:02}"),
        "nl" => format!("{h}.{min:02} uur"),
        "sv" | "da" | "nb" => format!("kl. {h}.{min:02}"),
        "fi" => format!("klo {h}.{min:02}"),
        "pl" => format!("godz. {h}:{min:02}"),
        "tr" => format!("saat {h:02}:{min:02}"),
        "ar" => format!("الساعة {h:02}:{min:02}"),
        "he" => format!("בשעה {h:02}:{min:02}"),
        "hi" => format!("{h:02}:{min:02} बजे"),
        "th" => format!("{h:02}:{min:02} น."),
        "id" => format!("pukul {h:02}.{min:02}"),
        _ => format!("{h:02}:{min:02}"),
    }
}

/// Date, time and UTC offset together, shaped to follow the language's
/// "by" in the shipped acknowledgement.
pub(super) fn date_time(lang: &str, m: &Moment) -> String {
    let date = long_date(lang, m);
    let time = clock(lang, m);
    let zone = &m.zone;
    match canonical_language(lang) {
        "en" | "de" | "pl" | "cs" | "ru" | "uk" | "tr" | "hi" | "he" => {
            format!("{date}, {time} ({zone})")
        }
        "fr" => format!("{date} à {time} ({zone})"),
        // `a la 1:00` but `a las 10:00`.
        "es" if m.hour == 1 => format!("{date}, a la {time} ({zone})"),
        "es" => format!("{date}, a las {time} ({zone})"),
        "it" => format!("{date}, ore {time} ({zone})"),
        // `à 0h00`, `à 1h00` but `às 10h00`.
        "pt" if m.hour <= 1 => format!("{date}, à {time} ({zone})"),
        "pt" => format!("{date}, às {time} ({zone})"),
        "nl" => format!("{date} om {time} ({zone})"),
        "ar" => format!("{date}، {time} ({zone})"),
        "ja" | "zh" => format!("{date}{time}（{zone}）"),
        "ko" => format!("{date} {time}({zone})"),
        "th" => format!("{date} เวลา {time} ({zone})"),
        "vi" => format!("{time} ({zone}), {date}"),
        _ => format!("{date} {time} ({zone})"),
    }
}

/// Which of the forms given to `plural` fits `n`: the index of n's CLDR
/// plural category among the categories the language has for integers,
/// in CLDR order (zero, one, two, few, many, other).
pub(super) fn plural_index(lang: &str, n: i64) -> usize {
    let n = n.unsigned_abs();
    let (n10, n100) = (n % 10, n % 100);
    let lang = canonical_language(lang);
    match lang {
        // No plural forms.
        "ja" | "zh" | "ko" | "th" | "vi" | "id" => 0,
        // one: 0 and 1 | other.
        "fr" | "pt" | "hi" => usize::from(n > 1),
        // one | few | many.
        "ru" | "uk" | "pl" => {
            let one = if lang == "pl" {
                n == 1
            } else {
                n10 == 1 && n100 != 11
            };
            if one {
                0
            } else if (2..=4).contains(&n10) && !(12..=14).contains(&n100) {
                1
            } else {
                2
            }
        }
        // one | few | other.
        "cs" => match n {
            1 => 0,
            2..=4 => 1,
            _ => 2,
        },
        // one | two | other.
        "he" => match n {
            1 => 0,
            2 => 1,
            _ => 2,
        },
        // zero | one | two | few | many | other.
        "ar" => match (n, n100) {
            (0, _) => 0,
            (1, _) => 1,
            (2, _) => 2,
            (_, 3..=10) => 3,
            (_, 11..=99) => 4,
            _ => 5,
        },
        // one | other: English, German, the Nordic and most others.
        _ => usize::from(n != 1),
    }
}

/// The language's name in itself, for alerts: `Deutsch`, `日本語`.
pub(super) fn language_name(code: &str) -> Option<&'static str> {
    let name = match canonical_language(&code.to_ascii_lowercase()) {
        "en" => "English",
        "de" => "Deutsch",
        "fr" => "français",
        "es" => "español",
        "it" => "italiano",
        "pt" => "português",
        "nl" => "Nederlands",
        "sv" => "svenska",
        "da" => "dansk",
        "nb" => "norsk",
        "fi" => "suomi",
        "pl" => "polski",
        "cs" => "čeština",
        "ru" => "русский",
        "uk" => "українська",
        "tr" => "Türkçe",
        "ar" => "العربية",
        "he" => "עברית",
        "hi" => "हिन्दी",
        "ja" => "日本語",
        "zh" => "中文",
        "ko" => "한국어",
        "th" => "ไทย",
        "vi" => "Tiếng Việt",
        "id" => "Bahasa Indonesia",
        _ => return None,
    };
    Some(name)
}
