//! Unit tests for business time; property tests in `props` below.

use jiff::civil::{Date, Weekday, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use super::ical::{IcsError, holidays_from_ics, holidays_from_ics_bytes};
use super::*;

const DE_ICS: &str = include_str!("../../../tests/fixtures/sla/de-holidays-2026-2027.ics");
const JP_ICS: &str = include_str!("../../../tests/fixtures/sla/jp-support-2026-2027.ics");

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).expect("zone in the system tz database")
}

/// The instant of a civil time in `tz` (compatible disambiguation).
fn at(tz: &TimeZone, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
    date(y, mo, d)
        .at(h, mi, 0, 0)
        .to_zoned(tz.clone())
        .expect("valid civil time")
        .timestamp()
}

fn hours(h: i64) -> SignedDuration {
    SignedDuration::from_hours(h)
}

fn mins(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

/// A calendar from config-style text.
fn calendar(tz: &str, days: &[(&str, &str)], holidays: &[Date]) -> BusinessCalendar {
    let week = WeeklyHours::from_days(days.iter().copied()).expect("valid hours");
    BusinessCalendar::new(zone(tz), week, holidays.iter().copied()).expect("valid calendar")
}

fn local(cal: &BusinessCalendar, ts: Timestamp) -> String {
    format_local(ts, cal.time_zone())
}

fn due(cal: &BusinessCalendar, start: Timestamp, budget: SignedDuration) -> String {
    local(
        cal,
        cal.due_at(start, budget).expect("due within the horizon"),
    )
}

/// Only this day of the week is open, with these hours.
fn only(day: &'static str, hours: &'static str) -> [(&'static str, &'static str); 1] {
    [(day, hours)]
}

// ---- the examples from the brief -------------------------------------------

#[test]
fn berlin_office_mail_on_friday_afternoon() {
    let cal = calendar("Europe/Berlin", &[("weekdays", "09:00-17:00")], &[]);
    let tz = cal.time_zone().clone();
    let start = at(&tz, 2026, 11, 20, 16, 30);
    assert_eq!(local(&cal, start), "Fri 2026-11-20 16:30 CET");
    assert_eq!(due(&cal, start, hours(1)), "Mon 2026-11-23 09:30 CET");
    assert_eq!(due(&cal, start, hours(24)), "Wed 2026-11-25 16:30 CET");
    assert_eq!(due(&cal, start, mins(30)), "Fri 2026-11-20 17:00 CET");
    let monday_10 = at(&tz, 2026, 11, 23, 10, 0);
    assert_eq!(
        cal.business_time_between(start, monday_10),
        hours(1) + mins(30)
    );
    assert_eq!(
        cal.business_time_between(monday_10, start),
        -(hours(1) + mins(30))
    );
    assert_eq!(
        format_duration(cal.business_time_between(start, at(&tz, 2026, 11, 25, 14, 40))),
        "22 h 10 min"
    );
}

#[test]
fn sub_minute_parts_of_start_and_budget_are_kept() {
    let cal = calendar("Europe/Berlin", &[("weekdays", "09:00-17:00")], &[]);
    let start = at(cal.time_zone(), 2026, 11, 20, 16, 30) + SignedDuration::from_secs(17);
    let budget = hours(1) + SignedDuration::from_millis(1500);
    let due = cal.due_at(start, budget).expect("due");
    let expected = at(cal.time_zone(), 2026, 11, 23, 9, 30)
        + SignedDuration::from_secs(17)
        + SignedDuration::from_millis(1500);
    assert_eq!(due, expected);
    assert_eq!(cal.business_time_between(start, due), budget);
}

#[test]
fn tokyo_mail_on_friday_evening_with_lunch_break() {
    let cal = calendar(
        "Asia/Tokyo",
        &[("weekdays", "09:00-12:00, 13:00-18:00")],
        &[],
    );
    let start = at(cal.time_zone(), 2026, 11, 20, 19, 45);
    assert!(!cal.is_open(start));
    assert_eq!(local(&cal, start), "Fri 2026-11-20 19:45 JST");
    assert_eq!(due(&cal, start, hours(1)), "Mon 2026-11-23 10:00 JST");
    assert_eq!(due(&cal, start, hours(3)), "Mon 2026-11-23 12:00 JST");
    assert_eq!(
        due(&cal, start, hours(3) + mins(1)),
        "Mon 2026-11-23 13:01 JST"
    );
    // 8 h a day: 24 h is used up exactly at Wednesday's closing time.
    assert_eq!(due(&cal, start, hours(24)), "Wed 2026-11-25 18:00 JST");
}

#[test]
fn split_day_with_lunch_break() {
    let cal = calendar(
        "Europe/Berlin",
        &[("daily", "09:00-12:00, 13:00-17:00")],
        &[],
    );
    let tz = cal.time_zone().clone();
    assert_eq!(
        due(&cal, at(&tz, 2026, 6, 10, 11, 30), hours(1)),
        "Wed 2026-06-10 13:30 CEST"
    );
    assert_eq!(
        due(&cal, at(&tz, 2026, 6, 10, 11, 30), mins(30)),
        "Wed 2026-06-10 12:00 CEST"
    );
    assert!(!cal.is_open(at(&tz, 2026, 6, 10, 12, 30)));
    assert!(cal.is_open(at(&tz, 2026, 6, 10, 13, 0)));
    assert!(!cal.is_open(at(&tz, 2026, 6, 10, 17, 0)));
    assert_eq!(
        cal.next_open(at(&tz, 2026, 6, 10, 12, 15)),
        Some(at(&tz, 2026, 6, 10, 13, 0))
    );
    let open = at(&tz, 2026, 6, 10, 9, 5);
    assert_eq!(cal.next_open(open), Some(open));
    assert_eq!(
        cal.business_time_between(at(&tz, 2026, 6, 10, 8, 0), at(&tz, 2026, 6, 11, 8, 0)),
        hours(7)
    );
}

#[test]
fn night_shift_spanning_midnight() {
    let cal = calendar(
        "Europe/Berlin",
        &[("daily", "00:00-02:00, 22:00-24:00")],
        &[],
    );
    let tz = cal.time_zone().clone();
    assert_eq!(
        due(&cal, at(&tz, 2026, 6, 10, 23, 30), hours(1)),
        "Thu 2026-06-11 00:30 CEST"
    );
    assert_eq!(
        due(&cal, at(&tz, 2026, 6, 11, 2, 0), mins(30)),
        "Thu 2026-06-11 22:30 CEST"
    );
    assert_eq!(
        cal.business_time_between(at(&tz, 2026, 6, 10, 21, 0), at(&tz, 2026, 6, 11, 3, 0)),
        hours(4)
    );
    assert!(cal.is_open(at(&tz, 2026, 6, 11, 0, 0)));
    assert!(!cal.is_open(at(&tz, 2026, 6, 11, 2, 0)));
    assert!(cal.is_open(at(&tz, 2026, 6, 10, 22, 0)));
    assert!(!cal.is_open(at(&tz, 2026, 6, 10, 21, 59)));
    // The fall-back night: 22:00-24:00 CEST plus 00:00-02:00 CEST, and
    // 02:00-03:00 CEST happens before the clock shows 02:00 CET.
    assert_eq!(
        cal.business_time_between(at(&tz, 2026, 10, 24, 21, 0), at(&tz, 2026, 10, 25, 12, 0)),
        hours(4)
    );
}

// ---- daylight saving time ---------------------------------------------------

#[test]
fn berlin_spring_forward_week() {
    let tz = zone("Europe/Berlin");
    // Last Sunday of March 2026: 02:00 CET becomes 03:00 CEST.
    assert_eq!(date(2026, 3, 29).weekday(), Weekday::Sunday);
    let always = BusinessCalendar::new(tz.clone(), WeeklyHours::always_open(), []).expect("24/7");
    let start = at(&tz, 2026, 3, 28, 12, 0);
    assert_eq!(due(&always, start, hours(24)), "Sun 2026-03-29 13:00 CEST");
    assert_eq!(
        always.due_at(start, hours(24)),
        Ok(start + SignedDuration::from_hours(24))
    );
    // Same answer through the day-bucket walk (a holiday disables the
    // wall-clock shortcut).
    let mut walked = always.clone();
    walked.add_holidays([date(2030, 1, 1)]);
    assert_eq!(
        walked.due_at(start, hours(24)),
        always.due_at(start, hours(24))
    );
    assert_eq!(
        walked.business_time_between(start, start + hours(24)),
        hours(24)
    );

    let office = calendar("Europe/Berlin", &[("weekdays", "09:00-17:00")], &[]);
    let friday = at(&tz, 2026, 3, 27, 16, 0);
    assert_eq!(due(&office, friday, hours(2)), "Mon 2026-03-30 10:00 CEST");
    let due_ts = office.due_at(friday, hours(2)).expect("due");
    assert_eq!(due_ts.duration_since(friday), hours(65)); // 66 h on the wall clock

    // A whole Sunday is 23 h; a range across the gap loses the hour.
    let sunday = |hours: &'static str| calendar("Europe/Berlin", &only("sun", hours), &[]);
    let day = |cal: &BusinessCalendar, d: i8| {
        cal.business_time_between(at(&tz, 2026, 3, d, 0, 0), at(&tz, 2026, 3, d + 1, 0, 0))
    };
    assert_eq!(day(&sunday("00:00-24:00"), 29), hours(23));
    assert_eq!(day(&sunday("01:00-04:00"), 22), hours(3));
    assert_eq!(day(&sunday("01:00-04:00"), 29), hours(2));
    // Compatible disambiguation: 02:30 does not exist and resolves to 03:30
    // CEST, so 02:30-04:00 keeps 30 min and 02:30-03:10 is empty that day.
    assert_eq!(day(&sunday("02:30-04:00"), 29), mins(30));
    assert_eq!(day(&sunday("02:30-03:10"), 29), SignedDuration::ZERO);
    assert_eq!(day(&sunday("02:30-03:10"), 22), mins(40));
}

#[test]
fn berlin_fall_back_week() {
    let tz = zone("Europe/Berlin");
    // Last Sunday of October 2026: 03:00 CEST becomes 02:00 CET.
    assert_eq!(date(2026, 10, 25).weekday(), Weekday::Sunday);
    let always = BusinessCalendar::new(tz.clone(), WeeklyHours::always_open(), []).expect("24/7");
    let start = at(&tz, 2026, 10, 24, 12, 0);
    assert_eq!(due(&always, start, hours(24)), "Sun 2026-10-25 11:00 CET");

    let sunday = |hours: &'static str| calendar("Europe/Berlin", &only("sun", hours), &[]);
    let day = |cal: &BusinessCalendar| {
        cal.business_time_between(at(&tz, 2026, 10, 25, 0, 0), at(&tz, 2026, 10, 26, 0, 0))
    };
    assert_eq!(day(&sunday("00:00-24:00")), hours(25));
    assert_eq!(day(&sunday("01:00-04:00")), hours(4));
    // 02:00 is ambiguous and resolves to its first occurrence (CEST).
    let fold = sunday("02:00-03:00");
    assert_eq!(day(&fold), hours(2));
    let second_pass = at(&tz, 2026, 10, 25, 3, 0) - mins(45); // 02:15 CET
    assert_eq!(local(&fold, second_pass), "Sun 2026-10-25 02:15 CET");
    assert!(fold.is_open(second_pass));
    assert_eq!(day(&sunday("02:30-05:00")), hours(3) + mins(30));

    let office = calendar("Europe/Berlin", &[("weekdays", "09:00-17:00")], &[]);
    let friday = at(&tz, 2026, 10, 23, 16, 0);
    let due_ts = office.due_at(friday, hours(2)).expect("due");
    assert_eq!(local(&office, due_ts), "Mon 2026-10-26 10:00 CET");
    assert_eq!(due_ts.duration_since(friday), hours(67));
}

#[test]
fn sao_paulo_dst_in_2018_and_none_after_2019() {
    let tz = zone("America/Sao_Paulo");
    // jiff's tz database knows the last Brazilian DST period: it began on
    // 2018-11-04 at 00:00 (-03 → -02) and ended on 2019-02-17 at 00:00
    // (-02 → -03, back to 23:00 on the 16th). None since.
    let transitions: Vec<(Timestamp, i32)> = tz
        .following(at(&tz, 2018, 10, 1, 0, 0))
        .take(2)
        .map(|t| (t.timestamp(), t.offset().seconds()))
        .collect();
    assert_eq!(
        transitions,
        vec![
            ("2018-11-04T03:00:00Z".parse().expect("ts"), -2 * 3600),
            ("2019-02-17T02:00:00Z".parse().expect("ts"), -3 * 3600),
        ]
    );
    // jiff lists one more "transition" in 2038 (the end of the zone file's
    // 32-bit data) that keeps -03; the offset never changes again.
    let until_2100 = at(&tz, 2100, 1, 1, 0, 0);
    assert!(
        tz.following(at(&tz, 2019, 3, 1, 0, 0))
            .take_while(|t| t.timestamp() < until_2100)
            .all(|t| t.offset().seconds() == -3 * 3600)
    );

    let always = BusinessCalendar::new(tz.clone(), WeeklyHours::always_open(), []).expect("24/7");
    assert_eq!(
        due(&always, at(&tz, 2018, 11, 3, 12, 0), hours(24)),
        "Sun 2018-11-04 13:00 -02"
    );

    // Midnight does not exist on 2018-11-04: the day starts at 01:00.
    let sunday = calendar("America/Sao_Paulo", &only("sun", "00:00-24:00"), &[]);
    let saturday_night = at(&tz, 2018, 11, 3, 23, 30);
    let opening = sunday.next_open(saturday_night).expect("opens");
    assert_eq!(local(&sunday, opening), "Sun 2018-11-04 01:00 -02");
    assert_eq!(
        sunday.business_time_between(saturday_night, at(&tz, 2018, 11, 5, 0, 0)),
        hours(23)
    );

    // Fall back at midnight: 23:00-24:00 on Saturday 2019-02-16 happens twice.
    let night = calendar(
        "America/Sao_Paulo",
        &[("sat", "22:00-24:00"), ("sun", "00:00-02:00")],
        &[],
    );
    let saturday = at(&tz, 2019, 2, 16, 21, 0);
    assert_eq!(
        night.business_time_between(saturday, at(&tz, 2019, 2, 17, 12, 0)),
        hours(5)
    );
    assert_eq!(due(&night, saturday, hours(4)), "Sun 2019-02-17 01:00 -03");

    let office = calendar("America/Sao_Paulo", &[("weekdays", "09:00-18:00")], &[]);
    assert_eq!(
        due(&office, at(&tz, 2018, 11, 2, 17, 0), hours(2)),
        "Mon 2018-11-05 10:00 -02"
    );
    assert_eq!(
        due(&office, at(&tz, 2019, 11, 1, 17, 0), hours(2)),
        "Mon 2019-11-04 10:00 -03"
    );
}

// ---- holidays ---------------------------------------------------------------

#[test]
fn christmas_and_new_year() {
    let holidays = [date(2026, 12, 25), date(2026, 12, 26), date(2027, 1, 1)];
    let cal = calendar("Europe/Berlin", &[("weekdays", "09:00-17:00")], &holidays);
    let tz = cal.time_zone().clone();
    let christmas_eve = at(&tz, 2026, 12, 24, 16, 0);
    assert_eq!(
        due(&cal, christmas_eve, hours(2)),
        "Mon 2026-12-28 10:00 CET"
    );
    let plain = calendar("Europe/Berlin", &[("weekdays", "09:00-17:00")], &[]);
    assert_eq!(
        due(&plain, christmas_eve, hours(2)),
        "Fri 2026-12-25 10:00 CET"
    );
    assert!(!cal.is_open(at(&tz, 2026, 12, 25, 10, 0)));
    // Year boundary: New Year's Eve afternoon, New Year's Day closed.
    assert_eq!(
        due(&cal, at(&tz, 2026, 12, 31, 16, 30), hours(1)),
        "Mon 2027-01-04 09:30 CET"
    );
    let always = BusinessCalendar::new(tz.clone(), WeeklyHours::always_open(), []).expect("24/7");
    assert_eq!(
        due(&always, at(&tz, 2026, 12, 31, 23, 30), hours(1)),
        "Fri 2027-01-01 00:30 CET"
    );
}

#[test]
fn holiday_on_the_monday_after_a_weekend() {
    // Whit Monday 2026.
    let cal = calendar(
        "Europe/Berlin",
        &[("weekdays", "09:00-17:00")],
        &[date(2026, 5, 25)],
    );
    let tz = cal.time_zone().clone();
    assert_eq!(
        due(&cal, at(&tz, 2026, 5, 22, 16, 0), hours(2)),
        "Tue 2026-05-26 10:00 CEST"
    );
    assert_eq!(
        due(&cal, at(&tz, 2026, 5, 25, 10, 0), hours(1)),
        "Tue 2026-05-26 10:00 CEST"
    );
    assert_eq!(
        cal.next_open(at(&tz, 2026, 5, 23, 12, 0)),
        Some(at(&tz, 2026, 5, 26, 9, 0))
    );
}

#[test]
fn holidays_close_24_7_queues_too() {
    let tz = zone("Europe/Berlin");
    let cal = BusinessCalendar::new(tz.clone(), WeeklyHours::always_open(), [date(2026, 12, 25)])
        .expect("valid");
    let start = at(&tz, 2026, 12, 24, 12, 0);
    assert_eq!(due(&cal, start, hours(24)), "Sat 2026-12-26 12:00 CET");
}

#[test]
fn tokyo_golden_week_from_the_ics_fixture() {
    let tz = zone("Asia/Tokyo");
    let holidays = holidays_from_ics(JP_ICS, 2026, 2027, &tz).expect("fixture parses");
    let week = WeeklyHours::from_days([("weekdays", "09:00-12:00, 13:00-18:00")]).expect("hours");
    let cal = BusinessCalendar::new(tz.clone(), week, holidays.dates).expect("calendar");
    // Sunday 3 May to Wednesday 6 May 2026 are closed (6 May substitutes
    // for the 3rd, a Sunday).
    assert_eq!(
        due(&cal, at(&tz, 2026, 5, 1, 17, 30), hours(1)),
        "Thu 2026-05-07 09:30 JST"
    );
}

// ---- bounds -----------------------------------------------------------------

#[test]
fn pathological_calendars_end_in_bounded_work() {
    // One minute a week, in a zone with DST, with holidays sprinkled in.
    let holidays: Vec<Date> = (2026..2046).map(|y| date(y, 12, 25)).collect();
    let cal = calendar("Europe/Berlin", &only("mon", "09:00-09:01"), &holidays);
    let start = at(cal.time_zone(), 2026, 1, 1, 0, 0);
    let err = cal
        .due_at(start, hours(10_000))
        .expect_err("cannot be spent");
    assert_eq!(
        err,
        DueError::BeyondHorizon {
            start,
            budget: hours(10_000),
            years: SEARCH_HORIZON_YEARS
        }
    );
    assert!(
        err.to_string().contains("not used up within 20 years"),
        "{err}"
    );

    // 500 min takes about ten years; found exactly.
    let due_ts = cal.due_at(start, mins(500)).expect("within the horizon");
    assert_eq!(cal.business_time_between(start, due_ts), mins(500));
    let shown = local(&cal, due_ts);
    assert_eq!(shown, "Mon 2035-08-13 09:01 CEST");
    // An exact cross-check of the week skipping: count the Mondays walked.
    let mut mondays = 0;
    let mut day = date(2026, 1, 5);
    while mondays < 500 {
        if !holidays.contains(&day) {
            mondays += 1;
        }
        if mondays < 500 {
            day = day.checked_add(jiff::Span::new().days(7)).expect("date");
        }
    }
    assert_eq!(
        due_ts,
        at(cal.time_zone(), day.year(), day.month(), day.day(), 9, 1)
    );
}

#[test]
fn holidays_covering_the_horizon_mean_no_opening() {
    let mondays: Vec<Date> = (0..(22 * 53))
        .map(|w| {
            date(2026, 1, 5)
                .checked_add(jiff::Span::new().weeks(w))
                .expect("date")
        })
        .collect();
    let cal = calendar("Europe/Berlin", &only("mon", "09:00-17:00"), &mondays);
    let start = at(cal.time_zone(), 2026, 1, 1, 0, 0);
    assert_eq!(cal.next_open(start), None);
    assert!(!cal.is_open(at(cal.time_zone(), 2026, 1, 5, 10, 0)));
    assert!(matches!(
        cal.due_at(start, hours(1)),
        Err(DueError::BeyondHorizon { .. })
    ));
}

#[test]
fn budgets_zero_and_negative() {
    let cal = calendar("Europe/Berlin", &[("weekdays", "09:00-17:00")], &[]);
    let saturday = at(cal.time_zone(), 2026, 11, 21, 12, 0);
    assert_eq!(cal.due_at(saturday, SignedDuration::ZERO), Ok(saturday));
    let err = cal.due_at(saturday, -mins(5)).expect_err("negative");
    assert_eq!(err, DueError::NegativeBudget { budget: -mins(5) });
    assert_eq!(
        err.to_string(),
        "response-time budget -5m is negative; use zero or a positive duration"
    );
}

#[test]
fn the_ends_of_time_give_errors_not_panics() {
    let office = calendar("Europe/Berlin", &[("weekdays", "09:00-17:00")], &[]);
    let always =
        BusinessCalendar::new(zone("Europe/Berlin"), WeeklyHours::always_open(), []).expect("24/7");
    for cal in [&office, &always] {
        let last = Timestamp::MAX;
        assert!(matches!(
            cal.due_at(last - hours(1), hours(2)),
            Err(DueError::BeyondHorizon { .. })
        ));
        assert!(cal.business_time_between(last - hours(240), last) <= hours(240));
        let _ = cal.is_open(last);
        let _ = cal.next_open(last);
        let _ = cal.is_open(Timestamp::MIN);
        let _ = cal.due_at(Timestamp::MIN, hours(1));
    }
}

#[test]
fn a_week_without_hours_is_rejected() {
    let err = BusinessCalendar::new(zone("UTC"), WeeklyHours::closed(), []).expect_err("invalid");
    assert!(matches!(err, CalendarError::NeverOpen));
    let week = WeeklyHours::from_days([("daily", "closed")]).expect("parses");
    assert!(matches!(
        BusinessCalendar::new(zone("UTC"), week, []),
        Err(CalendarError::NeverOpen)
    ));
}

// ---- configuration parsing --------------------------------------------------

#[test]
fn parses_ranges() {
    let ranges = parse_ranges("09:00-12:00, 13:00-17:30").expect("valid");
    let shown: Vec<String> = ranges.iter().map(HoursRange::to_string).collect();
    assert_eq!(shown, ["09:00-12:00", "13:00-17:30"]);
    assert_eq!(ranges.first().map(|r| r.length()), Some(hours(3)));
    for closed in ["closed", " Closed ", "", "  "] {
        assert_eq!(parse_ranges(closed).expect("closed"), vec![], "{closed:?}");
    }
    assert_eq!(
        parse_ranges("00:00-24:00").expect("day"),
        vec![HoursRange::WHOLE_DAY]
    );
    assert_eq!(
        parse_ranges("9:00 - 17:00").expect("short hour"),
        parse_ranges("09:00-17:00").expect("x")
    );
    assert_eq!(
        parse_ranges("09:00–17:00").expect("en dash"),
        parse_ranges("09:00-17:00").expect("x")
    );
    // Touching ranges merge.
    assert_eq!(
        parse_ranges("09:00-12:00,12:00-17:00").expect("touching"),
        parse_ranges("09:00-17:00").expect("x")
    );
}

#[test]
fn range_errors_say_what_is_wrong_and_what_is_expected() {
    let problem = |text: &str| match parse_ranges(text) {
        Err(CalendarError::InvalidHours { problem, .. }) => problem,
        other => panic!("{text:?} gave {other:?}"),
    };
    assert!(problem("17:00-09:00").contains("ends before it starts"));
    assert!(problem("22:00-02:00").contains("22:00-24:00"));
    assert_eq!(
        problem("09:00-12:00, 11:00-13:00"),
        "11:00-13:00 overlaps 09:00-12:00"
    );
    assert!(problem("13:00-17:00, 09:00-12:00").contains("list ranges in time order"));
    assert!(problem("09:00-09:00").contains("empty"));
    assert!(problem("24:00-24:00").contains("end of the day"));
    assert!(problem("25:00-26:00").contains("\"25:00\" is not a time of day"));
    assert!(problem("09:60-10:00").contains("not a time of day"));
    assert!(problem("24:30-24:45").contains("not a time of day"));
    assert!(problem("9-17").contains("\"9\" is not a time of day"));
    assert!(problem("09:00").contains("not a range"));
    assert!(problem("09:00-12:00,,13:00-14:00").contains("between two commas"));

    let err = parse_ranges("17:00-09:00").expect_err("reversed");
    assert_eq!(
        err.to_string(),
        "business hours \"17:00-09:00\": 17:00-09:00 ends before it starts; split hours past \
         midnight, e.g. 22:00-24:00 on one day and 00:00-02:00 on the next; expected \
         comma-separated HH:MM-HH:MM ranges in time order, e.g. \"09:00-12:00, 13:00-17:30\", \
         \"00:00-24:00\" for the whole day, or \"closed\""
    );
}

#[test]
fn weekly_hours_from_config_keys() {
    let week = WeeklyHours::from_days([
        ("fri", "09:00-15:00"),
        ("weekdays", "09:00-12:00, 13:00-17:00"),
        ("Sunday", "10:00-14:00"),
    ])
    .expect("valid");
    assert_eq!(
        week.to_string(),
        "mon 09:00-12:00, 13:00-17:00; tue 09:00-12:00, 13:00-17:00; \
         wed 09:00-12:00, 13:00-17:00; thu 09:00-12:00, 13:00-17:00; fri 09:00-15:00; \
         sat closed; sun 10:00-14:00"
    );
    assert_eq!(week.weekly_total(), hours(4 * 7 + 6 + 4));
    assert_eq!(WeeklyHours::always_open().to_string(), "24/7");
    assert!(
        WeeklyHours::from_days([("daily", "00:00-24:00")])
            .expect("24/7")
            .is_always_open()
    );

    let err = WeeklyHours::from_days([("mo", "09:00-17:00")]).expect_err("unknown");
    assert!(matches!(&err, CalendarError::UnknownWeekday { key } if key == "mo"));
    assert!(err.to_string().contains("expected mon, tue"), "{err}");

    let err = WeeklyHours::from_days([("mon", "09:00-17:00"), ("monday", "10:00-11:00")])
        .expect_err("duplicate");
    assert_eq!(
        err.to_string(),
        "mon is given twice in business hours, as \"mon\" and \"monday\"; keep one"
    );

    let err = WeeklyHours::from_days([("tue", "9:00-25:00")]).expect_err("bad hours");
    assert!(
        err.to_string()
            .starts_with("business hours for tue \"9:00-25:00\": "),
        "{err}"
    );
}

#[test]
fn typed_weekly_hours() {
    let morning = HoursRange::new(9 * 60, 12 * 60).expect("valid");
    let afternoon = HoursRange::new(13 * 60, 17 * 60).expect("valid");
    let week = WeeklyHours::closed()
        .with_day(Weekday::Monday, &[morning, afternoon])
        .expect("valid");
    assert_eq!(week.day(Weekday::Monday), &[morning, afternoon]);
    assert!(week.day(Weekday::Tuesday).is_empty());
    let err = WeeklyHours::closed()
        .with_day(Weekday::Friday, &[afternoon, morning])
        .expect_err("unsorted");
    assert!(
        err.to_string()
            .starts_with("business hours for fri \"13:00-17:00, 09:00-12:00\"")
    );
    assert!(HoursRange::new(600, 600).is_err());
    assert!(HoursRange::new(0, 1441).is_err());
    assert_eq!(
        HoursRange::new(22 * 60, 1440)
            .expect("to midnight")
            .to_string(),
        "22:00-24:00"
    );
}

#[test]
fn parses_holidays_and_zones() {
    assert_eq!(
        parse_holiday(" 2026-12-25 ").expect("date"),
        date(2026, 12, 25)
    );
    let err = parse_holiday("2026-13-01").expect_err("month 13");
    assert_eq!(
        err.to_string(),
        "holiday \"2026-13-01\" is not a date; expected YYYY-MM-DD, e.g. \"2026-12-25\""
    );
    assert!(parse_holiday("25.12.2026").is_err());
    assert_eq!(
        parse_time_zone("Europe/Berlin").expect("zone"),
        zone("Europe/Berlin")
    );
    let err = parse_time_zone("CEST").expect_err("abbreviation");
    assert_eq!(
        err.to_string(),
        "unknown time zone \"CEST\"; use an IANA name, e.g. \"Europe/Berlin\""
    );
}

#[test]
fn formats_for_operators() {
    let berlin = zone("Europe/Berlin");
    assert_eq!(
        format_local(at(&berlin, 2026, 11, 23, 10, 0), &berlin),
        "Mon 2026-11-23 10:00 CET"
    );
    let tokyo = zone("Asia/Tokyo");
    assert_eq!(
        format_local(at(&berlin, 2026, 11, 23, 10, 0), &tokyo),
        "Mon 2026-11-23 18:00 JST"
    );
    assert_eq!(format_duration(hours(22) + mins(10)), "22 h 10 min");
    assert_eq!(format_duration(hours(24)), "24 h");
    assert_eq!(format_duration(mins(45)), "45 min");
    assert_eq!(format_duration(SignedDuration::from_secs(59)), "0 min");
    assert_eq!(format_duration(SignedDuration::ZERO), "0 min");
    assert_eq!(format_duration(-(hours(1) + mins(5))), "-1 h 5 min");
    assert_eq!(format_duration(-SignedDuration::from_secs(30)), "0 min");
}

// ---- iCalendar --------------------------------------------------------------

/// Easter Sunday (anonymous Gregorian algorithm), to check the fixture.
fn easter(year: i16) -> Date {
    let y = i32::from(year);
    let (a, b, c) = (y % 19, y / 100, y % 100);
    let (d, e) = (b / 4, b % 4);
    let g = (8 * b + 13) / 25;
    let h = (19 * a + b - d - g + 15) % 30;
    let (i, k) = (c / 4, c % 4);
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 19 * l) / 433;
    let month = (h + l - 7 * m + 90) / 25;
    let day = (h + l - 7 * m + 33 * month + 19) % 32;
    let (month, day) = (
        i8::try_from(month).expect("month"),
        i8::try_from(day).expect("day"),
    );
    date(year, month, day)
}

