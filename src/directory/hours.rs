//! Opening hours: a weekly timetable, closures and Italian public holidays, read in
//! Europe/Rome local time. Used for the places of the directory and for the volunteers.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Europe::Rome;

/// Minutes since midnight, local time.
pub type Minute = u16;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schedule {
    /// Opening intervals per weekday, Monday first, as [start, end) minutes.
    pub weekly: [Vec<(Minute, Minute)>; 7],
    /// Closed days, inclusive ranges.
    pub closed: Vec<(NaiveDate, NaiveDate)>,
    /// Intervals on national public holidays (the `holidays` key); none given means
    /// closed on those days, whatever the weekday says.
    pub holidays: Vec<(Minute, Minute)>,
}

/// When something next opens, and until when it is open now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Open now, until this local time today.
    OpenUntil(NaiveTime),
    /// Closed now; opens at this local date and time (within the next two weeks).
    OpensAt(NaiveDate, NaiveTime),
    /// Closed for the next two weeks, or no hours at all.
    NotSoon,
}

impl Schedule {
    pub fn is_empty(&self) -> bool {
        self.weekly.iter().all(Vec::is_empty) && self.holidays.is_empty()
    }

    fn closed_on(&self, date: NaiveDate) -> bool {
        self.closed
            .iter()
            .any(|(from, to)| *from <= date && date <= *to)
    }

    fn intervals(&self, date: NaiveDate) -> &[(Minute, Minute)] {
        if self.closed_on(date) {
            return &[];
        }
        if is_public_holiday(date) {
            return &self.holidays;
        }
        &self.weekly[date.weekday().num_days_from_monday() as usize]
    }

    pub fn availability(&self, now: DateTime<Utc>) -> Availability {
        let local = now.with_timezone(&Rome);
        let today = local.date_naive();
        let minute = (local.hour() * 60 + local.minute()) as Minute;
        for &(start, end) in self.intervals(today) {
            if start <= minute && minute < end {
                return Availability::OpenUntil(to_time(end));
            }
        }
        for offset in 0..15u64 {
            let Some(date) = today.checked_add_days(Days::new(offset)) else {
                break;
            };
            let next = self
                .intervals(date)
                .iter()
                .map(|&(start, _)| start)
                .filter(|&start| offset > 0 || start > minute)
                .min();
            if let Some(start) = next {
                return Availability::OpensAt(date, to_time(start));
            }
        }
        Availability::NotSoon
    }

    pub fn is_open(&self, now: DateTime<Utc>) -> bool {
        matches!(self.availability(now), Availability::OpenUntil(_))
    }

    /// Today's intervals, for "oggi 9:00–12:00".
    pub fn today(&self, now: DateTime<Utc>) -> &[(Minute, Minute)] {
        self.intervals(now.with_timezone(&Rome).date_naive())
    }
}

fn to_time(minute: Minute) -> NaiveTime {
    if minute >= 24 * 60 {
        return NaiveTime::from_hms_opt(23, 59, 59).unwrap_or_default();
    }
    NaiveTime::from_hms_opt(u32::from(minute / 60), u32::from(minute % 60), 0).unwrap_or_default()
}

/// "9:00", as Italians write it.
pub fn format_minute(minute: Minute) -> String {
    format!("{}:{:02}", minute / 60, minute % 60)
}

pub fn format_time(time: NaiveTime) -> String {
    format!("{}:{:02}", time.hour(), time.minute())
}

/// Parses "09:00-13:00" (or with an en dash) into minutes.
pub fn parse_interval(text: &str) -> Option<(Minute, Minute)> {
    let (start, end) = text.split_once(['-', '–'])?;
    let start = parse_minute(start.trim())?;
    let end = parse_minute(end.trim())?;
    (start < end).then_some((start, end))
}

fn parse_minute(text: &str) -> Option<Minute> {
    let (hours, minutes) = text.split_once([':', '.'])?;
    let hours: Minute = hours.parse().ok()?;
    let minutes: Minute = minutes.parse().ok()?;
    (hours <= 24 && minutes < 60 && hours * 60 + minutes <= 24 * 60).then_some(hours * 60 + minutes)
}

/// The hours key for the national public holidays (closed on them unless written).
pub const HOLIDAYS_KEY: &str = "holidays";

pub const DAY_KEYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// "mon", "mon-fri", "sat-sun" into weekday indexes (Monday 0). Ranges may wrap ("fri-mon").
pub fn parse_days(text: &str) -> Option<Vec<usize>> {
    let index = |day: &str| DAY_KEYS.iter().position(|known| *known == day.trim());
    match text.split_once('-') {
        None => Some(vec![index(text)?]),
        Some((from, to)) => {
            let (from, to) = (index(from)?, index(to)?);
            let mut days = vec![from];
            let mut day = from;
            while day != to {
                day = (day + 1) % 7;
                days.push(day);
            }
            Some(days)
        }
    }
}

/// "2026-08-10/2026-08-23" or a single "2026-12-24".
pub fn parse_closure(text: &str) -> Option<(NaiveDate, NaiveDate)> {
    let parse = |part: &str| NaiveDate::parse_from_str(part.trim(), "%Y-%m-%d").ok();
    match text.split_once('/') {
        Some((from, to)) => {
            let (from, to) = (parse(from)?, parse(to)?);
            (from <= to).then_some((from, to))
        }
        None => parse(text).map(|day| (day, day)),
    }
}

