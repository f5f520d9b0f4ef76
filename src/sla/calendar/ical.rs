//! Holidays from iCalendar (RFC 5545) files, as calendar apps export them.
//!
//! Hand-written on purpose. `icalendar` 0.17 pulls in chrono, iso8601 and
//! uuid, and its RRULE support needs `rrule` with chrono-tz, a second tz
//! database next to jiff's. `ical` 0.11 only tokenizes (every date and RRULE
//! rule below would still be ours), and its unfolding trims the end of folded
//! lines, gluing words that were split at a blank. Holidays need little:
//! unfold lines (§3.1), split properties (§3.1-3.2), read DTSTART, DTEND,
//! DURATION, RRULE, RDATE, EXDATE and RECURRENCE-ID, and expand FREQ=YEARLY
//! (§3.3.10). Anything else makes the event a warning, not a guess.
//!
//! Dates: a `VALUE=DATE` event covers its dates up to DTEND (exclusive). A
//! DATE-TIME event covers every civil date it touches: dates with a TZID or
//! floating times are taken as written (they are civil times of that zone);
//! UTC times (`…Z`) are converted to the file's `X-WR-TIMEZONE`, or to the
//! queue's zone when the file names none.

#![deny(clippy::indexing_slicing, clippy::string_slice)]

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

/// Longest event accepted as a holiday, in days; longer ones are warnings.
const MAX_EVENT_DAYS: i64 = 366;

/// Holidays read from one iCalendar file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IcsHolidays {
    /// Closed civil dates within the requested years, sorted, no duplicates.
    pub dates: Vec<Date>,
    /// Events that were ignored and lines that were skipped, with reasons.
    pub warnings: Vec<IcsWarning>,
}

/// An event or line of an iCalendar file that was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcsWarning {
    /// 1-based line where the event (or the skipped line) begins.
    pub line: usize,
    /// The event's SUMMARY, when it has one.
    pub summary: Option<String>,
    /// Why it was ignored.
    pub reason: String,
}

impl fmt::Display for IcsWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.summary {
            Some(summary) => write!(f, "line {} ({summary:?}): {}", self.line, self.reason),
            None => write!(f, "line {}: {}", self.line, self.reason),
        }
    }
}

/// An iCalendar file that cannot be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcsError {
    /// The text does not start with `BEGIN:VCALENDAR`.
    #[error(
        "not an iCalendar file: line {line} is {found:?}; expected an .ics export \
         starting with BEGIN:VCALENDAR"
    )]
    NotICalendar {
        /// The first line that is not `BEGIN:VCALENDAR`.
        line: usize,
        /// What it says (shortened).
        found: String,
    },
    /// `END:X` closes a different component than the last `BEGIN`.
    #[error(
        "line {line}: END:{found} closes BEGIN:{open} from line {begun}; the file is malformed"
    )]
    Mismatched {
        /// Line of the END.
        line: usize,
        /// Component it names.
        found: String,
        /// Component that is open.
        open: String,
        /// Line of that component's BEGIN.
        begun: usize,
    },
    /// `END:X` with no component open.
    #[error("line {line}: END:{found} has no matching BEGIN; the file is malformed")]
    UnexpectedEnd {
        /// Line of the END.
        line: usize,
        /// Component it names.
        found: String,
    },
    /// The text ends inside a component: usually a truncated download.
    #[error("the file ends inside {component} begun at line {begun}; it looks truncated")]
    Truncated {
        /// The innermost open component.
        component: String,
        /// Line of its BEGIN.
        begun: usize,
    },
    /// `from_year > to_year`.
    #[error(
        "year window {from_year}..={to_year} is empty; pass from_year <= to_year, e.g. 2026 and 2027"
    )]
    EmptyYearWindow {
        /// First year asked for.
        from_year: i16,
        /// Last year asked for.
        to_year: i16,
    },
}

