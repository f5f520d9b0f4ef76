//! Business time: weekly hours, holidays and time zones; `due_at` is pure.
//!
//! A queue promises an answer within a budget of *business* time. A
//! [`BusinessCalendar`] says when that time runs: an IANA zone, per weekday a
//! few `[start, end)` ranges of civil (wall-clock) time, and holidays that
//! close whole civil dates. Nothing here reads a clock or a file: callers
//! pass `now`, and iCalendar text is parsed from a string ([`ical`]).
//!
//! # How civil hours become instants
//!
//! Each civil date `d` of the zone owns the real-time slice from the start of
//! `d` to the start of `d + 1` (a *day bucket*). Its ranges are resolved to
//! instants with jiff's *compatible* disambiguation (RFC 5545's rule):
//!
//! * a civil time in a spring-forward **gap** resolves to the later instant
//!   (02:30 on the Berlin switch day becomes 03:30 CEST), so a range that
//!   crosses the gap is shorter in real time (`01:00-04:00` lasts 2 h);
//! * a civil time in a fall-back **fold** resolves to its first occurrence,
//!   so a range across the fold is longer (`00:00-24:00` lasts 25 h);
//! * `24:00` is the start of the next date, so `00:00-24:00` every day is
//!   plain wall-clock time, 23 h or 25 h on switch days included.
//!
//! Because a boundary inside a gap resolves *later* than the gap's end,
//! a range that starts in a gap and ends just after it (`02:30-03:10`) is
//! empty on that one day; resolved ranges are clipped to the day bucket and
//! never overlap the previous range of the same day.
//!
//! [`WeeklyHours::always_open`] is 24/7: business time equals elapsed real
//! time, across DST changes too. Holidays close their date on 24/7 queues as
//! well; leave them out of such a queue's configuration if that is not wanted.
//!
//! # Bounded work
//!
//! Calculations walk day buckets, not minutes. Runs of whole weeks that
//! contain neither a holiday nor a time-zone transition hold exactly
//! [`WeeklyHours::weekly_total`] of business time and are skipped
//! arithmetically, so the cost grows with the number of holidays and DST
//! switches crossed, not with the budget. Searches stop after
//! [`SEARCH_HORIZON_YEARS`]: [`BusinessCalendar::due_at`] then returns
//! [`DueError::BeyondHorizon`] and [`BusinessCalendar::next_open`] `None`.

pub mod ical;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// How far ahead [`BusinessCalendar::due_at`] and
/// [`BusinessCalendar::next_open`] search before giving up. A safety bound
/// against calendars with almost no open time, not a business rule.
pub const SEARCH_HORIZON_YEARS: i16 = 20;

/// The horizon in civil days (generous: every year counted as a leap year).
const HORIZON_DAYS: i64 = SEARCH_HORIZON_YEARS as i64 * 366;

/// Minutes in a civil day; also the encoding of the `24:00` end of day.
const END_OF_DAY: u16 = 24 * 60;

/// Weekday keys in Monday-first order, as written in configuration.
const DAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// What a configuration string must look like, repeated in every hours error.
const HOURS_EXAMPLE: &str = "expected comma-separated HH:MM-HH:MM ranges in time order, \
     e.g. \"09:00-12:00, 13:00-17:30\", \"00:00-24:00\" for the whole day, or \"closed\"";

