//! Localized mail templates: the acknowledgement a customer gets at once,
//! the warning and escalation the queue's contacts get when a ticket nears
//! or breaches its response target, and the wrapper around an agent's reply.
//!
//! # Template files
//!
//! One UTF-8 file per kind and language, `<kind>/<lang>.txt`:
//!
//! ```text
//! Subject: [{{ ticket }}] We have received your request: {{ subject }}
//!
//! Dear {{ customer_name }},
//! …
//! ```
//!
//! * line 1 is `Subject:` followed by a one-line template for the subject;
//! * line 2 is empty;
//! * the rest is the template for the plain-text body.
//!
//! The kind is the directory (`ack`, `warning`, `escalation`, `reply`; see
//! [`TemplateKind`]); the language is the file name, a lowercase language
//! tag such as `de` or `pt-br`. The variables are the fields of the
//! context for the kind ([`AckContext`], [`AlertContext`], [`ReplyContext`])
//! plus `lang`, the language of the file being rendered. The syntax is
//! [minijinja](https://docs.rs/minijinja/2) (Jinja2) with these settings:
//!
//! * no auto-escaping: the output is plain text, not HTML;
//! * an undefined variable is an error, and `none` prints as nothing;
//! * `trim_blocks` and `lstrip_blocks`: a line holding only a `{% … %}` tag
//!   leaves nothing in the output. The same rule removes the line break
//!   after a tag at the very end of a line of text, so inline `{% if %}`s
//!   must not end a line;
//! * the filters `date`, `time`, `datetime`, `plural`, `quote`, `oneline`
//!   and `language_name`, backed by the per-language tables in `locale`.
//!
//! `templates/README.md` is the same description for operators, with every
//! variable and filter.
//!
//! # Shipped templates and overrides
//!
//! The templates under `templates/` in the source tree are compiled into the
//! binary ([`SHIPPED_LANGUAGES`]). An operator replaces any of them, or adds
//! a language, with a file of the same layout in an override directory.
//! [`Templates::load`] compiles every template and renders each once with
//! sample data, so a broken override fails at load time (config check,
//! reload) with its file and line, not when a mail is due.
//!
//! # Header safety
//!
//! Customer data (subject, name, text) reaches the subject and the body. The
//! rendered subject is forced onto one line: control characters and line
//! breaks become spaces, whitespace runs collapse to one space, explicit
//! bidi controls are dropped, and it is cut to [`MAX_SUBJECT_CHARS`]
//! characters, keeping the `[ticket]` tag. The body loses carriage returns
//! and control characters other than newline and tab. The outbox still
//! validates every header it builds; this is the first check, not the only
//! one.

mod locale;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use minijinja::value::{Rest, ViaDeserialize};
use minijinja::{AutoEscape, Environment, ErrorKind, State, UndefinedBehavior, Value};
use serde::{Deserialize, Serialize};

/// The longest subject we produce, in characters. Long enough for the tag
/// and a customer's subject; short enough that no mail system truncates it.
pub const MAX_SUBJECT_CHARS: usize = 200;

/// The language every lookup ends with. Always shipped.
const LAST_RESORT: &str = "en";

/// Which mail a template renders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TemplateKind {
    /// Sent to the customer at once when a ticket is opened; [`AckContext`].
    Ack,
    /// Sent to the queue's contacts before a response target is breached;
    /// [`AlertContext`] with level 0.
    Warning,
    /// Sent to the queue's contacts when a target is breached, once per
    /// level; [`AlertContext`] with level 1, 2, ….
    Escalation,
    /// An agent's answer from the CLI, wrapped with a footer;
    /// [`ReplyContext`].
    Reply,
}

impl TemplateKind {
    pub const ALL: [TemplateKind; 4] = [
        TemplateKind::Ack,
        TemplateKind::Warning,
        TemplateKind::Escalation,
        TemplateKind::Reply,
    ];

