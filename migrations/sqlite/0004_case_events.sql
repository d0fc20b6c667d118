-- What the bot posted on Matrix for each case that carries the citizen's words or
-- answers: the cards in the coordination room (a reaction on one claims the case), the
-- card and transcript in the case room, the citizen's relayed messages. `/dimentica`
-- redacts them all.
CREATE TABLE case_events (
    event_id TEXT PRIMARY KEY,
    case_id BIGINT NOT NULL REFERENCES handovers (id) ON DELETE CASCADE,
    room TEXT NOT NULL,
    -- card | citizen
    kind TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX case_events_by_case ON case_events (case_id);

-- The first card's event id, kept by 0003, is one of the `card` rows above.
ALTER TABLE handovers DROP COLUMN card_event;