/// A business-calendar configuration that cannot be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CalendarError {
    /// Hours text that does not parse, or ranges that are reversed, out of
    /// order or overlapping.
    #[error("business hours {}{input:?}: {problem}; {HOURS_EXAMPLE}", day_prefix(.day))]
    InvalidHours {
        /// The weekday key the text was given for, when known.
        day: Option<String>,
        /// The text as written.
        input: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A key of the weekly-hours table that names no weekday.
    #[error(
        "unknown weekday {key:?} in business hours; expected mon, tue, wed, thu, fri, sat, sun, \
         weekdays (mon-fri), weekend (sat-sun) or daily"
    )]
    UnknownWeekday {
        /// The key as written.
        key: String,
    },
    /// Two keys of equal precedence set the same weekday (`mon` and `monday`).
    #[error("{day} is given twice in business hours, as {first:?} and {second:?}; keep one")]
    DuplicateWeekday {
        /// The weekday, as a three-letter key.
        day: &'static str,
        /// The key that set it first.
        first: String,
        /// The key that set it again.
        second: String,
    },
    /// A holiday that is not an ISO date.
    #[error("holiday {input:?} is not a date; expected YYYY-MM-DD, e.g. \"2026-12-25\"")]
    InvalidHoliday {
        /// The text as written.
        input: String,
        /// Why jiff rejected it.
        #[source]
        source: jiff::Error,
    },
    /// A time-zone name that the system's tz database does not know.
    #[error("unknown time zone {input:?}; use an IANA name, e.g. \"Europe/Berlin\"")]
    UnknownTimeZone {
        /// The name as written.
        input: String,
        /// Why jiff rejected it.
        #[source]
        source: jiff::Error,
    },
    /// Weekly hours that are closed every day: nothing would ever be due.
    #[error(
        "business hours are closed on every day of the week; open at least one range, \
         e.g. mon = \"09:00-17:00\", or make the queue 24/7"
    )]
    NeverOpen,
}

/// `"for mon "` when an hours error is about a known weekday key.
fn day_prefix(day: &Option<String>) -> String {
    day.as_ref()
        .map(|d| format!("for {d} "))
        .unwrap_or_default()
}

/// A due time that cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DueError {
    /// Budgets count forward; a negative one is a caller bug.
    #[error(
        "response-time budget -{:#} is negative; use zero or a positive duration",
        .budget.abs()
    )]
    NegativeBudget {
        /// The budget that was passed.
        budget: SignedDuration,
    },
    /// The calendar has too little open time (or too many holidays) to spend
    /// the budget within [`SEARCH_HORIZON_YEARS`].
    #[error(
        "a budget of {budget:#} starting {start} is not used up within {years} years of \
         business hours; check the queue's hours and holidays"
    )]
    BeyondHorizon {
        /// When counting started.
        start: Timestamp,
        /// The business time to spend.
        budget: SignedDuration,
        /// The search horizon that was exhausted.
        years: i16,
    },
}

/// One `[start, end)` range of civil time within a day, in minutes since
/// midnight; `end` may be `24:00` (the start of the next date).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HoursRange {
    /// Minutes since midnight at which the range opens, `0..1440`.
    start: u16,
    /// Minutes since midnight at which it closes, `start+1..=1440`.
    end: u16,
}

impl HoursRange {
    /// The whole civil day, `00:00-24:00`.
    pub const WHOLE_DAY: HoursRange = HoursRange {
        start: 0,
        end: END_OF_DAY,
    };

    /// A range from `start` to `end` minutes after midnight (`end` up to
    /// 1440 = `24:00`).
    pub fn new(start: u16, end: u16) -> Result<HoursRange, CalendarError> {
        let range = HoursRange { start, end };
        match range.problem() {
            None => Ok(range),
            Some(problem) => Err(CalendarError::InvalidHours {
                day: None,
                input: format!("{}-{}", clock(start), clock(end)),
                problem,
            }),
        }
    }

    /// Minutes since midnight at which the range opens.
    pub fn start_minute(self) -> u16 {
        self.start
    }

    /// Minutes since midnight at which the range closes (1440 = `24:00`).
    pub fn end_minute(self) -> u16 {
        self.end
    }

    /// Civil length of the range (real time differs on DST switch days).
    pub fn length(self) -> SignedDuration {
        SignedDuration::from_mins(i64::from(self.end) - i64::from(self.start))
    }

    fn problem(self) -> Option<String> {
        if self.start >= END_OF_DAY {
            Some(format!("{self} starts at the end of the day"))
        } else if self.end > END_OF_DAY {
            Some(format!("{self} ends after 24:00"))
        } else if self.start == self.end {
            Some(format!("{self} is empty"))
        } else if self.start > self.end {
            Some(format!(
                "{self} ends before it starts; split hours past midnight, \
                 e.g. 22:00-24:00 on one day and 00:00-02:00 on the next"
            ))
        } else {
            None
        }
    }
}

impl fmt::Display for HoursRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", clock(self.start), clock(self.end))
    }
}

