//! Words for the citizen: suggestions, "tomorrow at 9:00" in their language, and a plain
//! transcript of outputs for the terminal and the dialogue tests.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, NaiveDate, NaiveTime, Utc};
use chrono_tz::Europe::Rome;

use super::{Output, State};
use crate::dialogue::Bundle;
use crate::directory::Suggestion;
use crate::directory::hours::{Availability, format_minute, format_time};

const DAY_KEYS: [&str; 7] = [
    "day_mon", "day_tue", "day_wed", "day_thu", "day_fri", "day_sat", "day_sun",
];

/// "oggi alle 14:30", "domani alle 9:00", "lunedì alle 9:00", "lunedì 6/4 alle 9:00", in
/// the citizen's language, from the messages `when_*` and `day_*` (bot.yaml).
pub fn format_when(
    bundle: &Bundle,
    date: NaiveDate,
    time: NaiveTime,
    now: DateTime<Utc>,
    lang: &str,
) -> String {
    let messages = &bundle.bot.messages;
    let today = now.with_timezone(&Rome).date_naive();
    let days = (date - today).num_days();
    let weekday = date.weekday().num_days_from_monday() as usize;
    let mut vars = BTreeMap::new();
    vars.insert("time".to_string(), format_time(time));
    vars.insert(
        "weekday".to_string(),
        messages.get(DAY_KEYS[weekday]).get(lang).to_string(),
    );
    vars.insert("date".to_string(), date.format("%-d/%-m").to_string());
    let key = match days {
        0 => "when_today",
        1 => "when_tomorrow",
        2..=6 => "when_weekday",
        _ => "when_date",
    };
    messages.get(key).render(lang, &vars)
}

/// A distance as the language writes decimals.
fn kilometres(km: f64, lang: &str) -> String {
    let text = format!("{km:.1}");
    match lang {
        "en" | "zh" | "ar" => text,
        _ => text.replace('.', ","),
    }
}

/// An Italian phone number as Telegram makes it tappable (international form): "02
/// 92366109" is "+39 02 92366109"; several numbers separated by commas stay separate.
pub fn phone_numbers(phone: &str) -> String {
    phone
        .split([',', ';'])
        .map(str::trim)
        .filter(|number| !number.is_empty())
        .map(|number| {
            let digits: String = number.chars().filter(char::is_ascii_digit).collect();
            let starts_italian = number.starts_with('0') || number.starts_with('3');
            if !number.starts_with('+') && starts_italian && (6..=11).contains(&digits.len()) {
                format!("+39 {number}")
            } else {
                number.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The text of a list of suggestions under the message `intro`: name, service, where,
/// how far, whether open (today's hours or the next opening), contacts, what to bring.
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
    // Under the district header already: no second one.
    let mut district_header = intro == "suggestions_district";
    for suggestion in list {
        let organisation = suggestion.organisation;
        if suggestion.location.is_none() && !district_header {
            district_header = true;
            text.push_str("\n\n");
            text.push_str(messages.get("suggestions_district").get(lang));
        }
        text.push_str("\n\n• ");
        text.push_str(&organisation.name);
        if let Some(name) = suggestion.service.and_then(|service| service.name.as_ref()) {
            text.push_str(" — ");
            text.push_str(name.get(lang));
        }
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
            let named = location
                .name
                .as_ref()
                .map(|name| format!("{name}, "))
                .unwrap_or_default();
            text.push_str(&format!("\n  📍 {named}{place}, {address}"));
            // Under 100 m (a place in the citizen's own comune centre) a distance says nothing.
            if let Some(km) = suggestion.distance_km.filter(|km| *km >= 0.1) {
                text.push_str(&format!(
                    " ({})",
                    message("distance", "km", kilometres(km, lang))
                ));
            }
        }
        if suggestion.location.is_some() || suggestion.hours.is_some() {
            let hours = match suggestion.availability {
                None => messages.get("hours_unknown").get(lang).to_string(),
                Some(Availability::OpenUntil(until)) => {
                    message("open_now", "until", format_time(until))
                }
                Some(Availability::OpensAt(date, time)) => message(
                    "opens_at",
                    "when",
                    format_when(bundle, date, time, now, lang),
                ),
                Some(Availability::NotSoon) => messages.get("hours_unknown").get(lang).to_string(),
            };
            text.push_str(&format!("\n  🕘 {hours}"));
            if let Some(schedule) = suggestion.hours {
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
        if let Some(note) = suggestion.service.and_then(|service| service.note.as_ref()) {
            text.push_str(&format!("\n  ℹ️ {}", note.get(lang)));
        }
        let contacts = &organisation.contacts;
        if let Some(phone) = &contacts.phone {
            text.push_str(&format!("\n  ☎️ {}", phone_numbers(phone)));
        }
        for (icon, value) in [("✉️", &contacts.email), ("🌐", &contacts.website)] {
            if let Some(value) = value {
                text.push_str(&format!("\n  {icon} {value}"));
            }
        }
        if let Some(bring) = suggestion
            .service
            .and_then(|service| service.bring.as_ref())
        {
            text.push_str(&format!(
                "\n  🎒 {}",
                message("bring", "what", bring.get(lang).to_string())
            ));
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
            Output::ToVolunteer { alert: None, .. } => text.push_str("[sent to the volunteer]\n"),
            Output::ToVolunteer {
                alert: Some(kind), ..
            } => text.push_str(&format!("[sent to the volunteer, alert: {kind}]\n")),
            Output::Ended => text.push_str("[conversation ended]\n"),
        }
    }
    text
}
