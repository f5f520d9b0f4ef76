//! Property tests: random zones, weekly hours, holidays, starts and budgets.

use jiff::civil::{Date, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::super::*;

/// Zones with every kind of transition: none, DST at 02:00, at midnight
/// (Sao Paulo until 2019), 30-minute DST (Lord Howe), 45-minute offsets
/// (Chatham), Ramadan switches (Casablanca), southern hemisphere.
const ZONES: &[&str] = &[
    "Europe/Berlin",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "America/New_York",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "UTC",
    "Asia/Kolkata",
    "America/St_Johns",
    "Africa/Casablanca",
    "Australia/Sydney",
    "Europe/London",
];

/// Few cases by default to keep the suite fast; `PROPTEST_CASES=5000` for a
/// deeper run.
fn config() -> ProptestConfig {
    let default = ProptestConfig::default();
    ProptestConfig {
        cases: if std::env::var_os("PROPTEST_CASES").is_some() {
            default.cases
        } else {
            48
        },
        // Failures are reported with their seed; no regression files are
        // written into the source tree.
        failure_persistence: None,
        ..default
    }
}

fn zone(index: usize) -> TimeZone {
    let name = ZONES.get(index % ZONES.len()).copied().unwrap_or("UTC");
    TimeZone::get(name).expect("zone in the system tz database")
}

/// Sorted, distinct boundaries paired into disjoint ranges.
fn ranges_from(mut bounds: Vec<u16>) -> Vec<HoursRange> {
    bounds.sort_unstable();
    bounds.dedup();
    bounds
        .chunks_exact(2)
        .filter_map(|pair| match pair {
            [start, end] => HoursRange::new(*start, *end).ok(),
            _ => None,
        })
        .collect()
}

fn boundary() -> impl Strategy<Value = u16> {
    prop_oneof![
        Just(0u16),
        Just(1440u16),
        0u16..=1440,
        (0u16..=96).prop_map(|q| q * 15),
        // Around DST switches (00:00-04:00).
        0u16..=240,
    ]
}

fn day_hours() -> impl Strategy<Value = Vec<HoursRange>> {
    prop_oneof![
        2 => Just(Vec::new()),
        1 => Just(vec![HoursRange::WHOLE_DAY]),
        5 => proptest::collection::vec(boundary(), 2..=6).prop_map(ranges_from),
    ]
}

fn build_week(days: [Vec<HoursRange>; 7]) -> WeeklyHours {
    let mut week = WeeklyHours::closed();
    for (index, ranges) in days.iter().enumerate() {
        let offset = i8::try_from(index).unwrap_or(0);
        let day = jiff::civil::Weekday::from_monday_zero_offset(offset).expect("weekday");
        week = week
            .with_day(day, ranges)
            .expect("generated ranges are valid");
    }
    if week.is_never_open() {
        week = week
            .with_day(jiff::civil::Weekday::Wednesday, &[HoursRange::WHOLE_DAY])
            .expect("valid");
    }
    week
}

fn week() -> impl Strategy<Value = WeeklyHours> {
    prop_oneof![
        1 => Just(WeeklyHours::always_open()),
        8 => proptest::array::uniform7(day_hours()).prop_map(build_week),
    ]
}

/// How a start instant is drawn.
#[derive(Debug, Clone, Copy)]
enum StartKind {
    /// Anywhere in 2016-2029.
    Uniform,
    /// Within four days of a time-zone transition.
    NearTransition,
    /// Between Dec 28 and Jan 4.
    YearBoundary,
}

fn start_kind() -> impl Strategy<Value = StartKind> {
    prop_oneof![
        Just(StartKind::Uniform),
        Just(StartKind::NearTransition),
        Just(StartKind::YearBoundary),
    ]
}

/// A start instant in `tz` from drawn numbers.
fn start_in(tz: &TimeZone, kind: StartKind, year: i16, pick: bool, secs: i64) -> Timestamp {
    let year_start = |y: i16| {
        date(y, 1, 1)
            .to_zoned(tz.clone())
            .expect("valid")
            .timestamp()
    };
    let near = |anchor: Timestamp, spread: i64| {
        anchor + SignedDuration::from_secs(secs.rem_euclid(2 * spread) - spread)
    };
    match kind {
        StartKind::Uniform => {
            let from = year_start(2016);
            let span = year_start(2030).duration_since(from).as_secs();
            from + SignedDuration::from_secs(secs.rem_euclid(span))
        }
        StartKind::NearTransition => {
            let mut transitions = tz.following(year_start(year)).take(2);
            let first = transitions.next().map(|t| t.timestamp());
            let second = transitions.next().map(|t| t.timestamp());
            let anchor = if pick { second.or(first) } else { first };
            near(anchor.unwrap_or_else(|| year_start(year)), 4 * 86_400)
        }
        StartKind::YearBoundary => near(year_start(year), 4 * 86_400),
    }
}

/// A calendar and a start, with holidays near the start so they matter.
#[derive(Debug, Clone)]
struct Case {
    cal: BusinessCalendar,
    start: Timestamp,
}

fn case() -> impl Strategy<Value = Case> {
    (
        0..ZONES.len(),
        week(),
        start_kind(),
        2016i16..=2028,
        any::<bool>(),
        any::<i64>(),
        proptest::collection::vec(-3i64..90, 0..6),
    )
        .prop_map(|(zone_index, week, kind, year, pick, secs, offsets)| {
            let tz = zone(zone_index);
            let start = start_in(&tz, kind, year, pick, secs);
            let start_date = tz.to_datetime(start).date();
            let holidays: Vec<Date> = offsets
                .iter()
                .filter_map(|days| start_date.checked_add(jiff::Span::new().days(*days)).ok())
                .collect();
            let cal =
                BusinessCalendar::new(tz, week, holidays).expect("never-open weeks are avoided");
            Case { cal, start }
        })
}

fn budget() -> impl Strategy<Value = SignedDuration> {
    prop_oneof![
        Just(SignedDuration::ZERO),
        (0i64..=200 * 3600).prop_map(SignedDuration::from_secs),
        (1i64..=200).prop_map(SignedDuration::from_hours),
        (1i64..=600).prop_map(SignedDuration::from_mins),
    ]
}

/// Orders results with "beyond the horizon" as later than any instant.
fn later_or_equal(
    later: &Result<Timestamp, DueError>,
    earlier: &Result<Timestamp, DueError>,
) -> bool {
    match (later, earlier) {
        (Ok(a), Ok(b)) => a >= b,
        (Err(_), _) => true,
        (Ok(_), Err(_)) => false,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn due_spends_exactly_the_budget(case in case(), budget in budget()) {
        let Case { cal, start } = case;
        match cal.due_at(start, budget) {
            Ok(due) => {
                prop_assert!(due >= start);
                prop_assert_eq!(cal.business_time_between(start, due), budget);
                if budget.is_positive() {
                    // The budget runs out while open (or exactly at closing).
                    prop_assert!(cal.is_open(due - SignedDuration::from_nanos(1)));
                }
            }
            Err(err) => {
                let beyond = matches!(err, DueError::BeyondHorizon { .. });
                prop_assert!(beyond, "{}", err);
                let horizon = start + SignedDuration::from_hours(24 * 365 * i64::from(SEARCH_HORIZON_YEARS));
                prop_assert!(cal.business_time_between(start, horizon) < budget);
            }
        }
    }

    #[test]
    fn due_is_monotonic_in_start(case in case(), delay in 0i64..=10 * 86_400, budget in budget()) {
        let Case { cal, start } = case;
        let later = start + SignedDuration::from_secs(delay);
        prop_assert!(later_or_equal(&cal.due_at(later, budget), &cal.due_at(start, budget)));
    }

    #[test]
    fn due_is_monotonic_in_budget(case in case(), a in budget(), b in budget()) {
        let Case { cal, start } = case;
        let (small, large) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(later_or_equal(&cal.due_at(start, large), &cal.due_at(start, small)));
    }

    #[test]
    fn a_holiday_never_makes_anything_due_earlier(
        case in case(),
        offset in -2i64..30,
        budget in budget(),
    ) {
        let Case { cal, start } = case;
        let holiday = cal
            .time_zone()
            .to_datetime(start)
            .date()
            .checked_add(jiff::Span::new().days(offset))
            .expect("date");
        let mut closed = cal.clone();
        closed.add_holidays([holiday]);
        prop_assert!(later_or_equal(&closed.due_at(start, budget), &cal.due_at(start, budget)));
        let end = start + SignedDuration::from_hours(24 * 40);
        prop_assert!(closed.business_time_between(start, end) <= cal.business_time_between(start, end));
    }

    #[test]
    fn always_open_is_wall_clock_time(
        zone_index in 0..ZONES.len(),
        kind in start_kind(),
        year in 2016i16..=2028,
        pick in any::<bool>(),
        secs in any::<i64>(),
        budget in budget(),
    ) {
        let tz = zone(zone_index);
        let start = start_in(&tz, kind, year, pick, secs);
        let fast = BusinessCalendar::new(tz, WeeklyHours::always_open(), []).expect("24/7");
        prop_assert_eq!(fast.due_at(start, budget), Ok(start + budget));
        // A far-away holiday forces the day-bucket walk: same answer.
        let mut walked = fast.clone();
        walked.add_holidays([date(2099, 1, 1)]);
        prop_assert_eq!(walked.due_at(start, budget), Ok(start + budget));
        prop_assert_eq!(walked.business_time_between(start, start + budget), budget);
    }

    #[test]
    fn next_open_is_the_first_open_instant(case in case()) {
        let Case { cal, start } = case;
        let next = cal.next_open(start);
        prop_assert!(next.is_some(), "holidays are too few to close 20 years");
        let next = next.expect("checked");
        prop_assert!(next >= start);
        prop_assert!(cal.is_open(next));
        prop_assert_eq!(cal.business_time_between(start, next), SignedDuration::ZERO);
        prop_assert_eq!(cal.is_open(start), next == start);
    }

    /// Week skipping against the plain walk: spans shorter than a week are
    /// never skipped, so a long span must equal the sum of its short pieces.
    #[test]
    fn skipped_weeks_hold_what_the_walk_finds(case in case(), days in 7i64..=400) {
        let Case { cal, start } = case;
        let piece = SignedDuration::from_hours(5 * 24);
        let end = start + SignedDuration::from_hours(24 * days);
        let mut sum = SignedDuration::ZERO;
        let mut from = start;
        while from < end {
            let to = (from + piece).min(end);
            sum += cal.business_time_between(from, to);
            from = to;
        }
        prop_assert_eq!(cal.business_time_between(start, end), sum);
    }

    #[test]
    fn business_time_adds_up(
        case in case(),
        ab in 0i64..=20 * 86_400,
        bc in 0i64..=20 * 86_400,
    ) {
        let Case { cal, start: a } = case;
        let b = a + SignedDuration::from_secs(ab);
        let c = b + SignedDuration::from_secs(bc);
        let whole = cal.business_time_between(a, c);
        prop_assert_eq!(whole, cal.business_time_between(a, b) + cal.business_time_between(b, c));
        prop_assert_eq!(cal.business_time_between(c, a), -whole);
        prop_assert!(whole <= c.duration_since(a));
        prop_assert!(!whole.is_negative());
    }
}

/// Range boundaries away from every DST switch of [`ZONES`] (all between
/// 00:00 and 04:00, or at midnight): there, compatible disambiguation and
/// "the wall clock shows a time inside a range" are the same thing.
fn safe_day_hours() -> impl Strategy<Value = Vec<HoursRange>> {
    let inner = (60u16..=264).prop_map(|q| q * 5); // 05:00-22:00
    prop_oneof![
        2 => Just(Vec::new()),
        1 => Just(vec![HoursRange::WHOLE_DAY]),
        5 => (proptest::collection::vec(inner, 2..=4), any::<bool>(), any::<bool>())
            .prop_map(|(mut bounds, from_midnight, to_midnight)| {
                bounds.sort_unstable();
                bounds.dedup();
                if from_midnight {
                    bounds.insert(0, 0);
                }
                if to_midnight && bounds.len() % 2 == 1 {
                    bounds.push(1440);
                }
                ranges_from(bounds)
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: config().cases / 2, ..config() })]

    /// Business time against a minute-by-minute count of what the wall clock
    /// shows (holiday? weekday? inside a range?).
    #[test]
    fn business_time_matches_the_wall_clock_minute_by_minute(
        zone_index in 0..ZONES.len(),
        days in proptest::array::uniform7(safe_day_hours()),
        kind in start_kind(),
        year in 2016i16..=2028,
        pick in any::<bool>(),
        secs in any::<i64>(),
        length in 0i64..=2 * 24 * 60,
        holiday_offsets in proptest::collection::vec(-1i64..3, 0..2),
    ) {
        let tz = zone(zone_index);
        let start = start_in(&tz, kind, year, pick, secs);
        let start = Timestamp::from_second(start.as_second() - start.as_second().rem_euclid(60))
            .expect("in range");
        let start_date = tz.to_datetime(start).date();
        let holidays: Vec<Date> = holiday_offsets
            .iter()
            .filter_map(|d| start_date.checked_add(jiff::Span::new().days(*d)).ok())
            .collect();
        let cal = BusinessCalendar::new(tz.clone(), build_week(days), holidays.clone()).expect("valid");
        let mut open_minutes = 0;
        for minute in 0..length {
            let t = start + SignedDuration::from_mins(minute);
            let dt = tz.to_datetime(t);
            let of_day = u16::try_from(i32::from(dt.hour()) * 60 + i32::from(dt.minute())).unwrap_or(0);
            let open = !holidays.contains(&dt.date())
                && cal
                    .week()
                    .day(dt.date().weekday())
                    .iter()
                    .any(|r| r.start_minute() <= of_day && of_day < r.end_minute());
            if open {
                open_minutes += 1;
            }
            prop_assert_eq!(cal.is_open(t), open, "at {}", dt);
        }
        let end = start + SignedDuration::from_mins(length);
        prop_assert_eq!(cal.business_time_between(start, end), SignedDuration::from_mins(open_minutes));
    }
}
