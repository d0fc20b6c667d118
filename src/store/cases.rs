//! Cases: the handovers as volunteers work them. The first claim wins, enforced by the
//! database (a conditional update), whatever instance or volunteer races for it.

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{Result, Store, from_millis, millis};

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub case: i64,
    pub conversation_id: Option<i64>,
    /// The citizen's channel and chat, to carry a volunteer's words back.
    pub channel: Option<String>,
    pub chat_id: Option<String>,
    pub need: String,
    pub note: String,
    pub comune: Option<String>,
    pub lang: String,
    pub summary: Vec<(String, String)>,
    pub in_hours: bool,
    pub emergency: bool,
    pub status: String,
    pub claimed_by: Option<String>,
    pub room: Option<String>,
    pub created_at: DateTime<Utc>,
    /// When the case was claimed (claims made before this field was kept: None).
    pub claimed_at: Option<DateTime<Utc>>,
    /// Whether the claim's steps are all done (room, invitation, card, citizen told).
    pub room_ready: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    Claimed,
    /// Someone was faster: who.
    Taken(String),
    Closed,
    Unknown,
}

const SELECT: &str = "SELECT h.id, h.conversation_id, c.channel, c.chat_id, h.need, h.note, h.comune, h.lang, h.summary, \
     h.in_hours, h.emergency, h.status, h.claimed_by, h.room, h.created_at, h.claimed_at, h.room_ready \
     FROM handovers h LEFT JOIN conversations c ON c.id = h.conversation_id";

fn case(row: &sqlx::any::AnyRow) -> Result<Case> {
    let summary: String = row.try_get(8)?;
    Ok(Case {
        case: row.try_get(0)?,
        conversation_id: row.try_get(1)?,
        channel: row.try_get(2)?,
        chat_id: row.try_get(3)?,
        need: row.try_get(4)?,
        note: row.try_get(5)?,
        comune: row.try_get(6)?,
        lang: row.try_get(7)?,
        summary: serde_json::from_str(&summary).unwrap_or_default(),
        in_hours: row.try_get::<i64, _>(9)? != 0,
        emergency: row.try_get::<i64, _>(10)? != 0,
        status: row.try_get(11)?,
        claimed_by: row.try_get(12)?,
        room: row.try_get(13)?,
        created_at: from_millis(row.try_get(14)?),
        claimed_at: row.try_get::<Option<i64>, _>(15)?.map(from_millis),
        room_ready: row.try_get::<Option<i64>, _>(16)?.is_some(),
    })
}

impl Store {
    pub async fn case(&self, case_id: i64) -> Result<Option<Case>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE h.id = $1")))
            .bind(case_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(case).transpose()
    }