/// Closed dates from iCalendar `text` within `from_year..=to_year`.
///
/// `tz` is the queue's zone, used for UTC event times when the file has no
/// `X-WR-TIMEZONE`. See [`holidays_from_ics_bytes`] for raw file contents.
pub fn holidays_from_ics(
    text: &str,
    from_year: i16,
    to_year: i16,
    tz: &TimeZone,
) -> Result<IcsHolidays, IcsError> {
    holidays_from_ics_bytes(text.as_bytes(), from_year, to_year, tz)
}

/// Like [`holidays_from_ics`], for file contents as read: RFC 5545 folds at
/// 75 octets and may split a UTF-8 character across lines, so lines are
/// unfolded before the text is decoded (invalid UTF-8 becomes U+FFFD).
pub fn holidays_from_ics_bytes(
    bytes: &[u8],
    from_year: i16,
    to_year: i16,
    tz: &TimeZone,
) -> Result<IcsHolidays, IcsError> {
    if from_year > to_year {
        return Err(IcsError::EmptyYearWindow { from_year, to_year });
    }
    let Parsed {
        events,
        calendar_tz,
        mut warnings,
    } = parse(bytes)?;
    let tz = match calendar_tz {
        None => tz.clone(),
        Some((line, name)) => TimeZone::get(name.trim()).unwrap_or_else(|_| {
            warnings.push(IcsWarning {
                line,
                summary: None,
                reason: format!(
                    "unknown X-WR-TIMEZONE {name:?}; UTC event times are read in the queue's zone"
                ),
            });
            tz.clone()
        }),
    };
    let window = Window { from_year, to_year };

    // Instances moved or cancelled by a RECURRENCE-ID override, per UID.
    let mut overridden: HashMap<&str, Vec<Date>> = HashMap::new();
    for event in &events {
        if let (Some(uid), Some(id)) = (event.get("UID"), event.get("RECURRENCE-ID")) {
            match parse_when(&id.value, id.param("VALUE")) {
                Ok(when) => overridden
                    .entry(uid.value.trim())
                    .or_default()
                    .push(when.civil(&tz).date()),
                Err(reason) => warnings.push(event.warning(format!("RECURRENCE-ID: {reason}"))),
            }
        }
    }

    let mut dates = BTreeSet::new();
    for event in &events {
        let moved = match (event.get("UID"), event.get("RECURRENCE-ID")) {
            (Some(uid), None) => overridden
                .get(uid.value.trim())
                .map(Vec::as_slice)
                .unwrap_or_default(),
            _ => &[],
        };
        match event_dates(event, &tz, window, moved) {
            Ok(found) => dates.extend(found),
            Err(reason) => warnings.push(event.warning(format!("{reason}; event ignored"))),
        }
    }
    Ok(IcsHolidays {
        dates: dates.into_iter().collect(),
        warnings,
    })
}

/// The years whose dates are returned.
#[derive(Debug, Clone, Copy)]
struct Window {
    from_year: i16,
    to_year: i16,
}

impl Window {
    fn contains(self, date: Date) -> bool {
        (self.from_year..=self.to_year).contains(&date.year())
    }
}

/// One content line: `NAME;PARAM=V1,V2:value` (§3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Property {
    /// 1-based line where the (unfolded) property starts.
    line: usize,
    /// Upper-cased name.
    name: String,
    /// Upper-cased parameter names with their values (quotes removed).
    params: Vec<(String, Vec<String>)>,
    /// The raw value, escapes kept.
    value: String,
}

impl Property {
    /// First value of a parameter.
    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, values)| values.first())
            .map(String::as_str)
    }
}

/// A top-level VEVENT's own properties (not those of nested VALARMs).
#[derive(Debug, Clone, Default)]
struct Event {
    /// Line of `BEGIN:VEVENT`.
    line: usize,
    props: Vec<Property>,
}

impl Event {
    fn get(&self, name: &str) -> Option<&Property> {
        self.props.iter().find(|p| p.name == name)
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Property> + 'a {
        self.props.iter().filter(move |p| p.name == name)
    }