/// `HH:MM` for minutes since midnight (1440 is `24:00`).
fn clock(minutes: u16) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Parses business hours for one day: `"09:00-12:00, 13:00-17:30"`.
///
/// `"closed"` or an empty string means no hours; `"00:00-24:00"` is the
/// whole day. Ranges must be in time order and must not overlap; ranges that
/// touch (`09:00-12:00, 12:00-17:00`) are merged.
pub fn parse_ranges(input: &str) -> Result<Vec<HoursRange>, CalendarError> {
    let invalid = |problem: String| CalendarError::InvalidHours {
        day: None,
        input: input.to_owned(),
        problem,
    };
    let text = input.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("closed") {
        return Ok(Vec::new());
    }
    let mut ranges = Vec::new();
    for part in text.split(',').map(str::trim) {
        if part.is_empty() {
            return Err(invalid("a range is missing between two commas".to_owned()));
        }
        let Some((from, to)) = part.split_once(['-', '\u{2013}']) else {
            return Err(invalid(format!(
                "{part:?} is not a range; write it as HH:MM-HH:MM"
            )));
        };
        let start = parse_clock(from.trim()).map_err(&invalid)?;
        let end = parse_clock(to.trim()).map_err(&invalid)?;
        ranges.push(HoursRange { start, end });
    }
    normalize_day(ranges).map_err(invalid)
}

/// `H:MM` or `HH:MM`, `00:00` to `24:00`, as minutes since midnight.
fn parse_clock(text: &str) -> Result<u16, String> {
    let bad = || format!("{text:?} is not a time of day; write HH:MM from 00:00 to 24:00");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str, max_len: usize| {
        (!s.is_empty() && s.len() <= max_len && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u16>().ok())
            .flatten()
    };
    let hours = digits(h, 2).ok_or_else(bad)?;
    let minutes = digits(m, 2).filter(|_| m.len() == 2).ok_or_else(bad)?;
    if minutes >= 60 || hours > 24 || (hours == 24 && minutes != 0) {
        return Err(bad());
    }
    Ok(hours * 60 + minutes)
}

/// Checks that a day's ranges are valid, in order and disjoint; merges ranges
/// that touch. Returns the problem text otherwise.
fn normalize_day(ranges: Vec<HoursRange>) -> Result<Vec<HoursRange>, String> {
    let mut out: Vec<HoursRange> = Vec::with_capacity(ranges.len());
    for range in ranges {
        if let Some(problem) = range.problem() {
            return Err(problem);
        }
        match out.last_mut() {
            Some(prev) if range.start < prev.end && range.start >= prev.start => {
                return Err(format!("{range} overlaps {prev}"));
            }
            Some(prev) if range.start < prev.start => {
                return Err(format!(
                    "{range} comes after {prev}; list ranges in time order"
                ));
            }
            Some(prev) if range.start == prev.end => prev.end = range.end,
            _ => out.push(range),
        }
    }
    Ok(out)
}

/// Business hours for each weekday, in the queue's civil time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct WeeklyHours {
    /// Monday first; each day sorted, disjoint, touching ranges merged.
    days: [Vec<HoursRange>; 7],
}

impl WeeklyHours {
    /// Closed every day; a starting point for [`WeeklyHours::with_day`].
    pub fn closed() -> WeeklyHours {
        WeeklyHours {
            days: Default::default(),
        }
    }

    /// Open 24/7: business time is elapsed real time.
    pub fn always_open() -> WeeklyHours {
        WeeklyHours {
            days: std::array::from_fn(|_| vec![HoursRange::WHOLE_DAY]),
        }
    }

