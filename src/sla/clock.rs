//! The response clock of one ticket, as a pure state machine.
//!
//! A ticket has a sequence of clocks. Its creation starts the
//! **first-response** clock (`seq` 1); an agent's response stops the running
//! clock and the ticket waits on the customer (no clock runs); the
//! customer's next message starts a **next-response** clock (`seq` 2, 3, …);
//! closing stops everything; a reopen (by a customer reply inside the
//! queue's reopen window, or `postdesk reopen`) starts a next-response
//! clock. The planner decides *what happened* (its events); [`on_trigger`]
//! decides what that means for the clock.
//!
//! A clock starts when the change that starts it is committed (the
//! message's ingest, `postdesk reopen`), and its due time is fixed then:
//! `target` of the queue's business time after the start ([`schedule`]),
//! the same computation the acknowledgement used to promise the customer a
//! time. Config changes apply to clocks started afterwards. Its warning point
//! is a percentage of the target or a duration before the due time, both in
//! business time. Escalation level `k` is due `escalation[k-1].after` of
//! wall-clock time after the due time: a breach is an emergency, and the
//! people on the escalation list want to know when it is one, whatever the
//! queue's hours.
//!
//! [`next_event`] is the scheduler's only question: given a clock and
//! `now`, what is its next action and when. Nothing here reads a clock or a
//! database; the store and the timer pass `now` in.

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::config::{QueueConfig, WarnPoint};
use crate::notify::template;
use crate::sla::calendar::BusinessCalendar;

/// Event names the clock writes to the `events` table; with the planner's
/// names in [`crate::plan::event`].
pub mod event {
    /// A clock started: its kind, sequence number, warning and due time.
    pub const CLOCK_STARTED: &str = "sla.clock.started";
    /// A clock stopped: by a response or by closing; whether it was met.
    pub const CLOCK_STOPPED: &str = "sla.clock.stopped";
    /// A ticket was open without a running clock (or had one while not
    /// open) and the timer set that right.
    pub const CLOCK_RECONCILED: &str = "sla.clock.reconciled";
    /// The warning point was reached; the detail says whether a mail was
    /// queued and to whom.
    pub const WARNING: &str = "sla.warning";
    /// The warning point passed while no timer ran, and the due time too:
    /// no warning, the escalation follows.
    pub const WARNING_SKIPPED: &str = "sla.warning.skipped";
    /// The due time passed with no response.
    pub const BREACHED: &str = "sla.breached";
    /// An escalation level was reached; the detail says whether a mail was
    /// queued and to whom.
    pub const ESCALATED: &str = "sla.escalated";
    /// `postdesk close`.
    pub const TICKET_CLOSED: &str = "ticket.closed";
    /// `postdesk note`: an internal note, never mailed.
    pub const NOTE_ADDED: &str = "ticket.note";
}

/// Which promise a clock measures: the first answer to a new ticket, or
/// the next answer after the customer wrote again. Stored as `first` /
/// `next`; templates call them `first-response` / `next-response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClockKind {
    First,
    Next,
}

impl ClockKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ClockKind::First => "first",
            ClockKind::Next => "next",
        }
    }

    /// The stored code back; `None` for anything else.
    pub fn parse(s: &str) -> Option<ClockKind> {
        match s {
            "first" => Some(ClockKind::First),
            "next" => Some(ClockKind::Next),
            _ => None,
        }
    }

    /// The value alert templates branch on.
    pub fn template(self) -> template::Clock {
        match self {
            ClockKind::First => template::Clock::FirstResponse,
            ClockKind::Next => template::Clock::NextResponse,
        }
    }

    /// The queue's target for this kind of clock.
    pub fn target(self, queue: &QueueConfig) -> Duration {
        match self {
            ClockKind::First => queue.first_response,
            ClockKind::Next => queue.next_response,
        }
    }
}

/// Why a clock stopped. Stored as `responded` / `closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// An agent answered: Sent folder, agent mail on the ticket, `postdesk reply`.
    Responded,
    /// The ticket was closed.
    Closed,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Responded => "responded",
            StopReason::Closed => "closed",
        }
    }

    /// The stored code back; `None` for anything else.
    pub fn parse(s: &str) -> Option<StopReason> {
        match s {
            "responded" => Some(StopReason::Responded),
            "closed" => Some(StopReason::Closed),
            _ => None,
        }
    }
}

