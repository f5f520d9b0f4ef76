//! Stage 4: which language did the customer write in → [`Detection`].
//!
//! whatlang guesses from trigrams; we decide how far to trust it:
//!
//! - **Input.** The extracted customer text, cleaned of URLs, addresses,
//!   numbers, identifiers and code or log lines (they are not language and
//!   skew trigrams), see [`clean_text`]. The subject, stripped of "Re:"-style
//!   prefixes and ticket tags, is added only when the message is not a
//!   reply (or the body has no letters): a reply's subject is usually our
//!   own words, and a Spanish reply to "Re: We received your request" must
//!   come out Spanish.
//! - **Candidates.** [`Detector::with_languages`] restricts detection to
//!   the languages a team serves, built once from configuration; it
//!   removes the confusions that cost most (Danish/Norwegian,
//!   Croatian/Serbian/Slovenian, Indonesian/Malay-like noise, Tagalog for
//!   short English). [`detect`] uses every language whatlang knows.
//! - **Reliability** ([`Detection::reliable`]), documented at
//!   [`Detector::detect`]: script certainty for scripts only one
//!   language uses (kana, hangul, Thai, Greek, Hebrew, Armenian, Georgian,
//!   …), else whatlang's own verdict plus a minimum number of letters.
//!
//! Codes are BCP 47 primary subtags: ISO 639-1 where one exists, else the
//! ISO 639-3 code. Norwegian is "nb": whatlang models Bokmål (`Nob`), which
//! is also what ~90 % of written Norwegian is.

mod clean;
mod refine;

#[cfg(test)]
mod tests;

use std::sync::LazyLock;

use whatlang::{Lang, Script};

use crate::mail::{CustomerText, Detection, Language, LanguageSource};

pub use clean::{clean_subject, clean_text, is_reply_subject};

/// Fewest letters for a reliable guess in a script many languages share
/// (Latin, Cyrillic, Arabic, Devanagari). "Danke" or "OK thanks" are not
/// evidence; a short sentence is.
/// At most this much customer text is cleaned for detection.
pub const SAMPLE_BYTES: usize = 8 * 1024;
/// At most this much clean text is given to whatlang: about 170 words of
/// Latin script, 340 characters of CJK. Accuracy no longer improves past
/// a few hundred letters, and whatlang's cost grows with the length times
/// the candidates.
pub const DETECT_BYTES: usize = 1024;

/// The longest prefix of `s` of at most `max` bytes, cut at a character
/// boundary.
fn prefix(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or(s)
}

pub const MIN_LETTERS_SHARED_SCRIPT: usize = 12;

/// Fewest letters for a reliable guess in a script one language owns
/// (hangul, kana, Thai, Greek…): two characters already settle it.
pub const MIN_LETTERS_OWN_SCRIPT: usize = 2;

/// Fewest Han characters before Han-only text is called Chinese: a very
/// short all-kanji text ("東京駅") may be Japanese.
pub const MIN_HAN_FOR_CHINESE: usize = 4;

/// With this many letters a whatlang confidence above
/// [`LONG_TEXT_CONFIDENCE`] is enough, below whatlang's own 0.9 bar: long
/// texts in close languages (da/nb, hr/sr) get low confidence even when
/// right, and the restricted detector has already removed the neighbours.
pub const LONG_TEXT_LETTERS: usize = 60;
pub const LONG_TEXT_CONFIDENCE: f64 = 0.5;

/// A language detector, built once (from configuration, for the daemon)
/// and shared: it holds whatlang's detector with the configured candidate
/// list.
#[derive(Debug, Clone)]
pub struct Detector {
    inner: whatlang::Detector,
    /// The configured candidates; `None` means every language whatlang
    /// knows.
    allowed: Option<Vec<Lang>>,
}

/// A configured language code that whatlang cannot detect; configuration
/// loading reports it with the position of the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("language {code:?} cannot be detected; use a code such as \"en\", \"de\" or \"nb\"")]
pub struct UnknownLanguage {
    pub code: String,
}

impl Default for Detector {
    fn default() -> Self {
        Detector::new()
    }
}

impl Detector {
    /// A detector over every language whatlang knows.
    pub fn new() -> Self {
        Detector {
            inner: whatlang::Detector::new(),
            allowed: None,
        }
    }