    /// Builds weekly hours from configuration: keys `mon` … `sun` (or
    /// `monday` … `sunday`), `weekdays` (mon-fri), `weekend` (sat-sun) and
    /// `daily`, each mapped to text for [`parse_ranges`]. A named day
    /// overrides `weekdays`/`weekend`, which override `daily`; days not
    /// mentioned are closed.
    ///
    /// ```text
    /// weekdays = "09:00-12:00, 13:00-17:00"
    /// fri      = "09:00-15:00"
    /// ```
    pub fn from_days<K, V>(days: impl IntoIterator<Item = (K, V)>) -> Result<Self, CalendarError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        // (precedence, key as written, weekdays it sets, parsed ranges)
        let mut entries = Vec::new();
        for (key, text) in days {
            let key = key.as_ref();
            let (precedence, set) =
                weekdays_of_key(key).ok_or_else(|| CalendarError::UnknownWeekday {
                    key: key.to_owned(),
                })?;
            let ranges = parse_ranges(text.as_ref()).map_err(|err| match err {
                CalendarError::InvalidHours { input, problem, .. } => CalendarError::InvalidHours {
                    day: Some(key.to_owned()),
                    input,
                    problem,
                },
                other => other,
            })?;
            entries.push((precedence, key.to_owned(), set, ranges));
        }
        entries.sort_by_key(|entry| entry.0);
        let mut week = WeeklyHours::closed();
        let mut set_by: [Option<(u8, String)>; 7] = Default::default();
        for (precedence, key, set, ranges) in entries {
            for (index, slot) in set_by.iter_mut().enumerate() {
                if set & (1 << index) == 0 {
                    continue;
                }
                if let Some((earlier, first)) = slot
                    && *earlier == precedence
                {
                    return Err(CalendarError::DuplicateWeekday {
                        day: DAY_KEYS.get(index).copied().unwrap_or("?"),
                        first: first.clone(),
                        second: key,
                    });
                }
                *slot = Some((precedence, key.clone()));
                if let Some(day) = week.days.get_mut(index) {
                    day.clone_from(&ranges);
                }
            }
        }
        Ok(week)
    }

    /// Replaces one weekday's hours; the ranges must be in time order and
    /// disjoint (touching ones are merged).
    pub fn with_day(mut self, day: Weekday, ranges: &[HoursRange]) -> Result<Self, CalendarError> {
        let normalized =
            normalize_day(ranges.to_vec()).map_err(|problem| CalendarError::InvalidHours {
                day: Some(day_key(day).to_owned()),
                input: ranges
                    .iter()
                    .map(HoursRange::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
                problem,
            })?;
        self.days[day_index(day)] = normalized;
        Ok(self)
    }

    /// The hours of one weekday.
    pub fn day(&self, day: Weekday) -> &[HoursRange] {
        &self.days[day_index(day)]
    }

    /// True when every day is `00:00-24:00`.
    pub fn is_always_open(&self) -> bool {
        self.days.iter().all(|d| d == &[HoursRange::WHOLE_DAY])
    }

    /// True when no day has any hours.
    pub fn is_never_open(&self) -> bool {
        self.days.iter().all(Vec::is_empty)
    }

    /// Civil business time per week; also the real time of any week without
    /// holidays and DST switches.
    pub fn weekly_total(&self) -> SignedDuration {
        let minutes: i64 = self
            .days
            .iter()
            .flatten()
            .map(|r| i64::from(r.end) - i64::from(r.start))
            .sum();
        SignedDuration::from_mins(minutes)
    }
}

impl fmt::Display for WeeklyHours {
    /// `24/7`, or `mon 09:00-17:00; …; sun closed`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_always_open() {
            return f.write_str("24/7");
        }
        for (index, (key, ranges)) in DAY_KEYS.iter().zip(&self.days).enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            f.write_str(key)?;
            if ranges.is_empty() {
                f.write_str(" closed")?;
            }
            for (i, range) in ranges.iter().enumerate() {
                f.write_str(if i == 0 { " " } else { ", " })?;
                write!(f, "{range}")?;
            }
        }
        Ok(())
    }
}

/// Index into `WeeklyHours::days`.
fn day_index(day: Weekday) -> usize {
    usize::from(day.to_monday_zero_offset().unsigned_abs())
}

fn day_key(day: Weekday) -> &'static str {
    DAY_KEYS.get(day_index(day)).copied().unwrap_or("?")
}

/// Precedence and weekday bit set (bit 0 = Monday) of a weekly-hours key.
fn weekdays_of_key(key: &str) -> Option<(u8, u8)> {
    const FULL: [&str; 7] = [
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
    ];
    let key = key.trim().to_ascii_lowercase();
    match key.as_str() {
        "daily" => Some((0, 0b111_1111)),
        "weekdays" => Some((1, 0b001_1111)),
        "weekend" => Some((1, 0b110_0000)),
        _ => DAY_KEYS
            .iter()
            .zip(FULL)
            .position(|(short, long)| key == *short || key == long)
            .map(|index| (2, 1 << index)),
    }
}