    fn warning(&self, reason: String) -> IcsWarning {
        IcsWarning {
            line: self.line,
            summary: self.get("SUMMARY").map(|p| unescape_text(&p.value)),
            reason,
        }
    }
}

/// What the structural pass found.
struct Parsed {
    events: Vec<Event>,
    /// `X-WR-TIMEZONE` and its line.
    calendar_tz: Option<(usize, String)>,
    warnings: Vec<IcsWarning>,
}

/// Unfolds the lines, checks BEGIN/END nesting and collects top-level VEVENTs.
fn parse(bytes: &[u8]) -> Result<Parsed, IcsError> {
    let mut parsed = Parsed {
        events: Vec::new(),
        calendar_tz: None,
        warnings: Vec::new(),
    };
    // Open components with the line of their BEGIN.
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut event: Option<Event> = None;
    let mut seen_calendar = false;
    for (line, text) in unfold(bytes) {
        let prop = match parse_property(line, &text) {
            Ok(prop) => prop,
            Err(_) if !seen_calendar => {
                return Err(not_icalendar(line, &text));
            }
            Err(reason) => {
                parsed.warnings.push(IcsWarning {
                    line,
                    summary: None,
                    reason: format!("{reason}; line skipped"),
                });
                continue;
            }
        };
        let component = prop.value.trim().to_ascii_uppercase();
        match prop.name.as_str() {
            "BEGIN" => {
                if open.is_empty() && component != "VCALENDAR" {
                    return Err(not_icalendar(line, &text));
                }
                seen_calendar = true;
                if component == "VEVENT" && open.len() == 1 {
                    event = Some(Event {
                        line,
                        props: Vec::new(),
                    });
                }
                open.push((component, line));
            }
            "END" => match open.pop() {
                Some((name, _)) if name == component => {
                    if component == "VEVENT" && open.len() == 1 {
                        parsed.events.extend(event.take());
                    }
                }
                Some((name, begun)) => {
                    return Err(IcsError::Mismatched {
                        line,
                        found: component,
                        open: name,
                        begun,
                    });
                }
                None if !seen_calendar => return Err(not_icalendar(line, &text)),
                None => {
                    return Err(IcsError::UnexpectedEnd {
                        line,
                        found: component,
                    });
                }
            },
            _ if open.is_empty() => return Err(not_icalendar(line, &text)),
            _ => match (open.len(), &mut event) {
                (1, _) if prop.name == "X-WR-TIMEZONE" => {
                    parsed.calendar_tz = Some((line, prop.value));
                }
                (2, Some(event)) => event.props.push(prop),
                _ => {}
            },
        }
    }
    if let Some((component, begun)) = open.pop() {
        return Err(IcsError::Truncated { component, begun });
    }
    if !seen_calendar {
        return Err(IcsError::NotICalendar {
            line: 1,
            found: String::new(),
        });
    }
    Ok(parsed)
}

fn not_icalendar(line: usize, text: &str) -> IcsError {
    IcsError::NotICalendar {
        line,
        found: text.chars().take(40).collect(),
    }
}

/// Logical lines with the 1-based line number where each starts: a line that
/// begins with a blank or tab continues the previous one (§3.1). Accepts
/// CRLF and bare LF; drops empty lines and a UTF-8 byte-order mark.
fn unfold(bytes: &[u8]) -> Vec<(usize, String)> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut lines: Vec<(usize, Vec<u8>)> = Vec::new();
    for (index, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match (raw.split_first(), lines.last_mut()) {
            (None, _) => {}
            (Some((b' ' | b'\t', rest)), Some((_, current))) => current.extend_from_slice(rest),
            _ => lines.push((index + 1, raw.to_vec())),
        }
    }
    lines
        .into_iter()
        .map(|(line, raw)| (line, String::from_utf8_lossy(&raw).into_owned()))
        .collect()
}

