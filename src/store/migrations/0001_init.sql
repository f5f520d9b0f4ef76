-- postdesk store, version 1.
-- Times are INTEGER milliseconds since the Unix epoch (UTC).
-- Addresses are stored lowercased. JSON columns hold arrays or objects
-- written by postdesk itself.

-- Small key/value facts about this database (e.g. the generated token key).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value BLOB NOT NULL
) STRICT;

-- A ticket: one customer request and its conversation. `id` is the number
-- shown as PD-<id>.
CREATE TABLE tickets (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    subject             TEXT    NOT NULL,
    -- open: waiting on us; waiting: waiting on the customer; closed.
    status              TEXT    NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'waiting', 'closed')),
    mailbox             TEXT    NOT NULL,
    queue               TEXT    NOT NULL,
    language            TEXT    NOT NULL,
    language_confidence REAL    NOT NULL DEFAULT 0,
    language_source     TEXT    NOT NULL,
    requester           TEXT    NOT NULL,
    requester_name      TEXT,
    -- where mail to the customer goes (their Reply-To, validated), if not requester
    reply_to            TEXT,
    -- the closed ticket this one continues, when a late reply opened it
    linked_ticket       INTEGER REFERENCES tickets (id),
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    closed_at           INTEGER
) STRICT;
CREATE INDEX tickets_status ON tickets (status, queue);
CREATE INDEX tickets_requester ON tickets (requester, id);

-- Every message postdesk has seen, tickets or not: nothing is dropped.
CREATE TABLE messages (
    id                  INTEGER PRIMARY KEY,
    ticket_id           INTEGER REFERENCES tickets (id),
    message_id          TEXT    NOT NULL,
    content_hash        TEXT    NOT NULL,
    direction           TEXT    NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    class               TEXT    NOT NULL CHECK (class IN ('human', 'auto-replied', 'auto-generated', 'bounce', 'bulk', 'loop')),
    outcome             TEXT    NOT NULL CHECK (outcome IN ('created', 'threaded', 'ignored')),
    origin              TEXT    NOT NULL,
    mailbox             TEXT    NOT NULL,
    from_addr           TEXT,
    from_name           TEXT,
    to_addrs            TEXT    NOT NULL DEFAULT '[]',
    cc_addrs            TEXT    NOT NULL DEFAULT '[]',
    subject             TEXT    NOT NULL,
    date                INTEGER,
    received_at         INTEGER NOT NULL,
    in_reply_to         TEXT    NOT NULL DEFAULT '[]',
    refs                TEXT    NOT NULL DEFAULT '[]',
    headers             TEXT    NOT NULL DEFAULT '[]',
    -- what the customer wrote this time (quotes and signature removed);
    -- the whole body is in message_raw
    extracted_text      TEXT    NOT NULL,
    language            TEXT,
    language_confidence REAL,
    language_source     TEXT,
    -- JSON: the classifier's reasons and bounce details
    classification      TEXT    NOT NULL DEFAULT '{}',
    size_bytes          INTEGER NOT NULL,
    UNIQUE (message_id, content_hash)
) STRICT;
CREATE INDEX messages_ticket ON messages (ticket_id, id);
CREATE INDEX messages_from ON messages (from_addr, id);

-- The bytes as received, apart from the row so scans of messages stay small.
CREATE TABLE message_raw (
    message INTEGER PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
    raw     BLOB NOT NULL
) STRICT;

-- Attachment content, stored once per SHA-256.
CREATE TABLE blobs (
    sha256     TEXT PRIMARY KEY,
    size_bytes INTEGER NOT NULL,
    content    BLOB    NOT NULL
) STRICT;

CREATE TABLE attachments (
    id           INTEGER PRIMARY KEY,
    message      INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    name         TEXT,
    content_type TEXT    NOT NULL,
    size_bytes   INTEGER NOT NULL,
    sha256       TEXT    NOT NULL REFERENCES blobs (sha256)
) STRICT;
CREATE INDEX attachments_message ON attachments (message);