/// What happened to a ticket, as far as its clock cares. The store maps the
/// planner's events and the agent commands onto these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A new ticket.
    Created,
    /// The customer wrote on the ticket (a human message, not an agent's).
    CustomerWrote,
    /// An agent answered the customer.
    AgentResponded,
    /// The ticket was closed.
    Closed,
    /// A closed ticket was opened again.
    Reopened,
}

/// When a clock stopped and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    pub at: Timestamp,
    pub reason: StopReason,
}

/// When a clock warns and when it is due: fixed at its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub warn_at: Timestamp,
    pub due_at: Timestamp,
}

/// One response clock of a ticket, as stored in `sla_clocks`. The alert
/// bookkeeping (`warned_at`, `breached_at`, `escalated`) is what makes each
/// alert happen once; the outbox's dedup keys make the mails once even if
/// this bookkeeping were lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    /// 1 for the first clock of a ticket, then 2, 3, …; part of the alert
    /// dedup keys.
    pub seq: u32,
    pub kind: ClockKind,
    pub started_at: Timestamp,
    /// The business-time budget, for display and the stop event.
    pub target: Duration,
    pub warn_at: Timestamp,
    pub due_at: Timestamp,
    pub stopped: Option<Stopped>,
    /// When the warning point was handled (a mail queued, or skipped).
    pub warned_at: Option<Timestamp>,
    /// When the breach was recorded.
    pub breached_at: Option<Timestamp>,
    /// The highest escalation level handled so far; 0 for none.
    pub escalated: u32,
    /// False for a clock started by old mail (an import): it runs and shows
    /// in status, but sends no alerts.
    pub notify: bool,
}

/// The next thing a running clock does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Queue the warning to the level-1 contacts.
    Warn,
    /// The warning point passed unnoticed and so did the due time: record
    /// that no warning goes out (the escalation says more).
    SkipWarning,
    /// Record the breach.
    Breach,
    /// Queue escalation level `n` (1-based) to its contacts.
    Escalate(u32),
}

/// A change to a ticket's clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Start clock `seq` of this kind.
    Start { kind: ClockKind, seq: u32 },
    /// Stop the running clock `seq`.
    Stop { seq: u32, reason: StopReason },
}

impl Clock {
    /// A new running clock of `kind` started at `start` with the queue's
    /// rules; `queue` is `None` when the ticket's queue is no longer
    /// configured (then 24 h of wall-clock time, warning at 80 %).
    pub fn start(
        queue: Option<&QueueConfig>,
        kind: ClockKind,
        seq: u32,
        start: Timestamp,
    ) -> Clock {
        let (target, warn) = match queue {
            Some(q) => (kind.target(q), q.warn),
            None => (DEFAULT_TARGET, WarnPoint::Percent(80)),
        };
        let s = schedule(queue.map(|q| &q.calendar), target, warn, start);
        Clock {
            seq,
            kind,
            started_at: start,
            target,
            warn_at: s.warn_at,
            due_at: s.due_at,
            stopped: None,
            warned_at: None,
            breached_at: None,
            escalated: 0,
            notify: true,
        }
    }

    pub fn is_running(&self) -> bool {
        self.stopped.is_none()
    }

    /// Records that `action` was done at `now`.
    pub fn record(&mut self, action: Action, now: Timestamp) {
        match action {
            Action::Warn | Action::SkipWarning => self.warned_at = Some(now),
            Action::Breach => {
                // A breach implies the warning point is behind us.
                self.warned_at.get_or_insert(now);
                self.breached_at = Some(now);
            }
            Action::Escalate(level) => self.escalated = self.escalated.max(level),
        }
    }

    /// Stops the clock.
    pub fn stop(&mut self, at: Timestamp, reason: StopReason) {
        if self.stopped.is_none() {
            self.stopped = Some(Stopped { at, reason });
        }
    }

