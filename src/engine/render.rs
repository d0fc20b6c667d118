//! Words for the citizen: suggestions, "tomorrow at 9:00", and a plain transcript of
//! outputs for the terminal and the dialogue tests.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use chrono_tz::Europe::Rome;

use super::{Output, State};
use crate::dialogue::Bundle;
use crate::directory::Suggestion;
use crate::directory::hours::{Availability, format_minute, format_time};

const WEEKDAYS_IT: [&str; 7] = [
    "lunedì",
    "martedì",
    "mercoledì",
    "giovedì",
    "venerdì",
    "sabato",
    "domenica",
];
const WEEKDAYS_EN: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// "oggi alle 14:30", "domani alle 9:00", "lunedì alle 9:00" (in English for `en`;
/// other languages read the Italian form until their translation is added here).
pub fn format_when(date: NaiveDate, time: NaiveTime, now: DateTime<Utc>, lang: &str) -> String {
    let today = now.with_timezone(&Rome).date_naive();
    let days = (date - today).num_days();
    let time = format_time(time);
    let weekday = date.weekday().num_days_from_monday() as usize;
    match lang {
        "en" => match days {
            0 => format!("today at {time}"),
            1 => format!("tomorrow at {time}"),
            2..=6 => format!("on {} at {time}", WEEKDAYS_EN[weekday]),
            _ => format!(
                "on {} {} at {time}",
                WEEKDAYS_EN[weekday],
                date.format("%-d/%-m")
            ),
        },
        _ => match days {
            0 => format!("oggi alle {time}"),
            1 => format!("domani alle {time}"),
            2..=6 => format!("{} alle {time}", WEEKDAYS_IT[weekday]),
            _ => format!(
                "{} {} alle {time}",
                WEEKDAYS_IT[weekday],
                date.format("%-d/%-m")
            ),
        },
    }
}

/// The text of a list of suggestions under the message `intro`: name, where, how far,
/// whether open, contacts.
pub fn suggestions(
    bundle: &Bundle,
    state: &State,
    list: &[Suggestion<'_>],
    now: DateTime<Utc>,
    intro: &str,
) -> String {
    let lang = state.lang.as_str();
    let messages = &bundle.bot.messages;
    let message = |key: &str, name: &str, value: String| {
        let mut vars = BTreeMap::new();
        vars.insert(name.to_string(), value);
        messages.get(key).render(lang, &vars)
    };
    let mut text = messages.get(intro).get(lang).to_string();
    let mut district_header = false;
    for suggestion in list {
        let organisation = suggestion.organisation;
        if suggestion.location.is_none() && !district_header {
            district_header = true;
            text.push_str("\n\n");
            text.push_str(messages.get("suggestions_district").get(lang));
        }
        text.push_str("\n\n• ");
        text.push_str(&organisation.name);
        if let Some(location) = suggestion.location {
            let place = bundle
                .gazetteer
                .get(&location.place)
                .map(|place| place.name.as_str())
                .unwrap_or("");
            let address = location
                .address
                .clone()
                .unwrap_or_else(|| messages.get("address_unknown").get(lang).to_string());
            text.push_str(&format!("\n  📍 {place}, {address}"));
            // Under 100 m (a place in the citizen's own comune centre) a distance says nothing.
            if let Some(km) = suggestion.distance_km.filter(|km| *km >= 0.1) {
                let km = if lang == "en" {
                    format!("{km:.1}")
                } else {
                    format!("{km:.1}").replace('.', ",")
                };
                text.push_str(&format!(" ({})", message("distance", "km", km)));
            }
            let hours = match suggestion.availability {
                None => messages.get("hours_unknown").get(lang).to_string(),
                Some(Availability::OpenUntil(until)) => {
                    message("open_now", "until", format_time(until))
                }
                Some(Availability::OpensAt(date, time)) => {
                    message("opens_at", "when", format_when(date, time, now, lang))
                }
                Some(Availability::NotSoon) => messages.get("hours_unknown").get(lang).to_string(),
            };
            text.push_str(&format!("\n  🕘 {hours}"));
            if let Some(schedule) = &location.hours {
                let today: Vec<String> = schedule
                    .today(now)
                    .iter()
                    .map(|&(start, end)| format!("{}–{}", format_minute(start), format_minute(end)))
                    .collect();
                if !today.is_empty()
                    && !matches!(suggestion.availability, Some(Availability::OpenUntil(_)))
                {
                    text.push_str(&format!(" ({})", today.join(", ")));
                }
            }
        }
        let contacts = &organisation.contacts;
        for (icon, value) in [
            ("☎️", &contacts.phone),
            ("✉️", &contacts.email),
            ("🌐", &contacts.website),
        ] {
            if let Some(value) = value {
                text.push_str(&format!("\n  {icon} {value}"));
            }
        }
    }
    text
}

/// The outputs of a turn as plain text: messages with numbered buttons, and the
/// channel-only outputs in brackets. Used by `sportello chat` and the dialogue tests.
pub fn transcript(outputs: &[Output]) -> String {
    let mut text = String::new();
    for output in outputs {
        match output {
            Output::Message {
                text: message,
                buttons,
                request_location,
            } => {
                text.push_str(message);
                text.push('\n');
                for (index, button) in buttons.iter().enumerate() {
                    text.push_str(&format!("  {}) {}\n", index + 1, button.label));
                }
                if *request_location {
                    text.push_str("  📍 /posizione LAT LON\n");
                }
            }
            Output::Suggestions { .. } | Output::Forget => {}
            Output::Handover(handover) => {
                text.push_str(&format!(
                    "[handover to a volunteer: need {}, {}]\n",
                    if handover.need.is_empty() {
                        "-"
                    } else {
                        &handover.need
                    },
                    if handover.in_hours {
                        "in hours"
                    } else {
                        "out of hours"
                    }
                ));
            }
            Output::ToVolunteer { .. } => text.push_str("[sent to the volunteer]\n"),
            Output::Ended => text.push_str("[conversation ended]\n"),
        }
    }
    text
}