    /// A detector restricted to these languages (BCP 47 tags such as
    /// "de", "pt-BR", "nb"; ISO 639-3 codes work too). Every unknown code
    /// is reported, not just the first.
    pub fn with_languages<S: AsRef<str>>(
        codes: impl IntoIterator<Item = S>,
    ) -> Result<Self, Vec<UnknownLanguage>> {
        let mut langs = Vec::new();
        let mut unknown = Vec::new();
        for code in codes {
            let code = code.as_ref();
            match normalize_tag(code).as_deref().and_then(lang_from_code) {
                Some(l) if !langs.contains(&l) => langs.push(l),
                Some(_) => {}
                None => unknown.push(UnknownLanguage {
                    code: code.to_owned(),
                }),
            }
        }
        if !unknown.is_empty() {
            return Err(unknown);
        }
        if langs.is_empty() {
            return Ok(Detector::new());
        }
        Ok(Detector {
            inner: whatlang::Detector::with_allowlist(langs.clone()),
            allowed: Some(langs),
        })
    }

    /// The configured candidates as BCP 47 codes; empty when unrestricted.
    pub fn languages(&self) -> Vec<&'static str> {
        self.allowed.iter().flatten().map(|l| bcp47(*l)).collect()
    }

    /// Guesses the language of the customer text plus (for a new message)
    /// the subject. Pure.
    ///
    /// `reliable` is true when one of these holds:
    /// 1. the text is written in a script only one language uses (hangul,
    ///    kana, Thai, Greek, Hebrew, Armenian, Georgian, the Indic scripts
    ///    whatlang maps to one language, Ethiopic, Khmer, …) with at least
    ///    [`MIN_LETTERS_OWN_SCRIPT`] letters; Han-only text counts as
    ///    Chinese from [`MIN_HAN_FOR_CHINESE`] characters, any kana makes
    ///    it Japanese;
    /// 2. whatlang calls it reliable (confidence > 0.9) and there are at
    ///    least [`MIN_LETTERS_SHARED_SCRIPT`] letters;
    /// 3. there are at least [`LONG_TEXT_LETTERS`] letters and whatlang's
    ///    confidence exceeds [`LONG_TEXT_CONFIDENCE`];
    /// 4. there are at least [`MIN_LETTERS_SHARED_SCRIPT`] letters and the
    ///    marker words of the closest neighbour language lose clearly
    ///    (Spanish vs Portuguese, Danish vs Norwegian, Russian vs
    ///    Bulgarian/Ukrainian, Czech vs Slovak), where whatlang's own
    ///    confidence is low even on clear sentences.
    ///
    /// A language outside the configured list (possible only for a script
    /// one language owns, which whatlang does not filter) is reported but
    /// never reliable, so `resolve` falls back to a language the team
    /// serves.
    pub fn detect(&self, text: &CustomerText, subject: &str) -> Option<Detection> {
        // A sample is enough: language identification is settled after a
        // few hundred letters, and customer text can be a 100 KB log paste.
        // The customer's own words come first (quotes are already gone).
        let body = clean::clean_text_upto(prefix(&text.text, SAMPLE_BYTES), DETECT_BYTES);
        let use_subject = !is_reply_subject(subject) || letters(&body) == 0;
        let input = if use_subject {
            let s = clean_subject(subject);
            if body.is_empty() {
                s
            } else {
                format!("{body}\n{s}")
            }
        } else {
            body
        };
        self.detect_clean(&input)
    }

    /// Guesses the language of already clean text (no subject handling).
    /// The evaluation uses it on plain sentences.
    pub fn detect_text(&self, text: &str) -> Option<Detection> {
        self.detect_clean(&clean_text(text))
    }

    fn detect_clean(&self, input: &str) -> Option<Detection> {
        let input = prefix(input, DETECT_BYTES);
        let counts = ScriptCounts::of(input);
        if counts.letters == 0 {
            return None;
        }
        // Kana and hangul decide on their own, before trigrams: whatlang
        // calls mixed Han + kana text Chinese when kana are under 5 %.
        if let Some((lang, n)) = counts.own_script_east_asian() {
            return Some(self.finish(lang, 1.0, n >= MIN_LETTERS_OWN_SCRIPT));
        }
        let info = self.inner.detect(input)?;
        let lang = refine::refine(info.lang(), input, &|l| self.allows(l));
        let confidence = info.confidence();
        let reliable = match info.script() {
            Script::Mandarin => counts.han >= MIN_HAN_FOR_CHINESE && confidence >= 0.99,
            Script::Latin | Script::Cyrillic | Script::Arabic | Script::Devanagari => {
                counts.letters >= MIN_LETTERS_SHARED_SCRIPT
                    && (info.is_reliable()
                        || refine::confirmed_by_words(lang, input)
                        || (counts.letters >= LONG_TEXT_LETTERS
                            && confidence > LONG_TEXT_CONFIDENCE))
            }
            // Every other script is owned by one language in whatlang
            // (Hebrew by Hebrew and Yiddish; Yiddish mail is rare enough
            // that Hebrew script is trusted too).
            _ => counts.letters >= MIN_LETTERS_OWN_SCRIPT,
        };
        Some(self.finish(lang, confidence, reliable))
    }

    fn finish(&self, lang: Lang, confidence: f64, reliable: bool) -> Detection {
        Detection {
            language: bcp47(lang).to_owned(),
            confidence,
            reliable: reliable && self.allows(lang),
        }
    }

    /// True when `lang` is among the configured candidates.
    fn allows(&self, lang: Lang) -> bool {
        self.allowed.as_ref().is_none_or(|a| a.contains(&lang))
    }
}