/// Parses one holiday, `"2026-12-25"`.
pub fn parse_holiday(input: &str) -> Result<Date, CalendarError> {
    input
        .trim()
        .parse::<Date>()
        .map_err(|source| CalendarError::InvalidHoliday {
            input: input.to_owned(),
            source,
        })
}

/// Looks up an IANA zone name, `"Europe/Berlin"`, in the system tz database.
pub fn parse_time_zone(input: &str) -> Result<TimeZone, CalendarError> {
    TimeZone::get(input.trim()).map_err(|source| CalendarError::UnknownTimeZone {
        input: input.to_owned(),
        source,
    })
}

/// An instant for operators in the queue's zone: `"Mon 2026-11-23 10:00 CET"`.
pub fn format_local(ts: Timestamp, tz: &TimeZone) -> String {
    let zoned = ts.to_zoned(tz.clone());
    let mut out = String::new();
    if write!(out, "{}", zoned.strftime("%a %Y-%m-%d %H:%M %Z")).is_err() {
        // Only if the zone has no abbreviation jiff can print; never seen
        // with tzdb zones. Fall back to the full RFC 9557 form.
        out = zoned.to_string();
    }
    out
}

/// A duration for operators, language-neutral, truncated to the minute:
/// `"22 h 10 min"`, `"24 h"`, `"45 min"`, `"-1 h 5 min"`.
pub fn format_duration(duration: SignedDuration) -> String {
    let minutes = duration.as_secs().unsigned_abs() / 60;
    let (hours, minutes) = (minutes / 60, minutes % 60);
    let sign = if duration.is_negative() && (hours, minutes) != (0, 0) {
        "-"
    } else {
        ""
    };
    match (hours, minutes) {
        (0, m) => format!("{sign}{m} min"),
        (h, 0) => format!("{sign}{h} h"),
        (h, m) => format!("{sign}{h} h {m} min"),
    }
}

/// A queue's business time: zone, weekly hours and holidays.
#[derive(Debug, Clone, PartialEq)]
pub struct BusinessCalendar {
    /// Zone in which hours and holidays are civil times and dates.
    tz: TimeZone,
    /// Open ranges per weekday.
    week: WeeklyHours,
    /// Civil dates on which the queue is closed all day.
    holidays: BTreeSet<Date>,
}

/// A real-time stretch `[start, end)` during which the queue is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Interval {
    /// First open instant.
    start: Timestamp,
    /// First instant after it that is closed again.
    end: Timestamp,
}

impl BusinessCalendar {
    /// A calendar for one queue. Fails with [`CalendarError::NeverOpen`] when
    /// the week has no hours at all.
    pub fn new(
        tz: TimeZone,
        week: WeeklyHours,
        holidays: impl IntoIterator<Item = Date>,
    ) -> Result<BusinessCalendar, CalendarError> {
        if week.is_never_open() {
            return Err(CalendarError::NeverOpen);
        }
        Ok(BusinessCalendar {
            tz,
            week,
            holidays: holidays.into_iter().collect(),
        })
    }

    /// The queue's zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The weekly hours.
    pub fn week(&self) -> &WeeklyHours {
        &self.week
    }

    /// The holidays, as civil dates in the queue's zone.
    pub fn holidays(&self) -> &BTreeSet<Date> {
        &self.holidays
    }

    /// Adds holidays (e.g. from [`ical::holidays_from_ics`]).
    pub fn add_holidays(&mut self, dates: impl IntoIterator<Item = Date>) {
        self.holidays.extend(dates);
    }

    /// Whether business time is running at `ts`.
    pub fn is_open(&self, ts: Timestamp) -> bool {
        let mut intervals = Vec::new();
        self.bucket_of(ts)
            .and_then(|date| self.open_intervals(date, &mut intervals))
            .is_some_and(|()| intervals.iter().any(|iv| iv.start <= ts && ts < iv.end))
    }