/// Splits `NAME;KEY=V1,"V;2":value` (§3.1, §3.2).
fn parse_property(line: usize, text: &str) -> Result<Property, String> {
    let mut chars = text.chars();
    let mut name = String::new();
    let mut separator = None;
    for c in chars.by_ref() {
        if c == ';' || c == ':' {
            separator = Some(c);
            break;
        }
        name.push(c);
    }
    let name = name.trim().to_ascii_uppercase();
    if name.is_empty() {
        return Err("a line without a property name".to_owned());
    }
    let mut separator = separator.ok_or("no ':' between property name and value")?;
    let mut params = Vec::new();
    while separator == ';' {
        let mut key = String::new();
        let mut values = Vec::new();
        let mut value = String::new();
        let mut in_key = true;
        let mut quoted = false;
        loop {
            let c = chars
                .next()
                .ok_or("a parameter runs to the end of the line")?;
            match c {
                '=' if in_key => in_key = false,
                ';' | ':' if in_key => {
                    separator = c;
                    break;
                }
                c if in_key => key.push(c),
                '"' => quoted = !quoted,
                ',' | ';' | ':' if !quoted => {
                    values.push(std::mem::take(&mut value));
                    if c != ',' {
                        separator = c;
                        break;
                    }
                }
                c => value.push(c),
            }
        }
        params.push((key.trim().to_ascii_uppercase(), values));
    }
    Ok(Property {
        line,
        name,
        params,
        value: chars.collect(),
    })
}

/// TEXT value escapes (§3.3.11), newlines shown as blanks.
fn unescape_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n' | 'N') => out.push(' '),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out.trim().to_owned()
}

/// A DATE or DATE-TIME value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum When {
    /// `20261225`
    Date(Date),
    /// `20261225T090000`, floating or with a TZID: civil time as written.
    Local(DateTime),
    /// `20261225T080000Z`
    Utc(Timestamp),
}

impl When {
    /// Civil date-time in the calendar's frame (UTC converted to `tz`).
    fn civil(self, tz: &TimeZone) -> DateTime {
        match self {
            When::Date(date) => date.to_datetime(Time::midnight()),
            When::Local(dt) => dt,
            When::Utc(ts) => tz.to_datetime(ts),
        }
    }
}

/// Parses a DATE (`YYYYMMDD`) or DATE-TIME (`YYYYMMDDTHHMMSS[Z]`) value.
fn parse_when(value: &str, value_type: Option<&str>) -> Result<When, String> {
    let text = value.trim();
    let bad = || {
        format!("{text:?} is not an iCalendar date (20261225) or date-time (20261225T090000[Z])")
    };
    let (date_part, rest) = text.split_at_checked(8).ok_or_else(bad)?;
    let number = |s: Option<&str>| {
        s.filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<i16>().ok())
    };
    let year = number(date_part.get(0..4)).ok_or_else(bad)?;
    let month = number(date_part.get(4..6)).ok_or_else(bad)?;
    let day = number(date_part.get(6..8)).ok_or_else(bad)?;
    let date = i8::try_from(month)
        .ok()
        .zip(i8::try_from(day).ok())
        .and_then(|(m, d)| Date::new(year, m, d).ok())
        .ok_or_else(bad)?;
    let is_date = value_type.is_some_and(|v| v.eq_ignore_ascii_case("DATE"));
    if rest.is_empty() || is_date {
        return if rest.is_empty() {
            Ok(When::Date(date))
        } else {
            Err(bad())
        };
    }
    let time_part = rest.strip_prefix(['T', 't']).ok_or_else(bad)?;
    let (time_part, utc) = match time_part.strip_suffix(['Z', 'z']) {
        Some(t) => (t, true),
        None => (time_part, false),
    };
    if time_part.len() != 6 {
        return Err(bad());
    }
    let field = |range| number(time_part.get(range)).and_then(|n| i8::try_from(n).ok());
    let (hour, minute, second) = (field(0..2), field(2..4), field(4..6));
    let time = match (hour, minute, second) {
        // A leap second (60) reads as the last second of its minute.
        (Some(h), Some(m), Some(s)) => Time::new(h, m, s.min(59), 0).map_err(|_| bad())?,
        _ => return Err(bad()),
    };
    let dt = date.to_datetime(time);
    if utc {
        let ts = TimeZone::UTC
            .to_ambiguous_timestamp(dt)
            .compatible()
            .map_err(|_| bad())?;
        Ok(When::Utc(ts))
    } else {
        Ok(When::Local(dt))
    }
}