fn dates(list: &[(i16, i8, i8)]) -> Vec<Date> {
    list.iter().map(|&(y, m, d)| date(y, m, d)).collect()
}

#[test]
fn german_holidays_fixture() {
    let berlin = zone("Europe/Berlin");
    let found = holidays_from_ics(DE_ICS, 2026, 2027, &berlin).expect("fixture parses");
    assert_eq!(found.warnings, vec![]);
    let expected = dates(&[
        (2026, 1, 1),
        (2026, 4, 3),
        (2026, 4, 6),
        (2026, 5, 1),
        (2026, 5, 14),
        (2026, 5, 25),
        (2026, 10, 3),
        (2026, 12, 25),
        (2026, 12, 26),
        (2027, 1, 1),
        (2027, 3, 26),
        (2027, 3, 29),
        (2027, 5, 1),
        (2027, 5, 6),
        (2027, 5, 17),
        (2027, 10, 3),
        (2027, 12, 25),
        (2027, 12, 26),
    ]);
    assert_eq!(found.dates, expected);
    for year in [2026, 2027] {
        let sunday = easter(year);
        for offset in [-2, 1, 39, 50] {
            let day = sunday
                .checked_add(jiff::Span::new().days(offset))
                .expect("date");
            assert!(found.dates.contains(&day), "{day} (Easter {offset:+})");
        }
    }
    // The year window, and a queue zone that does not matter because the
    // file names Europe/Berlin for its UTC times.
    let only_2027 = holidays_from_ics(DE_ICS, 2027, 2027, &zone("Pacific/Kiritimati")).expect("ok");
    assert_eq!(only_2027.dates, expected.get(9..).expect("2027 part"));
}

