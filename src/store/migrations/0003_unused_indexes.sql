-- postdesk store, version 3: indexes no query uses.
-- Every message paid for them (about five events, one message, one or two
-- participants per message, each a B-tree insert and pages written twice,
-- to the WAL and at the checkpoint), and nothing read them: events are read
-- by ticket (events_ticket), messages by ticket or Message-ID, participants
-- by ticket (their primary key). Ad-hoc SQL that filters on these columns
-- alone now scans; recreate an index by hand if an operator needs one.
DROP INDEX IF EXISTS events_kind;
DROP INDEX IF EXISTS messages_from;
DROP INDEX IF EXISTS participants_address;