    pub async fn case_by_room(&self, room: &str) -> Result<Option<Case>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE h.room = $1 AND h.status = 'claimed' ORDER BY h.id DESC LIMIT 1"
        )))
        .bind(room)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(case).transpose()
    }

    /// Cases waiting for a volunteer since before `before` and not announced since then.
    pub async fn cases_to_remind(&self, before: DateTime<Utc>) -> Result<Vec<Case>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE h.status = 'waiting' AND COALESCE(h.reminded_at, h.created_at) < $1 ORDER BY h.id"
        )))
        .bind(millis(before))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(case).collect()
    }

    pub async fn case_reminded(&self, case_id: i64, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE handovers SET reminded_at = $1 WHERE id = $2")
            .bind(millis(now))
            .bind(case_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The first claim of a waiting case wins.
    pub async fn claim(&self, case_id: i64, volunteer: &str, now: DateTime<Utc>) -> Result<Claim> {
        let claimed = sqlx::query("UPDATE handovers SET status = 'claimed', claimed_by = $1, claimed_at = $2, room = NULL, room_ready = NULL WHERE id = $3 AND status = 'waiting'")
            .bind(volunteer)
            .bind(millis(now))
            .bind(case_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        if claimed == 1 {
            return Ok(Claim::Claimed);
        }
        Ok(match self.case(case_id).await? {
            None => Claim::Unknown,
            Some(case) if case.status == "claimed" => {
                Claim::Taken(case.claimed_by.unwrap_or_default())
            }
            Some(_) => Claim::Closed,
        })
    }

    pub async fn set_case_room(&self, case_id: i64, room: &str) -> Result<()> {
        sqlx::query("UPDATE handovers SET room = $1 WHERE id = $2")
            .bind(room)
            .bind(case_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Back to the queue for another volunteer.
    pub async fn release_case(&self, case_id: i64) -> Result<bool> {
        let released = sqlx::query("UPDATE handovers SET status = 'waiting', claimed_by = NULL, claimed_at = NULL, room = NULL, room_ready = NULL, reminded_at = NULL WHERE id = $1 AND status = 'claimed'")
            .bind(case_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(released == 1)
    }

    pub async fn close_case(&self, case_id: i64, now: DateTime<Utc>) -> Result<bool> {
        let closed = sqlx::query("UPDATE handovers SET status = 'closed', closed_at = $1 WHERE id = $2 AND status <> 'closed'")
            .bind(millis(now))
            .bind(case_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(closed == 1)
    }

    pub async fn add_note(
        &self,
        case_id: i64,
        author: &str,
        text: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO case_notes (case_id, author, text, at) VALUES ($1, $2, $3, $4)")
            .bind(case_id)
            .bind(author)
            .bind(text)
            .bind(millis(now))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn notes(&self, case_id: i64) -> Result<Vec<(String, String)>> {
        let rows =
            sqlx::query("SELECT author, text FROM case_notes WHERE case_id = $1 ORDER BY at")
                .bind(case_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// The last `limit` transcript lines of a conversation, oldest first, and the
    /// citizen's messages owed to the volunteers at that moment (outbox ids), which
    /// those lines carry: read together, so that marking them sent once the lines are
    /// posted neither loses nor doubles a message.
    pub async fn recent_transcript(
        &self,
        conversation_id: i64,
        limit: i64,
    ) -> Result<(Vec<(String, String)>, Vec<i64>)> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query("SELECT author, text FROM transcript WHERE conversation_id = $1 ORDER BY id DESC LIMIT $2")
            .bind(conversation_id)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let mut lines: Vec<(String, String)> = rows
            .iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<Result<_>>()?;
        lines.reverse();
        let owed = sqlx::query(
            "SELECT id FROM outbox WHERE channel = 'volunteers' AND conversation_id = $1 \
             AND sent_at IS NULL AND dropped_at IS NULL AND payload LIKE '%\"kind\":\"relay\"%' ORDER BY id",
        )
        .bind(conversation_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| Ok(row.try_get(0)?))
        .collect::<Result<Vec<i64>>>()?;
        tx.commit().await?;
        Ok((lines, owed))
    }

    /// The rooms of the claimed cases, to read their history after a restart.
    pub async fn open_case_rooms(&self) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT room FROM handovers WHERE status = 'claimed' AND room IS NOT NULL ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// Claimed cases whose claim was not finished (the bot stopped in the middle).
    pub async fn cases_claiming(&self) -> Result<Vec<Case>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE h.status = 'claimed' AND h.room_ready IS NULL ORDER BY h.id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(case).collect()
    }

    /// The claim is done: the case room has its volunteer, card and last messages; the
    /// citizen's messages those carried (`carried`, outbox ids) are not relayed again.
    pub async fn case_room_ready(
        &self,
        case_id: i64,
        carried: &[i64],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE handovers SET room_ready = $1 WHERE id = $2 AND status = 'claimed'")
            .bind(millis(now))
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
        // What was held for the room is due now.
        sqlx::query(
            "UPDATE outbox SET next_attempt_at = $1 WHERE channel = 'volunteers' AND sent_at IS NULL \
             AND conversation_id = (SELECT conversation_id FROM handovers WHERE id = $2)",
        )
        .bind(millis(now))
        .bind(case_id)
        .execute(&mut *tx)
        .await?;
        for id in carried {
            sqlx::query("UPDATE outbox SET sent_at = $1 WHERE id = $2 AND sent_at IS NULL")
                .bind(millis(now))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

impl Store {
    /// Remembers an event the bot posted for a case: a `card` (claimable by a reaction
    /// when it is in the coordination room) or `citizen` (carries the citizen's words).
    pub async fn record_case_event(
        &self,
        case_id: i64,
        room: &str,
        event_id: &str,
        kind: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO case_events (event_id, case_id, room, kind, at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(case_id)
        .bind(room)
        .bind(kind)
        .bind(millis(now))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The case whose card is this event, if it is one.
    pub async fn case_of_card(&self, event_id: &str) -> Result<Option<i64>> {
        let row =
            sqlx::query("SELECT case_id FROM case_events WHERE event_id = $1 AND kind = 'card'")
                .bind(event_id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| Ok(row.try_get(0)?)).transpose()
    }

    /// Every event the bot posted for a case, (room, event id), oldest first.
    pub async fn case_events(&self, case_id: i64) -> Result<Vec<(String, String)>> {
        let rows =
            sqlx::query("SELECT room, event_id FROM case_events WHERE case_id = $1 ORDER BY at")
                .bind(case_id)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// Forgets one recorded event (it has been redacted).
    pub async fn forget_case_event(&self, event_id: &str) -> Result<()> {
        sqlx::query("DELETE FROM case_events WHERE event_id = $1")
            .bind(event_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The case of a conversation that is not closed, if any (the newest).
    pub async fn open_case_for_conversation(&self, conversation_id: i64) -> Result<Option<Case>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE h.conversation_id = $1 AND h.status <> 'closed' ORDER BY h.id DESC LIMIT 1"
        )))
        .bind(conversation_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(case).transpose()
    }
}