#[test]
fn japanese_support_calendar_fixture() {
    let tokyo = zone("Asia/Tokyo");
    let found = holidays_from_ics(JP_ICS, 2026, 2027, &tokyo).expect("fixture parses");
    #[rustfmt::skip]
    let expected = dates(&[
        (2026, 1, 1), (2026, 1, 2), (2026, 1, 3), (2026, 1, 12), (2026, 2, 11), (2026, 2, 23),
        (2026, 3, 20), (2026, 4, 29), (2026, 5, 3), (2026, 5, 4), (2026, 5, 5), (2026, 5, 6),
        (2026, 6, 15), (2026, 7, 20), (2026, 8, 11), (2026, 8, 13), (2026, 8, 14), (2026, 8, 15),
        (2026, 9, 21), (2026, 9, 22), (2026, 9, 23), (2026, 10, 12), (2026, 11, 3), (2026, 11, 23),
        (2026, 12, 29), (2026, 12, 30), (2026, 12, 31),
        (2027, 1, 1), (2027, 1, 2), (2027, 1, 3), (2027, 1, 11), (2027, 2, 11), (2027, 2, 23),
        (2027, 3, 1), (2027, 3, 21), (2027, 3, 22), (2027, 4, 29), (2027, 5, 3), (2027, 5, 4),
        (2027, 5, 5), (2027, 7, 19), (2027, 8, 11), (2027, 9, 20), (2027, 9, 23), (2027, 10, 11),
        (2027, 11, 3), (2027, 11, 23), (2027, 12, 29), (2027, 12, 30), (2027, 12, 31),
    ]);
    assert_eq!(found.dates, expected);
    let warnings: Vec<String> = found.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "line 156 (\"月末締め\"): RRULE FREQ=MONTHLY is not supported; holidays need \
             FREQ=YEARLY; event ignored",
            "line 163 (\"日付のない予定\"): no DTSTART; event ignored",
        ]
    );
    // The Monday holidays really are the 2nd/3rd Mondays.
    for day in [
        date(2026, 1, 12),
        date(2026, 7, 20),
        date(2026, 9, 21),
        date(2027, 10, 11),
    ] {
        assert_eq!(day.weekday(), Weekday::Monday);
    }
}