/// Easter Sunday (Gregorian; the anonymous algorithm of Meeus).
fn easter(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32)
}

/// The national public holidays of Italy (Easter Sunday and Monday included).
/// Local patron saints' days are not national: write them as `closed` days.
pub fn is_public_holiday(date: NaiveDate) -> bool {
    let fixed = [
        (1, 1),
        (1, 6),
        (4, 25),
        (5, 1),
        (6, 2),
        (8, 15),
        (11, 1),
        (12, 8),
        (12, 25),
        (12, 26),
    ];
    if fixed.contains(&(date.month(), date.day())) {
        return true;
    }
    easter(date.year())
        .is_some_and(|sunday| date == sunday || sunday.checked_add_days(Days::new(1)) == Some(date))
}

/// A Rome local date and time as UTC, for tests and for `--now`.
pub fn rome(year: i32, month: u32, day: u32, hour: u32, minute: u32) -> DateTime<Utc> {
    Rome.with_ymd_and_hms(year, month, day, hour, minute, 0)
        .earliest()
        .map(|time| time.with_timezone(&Utc))
        .unwrap_or_default()
}

pub fn weekday_index(date: NaiveDate) -> usize {
    date.weekday().num_days_from_monday() as usize
}

pub fn is_weekday(date: NaiveDate, weekday: Weekday) -> bool {
    date.weekday() == weekday
}

#[cfg(test)]
mod tests {
    use super::*;

    fn office() -> Schedule {
        let mut schedule = Schedule::default();
        for day in parse_days("mon-fri").unwrap() {
            schedule.weekly[day] = vec![
                parse_interval("09:00-13:00").unwrap(),
                parse_interval("14:30-18:00").unwrap(),
            ];
        }
        schedule
    }

    #[test]
    fn easter_is_right() {
        assert_eq!(easter(2026), NaiveDate::from_ymd_opt(2026, 4, 5));
        assert_eq!(easter(2027), NaiveDate::from_ymd_opt(2027, 3, 28));
        assert!(is_public_holiday(
            NaiveDate::from_ymd_opt(2026, 4, 6).unwrap()
        ));
        assert!(!is_public_holiday(
            NaiveDate::from_ymd_opt(2026, 4, 7).unwrap()
        ));
    }

    #[test]
    fn open_and_next_opening() {
        let schedule = office();
        // Tuesday 17 March 2026, 10:00 in Rome.
        assert_eq!(
            schedule.availability(rome(2026, 3, 17, 10, 0)),
            Availability::OpenUntil(NaiveTime::from_hms_opt(13, 0, 0).unwrap())
        );
        // Tuesday at the lunch break: opens at 14:30 the same day.
        assert_eq!(
            schedule.availability(rome(2026, 3, 17, 13, 30)),
            Availability::OpensAt(
                NaiveDate::from_ymd_opt(2026, 3, 17).unwrap(),
                NaiveTime::from_hms_opt(14, 30, 0).unwrap()
            )
        );
        // Saturday evening: Monday at 9.
        assert_eq!(
            schedule.availability(rome(2026, 3, 21, 20, 0)),
            Availability::OpensAt(
                NaiveDate::from_ymd_opt(2026, 3, 23).unwrap(),
                NaiveTime::from_hms_opt(9, 0, 0).unwrap()
            )
        );
        // Easter Monday 2026 is a holiday: Tuesday 7 April.
        assert_eq!(
            schedule.availability(rome(2026, 4, 4, 12, 0)),
            Availability::OpensAt(
                NaiveDate::from_ymd_opt(2026, 4, 7).unwrap(),
                NaiveTime::from_hms_opt(9, 0, 0).unwrap()
            )
        );
    }

    #[test]
    fn closures_and_day_ranges() {
        let mut schedule = office();
        schedule
            .closed
            .push(parse_closure("2026-08-10/2026-08-23").unwrap());
        assert!(!schedule.is_open(rome(2026, 8, 12, 10, 0)));
        assert_eq!(parse_days("fri-mon"), Some(vec![4, 5, 6, 0]));
        assert_eq!(parse_days("funday"), None);
        assert_eq!(parse_interval("18:00-09:00"), None);
        assert_eq!(parse_interval("9:00–12:30"), Some((540, 750)));
    }

    #[test]
    fn public_holidays_are_closed_unless_their_hours_are_written() {
        // Tuesday 8 December 2026, the Immacolata: a weekday, and a national holiday.
        let mut schedule = office();
        assert!(!schedule.is_open(rome(2026, 12, 8, 10, 0)));
        assert!(schedule.is_open(rome(2026, 12, 9, 10, 0)));
        schedule.holidays = vec![parse_interval("10:00-12:00").unwrap()];
        assert_eq!(
            schedule.availability(rome(2026, 12, 8, 9, 0)),
            Availability::OpensAt(
                NaiveDate::from_ymd_opt(2026, 12, 8).unwrap(),
                NaiveTime::from_hms_opt(10, 0, 0).unwrap()
            )
        );
        assert!(schedule.is_open(rome(2026, 12, 8, 11, 0)));
        // A written closure wins over the holiday hours.
        schedule.closed.push(parse_closure("2026-12-08").unwrap());
        assert!(!schedule.is_open(rome(2026, 12, 8, 11, 0)));
    }
}
