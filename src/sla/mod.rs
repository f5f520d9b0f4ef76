//! The response clock: business calendars (pure) and the timer that turns
//! due times into warnings and escalations.

pub mod calendar;
