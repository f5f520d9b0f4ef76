//! The response clock: business calendars (pure) and the timer that turns
//! due times into warnings and escalations.

pub mod calendar;
pub mod clock;
pub mod timer;

use std::time::Duration;

use jiff::Timestamp;

use crate::config::Config;

/// When `budget` of the queue's business time has passed after `start`.
/// An unknown queue counts wall-clock time; a budget the calendar cannot
/// fit within its search horizon (a queue open a minute a week) is due at
/// the end of time rather than never computed.
pub fn due_at(cfg: &Config, queue: &str, start: Timestamp, budget: Duration) -> Timestamp {
    let span = jiff::SignedDuration::try_from(budget).unwrap_or(jiff::SignedDuration::MAX);
    match cfg.queue(queue) {
        Some(q) => q.calendar.due_at(start, span).unwrap_or(Timestamp::MAX),
        None => start.checked_add(span).unwrap_or(Timestamp::MAX),
    }
}
