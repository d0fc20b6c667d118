-- The volunteers' side of a handover: the card in the coordination room, reminders,
-- and notes volunteers keep for each other (never sent to the citizen).
ALTER TABLE handovers ADD COLUMN card_event TEXT;
ALTER TABLE handovers ADD COLUMN reminded_at BIGINT;

CREATE TABLE case_notes (
    case_id BIGINT NOT NULL REFERENCES handovers (id) ON DELETE CASCADE,
    author TEXT NOT NULL,
    text TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX case_notes_by_case ON case_notes (case_id);