/// The closed dates of one event within the window.
fn event_dates(
    event: &Event,
    tz: &TimeZone,
    window: Window,
    moved: &[Date],
) -> Result<Vec<Date>, String> {
    if event
        .get("STATUS")
        .is_some_and(|s| s.value.trim().eq_ignore_ascii_case("CANCELLED"))
    {
        return Ok(Vec::new());
    }
    let dtstart = event.get("DTSTART").ok_or("no DTSTART")?;
    let start = parse_when(&dtstart.value, dtstart.param("VALUE"))
        .map_err(|reason| format!("DTSTART {reason}"))?;
    let days = event_length_days(event, start, tz)?;
    let first = start.civil(tz).date();

    let mut starts = BTreeSet::from([first]);
    for rrule in event.all("RRULE") {
        let rule = YearlyRule::parse(&rrule.value, tz)?;
        starts.extend(rule.expand(first, window));
    }
    for rdate in event.all("RDATE") {
        if rdate
            .param("VALUE")
            .is_some_and(|v| v.eq_ignore_ascii_case("PERIOD"))
        {
            return Err("RDATE periods are not supported".to_owned());
        }
        for value in rdate.value.split(',') {
            let when = parse_when(value, rdate.param("VALUE"))
                .map_err(|reason| format!("RDATE {reason}"))?;
            starts.insert(when.civil(tz).date());
        }
    }
    for exdate in event.all("EXDATE") {
        for value in exdate.value.split(',') {
            let when = parse_when(value, exdate.param("VALUE"))
                .map_err(|reason| format!("EXDATE {reason}"))?;
            starts.remove(&when.civil(tz).date());
        }
    }
    for date in moved {
        starts.remove(date);
    }

    let mut dates = Vec::new();
    for start in starts {
        let mut date = start;
        for _ in 0..days {
            if window.contains(date) {
                dates.push(date);
            }
            let Ok(next) = date.tomorrow() else { break };
            date = next;
        }
    }
    Ok(dates)
}

/// How many civil dates one occurrence covers: DTEND is exclusive; without
/// DTEND or DURATION a DATE event lasts one day and a DATE-TIME event covers
/// its start date.
fn event_length_days(event: &Event, start: When, tz: &TimeZone) -> Result<i64, String> {
    let begin = start.civil(tz);
    let end = if let Some(dtend) = event.get("DTEND") {
        parse_when(&dtend.value, dtend.param("VALUE"))
            .map_err(|reason| format!("DTEND {reason}"))?
            .civil(tz)
    } else if let Some(duration) = event.get("DURATION") {
        let span: Span = duration.value.trim().parse().map_err(|_| {
            format!(
                "DURATION {:?} is not an ISO 8601 duration such as P1D or PT8H",
                duration.value.trim()
            )
        })?;
        begin
            .checked_add(span)
            .map_err(|_| format!("DURATION {:?} is out of range", duration.value.trim()))?
    } else if let When::Date(date) = start {
        date.tomorrow()
            .map_err(|_| "DTSTART is out of range".to_owned())?
            .to_datetime(Time::midnight())
    } else {
        begin
    };
    if end <= begin {
        return Ok(1);
    }
    let last = end
        .checked_sub(SignedDuration::from_nanos(1))
        .map_err(|_| "DTEND is out of range".to_owned())?
        .date();
    let days = last.duration_since(begin.date()).as_secs() / 86_400 + 1;
    if days > MAX_EVENT_DAYS {
        return Err(format!(
            "it lasts {days} days; a holiday event may last at most {MAX_EVENT_DAYS}"
        ));
    }
    Ok(days)
}