    /// The directory name of this kind, e.g. `ack`.
    pub fn as_str(self) -> &'static str {
        match self {
            TemplateKind::Ack => "ack",
            TemplateKind::Warning => "warning",
            TemplateKind::Escalation => "escalation",
            TemplateKind::Reply => "reply",
        }
    }

    /// The kind whose directory is called `name`.
    pub fn from_dir_name(name: &str) -> Option<TemplateKind> {
        TemplateKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for TemplateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Declares the shipped languages. Each one needs the four files
/// `templates/{ack,warning,escalation,reply}/<lang>.txt`; adding a language
/// is one line here (plus its date words in `locale.rs`).
macro_rules! shipped {
    ($($lang:literal),+ $(,)?) => {
        /// The languages whose templates are compiled into the binary.
        pub const SHIPPED_LANGUAGES: &[&str] = &[$($lang),+];

        /// `(kind, language, file text)` of every compiled-in template.
        const SHIPPED: &[(TemplateKind, &str, &str)] = &[$(
            (TemplateKind::Ack, $lang, include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"), "/templates/ack/", $lang, ".txt"))),
            (TemplateKind::Warning, $lang, include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"), "/templates/warning/", $lang, ".txt"))),
            (TemplateKind::Escalation, $lang, include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"), "/templates/escalation/", $lang, ".txt"))),
            (TemplateKind::Reply, $lang, include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"), "/templates/reply/", $lang, ".txt"))),
        )+];
    };
}

shipped![
    "en", //
    "de", //
    "fr", //
    "es", //
    "it", //
    "pt", //
    "nl", //
    "sv", //
    "da", //
    "nb", //
    "fi", //
    "pl", //
    "cs", //
    "ru", //
    "uk", //
    "tr", //
    "ar", //
    "he", //
    "hi", //
    "ja", //
    "zh", //
    "ko", //
    "th", //
    "vi", //
    "id", //
];

/// The acknowledgement to a customer who opened a ticket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckContext {
    /// The ticket as people see it, e.g. `PD-42`; also the subject tag
    /// `[PD-42]` that threads the customer's replies.
    pub ticket: String,
    /// The ticket's subject as the customer wrote it, without `Re:`
    /// prefixes; may be empty. Customer data: templates print it with
    /// `oneline` in the body, and the subject line is sanitized anyway.
    pub subject: String,
    /// The customer's display name, when their From header had one.
    pub customer_name: Option<String>,
    /// Who signs: the mailbox's display name, e.g. `Acme Support`.
    pub team_name: String,
    /// When the customer can expect an answer.
    pub response: ResponseTarget,
}

/// The queue's response target, as promised to the customer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseTarget {
    /// The target in hours, e.g. 24; business hours when `business_hours`.
    pub hours: i64,
    /// True when the queue counts only business hours; false for 24/7
    /// queues. Templates then speak of business hours instead of a number.
    pub business_hours: bool,
    /// When the target runs out, in the customer's own UTC offset when
    /// known (from their Date header), else in the queue's zone.
    pub due: LocalTime,
}

/// A moment as a wall clock somewhere shows it. Templates format it with
/// the `date`, `time` and `datetime` filters in their own language.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalTime {
    /// The local date; serialized as `YYYY-MM-DD`.
    pub date: jiff::civil::Date,
    /// The local time as `HH:MM` (24-hour clock; seconds dropped).
    pub time: String,
    /// ISO weekday of `date`: Monday = 1 … Sunday = 7.
    pub weekday: u8,
    /// The UTC offset of the wall clock, e.g. `+01:00` or `-05:30`.
    pub utc_offset: String,
}

impl LocalTime {
    /// `ts` as the wall clock in `tz` shows it. For a customer's offset
    /// taken from a Date header, pass `TimeZone::fixed(offset)` or use
    /// [`LocalTime::with_offset`].
    pub fn new(ts: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> LocalTime {
        LocalTime::with_offset(ts, tz.to_offset(ts))
    }

    /// `ts` as a wall clock at a fixed UTC `offset` shows it.
    pub fn with_offset(ts: jiff::Timestamp, offset: jiff::tz::Offset) -> LocalTime {
        let dt = offset.to_datetime(ts);
        let seconds = offset.seconds();
        let sign = if seconds < 0 { '-' } else { '+' };
        let minutes = seconds.unsigned_abs() / 60;
        LocalTime {
            date: dt.date(),
            time: format!("{:02}:{:02}", dt.hour(), dt.minute()),
            weekday: iso_weekday(dt.weekday()),
            utc_offset: format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60),
        }
    }
}

fn iso_weekday(day: jiff::civil::Weekday) -> u8 {
    use jiff::civil::Weekday;
    match day {
        Weekday::Monday => 1,
        Weekday::Tuesday => 2,
        Weekday::Wednesday => 3,
        Weekday::Thursday => 4,
        Weekday::Friday => 5,
        Weekday::Saturday => 6,
        Weekday::Sunday => 7,
    }
}

/// Which response clock a warning or escalation is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Clock {
    /// The customer has had no answer yet; `"first-response"` in templates.
    FirstResponse,
    /// The customer wrote again and waits for the next answer;
    /// `"next-response"` in templates.
    NextResponse,
}

/// A warning (level 0) or escalation (level 1, 2, …) to a queue's contacts.
/// Written in the operator language; the times are preformatted by the SLA
/// timer, which knows the queue's zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertContext {
    /// The ticket, e.g. `PD-42`.
    pub ticket: String,
    /// The ticket's subject as the customer wrote it; may be empty.
    pub subject: String,
    pub customer_name: Option<String>,
    pub customer_address: String,
    /// The ticket's language code, e.g. `de`; the customer gets answers in it.
    pub language: String,
    pub clock: Clock,
    /// 0 for a warning before the breach; 1, 2, … for escalations after it.
    pub level: u32,
    /// How long the ticket has been open, e.g. `22 h 10 min`.
    pub age: String,
    /// The due time in `timezone`, e.g. `2026-11-24 10:00`.
    pub due_local: String,
    /// The due time in UTC, e.g. `2026-11-24 09:00`.
    pub due_utc: String,
    /// The queue's name, e.g. `billing`.
    pub queue: String,
    /// The queue's IANA time zone, e.g. `Europe/Berlin`.
    pub timezone: String,
    /// The customer's latest text without quotes and signature; the caller
    /// caps its length. Templates indent it with `quote`.
    pub excerpt: String,
    /// The shared mailbox agents answer from, e.g. `support@example.com`.
    pub mailbox_address: String,
}

