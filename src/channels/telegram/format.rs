//! Text for Telegram: HTML-escaped (a citizen's or a volunteer's `<b>` stays literal),
//! split at safe boundaries under the 4096-character limit, buttons as keyboards.

use teloxide_core::types::{
    ButtonRequest, InlineKeyboardButton, InlineKeyboardMarkup, KeyboardButton, KeyboardMarkup,
    ReplyMarkup,
};

use crate::engine::Button;

/// Telegram's limit is 4096 UTF-16 code units after entity parsing; we split below it.
pub const MAX_CHUNK: usize = 4000;

/// Escapes the three characters Telegram's HTML parse mode interprets.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            other => out.push(other),
        }
    }
    out
}

/// A character's length once escaped, in UTF-16 code units: Telegram counts after
/// entity parsing, we count before it, so that a piece fits either way.
fn escaped_units(character: char) -> usize {
    match character {
        '&' => 5,
        '<' | '>' => 4,
        other => other.len_utf16(),
    }
}

fn utf16_len(text: &str) -> usize {
    text.chars().map(escaped_units).sum()
}

/// Splits a text into pieces of at most `max` UTF-16 units once escaped, preferring paragraph, then
/// line, then word boundaries; never inside a character. Order is kept.
pub fn split(text: &str, max: usize) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while utf16_len(rest) > max {
        // The longest prefix that fits.
        let mut units = 0;
        let mut fit = 0;
        for (index, character) in rest.char_indices() {
            units += escaped_units(character);
            if units > max {
                break;
            }
            fit = index + character.len_utf8();
        }
        let window = &rest[..fit];
        let cut = window
            .rfind("\n\n")
            .map(|at| at + 2)
            .or_else(|| window.rfind('\n').map(|at| at + 1))
            .or_else(|| window.rfind(' ').map(|at| at + 1))
            .filter(|&at| at > fit / 2)
            .unwrap_or(fit);
        pieces.push(rest[..cut].trim_end().to_string());
        rest = &rest[cut..];
    }
    if !rest.trim().is_empty() || pieces.is_empty() {
        pieces.push(rest.to_string());
    }
    pieces
}

/// The callback data of a button: the conversation's tag and the engine's payload.
pub fn callback_data(tag: &str, button: &Button) -> String {
    format!("{tag}:{}", button.action.payload())
}

/// Reads callback data back: (tag, payload); None when it is not ours.
pub fn parse_callback_data(data: &str) -> Option<(&str, &str)> {
    if data.len() > 64 {
        return None;
    }
    data.split_once(':')
        .filter(|(tag, payload)| tag.len() == 8 && !payload.is_empty())
}

/// The keyboard of a message: inline buttons, or, when the location is asked, a reply
/// keyboard whose buttons send their label (the engine reads labels as presses) plus a
/// button that shares the location.
pub fn keyboard(
    buttons: &[Button],
    tag: &str,
    request_location: bool,
    location_label: &str,
) -> Option<ReplyMarkup> {
    if request_location {
        let mut rows: Vec<Vec<KeyboardButton>> = vec![vec![
            KeyboardButton::new(format!("📍 {location_label}")).request(ButtonRequest::Location),
        ]];
        for pair in buttons.chunks(2) {
            rows.push(
                pair.iter()
                    .map(|button| KeyboardButton::new(button.label.clone()))
                    .collect(),
            );
        }
        return Some(ReplyMarkup::Keyboard(
            KeyboardMarkup::new(rows)
                .resize_keyboard()
                .one_time_keyboard(),
        ));
    }
    if buttons.is_empty() {
        return None;
    }
    let rows: Vec<Vec<InlineKeyboardButton>> = buttons
        .iter()
        .map(|button| {
            vec![InlineKeyboardButton::callback(
                button.label.clone(),
                callback_data(tag, button),
            )]
        })
        .collect();
    Some(ReplyMarkup::InlineKeyboard(InlineKeyboardMarkup::new(rows)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_stays_literal() {
        assert_eq!(
            escape_html("<b>x</b> & [y](tg://z) *_"),
            "&lt;b&gt;x&lt;/b&gt; &amp; [y](tg://z) *_"
        );
    }

    #[test]
    fn splits_at_boundaries_in_order_and_never_inside_a_character() {
        let text = format!("{}\n\n{}", "a".repeat(3000), "é".repeat(3000));
        let pieces = split(&text, 4000);
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0], "a".repeat(3000));
        assert_eq!(pieces[1], "é".repeat(3000));
        let emoji = "🙂".repeat(5000);
        let pieces = split(&emoji, 4000);
        assert!(pieces.iter().all(|piece| utf16_len(piece) <= 4000));
        assert_eq!(pieces.concat(), emoji);
        assert_eq!(split("ciao", 4000), ["ciao"]);
    }

    #[test]
    fn callback_data_round_trips_and_refuses_strangers() {
        let button = Button {
            label: "Casa".into(),
            action: crate::engine::ButtonAction::Choice("casa".into()),
        };
        let data = callback_data("0123abcd", &button);
        assert_eq!(parse_callback_data(&data), Some(("0123abcd", "c:casa")));
        assert_eq!(parse_callback_data("nonsense"), None);
        assert_eq!(parse_callback_data(&"x".repeat(65)), None);
    }
}