    /// Where the clock stands at `now`.
    pub fn phase(&self, now: Timestamp) -> Phase {
        match self.stopped {
            Some(s) if s.at <= self.due_at => Phase::Met,
            Some(_) => Phase::Missed,
            None if now >= self.due_at => Phase::Breached,
            None if now >= self.warn_at => Phase::DueSoon,
            None => Phase::Running,
        }
    }
}

/// Where a clock stands, for listings and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Running, before the warning point.
    Running,
    /// Running, inside the warning window (warning point ≤ now < due).
    DueSoon,
    /// Running past its due time.
    Breached,
    /// Stopped in time.
    Met,
    /// Stopped after its due time.
    Missed,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::DueSoon => "due-soon",
            Phase::Breached => "breached",
            Phase::Met => "met",
            Phase::Missed => "missed",
        }
    }
}

/// The target of a ticket whose queue is gone from the config; the same as
/// a queue's default.
pub const DEFAULT_TARGET: Duration = Duration::from_secs(24 * 3600);

/// Warning and due time of a clock started at `start` with `target` of
/// business time on `calendar` (`None`: wall-clock time). A budget the
/// calendar cannot fit within its search horizon is due at the end of
/// time rather than never computed.
pub fn schedule(
    calendar: Option<&BusinessCalendar>,
    target: Duration,
    warn: WarnPoint,
    start: Timestamp,
) -> Schedule {
    let after = |budget: Duration| -> Timestamp {
        let span = SignedDuration::try_from(budget).unwrap_or(SignedDuration::MAX);
        match calendar {
            Some(c) => c.due_at(start, span).unwrap_or(Timestamp::MAX),
            None => start.checked_add(span).unwrap_or(Timestamp::MAX),
        }
    };
    let warn_budget = match warn {
        WarnPoint::Percent(p) => {
            let nanos = target.as_nanos() * u128::from(p.min(100)) / 100;
            Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
        }
        WarnPoint::Before(d) => target.saturating_sub(d),
    };
    Schedule {
        warn_at: after(warn_budget),
        due_at: after(target),
    }
}

/// What `trigger` does to a ticket whose latest clock is `latest`.
pub fn on_trigger(latest: Option<&Clock>, trigger: Trigger) -> Option<Change> {
    let running = latest.filter(|c| c.is_running());
    let next_seq = latest.map_or(1, |c| c.seq.saturating_add(1));
    match trigger {
        Trigger::Created | Trigger::CustomerWrote | Trigger::Reopened => match running {
            // The customer writing again while we owe an answer changes
            // nothing: the promise stands.
            Some(_) => None,
            None => Some(Change::Start {
                kind: if latest.is_none() {
                    ClockKind::First
                } else {
                    ClockKind::Next
                },
                seq: next_seq,
            }),
        },
        Trigger::AgentResponded => running.map(|c| Change::Stop {
            seq: c.seq,
            reason: StopReason::Responded,
        }),
        Trigger::Closed => running.map(|c| Change::Stop {
            seq: c.seq,
            reason: StopReason::Closed,
        }),
    }
}

/// The next action of `clock` and when it is due, given the queue's
/// escalation delays (`escalation[k-1]` after the due time for level `k`).
/// A time at or before `now` means: do it now. `None`: nothing more will
/// happen (stopped, or every level is done).
///
/// A warning whose moment passed while no timer ran is skipped once the
/// due time has passed too: "due soon" would be wrong by then.
pub fn next_event(
    clock: &Clock,
    escalation: &[Duration],
    now: Timestamp,
) -> Option<(Timestamp, Action)> {
    if !clock.is_running() {
        return None;
    }
    if clock.warned_at.is_none() && clock.breached_at.is_none() {
        let action = if now >= clock.due_at {
            Action::SkipWarning
        } else {
            Action::Warn
        };
        return Some((clock.warn_at, action));
    }
    if clock.breached_at.is_none() {
        return Some((clock.due_at, Action::Breach));
    }
    let level = clock.escalated.saturating_add(1);
    let at = escalation_at(clock.due_at, escalation, level)?;
    Some((at, Action::Escalate(level)))
}