/// A minimal calendar around some VEVENT lines.
fn ics(events: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{events}END:VCALENDAR\r\n")
}

fn read(events: &str, from: i16, to: i16, tz: &str) -> super::ical::IcsHolidays {
    holidays_from_ics(&ics(events), from, to, &zone(tz)).expect("parses")
}

#[test]
fn ics_utc_times_use_the_queue_zone_without_x_wr_timezone() {
    let event = "BEGIN:VEVENT\r\nDTSTART:20261224T230000Z\r\nDTEND:20261225T230000Z\r\n\
                 SUMMARY:x\r\nEND:VEVENT\r\n";
    assert_eq!(
        read(event, 2026, 2026, "Europe/Berlin").dates,
        [date(2026, 12, 25)]
    );
    assert_eq!(
        read(event, 2026, 2026, "America/New_York").dates,
        [date(2026, 12, 24), date(2026, 12, 25)]
    );
}

#[test]
fn ics_rules_count_until_feb29_last_day_and_byday_in_year() {
    // COUNT counts occurrences before the window too.
    let count = "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20200704\r\nRRULE:FREQ=YEARLY;COUNT=8\r\nEND:VEVENT\r\n";
    assert_eq!(
        read(count, 2026, 2030, "UTC").dates,
        dates(&[(2026, 7, 4), (2027, 7, 4)])
    );
    let leap = "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20240229\r\nRRULE:FREQ=YEARLY\r\nEND:VEVENT\r\n";
    assert_eq!(
        read(leap, 2025, 2032, "UTC").dates,
        dates(&[(2028, 2, 29), (2032, 2, 29)])
    );
    let last = "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260228\r\n\
                RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=-1;INTERVAL=2\r\nEND:VEVENT\r\n";
    assert_eq!(
        read(last, 2026, 2030, "UTC").dates,
        dates(&[(2026, 2, 28), (2028, 2, 29), (2030, 2, 28)])
    );
    let nth = "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260101\r\nRRULE:FREQ=YEARLY;BYDAY=20MO\r\nEND:VEVENT\r\n";
    assert_eq!(
        read(nth, 2026, 2027, "UTC").dates,
        dates(&[(2026, 1, 1), (2026, 5, 18), (2027, 5, 17)])
    );
    let until = "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261231\r\n\
                 RRULE:FREQ=YEARLY;UNTIL=20281231T000000Z\r\nEND:VEVENT\r\n";
    assert_eq!(
        read(until, 2026, 2030, "UTC").dates,
        dates(&[(2026, 12, 31), (2027, 12, 31), (2028, 12, 31)])
    );
}

