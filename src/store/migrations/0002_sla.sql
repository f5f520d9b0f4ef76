-- postdesk store, version 2: response clocks (the SLA).
-- Times are INTEGER milliseconds since the Unix epoch (UTC).

-- One response clock of a ticket. A ticket's creation starts clock 1 (kind
-- 'first'); an agent's response stops the running clock; the customer's
-- next message starts the next one (kind 'next'); closing stops it.
-- Due and warning times are fixed when the clock starts (in the queue's
-- business time). The alert bookkeeping (warned_at, breached_at,
-- escalated) and next_at are what the SLA timer works from; the outbox's
-- UNIQUE dedup_key ('warning:<ticket>:<seq>',
-- 'escalation:<ticket>:<seq>:<level>') makes every alert mail once per
-- ticket and clock even if this bookkeeping were lost.
CREATE TABLE sla_clocks (
    id          INTEGER PRIMARY KEY,
    ticket_id   INTEGER NOT NULL REFERENCES tickets (id),
    -- 1, 2, … per ticket; part of the alert dedup keys
    seq         INTEGER NOT NULL CHECK (seq >= 1),
    kind        TEXT    NOT NULL CHECK (kind IN ('first', 'next')),
    state       TEXT    NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'stopped')),
    started_at  INTEGER NOT NULL,
    -- the response target in business time, for display
    target_ms   INTEGER NOT NULL CHECK (target_ms >= 0),
    warn_at     INTEGER NOT NULL,
    due_at      INTEGER NOT NULL,
    stopped_at  INTEGER,
    -- responded: an agent answered; closed: the ticket was closed
    stop_reason TEXT    CHECK (stop_reason IN ('responded', 'closed')),
    -- when the warning point was handled (warning queued, or skipped)
    warned_at   INTEGER,
    breached_at INTEGER,
    -- the highest escalation level handled; 0 for none
    escalated   INTEGER NOT NULL DEFAULT 0 CHECK (escalated >= 0),
    -- 0: started by mail older than acknowledge.max_age (an import); it
    -- runs and shows in status but mails nobody
    notify      INTEGER NOT NULL DEFAULT 1 CHECK (notify IN (0, 1)),
    -- when the timer must look at this clock next; NULL when never again
    next_at     INTEGER,
    UNIQUE (ticket_id, seq),
    CHECK ((state = 'running') = (stopped_at IS NULL)),
    CHECK ((stopped_at IS NULL) = (stop_reason IS NULL)),
    CHECK (warn_at <= due_at)
) STRICT;
-- At most one running clock per ticket.
CREATE UNIQUE INDEX sla_clocks_running ON sla_clocks (ticket_id) WHERE state = 'running';
-- The timer's question: what is due next.
CREATE INDEX sla_clocks_next ON sla_clocks (next_at) WHERE next_at IS NOT NULL;
-- tickets --due/--breached and status.
CREATE INDEX sla_clocks_due ON sla_clocks (state, due_at);