    /// The first instant at or after `ts` at which the queue is open: `ts`
    /// itself when open. `None` when holidays close every business day of the
    /// next [`SEARCH_HORIZON_YEARS`].
    pub fn next_open(&self, ts: Timestamp) -> Option<Timestamp> {
        let mut date = self.bucket_of(ts)?;
        let last = add_days(date, HORIZON_DAYS).unwrap_or(Date::MAX);
        let mut intervals = Vec::new();
        while date <= last {
            self.open_intervals(date, &mut intervals)?;
            if let Some(iv) = intervals.iter().find(|iv| iv.end > ts) {
                return Some(iv.start.max(ts));
            }
            date = date.tomorrow().ok()?;
        }
        None
    }

    /// The instant at which `budget` of business time has elapsed since
    /// `start`. Counting begins at `start`, or at the next opening when the
    /// queue is closed then; a budget used up exactly at closing time is due
    /// at closing time. Sub-minute parts of `start` and `budget` are kept.
    ///
    /// A zero budget is due at `start`. 24/7 queues without holidays are due
    /// at exactly `start + budget`.
    pub fn due_at(&self, start: Timestamp, budget: SignedDuration) -> Result<Timestamp, DueError> {
        if budget.is_negative() {
            return Err(DueError::NegativeBudget { budget });
        }
        let beyond = || DueError::BeyondHorizon {
            start,
            budget,
            years: SEARCH_HORIZON_YEARS,
        };
        if budget.is_zero() {
            return Ok(start);
        }
        if self.is_wall_clock() {
            return start.checked_add(budget).map_err(|_| beyond());
        }
        let weekly = self.week.weekly_total().as_nanos();
        let first = self.bucket_of(start).ok_or_else(beyond)?;
        let last = add_days(first, HORIZON_DAYS).unwrap_or(Date::MAX);
        let mut remaining = budget;
        let mut date = first;
        let mut intervals = Vec::new();
        while date <= last {
            if date > first {
                // Whole clean weeks, leaving a positive remainder so that the
                // due instant itself is found by the exact walk below.
                let by_budget = (remaining.as_nanos() - 1).checked_div(weekly).unwrap_or(0);
                let weeks = self
                    .clean_weeks(date)
                    .min(by_budget)
                    .min(i128::from(HORIZON_DAYS / 7 + 1));
                if let Ok(weeks_i32) = i32::try_from(weeks)
                    && weeks_i32 > 0
                {
                    let skipped = SignedDuration::from_nanos_i128(weekly)
                        .checked_mul(weeks_i32)
                        .ok_or_else(beyond)?;
                    remaining -= skipped;
                    date = add_days(date, i64::from(weeks_i32) * 7).ok_or_else(beyond)?;
                    continue;
                }
            }
            self.open_intervals(date, &mut intervals)
                .ok_or_else(beyond)?;
            for iv in &intervals {
                let from = iv.start.max(start);
                if iv.end <= from {
                    continue;
                }
                let open = iv.end.duration_since(from);
                if remaining <= open {
                    return from.checked_add(remaining).map_err(|_| beyond());
                }
                remaining -= open;
            }
            date = date.tomorrow().map_err(|_| beyond())?;
        }
        Err(beyond())
    }

    /// Business time elapsed from `a` to `b`; negative when `b < a`. For
    /// paused clocks and "age"/"remaining" displays.
    pub fn business_time_between(&self, a: Timestamp, b: Timestamp) -> SignedDuration {
        if b < a {
            return -self.business_time_between(b, a);
        }
        if a == b {
            return SignedDuration::ZERO;
        }
        if self.is_wall_clock() {
            return b.duration_since(a);
        }
        let weekly = self.week.weekly_total();
        let mut total = SignedDuration::ZERO;
        let (Some(first), Some(last)) = (self.bucket_of(a), self.bucket_of(b)) else {
            return total;
        };
        let mut date = first;
        let mut intervals = Vec::new();
        while date <= last {
            if date > first {
                // Only weeks that lie wholly inside (a, b): they end before `last`.
                let whole = days_between(date, last) / 7;
                let weeks =
                    i32::try_from(self.clean_weeks(date).min(i128::from(whole))).unwrap_or(0);
                if weeks > 0
                    && let (Some(sum), Some(next)) = (
                        weekly.checked_mul(weeks),
                        add_days(date, i64::from(weeks) * 7),
                    )
                {
                    total += sum;
                    date = next;
                    continue;
                }
            }
            if self.open_intervals(date, &mut intervals).is_none() {
                break;
            }
            for iv in &intervals {
                let (from, to) = (iv.start.max(a), iv.end.min(b));
                if from < to {
                    total += to.duration_since(from);
                }
            }
            let Ok(next) = date.tomorrow() else { break };
            date = next;
        }
        total
    }

