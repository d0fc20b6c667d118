-- What volunteers do on Matrix (messages, reactions, commands), stored before it is
-- acted on, as the Telegram inbox: a crash or an error in the middle of handling loses
-- nothing, the row is handled again. A handled row keeps only its event id (its text
-- emptied) for the dedupe window, so a room's history read again never handles an
-- event twice. `seq` is the order of arrival, which is the rooms' order.
CREATE TABLE volunteer_inbox (
    seq BIGSERIAL PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    room TEXT NOT NULL,
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_at BIGINT NOT NULL DEFAULT 0,
    done_at BIGINT
);
CREATE INDEX volunteer_inbox_pending ON volunteer_inbox (done_at, seq);
CREATE INDEX volunteer_inbox_by_room ON volunteer_inbox (room, seq);

-- An update or event that failed again and again, set aside with the kind of its error
-- so the queue goes on (no text in the log; the payload is erased with the rest by the
-- retention purge).
CREATE TABLE dead_letters (
    id BIGSERIAL PRIMARY KEY,
    channel TEXT NOT NULL,
    key TEXT NOT NULL,
    -- The citizen's chat (an update) or the case room (an event), to erase it with them.
    chat TEXT,
    room TEXT,
    payload TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    at BIGINT NOT NULL
);

-- A claim is made in steps (the case room created and recorded, the volunteer invited,
-- the card and the last messages posted, the citizen told): `room_ready` is set when
-- all are done. A claimed case without it is resumed at start, and the citizen's
-- messages for it are held until then.
ALTER TABLE handovers ADD COLUMN room_ready BIGINT;
UPDATE handovers SET room_ready = claimed_at WHERE room IS NOT NULL;

-- How many times an update was tried: after a few it goes to `dead_letters`.
ALTER TABLE inbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;

-- The lookups made on every message.
CREATE INDEX outbox_by_chat ON outbox (channel, chat_id, sent_at, id);
CREATE INDEX outbox_by_conversation ON outbox (conversation_id);
CREATE INDEX handovers_by_room ON handovers (room);
CREATE INDEX handovers_by_conversation ON handovers (conversation_id);