/// When escalation `level` (1-based) of a clock due at `due` is due:
/// `escalation[level-1]` of wall-clock time after it. `None` when the
/// queue has no such level.
pub fn escalation_at(due: Timestamp, escalation: &[Duration], level: u32) -> Option<Timestamp> {
    let index = usize::try_from(level.checked_sub(1)?).ok()?;
    let after = escalation.get(index)?;
    Some(
        due.checked_add(SignedDuration::try_from(*after).unwrap_or(SignedDuration::MAX))
            .unwrap_or(Timestamp::MAX),
    )
}

/// Every action due at `now`, in order, as [`next_event`] yields them one
/// after the other (a timer that was down does the backlog at once).
pub fn due_actions(clock: &Clock, escalation: &[Duration], now: Timestamp) -> Vec<Action> {
    let mut c = clock.clone();
    let mut out = Vec::new();
    while let Some((at, action)) = next_event(&c, escalation, now)
        && at <= now
    {
        out.push(action);
        c.record(action, now);
    }
    out
}

/// The escalation delays of a queue, in level order.
pub fn escalation_delays(queue: Option<&QueueConfig>) -> Vec<Duration> {
    queue
        .map(|q| q.escalation.iter().map(|e| e.after).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use jiff::civil::date;
    use jiff::tz::TimeZone;

    use super::*;
    use crate::config::Config;
    use crate::sla::calendar::format_local;

    fn config(queues: &str) -> Config {
        Config::from_str(
            &format!(
                "[[mailboxes]]\nname = \"support\"\naddress = \"support@example.com\"\n{queues}"
            ),
            Path::new("/test/postdesk.toml"),
        )
        .expect("test config")
    }

    fn queue<'a>(cfg: &'a Config, name: &str) -> &'a QueueConfig {
        cfg.queue(name).expect("queue in the test config")
    }

    /// The instant of a civil time in `zone`.
    fn at(zone: &str, y: i16, mo: i8, d: i8, h: i8, mi: i8) -> Timestamp {
        date(y, mo, d)
            .at(h, mi, 0, 0)
            .to_zoned(TimeZone::get(zone).expect("zone"))
            .expect("civil time")
            .timestamp()
    }

    fn local(q: &QueueConfig, ts: Timestamp) -> String {
        format_local(ts, &q.timezone)
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    fn h(n: u64) -> Duration {
        Duration::from_secs(n * 3600)
    }

    const OFFICE: &str = "hours = { mon = \"09:00-17:00\", tue = \"09:00-17:00\", wed = \"09:00-17:00\", thu = \"09:00-17:00\", fri = \"09:00-17:00\" }";

    #[test]
    fn a_24_7_queue_is_wall_clock_time() {
        let cfg = config("");
        let q = queue(&cfg, "general");
        let start = ts("2026-11-22T10:00:00Z");
        let c = Clock::start(Some(q), ClockKind::First, 1, start);
        assert_eq!(c.due_at, ts("2026-11-23T10:00:00Z"));
        // 80 % of 24 h.
        assert_eq!(c.warn_at, ts("2026-11-23T05:12:00Z"));
        assert!(c.is_running());
        assert_eq!(c.phase(start), Phase::Running);
    }

    #[test]
    fn the_warning_before_the_due_time_counts_business_time() {
        let cfg = config(&format!(
            "[[queues]]\nname = \"b\"\ntimezone = \"Europe/Berlin\"\n{OFFICE}\nfirst_response = \"8h\"\nwarn = \"2h\"\n"
        ));
        let q = queue(&cfg, "b");
        // Friday 14:00: 3 h left on Friday, 5 h on Monday; due Monday 14:00,
        // and 2 h of business time before that is Monday 12:00 (not 12:00
        // wall-clock hours earlier).
        let c = Clock::start(
            Some(q),
            ClockKind::First,
            1,
            at("Europe/Berlin", 2026, 11, 20, 14, 0),
        );
        assert_eq!(local(q, c.due_at), "Mon 2026-11-23 14:00 CET");
        assert_eq!(local(q, c.warn_at), "Mon 2026-11-23 12:00 CET");
    }

    #[test]
    fn dst_week_in_berlin() {
        // Europe/Berlin leaves summer time on Sunday 2026-10-25: the
        // Friday-to-Monday span is 73 h of wall-clock time, and the
        // business hours stay 09:00-17:00 local on both sides.
        let cfg = config(&format!(
            "[[queues]]\nname = \"b\"\ntimezone = \"Europe/Berlin\"\n{OFFICE}\nfirst_response = \"24h\"\nwarn = \"80%\"\n"
        ));
        let q = queue(&cfg, "b");
        let start = at("Europe/Berlin", 2026, 10, 23, 16, 0); // Friday, CEST
        let c = Clock::start(Some(q), ClockKind::First, 1, start);
        // 1 h Friday, 8 h Mon, Tue; 7 h left on Wednesday.
        assert_eq!(local(q, c.due_at), "Wed 2026-10-28 16:00 CET");
        // 19.2 h: 1 + 8 + 8 + 2.2 → Wednesday 11:12.
        assert_eq!(local(q, c.warn_at), "Wed 2026-10-28 11:12 CET");
        // Across the switch the wall-clock distance is one hour longer than
        // the civil one.
        assert_eq!(
            c.due_at.duration_since(start),
            SignedDuration::from_hours(5 * 24 + 1)
        );

        // And into summer time: Sunday 2026-03-29.
        let start = at("Europe/Berlin", 2026, 3, 27, 16, 0);
        let c = Clock::start(Some(q), ClockKind::First, 1, start);
        assert_eq!(local(q, c.due_at), "Wed 2026-04-01 16:00 CEST");
        assert_eq!(
            c.due_at.duration_since(start),
            SignedDuration::from_hours(5 * 24 - 1)
        );
    }

    #[test]
    fn dst_week_in_sao_paulo_2018() {
        // Brazil still had summer time in 2018: on Sunday 2018-11-04 the
        // clocks jumped from 00:00 to 01:00 (-03 → -02). A 24/7 queue counts
        // real hours; an office queue counts its local hours.
        let cfg = config(&format!(
            "[[queues]]\nname = \"round\"\ntimezone = \"America/Sao_Paulo\"\nhours = \"24/7\"\n\
             [[queues]]\nname = \"office\"\ntimezone = \"America/Sao_Paulo\"\n{}\nfirst_response = \"16h\"\nwarn = \"4h\"\n",
            OFFICE.replace("17:00", "18:00")
        ));
        let round = queue(&cfg, "round");
        let start = at("America/Sao_Paulo", 2018, 11, 3, 12, 0);
        let c = Clock::start(Some(round), ClockKind::First, 1, start);
        assert_eq!(
            c.due_at.duration_since(start),
            SignedDuration::from_hours(24)
        );
        // 24 real hours later the wall clock shows 13:00: the night was short.
        assert_eq!(local(round, c.due_at), "Sun 2018-11-04 13:00 -02");

        let office = queue(&cfg, "office");
        // Friday 2018-11-02 17:00 (-03): 1 h Friday, 9 h Monday (-02), 6 h
        // Tuesday → due Tuesday 15:00; warning 4 h earlier, Tuesday 11:00.
        let c = Clock::start(
            Some(office),
            ClockKind::First,
            1,
            at("America/Sao_Paulo", 2018, 11, 2, 17, 0),
        );
        assert_eq!(local(office, c.due_at), "Tue 2018-11-06 15:00 -02");
        assert_eq!(local(office, c.warn_at), "Tue 2018-11-06 11:00 -02");
    }

    #[test]
    fn a_holiday_moves_the_due_time() {
        let with = config(&format!(
            "[[queues]]\nname = \"b\"\ntimezone = \"Europe/Berlin\"\n{OFFICE}\nholidays = [\"2026-12-24\", \"2026-12-25\"]\nfirst_response = \"8h\"\n"
        ));
        let without = config(&format!(
            "[[queues]]\nname = \"b\"\ntimezone = \"Europe/Berlin\"\n{OFFICE}\nfirst_response = \"8h\"\n"
        ));
        // Wednesday 2026-12-23 15:00: 2 h that day, then Thursday and Friday
        // are holidays: 6 h on Monday 2026-12-28.
        let start = at("Europe/Berlin", 2026, 12, 23, 15, 0);
        let q = queue(&with, "b");
        let c = Clock::start(Some(q), ClockKind::First, 1, start);
        assert_eq!(local(q, c.due_at), "Mon 2026-12-28 15:00 CET");
        let plain = Clock::start(Some(queue(&without, "b")), ClockKind::First, 1, start);
        assert_eq!(local(q, plain.due_at), "Thu 2026-12-24 15:00 CET");
    }

    #[test]
    fn tokyo_business_hours_for_a_mail_on_friday_evening() {
        let cfg = config(
            "[[queues]]\nname = \"jp\"\ntimezone = \"Asia/Tokyo\"\n\
             hours = { mon = \"09:00-18:00\", tue = \"09:00-18:00\", wed = \"09:00-18:00\", thu = \"09:00-18:00\", fri = \"09:00-18:00\" }\n\
             first_response = \"4h\"\nwarn = \"75%\"\n",
        );
        let q = queue(&cfg, "jp");
        // Friday 2026-11-20 19:30 JST: closed until Monday 09:00.
        let c = Clock::start(
            Some(q),
            ClockKind::First,
            1,
            at("Asia/Tokyo", 2026, 11, 20, 19, 30),
        );
        assert_eq!(local(q, c.warn_at), "Mon 2026-11-23 12:00 JST");
        assert_eq!(local(q, c.due_at), "Mon 2026-11-23 13:00 JST");
        // In UTC that is Monday 04:00, still Sunday night in Europe.
        assert_eq!(c.due_at, ts("2026-11-23T04:00:00Z"));
    }

    #[test]
    fn the_clock_follows_what_happens_to_the_ticket() {
        use Trigger::*;
        assert_eq!(
            on_trigger(None, Created),
            Some(Change::Start {
                kind: ClockKind::First,
                seq: 1
            })
        );
        let t0 = ts("2026-11-22T10:00:00Z");
        let mut c = Clock::start(None, ClockKind::First, 1, t0);
        // The customer adds something while we owe an answer: no change.
        assert_eq!(on_trigger(Some(&c), CustomerWrote), None);
        assert_eq!(
            on_trigger(Some(&c), AgentResponded),
            Some(Change::Stop {
                seq: 1,
                reason: StopReason::Responded
            })
        );
        c.stop(t0, StopReason::Responded);
        // Waiting on the customer: agent mail and closing change nothing
        // more; the customer's reply starts the next clock.
        assert_eq!(on_trigger(Some(&c), AgentResponded), None);
        assert_eq!(on_trigger(Some(&c), Closed), None);
        assert_eq!(
            on_trigger(Some(&c), CustomerWrote),
            Some(Change::Start {
                kind: ClockKind::Next,
                seq: 2
            })
        );
        assert_eq!(
            on_trigger(Some(&c), Reopened),
            Some(Change::Start {
                kind: ClockKind::Next,
                seq: 2
            })
        );
        let running = Clock::start(None, ClockKind::Next, 2, t0);
        assert_eq!(
            on_trigger(Some(&running), Closed),
            Some(Change::Stop {
                seq: 2,
                reason: StopReason::Closed
            })
        );
    }

    #[test]
    fn warn_breach_and_each_level_in_order() {
        let esc = [Duration::ZERO, h(4)];
        let t0 = ts("2026-11-22T10:00:00Z");
        let mut c = Clock::start(None, ClockKind::First, 1, t0);
        let warn = ts("2026-11-23T05:12:00Z");
        let due = ts("2026-11-23T10:00:00Z");
        assert_eq!(next_event(&c, &esc, t0), Some((warn, Action::Warn)));
        assert!(due_actions(&c, &esc, t0).is_empty());
        assert_eq!(due_actions(&c, &esc, warn), vec![Action::Warn]);
        c.record(Action::Warn, warn);
        assert_eq!(next_event(&c, &esc, warn), Some((due, Action::Breach)));
        assert_eq!(
            due_actions(&c, &esc, due),
            vec![Action::Breach, Action::Escalate(1)]
        );
        c.record(Action::Breach, due);
        c.record(Action::Escalate(1), due);
        assert_eq!(
            next_event(&c, &esc, due),
            Some((ts("2026-11-23T14:00:00Z"), Action::Escalate(2)))
        );
        c.record(Action::Escalate(2), ts("2026-11-23T14:00:00Z"));
        assert_eq!(next_event(&c, &esc, ts("2026-11-24T00:00:00Z")), None);
        assert_eq!(c.phase(ts("2026-11-24T00:00:00Z")), Phase::Breached);
        c.stop(ts("2026-11-24T00:00:00Z"), StopReason::Responded);
        assert_eq!(c.phase(ts("2026-11-24T00:00:00Z")), Phase::Missed);
    }

    #[test]
    fn a_timer_that_was_down_skips_the_stale_warning_and_catches_up() {
        let esc = [Duration::ZERO, h(4)];
        let c = Clock::start(None, ClockKind::First, 1, ts("2026-11-22T10:00:00Z"));
        assert_eq!(
            due_actions(&c, &esc, ts("2026-11-24T00:00:00Z")),
            vec![
                Action::SkipWarning,
                Action::Breach,
                Action::Escalate(1),
                Action::Escalate(2)
            ]
        );
        // Between warning point and due time the warning still goes out.
        assert_eq!(
            due_actions(&c, &esc, ts("2026-11-23T09:00:00Z")),
            vec![Action::Warn]
        );
    }

    #[test]
    fn a_stopped_clock_does_nothing_more() {
        let mut c = Clock::start(None, ClockKind::First, 1, ts("2026-11-22T10:00:00Z"));
        c.stop(ts("2026-11-22T11:00:00Z"), StopReason::Responded);
        assert_eq!(
            next_event(&c, &[Duration::ZERO], ts("2030-01-01T00:00:00Z")),
            None
        );
        assert_eq!(c.phase(ts("2030-01-01T00:00:00Z")), Phase::Met);
    }

    #[test]
    fn no_escalation_levels_means_the_breach_is_the_last_event() {
        let mut c = Clock::start(None, ClockKind::First, 1, ts("2026-11-22T10:00:00Z"));
        let late = ts("2026-11-25T00:00:00Z");
        assert_eq!(
            due_actions(&c, &[], late),
            vec![Action::SkipWarning, Action::Breach]
        );
        c.record(Action::Breach, late);
        assert_eq!(next_event(&c, &[], late), None);
    }

    mod props {
        use proptest::prelude::*;

        use super::*;

        proptest! {
            /// Warning before due, due at or after start, for any start,
            /// target and warning point on an office calendar.
            #[test]
            fn warning_comes_before_the_due_time(
                start_s in 1_700_000_000i64..1_900_000_000,
                target_min in 1u64..10_000,
                pct in 1u8..100,
            ) {
                let cfg = config(&format!(
                    "[[queues]]\nname = \"b\"\ntimezone = \"Europe/Berlin\"\n{OFFICE}\n"
                ));
                let q = queue(&cfg, "b");
                let start = Timestamp::from_second(start_s).expect("in range");
                let s = schedule(Some(&q.calendar), Duration::from_secs(target_min * 60), WarnPoint::Percent(pct), start);
                prop_assert!(s.due_at >= start);
                prop_assert!(s.warn_at >= start);
                prop_assert!(s.warn_at < s.due_at);
            }

            /// Whatever `now`, the actions come in the order warn/skip →
            /// breach → 1 → 2 …, each at most once.
            #[test]
            fn actions_come_once_and_in_order(offset_h in 0i64..200, levels in 0usize..4) {
                let esc: Vec<Duration> = (0..levels).map(|i| h(i as u64 * 3)).collect();
                let t0 = ts("2026-11-22T10:00:00Z");
                let c = Clock::start(None, ClockKind::First, 1, t0);
                let now = t0.checked_add(SignedDuration::from_hours(offset_h)).expect("in range");
                let actions = due_actions(&c, &esc, now);
                let mut rank = 0u32;
                for a in &actions {
                    let r = match a {
                        Action::Warn | Action::SkipWarning => 1,
                        Action::Breach => 2,
                        Action::Escalate(n) => 2 + n,
                    };
                    prop_assert!(r > rank, "{actions:?}");
                    rank = r;
                }
            }
        }
    }
}