#[test]
fn ics_duration_overrides_cancellations_and_nesting() {
    let events = "BEGIN:VEVENT\r\nUID:a\r\nDTSTART;VALUE=DATE:20260601\r\nDURATION:P2D\r\n\
                  END:VEVENT\r\n\
                  BEGIN:VEVENT\r\nUID:b\r\nDTSTART;VALUE=DATE:20250815\r\nRRULE:FREQ=YEARLY\r\n\
                  END:VEVENT\r\n\
                  BEGIN:VEVENT\r\nUID:b\r\nRECURRENCE-ID;VALUE=DATE:20260815\r\n\
                  DTSTART;VALUE=DATE:20260817\r\nEND:VEVENT\r\n\
                  BEGIN:VEVENT\r\nUID:c\r\nSTATUS:CANCELLED\r\nDTSTART;VALUE=DATE:20260301\r\n\
                  END:VEVENT\r\n\
                  BEGIN:VEVENT\r\nUID:d\r\nDTSTART;VALUE=DATE:20260101\r\nDTEND;VALUE=DATE:20280101\r\n\
                  SUMMARY:Sabbatical\r\nEND:VEVENT\r\n\
                  BEGIN:VTODO\r\nDTSTART;VALUE=DATE:20260401\r\nEND:VTODO\r\n";
    let found = read(events, 2026, 2027, "UTC");
    assert_eq!(
        found.dates,
        dates(&[(2026, 6, 1), (2026, 6, 2), (2026, 8, 17), (2027, 8, 15)])
    );
    let warnings: Vec<String> = found.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "line 23 (\"Sabbatical\"): it lasts 730 days; a holiday event may last at most 366; \
          event ignored"
        ]
    );
}