/// An agent's answer sent from the CLI (`postdesk reply`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyContext {
    /// The ticket, e.g. `PD-42`.
    pub ticket: String,
    /// The ticket's subject; the reply's subject is `[PD-42] Re: <subject>`.
    pub subject: String,
    /// The agent's text, as written; printed first, unchanged.
    pub body: String,
    /// The mailbox's display name.
    pub team_name: String,
    /// The agent's name, when the agent gave one.
    pub agent_name: Option<String>,
}

/// A rendered mail, ready for the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, at most [`MAX_SUBJECT_CHARS`] characters, no control
    /// characters.
    pub subject: String,
    /// The plain-text body with `\n` line ends, ending in one `\n`.
    pub text: String,
    /// The language of the template actually used, e.g. `pt` for a
    /// request in `pt-BR`; the outbox writes it to Content-Language.
    pub language: String,
}

/// One thing wrong with one template file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateProblem {
    /// The file: a path in the override directory, or
    /// `built-in templates/<kind>/<lang>.txt`.
    pub file: String,
    /// The 1-based line in that file, when known.
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for TemplateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Why templates cannot be loaded or a mail cannot be rendered. Load errors
/// are for the operator (config check, reload); render errors make the
/// outbox row fail, since retrying renders the same thing.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The override directory or a file in it cannot be read.
    #[error("cannot read template override {}; check templates.dir in the config", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Templates that do not compile or do not render with sample data;
    /// every problem found, in file order.
    #[error("{}", list_problems(.0))]
    Invalid(Vec<TemplateProblem>),
    /// A template failed with real data (it rendered with sample data at
    /// load time, so this is a data-dependent failure in an override).
    #[error("cannot render {0}")]
    Render(TemplateProblem),
    /// No template for the language, the fallback or English. Cannot happen
    /// with the shipped set; kept so a lookup never panics.
    #[error("no {kind} template for \"{lang}\", \"{fallback}\" or \"en\"")]
    Missing {
        kind: TemplateKind,
        lang: String,
        fallback: String,
    },
}