-- Who takes part in a ticket; a subject tag threads only for them.
CREATE TABLE participants (
    ticket_id INTEGER NOT NULL REFERENCES tickets (id),
    address   TEXT    NOT NULL,
    role      TEXT    NOT NULL CHECK (role IN ('requester', 'cc', 'agent')),
    name      TEXT,
    PRIMARY KEY (ticket_id, address)
) STRICT, WITHOUT ROWID;
CREATE INDEX participants_address ON participants (address);

-- The audit trail: why each message went where, what was sent or not.
CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    at        INTEGER NOT NULL,
    ticket_id INTEGER REFERENCES tickets (id),
    message   INTEGER REFERENCES messages (id),
    kind      TEXT    NOT NULL,
    detail    TEXT    NOT NULL DEFAULT '{}'
) STRICT;
CREATE INDEX events_ticket ON events (ticket_id, id);
CREATE INDEX events_kind ON events (kind, at);

-- Mail to send. A row is written in the same transaction as the change
-- that causes it; its Message-ID is fixed then, so a resend after a crash
-- is the same message. `dedup_key` makes "once per ticket and clock" a
-- constraint instead of a hope.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    kind            TEXT    NOT NULL CHECK (kind IN ('ack', 'warning', 'escalation', 'reply', 'notice')),
    dedup_key       TEXT    NOT NULL UNIQUE,
    ticket_id       INTEGER REFERENCES tickets (id),
    mailbox         TEXT    NOT NULL,
    message_id      TEXT    NOT NULL UNIQUE,
    to_addr         TEXT    NOT NULL,
    cc_addrs        TEXT    NOT NULL DEFAULT '[]',
    language        TEXT    NOT NULL,
    context         TEXT    NOT NULL DEFAULT '{}',
    in_reply_to     TEXT,
    refs            TEXT    NOT NULL DEFAULT '[]',
    -- 1 for robot mail (acks, alerts): counts towards the loop caps
    automatic       INTEGER NOT NULL CHECK (automatic IN (0, 1)),
    status          TEXT    NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_error      TEXT,
    -- the server's reply to the last attempt
    server_reply    TEXT,
    created_at      INTEGER NOT NULL,
    sent_at         INTEGER
) STRICT;
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_to ON outbox (to_addr, created_at);
-- the hourly cap of automatic mail counts recent rows only
CREATE INDEX outbox_automatic ON outbox (created_at) WHERE automatic = 1;
CREATE INDEX outbox_ticket ON outbox (ticket_id);

-- Addresses we must not mail automatically: they bounced.
CREATE TABLE address_state (
    address        TEXT PRIMARY KEY,
    bouncing_since INTEGER,
    bounce_reason  TEXT
) STRICT;

-- Per source (an IMAP folder, a Maildir): where ingestion stands.
CREATE TABLE sources (
    source        TEXT PRIMARY KEY,
    uidvalidity   INTEGER,
    -- highest UID whose message is committed
    last_uid      INTEGER,
    synced_at     INTEGER,
    last_error    TEXT,
    last_error_at INTEGER
) STRICT;

-- Origins already ingested (a Maildir file, an IMAP UID, an mbox entry):
-- a second pass over the same origin is skipped before parsing.
CREATE TABLE origins (
    origin  TEXT PRIMARY KEY,
    message INTEGER REFERENCES messages (id),
    at      INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Server-side actions (flag, move) owed for committed messages; executed
-- after the commit and deleted when done, so a crash in between does not
-- forget them.
CREATE TABLE mailbox_actions (
    id          INTEGER PRIMARY KEY,
    source      TEXT    NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid         INTEGER NOT NULL,
    action      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (source, uidvalidity, uid)
) STRICT;

-- Mail that could not be processed, with the reason; replayable.
CREATE TABLE quarantine (
    id          INTEGER PRIMARY KEY,
    origin      TEXT    NOT NULL,
    mailbox     TEXT,
    reason      TEXT    NOT NULL,
    size_bytes  INTEGER NOT NULL,
    -- the message; NULL when it was too large to keep (headers only then)
    raw         BLOB,
    headers     TEXT,
    received_at INTEGER NOT NULL,
    resolved_at INTEGER,
    resolution  TEXT CHECK (resolution IN ('replayed', 'dropped'))
) STRICT;
CREATE INDEX quarantine_open ON quarantine (resolved_at);