/// The shared unrestricted detector behind [`detect`].
static ALL_LANGUAGES: LazyLock<Detector> = LazyLock::new(Detector::new);

/// Guesses the language of the extracted text plus the subject, over all
/// languages. The daemon uses a [`Detector`] built from its configured
/// languages instead. Pure.
pub fn detect(text: &CustomerText, subject: &str) -> Option<Detection> {
    ALL_LANGUAGES.detect(text, subject)
}

/// Applies the fallbacks in order: a reliable detection, the customer's
/// previous tickets, Content-Language, the mailbox default. Language tags
/// are normalised to their primary subtag ("de-DE" → "de", "zh-Hant-TW" →
/// "zh", "EN" → "en"); a tag that is not a language ("*", "x-klingon",
/// garbage) is skipped as if absent.
pub fn resolve(
    detection: Option<&Detection>,
    previous: Option<&str>,
    content_language: Option<&str>,
    mailbox_default: &str,
) -> Language {
    if let Some(d) = detection.filter(|d| d.reliable) {
        return Language {
            code: normalize_tag(&d.language).unwrap_or_else(|| d.language.clone()),
            confidence: d.confidence,
            source: LanguageSource::Detected,
        };
    }
    if let Some(p) = previous.and_then(normalize_tag) {
        return Language {
            code: p,
            confidence: 0.0,
            source: LanguageSource::PreviousTicket,
        };
    }
    if let Some(c) = content_language.and_then(normalize_tag) {
        return Language {
            code: c,
            confidence: 0.0,
            source: LanguageSource::ContentLanguage,
        };
    }
    Language {
        code: normalize_tag(mailbox_default).unwrap_or_else(|| mailbox_default.to_owned()),
        confidence: 0.0,
        source: LanguageSource::MailboxDefault,
    }
}

/// The primary language subtag of a BCP 47 tag (or a Content-Language
/// value, whose first tag counts), lowercased and mapped to the codes
/// detection produces: ISO 639-1 where one exists ("deu" → "de"),
/// deprecated codes replaced ("iw" → "he", "in" → "id", "ji" → "yi"),
/// Norwegian "no" → "nb". `None` for anything that is not a language tag.
pub fn normalize_tag(tag: &str) -> Option<String> {
    let first = tag.split(',').next()?.split(';').next()?.trim();
    let primary = first.split(['-', '_']).next()?.trim();
    let len = primary.chars().count();
    if !(2..=3).contains(&len) || !primary.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    let lower = primary.to_ascii_lowercase();
    let mapped = match lower.as_str() {
        "iw" => "he",
        "in" => "id",
        "ji" => "yi",
        "no" => "nb",
        // Reserved / special ISO 639 codes: not a language.
        "und" | "mul" | "zxx" | "mis" => return None,
        other if other.len() == 3 => match Lang::from_code(other) {
            Some(l) => bcp47(l),
            None => other,
        },
        other => other,
    };
    Some(mapped.to_owned())
}

/// whatlang's language for a normalised BCP 47 code ("de", "nb", "zh"), or
/// a 639-3 code whatlang knows.
fn lang_from_code(code: &str) -> Option<Lang> {
    Lang::all()
        .iter()
        .copied()
        .find(|l| bcp47(*l) == code)
        .or_else(|| Lang::from_code(code))
}