    /// Open 24/7 without holidays: business time is plain elapsed time.
    fn is_wall_clock(&self) -> bool {
        self.holidays.is_empty() && self.week.is_always_open()
    }

    /// The instant civil `date` begins (compatible disambiguation: the first
    /// instant of the date when midnight falls in a gap).
    fn day_start(&self, date: Date) -> Option<Timestamp> {
        self.tz
            .to_ambiguous_timestamp(date.to_datetime(Time::midnight()))
            .compatible()
            .ok()
    }

    /// The day bucket holding `ts`: the date `d` with
    /// `day_start(d) <= ts < day_start(d + 1)`. Usually `ts`'s civil date;
    /// one off only inside a fold that crosses midnight.
    fn bucket_of(&self, ts: Timestamp) -> Option<Date> {
        let mut date = self.tz.to_datetime(ts).date();
        for _ in 0..4 {
            if ts < self.day_start(date)? {
                date = date.yesterday().ok()?;
            } else if ts >= self.day_start(date.tomorrow().ok()?)? {
                date = date.tomorrow().ok()?;
            } else {
                break;
            }
        }
        Some(date)
    }

    /// Fills `out` with the open intervals of day bucket `date`, in order and
    /// disjoint. `None` only at the edges of jiff's supported range.
    fn open_intervals(&self, date: Date, out: &mut Vec<Interval>) -> Option<()> {
        out.clear();
        let ranges = self.week.day(date.weekday());
        if ranges.is_empty() || self.holidays.contains(&date) {
            return Some(());
        }
        let day_start = self.day_start(date)?;
        let day_end = self.day_start(date.tomorrow().ok()?)?;
        let mut floor = day_start;
        for range in ranges {
            let start = self.civil_instant(date, range.start, day_end)?.max(floor);
            let end = self.civil_instant(date, range.end, day_end)?.min(day_end);
            if start < end {
                out.push(Interval { start, end });
                floor = end;
            }
        }
        Some(())
    }

    /// `minutes` after midnight on `date` as an instant (compatible
    /// disambiguation); 1440 is `day_end`.
    fn civil_instant(&self, date: Date, minutes: u16, day_end: Timestamp) -> Option<Timestamp> {
        if minutes >= END_OF_DAY {
            return Some(day_end);
        }
        let hour = i8::try_from(minutes / 60).ok()?;
        let minute = i8::try_from(minutes % 60).ok()?;
        let time = Time::new(hour, minute, 0, 0).ok()?;
        self.tz
            .to_ambiguous_timestamp(date.to_datetime(time))
            .compatible()
            .ok()
    }

    /// How many whole weeks starting at day bucket `date` hold exactly
    /// [`WeeklyHours::weekly_total`]: weeks with no holiday and no zone
    /// transition within two days of them, where civil and real time agree.
    fn clean_weeks(&self, date: Date) -> i128 {
        let mut days = i64::MAX;
        if let Some(holiday) = self.holidays.range(date..).next() {
            days = days_between(date, *holiday);
            if days < 7 {
                return 0;
            }
        }
        let Some(probe) = self
            .day_start(date)
            .and_then(|ts| ts.checked_sub(SignedDuration::from_hours(48)).ok())
        else {
            return 0;
        };
        if let Some(transition) = self.tz.following(probe).next() {
            let at = self.tz.to_datetime(transition.timestamp()).date();
            days = days.min(days_between(date, at) - 2);
        }
        i128::from(days.max(0) / 7)
    }
}

/// `date + days`, or `None` past jiff's supported range.
fn add_days(date: Date, days: i64) -> Option<Date> {
    let hours = days.checked_mul(24)?;
    date.checked_add(SignedDuration::from_hours(hours)).ok()
}

/// Whole civil days from `from` to `to` (negative when `to` is earlier).
fn days_between(from: Date, to: Date) -> i64 {
    to.duration_since(from).as_secs() / 86_400
}