#[test]
fn ics_structural_errors() {
    let tz = zone("UTC");
    let err = holidays_from_ics("hello\r\n", 2026, 2026, &tz).expect_err("not ics");
    assert_eq!(
        err.to_string(),
        "not an iCalendar file: line 1 is \"hello\"; expected an .ics export starting with \
         BEGIN:VCALENDAR"
    );
    assert!(matches!(
        holidays_from_ics("", 2026, 2026, &tz),
        Err(IcsError::NotICalendar { .. })
    ));
    let truncated = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20261225\r\n";
    assert_eq!(
        holidays_from_ics(truncated, 2026, 2026, &tz),
        Err(IcsError::Truncated {
            component: "VEVENT".to_owned(),
            begun: 2
        })
    );
    let mismatched = "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
    assert!(matches!(
        holidays_from_ics(mismatched, 2026, 2026, &tz),
        Err(IcsError::Mismatched { line: 3, .. })
    ));
    let stray = format!("{}END:VEVENT\r\n", ics(""));
    assert_eq!(
        holidays_from_ics(&stray, 2026, 2026, &tz),
        Err(IcsError::UnexpectedEnd {
            line: 4,
            found: "VEVENT".to_owned()
        })
    );
    assert!(matches!(
        holidays_from_ics(&ics(""), 2027, 2026, &tz),
        Err(IcsError::EmptyYearWindow { .. })
    ));
}

#[test]
fn ics_bytes_with_a_character_split_by_folding() {
    let mut bytes = ics(
        "BEGIN:VEVENT\r\nDTSTART;VALUE=DATE:20260101\r\nRRULE:FREQ=MONTHLY\r\nSUMMARY:\u{5143}",
    )
    .into_bytes();
    // Replace the tail so that "日" (E6 97 A5) is split by a fold.
    bytes.truncate(bytes.len() - "END:VCALENDAR\r\n".len());
    bytes.extend_from_slice(b"\xE6\r\n \x97\xA5\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n");
    let found = holidays_from_ics_bytes(&bytes, 2026, 2026, &zone("UTC")).expect("parses");
    let summaries: Vec<Option<String>> = found.warnings.into_iter().map(|w| w.summary).collect();
    assert_eq!(summaries, [Some("元日".to_owned())]);
}

mod props;
