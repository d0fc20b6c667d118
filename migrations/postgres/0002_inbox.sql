-- Updates as received from a channel, stored before the channel is told they arrived
-- (Telegram's getUpdates offset, a webhook's 200), processed in order, then deleted.
CREATE TABLE inbox (
    channel TEXT NOT NULL,
    update_id BIGINT NOT NULL,
    payload TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (channel, update_id)
);

-- An outbox row given up for good (the citizen blocked the bot, the message was refused).
ALTER TABLE outbox ADD COLUMN dropped_at BIGINT;