/// The BCP 47 primary subtag for a whatlang language: ISO 639-1 where one
/// exists, else the ISO 639-3 code. Mandarin (`Cmn`) is "zh", Iranian
/// Persian (`Pes`) "fa", Bokmål (`Nob`) "nb".
pub fn bcp47(lang: Lang) -> &'static str {
    match lang {
        Lang::Epo => "eo",
        Lang::Eng => "en",
        Lang::Rus => "ru",
        Lang::Cmn => "zh",
        Lang::Spa => "es",
        Lang::Por => "pt",
        Lang::Ita => "it",
        Lang::Ben => "bn",
        Lang::Fra => "fr",
        Lang::Deu => "de",
        Lang::Ukr => "uk",
        Lang::Kat => "ka",
        Lang::Ara => "ar",
        Lang::Hin => "hi",
        Lang::Jpn => "ja",
        Lang::Heb => "he",
        Lang::Yid => "yi",
        Lang::Pol => "pl",
        Lang::Amh => "am",
        Lang::Jav => "jv",
        Lang::Kor => "ko",
        Lang::Nob => "nb",
        Lang::Dan => "da",
        Lang::Swe => "sv",
        Lang::Fin => "fi",
        Lang::Tur => "tr",
        Lang::Nld => "nl",
        Lang::Hun => "hu",
        Lang::Ces => "cs",
        Lang::Ell => "el",
        Lang::Bul => "bg",
        Lang::Bel => "be",
        Lang::Mar => "mr",
        Lang::Kan => "kn",
        Lang::Ron => "ro",
        Lang::Slv => "sl",
        Lang::Hrv => "hr",
        Lang::Srp => "sr",
        Lang::Mkd => "mk",
        Lang::Lit => "lt",
        Lang::Lav => "lv",
        Lang::Est => "et",
        Lang::Tam => "ta",
        Lang::Vie => "vi",
        Lang::Urd => "ur",
        Lang::Tha => "th",
        Lang::Guj => "gu",
        Lang::Uzb => "uz",
        Lang::Pan => "pa",
        Lang::Aze => "az",
        Lang::Ind => "id",
        Lang::Tel => "te",
        Lang::Pes => "fa",
        Lang::Mal => "ml",
        Lang::Ori => "or",
        Lang::Mya => "my",
        Lang::Nep => "ne",
        Lang::Sin => "si",
        Lang::Khm => "km",
        Lang::Tuk => "tk",
        Lang::Aka => "ak",
        Lang::Zul => "zu",
        Lang::Sna => "sn",
        Lang::Afr => "af",
        Lang::Lat => "la",
        Lang::Slk => "sk",
        Lang::Cat => "ca",
        Lang::Tgl => "tl",
        Lang::Hye => "hy",
        Lang::Cym => "cy",
    }
}

/// Letter counts per script family that settle East Asian text before
/// trigrams are consulted.
#[derive(Debug, Default, Clone, Copy)]
struct ScriptCounts {
    letters: usize,
    han: usize,
    kana: usize,
    hangul: usize,
}

impl ScriptCounts {
    fn of(text: &str) -> Self {
        let mut c = ScriptCounts::default();
        for ch in text.chars().filter(|ch| ch.is_alphabetic()) {
            c.letters += 1;
            match ch as u32 {
                0x3040..=0x30FF | 0x31F0..=0x31FF | 0xFF66..=0xFF9D => c.kana += 1,
                0xAC00..=0xD7AF | 0x1100..=0x11FF | 0x3130..=0x318F => c.hangul += 1,
                0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0xF900..=0xFAFF | 0x20000..=0x2FFFF => {
                    c.han += 1
                }
                _ => {}
            }
        }
        c
    }

    /// Japanese when kana make up more than 5 % of the CJK letters (as
    /// whatlang decides, but also for mixed text it would send to
    /// trigrams); Korean when hangul dominates. With the letter count.
    fn own_script_east_asian(&self) -> Option<(Lang, usize)> {
        let cjk = self.han + self.kana + self.hangul;
        if cjk == 0 || cjk * 2 < self.letters {
            return None;
        }
        if self.hangul * 2 > cjk {
            return Some((Lang::Kor, self.hangul));
        }
        if self.kana * 20 > self.han + self.kana {
            return Some((Lang::Jpn, self.kana + self.han));
        }
        None
    }
}

fn letters(s: &str) -> usize {
    s.chars().filter(|c| c.is_alphabetic()).count()
}
