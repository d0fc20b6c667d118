//! The volunteers' inbox: what volunteers do on Matrix, stored (keyed by event id)
//! before it is acted on, then handled from here in order of arrival. A handled row
//! keeps its event id, its text emptied, for [`DEDUPE_DAYS`](super::DEDUPE_DAYS), so a
//! room's history read again after a restart never handles an event twice.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, millis};

/// One stored event, not handled yet.
#[derive(Debug, Clone, PartialEq)]
pub struct VolunteerRow {
    pub seq: i64,
    pub event_id: String,
    pub room: String,
    pub payload: String,
    pub attempts: i64,
}

/// An event to store: (event id, room, payload).
pub type NewVolunteerEvent = (String, String, String);

impl Store {
    /// Stores events in one transaction, in the order given; those already stored
    /// (handled or not) are skipped. How many were new.
    pub async fn volunteer_inbox_put_all(
        &self,
        events: &[NewVolunteerEvent],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        if events.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let mut added = 0;
        for (event_id, room, payload) in events {
            added += sqlx::query(
                "INSERT INTO volunteer_inbox (event_id, room, payload, received_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(event_id)
            .bind(room)
            .bind(payload)
            .bind(millis(now))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        tx.commit().await?;
        self.volunteer_inbox_changed.notify_one();
        Ok(added)
    }

    /// Whether an event was stored already (handled or not).
    pub async fn volunteer_event_known(&self, event_id: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM volunteer_inbox WHERE event_id = $1")
            .bind(event_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// Whether any event of a room was stored (the bot has read the room before).
    pub async fn volunteer_room_known(&self, room: &str) -> Result<bool> {
        let row = sqlx::query("SELECT 1 FROM volunteer_inbox WHERE room = $1 LIMIT 1")
            .bind(room)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// The oldest events not handled yet, in order of arrival, with those whose retry
    /// is not due: the caller must not handle a room's later event before them.
    pub async fn volunteer_inbox_pending(&self, limit: i64) -> Result<Vec<(VolunteerRow, i64)>> {
        let rows = sqlx::query(
            "SELECT seq, event_id, room, payload, attempts, next_at FROM volunteer_inbox \
             WHERE done_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    VolunteerRow {
                        seq: row.try_get(0)?,
                        event_id: row.try_get(1)?,
                        room: row.try_get(2)?,
                        payload: row.try_get(3)?,
                        attempts: row.try_get(4)?,
                    },
                    row.try_get(5)?,
                ))
            })
            .collect()
    }

    /// Handled: the text goes, the event id stays for the dedupe window.
    pub async fn volunteer_event_done(&self, seq: i64, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE volunteer_inbox SET done_at = $1, payload = '' WHERE seq = $2")
            .bind(millis(now))
            .bind(seq)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// To handle again at `next_at`.
    pub async fn volunteer_event_retry(&self, seq: i64, next_at: DateTime<Utc>) -> Result<()> {
        sqlx::query(
            "UPDATE volunteer_inbox SET attempts = attempts + 1, next_at = $1 WHERE seq = $2",
        )
        .bind(millis(next_at))
        .bind(seq)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Failed too many times: set aside with the kind of its error (the event id stays
    /// in the inbox, handled, so it is not read again from the room's history).
    pub async fn volunteer_event_dead(
        &self,
        row: &VolunteerRow,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO dead_letters (channel, key, room, payload, error, attempts, at) \
             VALUES ('matrix', $1, $2, $3, $4, $5, $6)",
        )
        .bind(&row.event_id)
        .bind(&row.room)
        .bind(&row.payload)
        .bind(error)
        .bind(row.attempts + 1)
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE volunteer_inbox SET done_at = $1, payload = '' WHERE seq = $2")
            .bind(millis(now))
            .bind(row.seq)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Events waiting to be handled, and of those the ones waiting for their room key
    /// (metrics).
    pub async fn volunteer_inbox_depth(&self) -> Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN payload LIKE '{\"kind\":\"encrypted\"%' \
             THEN 1 ELSE 0 END), 0) FROM volunteer_inbox WHERE done_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Updates and events set aside (a metric).
    pub async fn dead_letters(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM dead_letters")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Wakes the handler of the volunteers' inbox when events are stored.
    pub fn volunteer_inbox_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.volunteer_inbox_changed.notified()
    }
}

impl Store {
    /// Room keys arrived: the events waiting for one are due now.
    pub async fn volunteer_encrypted_due_now(&self) -> Result<()> {
        sqlx::query(
            "UPDATE volunteer_inbox SET next_at = 0 \
             WHERE done_at IS NULL AND payload LIKE '{\"kind\":\"encrypted\"%'",
        )
        .execute(&self.pool)
        .await?;
        self.volunteer_inbox_changed.notify_one();
        Ok(())
    }
}

impl Store {
    /// Citizens' updates stored and not processed yet (a metric).
    pub async fn inbox_depth(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM inbox")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// How long the oldest message owed on the given outbox channels (those served),
    /// or update or volunteer's event not handled yet, has waited; None when nothing is.
    pub async fn oldest_owed(
        &self,
        now: DateTime<Utc>,
        channels: &[&str],
    ) -> Result<Option<std::time::Duration>> {
        let mut oldest: Option<i64> = None;
        for channel in channels {
            let row = sqlx::query(
                "SELECT MIN(created_at) FROM outbox \
                 WHERE channel = $1 AND sent_at IS NULL AND dropped_at IS NULL",
            )
            .bind(channel)
            .fetch_one(&self.pool)
            .await?;
            oldest = oldest
                .into_iter()
                .chain(row.try_get::<Option<i64>, _>(0)?)
                .min();
        }
        for query in [
            "SELECT MIN(received_at) FROM inbox",
            "SELECT MIN(received_at) FROM volunteer_inbox WHERE done_at IS NULL",
        ] {
            let row = sqlx::query(query).fetch_one(&self.pool).await?;
            oldest = oldest
                .into_iter()
                .chain(row.try_get::<Option<i64>, _>(0)?)
                .min();
        }
        Ok(oldest.map(|at| {
            std::time::Duration::from_millis(millis(now).saturating_sub(at).max(0) as u64)
        }))
    }
}
