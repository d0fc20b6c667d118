-- Conversations, their transcript, handovers, processed updates, the outbox and the
-- anonymous need statistics. Times are Unix milliseconds (UTC).

CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    lang TEXT NOT NULL,
    -- bot | waiting (for a volunteer) | volunteer (with one) | closed
    status TEXT NOT NULL,
    consent INTEGER NOT NULL DEFAULT 0,
    flow TEXT NOT NULL DEFAULT '',
    step TEXT NOT NULL DEFAULT '',
    -- engine::State as JSON: variables, buttons, mode.
    state TEXT NOT NULL,
    -- Whether an outcome (suggested, handed over, emergency) was counted already.
    outcome_counted INTEGER NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    closed_at BIGINT,
    UNIQUE (channel, chat_id)
);

CREATE TABLE transcript (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    at BIGINT NOT NULL,
    -- citizen | bot | volunteer
    author TEXT NOT NULL,
    text TEXT NOT NULL
);
CREATE INDEX transcript_by_conversation ON transcript (conversation_id, id);

CREATE TABLE handovers (
    -- The case number volunteers see.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id BIGINT REFERENCES conversations (id) ON DELETE SET NULL,
    need TEXT NOT NULL,
    note TEXT NOT NULL,
    comune TEXT,
    lang TEXT NOT NULL,
    summary TEXT NOT NULL,
    in_hours INTEGER NOT NULL,
    emergency INTEGER NOT NULL,
    -- waiting | claimed | closed
    status TEXT NOT NULL,
    claimed_by TEXT,
    room TEXT,
    created_at BIGINT NOT NULL,
    claimed_at BIGINT,
    closed_at BIGINT
);
CREATE INDEX handovers_by_status ON handovers (status, id);

CREATE TABLE processed_updates (
    channel TEXT NOT NULL,
    update_id TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (channel, update_id)
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id BIGINT REFERENCES conversations (id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    chat_id TEXT NOT NULL,
    -- JSON: { text, buttons, request_location } for a citizen; other kinds for volunteers.
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    sent_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX outbox_due ON outbox (channel, sent_at, next_attempt_at, id);

-- Anonymous: no chat id, no text, no time finer than the ISO week.
CREATE TABLE need_stats (
    week TEXT NOT NULL,
    comune TEXT NOT NULL,
    need TEXT NOT NULL,
    lang TEXT NOT NULL,
    -- suggested | handed_over | emergency | abandoned
    outcome TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (week, comune, need, lang, outcome)
);