fn list_problems(problems: &[TemplateProblem]) -> String {
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    lines.join("\n")
}

/// Where a template came from and its text, before compiling.
struct Source {
    /// For messages: the override path, or `built-in templates/…`.
    file: String,
    text: Cow<'static, str>,
}

/// The compiled templates of every kind and language. Cheap to share
/// (`Arc<Templates>`); replace it as a whole on reload.
pub struct Templates {
    env: Environment<'static>,
    /// Every `(kind, language)` there is a template for, with its file name
    /// for error messages.
    files: BTreeMap<(TemplateKind, String), String>,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("files", &self.files.values().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Templates {
    /// Compiles the shipped templates, replaced or extended by the files in
    /// `override_dir` (`<dir>/<kind>/<lang>.txt`), and renders each once with
    /// sample data. Every problem is reported at once, with file and line.
    ///
    /// Reads files synchronously: call it from `spawn_blocking` in async code.
    pub fn load(override_dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut sources: BTreeMap<(TemplateKind, String), Source> = BTreeMap::new();
        for &(kind, lang, text) in SHIPPED {
            let file = format!("built-in templates/{kind}/{lang}.txt");
            let text = Cow::Borrowed(text);
            sources.insert((kind, lang.to_owned()), Source { file, text });
        }
        let mut problems = Vec::new();
        if let Some(dir) = override_dir {
            read_overrides(dir, &mut sources, &mut problems)?;
        }

        // Every template is compiled and test-rendered here, in a scratch
        // environment; the one kept compiles a template on its first use
        // from `texts`. A compiled template is about 20 KiB (minijinja
        // reserves room for its instructions) and a daemon uses a few of
        // its hundred: keeping all of them compiled held 2.3 MB of heap.
        let mut env = environment();
        let mut files = BTreeMap::new();
        let mut texts: BTreeMap<String, String> = BTreeMap::new();
        for ((kind, lang), source) in sources {
            let before = problems.len();
            match split_file(&source.text) {
                Err((line, message)) => problems.push(TemplateProblem {
                    file: source.file.clone(),
                    line: Some(line),
                    message: message.to_owned(),
                }),
                Ok((subject, body)) => {
                    let name = template_name(kind, &lang);
                    let subject_name = format!("{name}#subject");
                    if let Err(e) = env.add_template_owned(subject_name.clone(), subject.clone()) {
                        problems.push(problem(&source.file, Part::Subject, &e));
                    }
                    if let Err(e) = env.add_template_owned(name.clone(), body.clone()) {
                        problems.push(problem(&source.file, Part::Body, &e));
                    }
                    texts.insert(subject_name, subject);
                    texts.insert(name, body);
                }
            }
            if problems.len() == before {
                files.insert((kind, lang), source.file);
            }
        }

        // Render every compiled template with sample data, both with and
        // without the optional fields, so undefined variables, unknown
        // filters and bad arguments show up now rather than at send time.
        for ((kind, lang), file) in &files {
            for sample in samples(*kind) {
                if let Err(p) = render_with(&env, *kind, lang, file, sample) {
                    problems.push(p);
                    break;
                }
            }
        }

        if problems.is_empty() {
            drop(env);
            let mut env = environment();
            env.set_loader(move |name| Ok(texts.get(name).cloned()));
            Ok(Templates { env, files })
        } else {
            problems.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            Err(TemplateError::Invalid(problems))
        }
    }

    /// Renders the `kind` template in `lang`, falling back to
    /// `fallback_lang` (the queue's language), then English. Tags are
    /// matched loosely: `pt-BR` uses `pt-br.txt` if there is one, else
    /// `pt.txt`; `zh-TW` uses `zh`; `no` and `nn` use `nb`.
    ///
    /// `ctx` is the context for the kind: [`AckContext`], [`AlertContext`]
    /// or [`ReplyContext`] (or any value with the same fields).
    pub fn render<C: Serialize + ?Sized>(
        &self,
        kind: TemplateKind,
        lang: &str,
        fallback_lang: &str,
        ctx: &C,
    ) -> Result<Rendered, TemplateError> {
        let Some((language, file)) = self.resolve(kind, lang, fallback_lang) else {
            return Err(TemplateError::Missing {
                kind,
                lang: lang.to_owned(),
                fallback: fallback_lang.to_owned(),
            });
        };
        render_with(&self.env, kind, language, file, Value::from_serialize(ctx))
            .map_err(TemplateError::Render)
    }

    /// The languages there is a `kind` template for, sorted.
    pub fn languages(&self, kind: TemplateKind) -> Vec<&str> {
        self.files
            .keys()
            .filter(|(k, _)| *k == kind)
            .map(|(_, lang)| lang.as_str())
            .collect()
    }

    /// The language and file of the template [`Templates::render`] would use.
    fn resolve(&self, kind: TemplateKind, lang: &str, fallback: &str) -> Option<(&str, &str)> {
        let mut wanted = lookup_tags(lang);
        wanted.extend(lookup_tags(fallback));
        wanted.push(LAST_RESORT.to_owned());
        wanted.into_iter().find_map(|tag| {
            self.files
                .get_key_value(&(kind, tag))
                .map(|((_, lang), file)| (lang.as_str(), file.as_str()))
        })
    }
}

/// The tags to try for a requested language, most specific first:
/// `pt_BR.UTF-8` → `pt-br`, `pt`; `no` → `no`, `nb`.
fn lookup_tags(requested: &str) -> Vec<String> {
    let tag = requested
        .split(['.', '@'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
        .replace('_', "-");
    let mut tags = Vec::new();
    let mut rest = tag.as_str();
    while !rest.is_empty() {
        tags.push(rest.to_owned());
        rest = rest.rsplit_once('-').map_or("", |(head, _)| head);
    }
    if let Some(primary) = tags.last() {
        let alias = locale::canonical_language(primary);
        if alias != primary {
            tags.push(alias.to_owned());
        }
    }
    tags
}

/// A language tag as file names use it: `de`, `pt-br`, `zh-hant`.
fn is_language_tag(s: &str) -> bool {
    let mut parts = s.split('-');
    let primary_ok = parts
        .next()
        .is_some_and(|p| (2..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_lowercase()));
    primary_ok
        && parts.all(|p| {
            (1..=8).contains(&p.len())
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
}

/// Adds `<dir>/<kind>/<lang>.txt` files to `sources`, replacing shipped ones.
/// Hidden entries and files not ending in `.txt` (README, editor backups)
/// are skipped; an unknown kind directory or a bad file name is a problem.
fn read_overrides(
    dir: &Path,
    sources: &mut BTreeMap<(TemplateKind, String), Source>,
    problems: &mut Vec<TemplateProblem>,
) -> Result<(), TemplateError> {
    let mut overridden = BTreeMap::new();
    for kind_dir in sorted_entries(dir)? {
        let Some(name) = visible_name(&kind_dir) else {
            continue;
        };
        if !kind_dir.is_dir() {
            continue;
        }
        let Some(kind) = TemplateKind::from_dir_name(name) else {
            problems.push(TemplateProblem {
                file: kind_dir.display().to_string(),
                line: None,
                message: format!(
                    "unknown template kind \"{name}\"; the directories are ack, warning, escalation and reply"
                ),
            });
            continue;
        };
        for path in sorted_entries(&kind_dir)? {
            if visible_name(&path).is_none()
                || path.extension().is_none_or(|e| e != "txt")
                || path.is_dir()
            {
                continue;
            }
            let file = path.display().to_string();
            let lang = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_ascii_lowercase();
            if !is_language_tag(&lang) {
                problems.push(TemplateProblem {
                    file,
                    line: None,
                    message:
                        "the file name must be a language tag and .txt, e.g. de.txt or pt-br.txt"
                            .to_owned(),
                });
                continue;
            }
            if let Some(other) = overridden.insert((kind, lang.clone()), file.clone()) {
                problems.push(TemplateProblem {
                    file,
                    line: None,
                    message: format!("{other} is a template for the same language; keep one"),
                });
                continue;
            }
            let bytes = fs::read(&path).map_err(|source| TemplateError::Io {
                path: path.clone(),
                source,
            })?;
            match String::from_utf8(bytes) {
                Ok(text) => {
                    let text = Cow::Owned(text);
                    sources.insert((kind, lang), Source { file, text });
                }
                Err(_) => problems.push(TemplateProblem {
                    file,
                    line: None,
                    message: "not valid UTF-8; save the file as UTF-8".to_owned(),
                }),
            }
        }
    }
    Ok(())
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, TemplateError> {
    let io = |source| TemplateError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        paths.push(entry.map_err(io)?.path());
    }
    paths.sort();
    Ok(paths)
}

/// The file name, unless it is hidden (`.git`, `.de.txt.swp`) or not UTF-8.
fn visible_name(path: &Path) -> Option<&str> {
    path.file_name()
        .and_then(|n| n.to_str())
        .filter(|n| !n.starts_with('.'))
}

/// Splits a template file into the subject template (line 1 after
/// `Subject:`) and the body template (line 3 on). Errors carry the line.
fn split_file(text: &str) -> Result<(String, String), (usize, &'static str)> {
    let text = text
        .strip_prefix('\u{feff}')
        .unwrap_or(text)
        .replace("\r\n", "\n");
    let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
    let subject = first
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("subject:"))
        .and_then(|_| first.get(8..))
        .ok_or((1, "the first line must be the subject: `Subject: …`"))?;
    let (second, body) = rest.split_once('\n').unwrap_or((rest, ""));
    if !second.trim().is_empty() {
        return Err((
            2,
            "line 2 must be empty; it separates the subject from the body",
        ));
    }
    if body.trim().is_empty() {
        return Err((3, "the body is empty; it starts on line 3"));
    }
    Ok((subject.trim().to_owned(), body.to_owned()))
}

fn template_name(kind: TemplateKind, lang: &str) -> String {
    format!("{kind}/{lang}.txt")
}

/// Which part of a file a minijinja error came from; the body starts on
/// line 3 of the file.
#[derive(Clone, Copy)]
enum Part {
    Subject,
    Body,
}

fn problem(file: &str, part: Part, e: &minijinja::Error) -> TemplateProblem {
    let line = match part {
        Part::Subject => Some(1),
        Part::Body => e.line().map(|l| l + 2),
    };
    let message = match (e.kind(), e.detail()) {
        (ErrorKind::UndefinedError, None) => {
            "undefined variable or attribute; templates/README.md lists the variables of each kind"
                .to_owned()
        }
        (kind, Some(detail)) => format!("{kind}: {detail}"),
        (kind, None) => kind.to_string(),
    };
    TemplateProblem {
        file: file.to_owned(),
        line,
        message,
    }
}

fn render_with(
    env: &Environment<'static>,
    kind: TemplateKind,
    lang: &str,
    file: &str,
    ctx: Value,
) -> Result<Rendered, TemplateProblem> {
    let name = template_name(kind, lang);
    let ticket = ctx
        .get_attr("ticket")
        .ok()
        .and_then(|t| t.as_str().map(str::to_owned));
    let ctx = minijinja::context! { lang => lang, ..ctx };
    let subject = env
        .get_template(&format!("{name}#subject"))
        .and_then(|t| t.render(&ctx))
        .map_err(|e| problem(file, Part::Subject, &e))?;
    let body = env
        .get_template(&name)
        .and_then(|t| t.render(&ctx))
        .map_err(|e| problem(file, Part::Body, &e))?;
    Ok(Rendered {
        subject: fit_subject(&subject, ticket.as_deref()),
        text: clean_body(&body),
        language: lang.to_owned(),
    })
}

/// The minijinja settings and filters every template is compiled with.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_formatter(|out, state, value| {
        if value.is_none() {
            Ok(())
        } else {
            minijinja::escape_formatter(out, state, value)
        }
    });
    env.add_filter("date", filter_date);
    env.add_filter("time", filter_time);
    env.add_filter("datetime", filter_datetime);
    env.add_filter("plural", filter_plural);
    env.add_filter("quote", filter_quote);
    env.add_filter("oneline", one_line);
    env.add_filter("language_name", filter_language_name);
    env
}

/// The language of the template being rendered (the `lang` variable).
fn state_lang(state: &State) -> String {
    state
        .lookup("lang")
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn moment(due: &LocalTime) -> Result<locale::Moment, minijinja::Error> {
    locale::Moment::new(due).map_err(|msg| minijinja::Error::new(ErrorKind::InvalidOperation, msg))
}

/// `{{ response.due | date }}`: the long date with weekday, e.g. `Tuesday
/// 24 November 2026`, `2026年11月24日（火）`.
fn filter_date(state: &State, due: ViaDeserialize<LocalTime>) -> Result<String, minijinja::Error> {
    Ok(locale::long_date(&state_lang(state), &moment(&due)?))
}

/// `{{ response.due | time }}`: the time of day as running text writes it,
/// e.g. `10:00`, `10:00 Uhr`, `kl. 10.00`.
fn filter_time(state: &State, due: ViaDeserialize<LocalTime>) -> Result<String, minijinja::Error> {
    Ok(locale::clock(&state_lang(state), &moment(&due)?))
}

/// `{{ response.due | datetime }}`: date, time and UTC offset, worded to
/// follow the language's "by …" (`bis`, `au plus tard le`, `までに`).
fn filter_datetime(
    state: &State,
    due: ViaDeserialize<LocalTime>,
) -> Result<String, minijinja::Error> {
    Ok(locale::date_time(&state_lang(state), &moment(&due)?))
}

/// `{{ n | plural("hour", "hours") }}`: the form for `n` by the language's
/// plural rules; the forms are given in CLDR order (zero, one, two, few,
/// many, other), only those the language has. Missing forms reuse the last.
fn filter_plural(state: &State, n: i64, forms: Rest<String>) -> Result<String, minijinja::Error> {
    let index = locale::plural_index(&state_lang(state), n);
    forms
        .0
        .get(index)
        .or(forms.0.last())
        .cloned()
        .ok_or_else(|| {
            minijinja::Error::new(
                ErrorKind::MissingArgument,
                "plural needs the word forms, e.g. plural(\"hour\", \"hours\")",
            )
        })
}

/// `{{ excerpt | quote }}`: every line prefixed with `> `.
fn filter_quote(text: &str) -> String {
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<String> = text
        .trim_end()
        .lines()
        .map(|line| {
            let line = line.trim_end();
            if line.is_empty() {
                ">".to_owned()
            } else {
                format!("> {line}")
            }
        })
        .collect();
    lines.join("\n")
}

/// `{{ language | language_name }}`: the language's own name, e.g.
/// `Deutsch` for `de`; the code itself for languages we have no name for.
fn filter_language_name(code: &str) -> String {
    locale::language_name(code).map_or_else(|| code.to_owned(), str::to_owned)
}

/// Explicit bidi embeddings, overrides and isolates (U+202A–U+202E,
/// U+2066–U+2069): invisible, and able to make a subject display
/// differently from what it says.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// Text forced onto one line: line breaks, tabs and other control
/// characters become spaces, whitespace runs collapse to one space, bidi
/// controls and byte-order marks are dropped, the ends are trimmed. Also
/// the `oneline` filter.
fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut space = false;
    for c in text.chars() {
        if is_bidi_control(c) || c == '\u{feff}' {
            continue;
        }
        if c.is_whitespace() || c.is_control() {
            space = !out.is_empty();
            continue;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(c);
    }
    out
}

/// A rendered subject made safe for a header: one line (see [`one_line`])
/// of at most [`MAX_SUBJECT_CHARS`] characters. When it must be cut, the
/// `[ticket]` tag stays, so replies still thread.
fn fit_subject(subject: &str, ticket: Option<&str>) -> String {
    let line = one_line(subject);
    if line.chars().count() <= MAX_SUBJECT_CHARS {
        return line;
    }
    let cut = |chars: usize| {
        let kept: String = line.chars().take(chars).collect();
        format!("{}…", kept.trim_end())
    };
    let short = cut(MAX_SUBJECT_CHARS - 1);
    match ticket.map(|t| format!("[{t}]")) {
        Some(tag) if line.contains(tag.as_str()) && !short.contains(tag.as_str()) => {
            // The tag sat late in a long subject: cut more and append it.
            let room = MAX_SUBJECT_CHARS.saturating_sub(2 + tag.chars().count());
            format!("{} {tag}", cut(room))
        }
        _ => short,
    }
}

/// A rendered body made safe for the outbox: `\n` line ends, no control
/// characters but newline and tab, no leading blank lines, one final `\n`.
fn clean_body(body: &str) -> String {
    let body = body.replace("\r\n", "\n").replace('\r', "\n");
    let body: String = body
        .chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect();
    let mut out = body.trim_start_matches('\n').trim_end().to_owned();
    out.push('\n');
    out
}

/// Sample contexts for a kind, rendered at load time: one with every
/// optional field set, one with none.
fn samples(kind: TemplateKind) -> Vec<Value> {
    let due = LocalTime {
        date: jiff::civil::date(2026, 11, 24),
        time: "10:00".to_owned(),
        weekday: 2,
        utc_offset: "+01:00".to_owned(),
    };
    match kind {
        TemplateKind::Ack => [
            (Some("Anna Example"), false, "Printer offline"),
            (None, true, ""),
        ]
        .into_iter()
        .map(|(name, business_hours, subject)| {
            Value::from_serialize(AckContext {
                ticket: "PD-1".to_owned(),
                subject: subject.to_owned(),
                customer_name: name.map(str::to_owned),
                team_name: "Support".to_owned(),
                response: ResponseTarget {
                    hours: 24,
                    business_hours,
                    due: due.clone(),
                },
            })
        })
        .collect(),
        TemplateKind::Warning | TemplateKind::Escalation => [
            (
                Some("Anna Example"),
                Clock::FirstResponse,
                0,
                "Printer offline",
                "Hello",
            ),
            (None, Clock::NextResponse, 2, "", ""),
        ]
        .into_iter()
        .map(|(name, clock, level, subject, excerpt)| {
            Value::from_serialize(AlertContext {
                ticket: "PD-1".to_owned(),
                subject: subject.to_owned(),
                customer_name: name.map(str::to_owned),
                customer_address: "anna@example.com".to_owned(),
                language: "de".to_owned(),
                clock,
                level,
                age: "22 h".to_owned(),
                due_local: "2026-11-24 10:00".to_owned(),
                due_utc: "2026-11-24 09:00".to_owned(),
                queue: "support".to_owned(),
                timezone: "Europe/Berlin".to_owned(),
                excerpt: excerpt.to_owned(),
                mailbox_address: "support@example.com".to_owned(),
            })
        })
        .collect(),
        TemplateKind::Reply => [(Some("Sam"), "Printer offline"), (None, "")]
            .into_iter()
            .map(|(agent, subject)| {
                Value::from_serialize(ReplyContext {
                    ticket: "PD-1".to_owned(),
                    subject: subject.to_owned(),
                    body: "Hello".to_owned(),
                    team_name: "Support".to_owned(),
                    agent_name: agent.map(str::to_owned),
                })
            })
            .collect(),
    }
}