/// An `RRULE:FREQ=YEARLY;…` with the parts holiday calendars use.
#[derive(Debug, Clone, PartialEq, Eq)]
struct YearlyRule {
    interval: i32,
    count: Option<u32>,
    until: Option<Date>,
    by_month: Vec<i8>,
    by_month_day: Vec<i8>,
    /// `(ordinal, weekday)`: `2MO` is `(Some(2), Monday)`, `SU` `(None, Sunday)`.
    by_day: Vec<(Option<i8>, Weekday)>,
}

impl YearlyRule {
    fn parse(value: &str, tz: &TimeZone) -> Result<YearlyRule, String> {
        let mut rule = YearlyRule {
            interval: 1,
            count: None,
            until: None,
            by_month: Vec::new(),
            by_month_day: Vec::new(),
            by_day: Vec::new(),
        };
        let mut freq = None;
        for part in value.trim().split(';').filter(|p| !p.trim().is_empty()) {
            let (key, val) = part
                .split_once('=')
                .ok_or_else(|| format!("RRULE part {part:?} has no '='"))?;
            let key = key.trim().to_ascii_uppercase();
            let val = val.trim();
            let bad = || format!("RRULE {key}={val} is not valid");
            match key.as_str() {
                "FREQ" => freq = Some(val.to_ascii_uppercase()),
                "INTERVAL" => {
                    rule.interval = val.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?;
                }
                "COUNT" => rule.count = Some(val.parse().ok().filter(|n| *n > 0).ok_or_else(bad)?),
                "UNTIL" => {
                    let when = parse_when(val, None).map_err(|reason| format!("UNTIL {reason}"))?;
                    rule.until = Some(when.civil(tz).date());
                }
                "BYMONTH" => rule.by_month = parse_list(val, 1, 12).ok_or_else(bad)?,
                "BYMONTHDAY" => rule.by_month_day = parse_list(val, -31, 31).ok_or_else(bad)?,
                "BYDAY" => {
                    rule.by_day = val
                        .split(',')
                        .map(parse_weekday_num)
                        .collect::<Option<_>>()
                        .ok_or_else(bad)?;
                }
                "WKST" => {}
                other => return Err(format!("RRULE part {other} is not supported")),
            }
        }
        match freq.as_deref() {
            Some("YEARLY") => Ok(rule),
            Some(other) => Err(format!(
                "RRULE FREQ={other} is not supported; holidays need FREQ=YEARLY"
            )),
            None => Err("RRULE without FREQ".to_owned()),
        }
    }

    /// Occurrence start dates after `dtstart` (which is always the first,
    /// and counts for COUNT), up to the end of the window.
    fn expand(&self, dtstart: Date, window: Window) -> Vec<Date> {
        let mut out = Vec::new();
        let mut produced: u32 = 1;
        if self.count.is_some_and(|c| c <= produced) {
            return out;
        }
        // Without BY-parts the rule repeats DTSTART's month and day; with
        // only BYMONTH, DTSTART's day in those months (as RFC 5545 and
        // python-dateutil read it).
        let mut month_days = self.by_month_day.clone();
        let mut months = self.by_month.clone();
        if months.is_empty() && month_days.is_empty() && self.by_day.is_empty() {
            months.push(dtstart.month());
        }
        if month_days.is_empty() && self.by_day.is_empty() {
            month_days.push(dtstart.day());
        }
        months.sort_unstable();
        months.dedup();

        let mut year = i32::from(dtstart.year());
        // Multi-day events may reach into the window from the year before;
        // with COUNT every earlier occurrence must be counted.
        let first_needed = i32::from(window.from_year) - 2;
        if self.count.is_none() && year < first_needed {
            let steps = (first_needed - year) / self.interval;
            year += steps * self.interval;
        }
        while year <= i32::from(window.to_year) {
            let Ok(y) = i16::try_from(year) else { break };
            for date in self.candidates(y, &months, &month_days) {
                if date <= dtstart {
                    continue;
                }
                if self.until.is_some_and(|until| date > until) {
                    return out;
                }
                out.push(date);
                produced += 1;
                if self.count.is_some_and(|c| produced >= c) {
                    return out;
                }
            }
            year += self.interval;
        }
        out
    }

    /// The rule's dates in one year, in order.
    fn candidates(&self, year: i16, months: &[i8], month_days: &[i8]) -> Vec<Date> {
        let all_months: Vec<i8> = (1..=12).collect();
        let months = if months.is_empty() {
            &all_months
        } else {
            months
        };
        let mut out = Vec::new();
        for &month in months {
            let Ok(first) = Date::new(year, month, 1) else {
                continue;
            };
            let last_day = first.days_in_month();
            let mut days: Vec<i8> = if month_days.is_empty() {
                (1..=last_day).collect()
            } else {
                month_days
                    .iter()
                    .map(|&d| if d < 0 { last_day + 1 + d } else { d })
                    .filter(|d| (1..=last_day).contains(d))
                    .collect()
            };
            days.sort_unstable();
            days.dedup();
            out.extend(
                days.into_iter()
                    .filter_map(|day| Date::new(year, month, day).ok())
                    .filter(|date| self.matches_by_day(*date)),
            );
        }
        out
    }

    /// BYDAY filter: ordinals count within the month when BYMONTH is given,
    /// within the year otherwise (§3.3.10).
    fn matches_by_day(&self, date: Date) -> bool {
        if self.by_day.is_empty() {
            return true;
        }
        self.by_day.iter().any(|&(nth, weekday)| {
            date.weekday() == weekday
                && match nth {
                    None => true,
                    Some(n) if !self.by_month.is_empty() => {
                        date.nth_weekday_of_month(n, weekday).ok() == Some(date)
                    }
                    Some(n) => nth_weekday_of_year(date.year(), n, weekday) == Some(date),
                }
        })
    }
}

/// The `n`th (negative: from the end) `weekday` of `year`.
fn nth_weekday_of_year(year: i16, n: i8, weekday: Weekday) -> Option<Date> {
    let anchor = if n > 0 {
        Date::new(year, 1, 1).ok()?.yesterday().ok()?
    } else {
        Date::new(year, 12, 31).ok()?.tomorrow().ok()?
    };
    anchor
        .nth_weekday(i32::from(n), weekday)
        .ok()
        .filter(|date| date.year() == year)
}

/// `1,5,-1` with every number in `min..=max` and not zero.
fn parse_list(value: &str, min: i8, max: i8) -> Option<Vec<i8>> {
    value
        .split(',')
        .map(|n| n.trim().parse::<i8>().ok())
        .map(|n| n.filter(|n| *n != 0 && (min..=max).contains(n)))
        .collect()
}

/// `MO`, `2MO`, `+2MO`, `-1SU`.
fn parse_weekday_num(text: &str) -> Option<(Option<i8>, Weekday)> {
    let text = text.trim();
    let split = text.len().checked_sub(2)?;
    let (ordinal, day) = text.split_at_checked(split)?;
    let weekday = match day.to_ascii_uppercase().as_str() {
        "MO" => Weekday::Monday,
        "TU" => Weekday::Tuesday,
        "WE" => Weekday::Wednesday,
        "TH" => Weekday::Thursday,
        "FR" => Weekday::Friday,
        "SA" => Weekday::Saturday,
        "SU" => Weekday::Sunday,
        _ => return None,
    };
    let ordinal = match ordinal.trim_start_matches('+') {
        "" => None,
        n => Some(
            n.parse::<i8>()
                .ok()
                .filter(|n| *n != 0 && (-53..=53).contains(n))?,
        ),
    };
    Some((ordinal, weekday))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfolds_crlf_lf_and_tabs_keeping_blanks_before_the_fold() {
        let lines =
            unfold(b"\xEF\xBB\xBFSUMMARY:Tag der \r\n Deutschen\r\n\t Einheit\r\n\r\nEND:VEVENT\n");
        assert_eq!(
            lines,
            vec![
                (1, "SUMMARY:Tag der Deutschen Einheit".to_owned()),
                (5, "END:VEVENT".to_owned())
            ]
        );
    }

    #[test]
    fn unfolds_a_utf8_character_split_across_lines() {
        // "元日" is E5 85 83 E6 97 A5; fold inside the second character.
        let lines = unfold(b"SUMMARY:\xE5\x85\x83\xE6\r\n \x97\xA5\r\n");
        assert_eq!(lines, vec![(1, "SUMMARY:元日".to_owned())]);
    }

    #[test]
    fn splits_properties_with_quoted_parameters() {
        let prop = parse_property(
            3,
            r#"dtStart;TZID="Europe/Berlin";X-A=1,"b:c";X-B:20261003T000000"#,
        )
        .expect("parses");
        assert_eq!(prop.name, "DTSTART");
        assert_eq!(prop.param("TZID"), Some("Europe/Berlin"));
        assert_eq!(
            prop.params.get(1),
            Some(&("X-A".to_owned(), vec!["1".to_owned(), "b:c".to_owned()]))
        );
        assert_eq!(prop.value, "20261003T000000");
        assert!(parse_property(1, "no separator").is_err());
        assert!(parse_property(1, ":value").is_err());
    }

    #[test]
    fn parses_dates_and_date_times() {
        let d = jiff::civil::date;
        assert_eq!(
            parse_when("20261225", None),
            Ok(When::Date(d(2026, 12, 25)))
        );
        assert_eq!(
            parse_when("20261225T093000", None),
            Ok(When::Local(d(2026, 12, 25).at(9, 30, 0, 0)))
        );
        let utc = parse_when("20261224T230000Z", None).expect("utc");
        let berlin = TimeZone::get("Europe/Berlin").expect("tz");
        assert_eq!(utc.civil(&berlin).date(), d(2026, 12, 25));
        for bad in [
            "2026-12-25",
            "20261325",
            "20261225T25",
            "20261225T250000",
            "2026122",
        ] {
            assert!(parse_when(bad, None).is_err(), "{bad}");
        }
        assert!(parse_when("20261225T090000", Some("DATE")).is_err());
    }

    #[test]
    fn parses_byday_and_lists() {
        assert_eq!(parse_weekday_num("2MO"), Some((Some(2), Weekday::Monday)));
        assert_eq!(parse_weekday_num("-1su"), Some((Some(-1), Weekday::Sunday)));
        assert_eq!(parse_weekday_num("+3TU"), Some((Some(3), Weekday::Tuesday)));
        assert_eq!(parse_weekday_num("FR"), Some((None, Weekday::Friday)));
        assert_eq!(parse_weekday_num("0MO"), None);
        assert_eq!(parse_weekday_num("XX"), None);
        assert_eq!(parse_weekday_num("M"), None);
        assert_eq!(parse_list("1,-1, 15", -31, 31), Some(vec![1, -1, 15]));
        assert_eq!(parse_list("13", 1, 12), None);
        assert_eq!(parse_list("0", -31, 31), None);
    }

    #[test]
    fn nth_weekday_of_year_counts_from_both_ends() {
        let d = jiff::civil::date;
        assert_eq!(
            nth_weekday_of_year(2026, 1, Weekday::Thursday),
            Some(d(2026, 1, 1))
        );
        assert_eq!(
            nth_weekday_of_year(2026, -1, Weekday::Thursday),
            Some(d(2026, 12, 31))
        );
        assert_eq!(
            nth_weekday_of_year(2026, 20, Weekday::Monday),
            Some(d(2026, 5, 18))
        );
        assert_eq!(nth_weekday_of_year(2026, 53, Weekday::Monday), None);
    }
}
