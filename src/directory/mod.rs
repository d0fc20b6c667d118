//! The directory of the district: needs, organisations, their locations and opening
//! hours, and the gazetteer of comuni and frazioni. `nearest` ranks the places that
//! offer a need for a citizen at a point and a moment.
//!
//! Pure: no I/O, no clock (the moment is an argument). Loading from YAML lives in
//! `dialogue::load`, which fills these types.

pub mod hours;

use chrono::{DateTime, Utc};

use crate::matching::{self, Match, Phrase};
use crate::text::Text;
use crate::yaml::Span;
use hours::{Availability, Schedule};

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
}

impl Point {
    /// Great-circle distance in kilometres (haversine, mean Earth radius).
    pub fn distance_km(self, other: Point) -> f64 {
        let (lat1, lat2) = (self.lat.to_radians(), other.lat.to_radians());
        let dlat = lat2 - lat1;
        let dlon = (other.lon - self.lon).to_radians();
        let a = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
        2.0 * 6371.0 * a.sqrt().min(1.0).asin()
    }

    pub fn is_valid(self) -> bool {
        (-90.0..=90.0).contains(&self.lat) && (-180.0..=180.0).contains(&self.lon)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Need {
    pub id: String,
    pub label: Text,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contacts {
    pub phone: Option<String>,
    pub email: Option<String>,
    pub website: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    pub place: String,
    pub address: Option<String>,
    pub point: Point,
    /// None when nobody has told us the hours yet.
    pub hours: Option<Schedule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Organisation {
    pub id: String,
    pub name: String,
    pub description: Option<Text>,
    pub roles: Vec<String>,
    pub needs: Vec<String>,
    pub languages: Option<Vec<String>>,
    /// Comuni whose residents it serves (a comune's Servizi Sociali); empty: everyone.
    pub serves: Vec<String>,
    pub contacts: Contacts,
    /// Empty: the organisation serves the whole district from no particular place.
    pub locations: Vec<Location>,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceKind {
    Comune,
    Frazione,
    Quartiere,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub id: String,
    pub name: String,
    pub kind: PlaceKind,
    /// The comune a frazione or quartiere belongs to.
    pub of: Option<String>,
    pub caps: Vec<String>,
    pub point: Point,
    pub aliases: Vec<String>,
    pub in_district: bool,
    /// Name and aliases, prepared for matching.
    pub phrases: Vec<Phrase>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gazetteer {
    pub places: Vec<Place>,
}

impl Gazetteer {
    pub fn get(&self, id: &str) -> Option<&Place> {
        self.places.iter().find(|place| place.id == id)
    }

    /// The comune a place belongs to (itself for a comune).
    pub fn comune_of<'g>(&'g self, place: &'g Place) -> &'g Place {
        place
            .of
            .as_deref()
            .and_then(|id| self.get(id))
            .unwrap_or(place)
    }

    /// Finds the place a citizen wrote: a CAP, a name or an alias, typos tolerated.
    pub fn resolve(&self, text: &str) -> Match<&Place> {
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        if digits.len() == 5 {
            // A CAP names a comune; frazioni that share it are not a second answer.
            if let Some(place) = self
                .places
                .iter()
                .find(|place| place.kind == PlaceKind::Comune && place.caps.contains(&digits))
                .or_else(|| {
                    self.places
                        .iter()
                        .find(|place| place.caps.contains(&digits))
                })
            {
                return Match::One(place);
            }
        }
        let words = matching::words(text);
        match matching::best_match(
            &words,
            self.places
                .iter()
                .map(|place| (place.id.as_str(), &place.phrases[..])),
            0.75,
        ) {
            Match::One(id) => self.get(id).map_or(Match::None, Match::One),
            Match::Two(first, second) => match (self.get(first), self.get(second)) {
                (Some(first), Some(second)) => Match::Two(first, second),
                _ => Match::None,
            },
            Match::None => Match::None,
        }
    }

    /// The district comune closest to a point.
    pub fn nearest_comune(&self, point: Point) -> Option<&Place> {
        self.places
            .iter()
            .filter(|place| place.kind == PlaceKind::Comune && place.in_district)
            .min_by(|a, b| {
                a.point
                    .distance_km(point)
                    .total_cmp(&b.point.distance_km(point))
            })
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Directory {
    pub needs: Vec<Need>,
    pub organisations: Vec<Organisation>,
}

/// One place suggested to a citizen.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion<'d> {
    pub organisation: &'d Organisation,
    /// None for an organisation that serves the whole district from no particular place.
    pub location: Option<&'d Location>,
    pub distance_km: Option<f64>,
    /// None when the hours are unknown.
    pub availability: Option<Availability>,
}

/// A place open now is preferred to a closed one up to this much further away.
const OPEN_NOW_BONUS_KM: f64 = 3.0;

impl Directory {
    pub fn need(&self, id: &str) -> Option<&Need> {
        self.needs.iter().find(|need| need.id == id)
    }

    pub fn organisation(&self, id: &str) -> Option<&Organisation> {
        self.organisations.iter().find(|org| org.id == id)
    }

    /// The organisations offering `need`, nearest first (one location each, its best),
    /// open-now preferred among close ones, then those with no location. `comune` (a
    /// place id) filters out offices that serve other comuni only; `point` absent, the
    /// located ones come in file order.
    pub fn nearest(
        &self,
        need: &str,
        point: Option<Point>,
        comune: Option<&str>,
        now: DateTime<Utc>,
        max: usize,
    ) -> Vec<Suggestion<'_>> {
        let offering = self.organisations.iter().filter(|org| {
            org.needs.iter().any(|offered| offered == need)
                && (org.serves.is_empty()
                    || comune.is_none_or(|comune| org.serves.iter().any(|id| id == comune)))
        });
        let mut located: Vec<(f64, Suggestion<'_>)> = Vec::new();
        let mut district_wide: Vec<Suggestion<'_>> = Vec::new();
        for organisation in offering {
            if organisation.locations.is_empty() {
                district_wide.push(Suggestion {
                    organisation,
                    location: None,
                    distance_km: None,
                    availability: None,
                });
                continue;
            }
            let best = organisation
                .locations
                .iter()
                .map(|location| {
                    let distance = point.map(|point| point.distance_km(location.point));
                    let availability = location.hours.as_ref().map(|hours| hours.availability(now));
                    let open = matches!(availability, Some(Availability::OpenUntil(_)));
                    let rank = distance.unwrap_or(0.0) - if open { OPEN_NOW_BONUS_KM } else { 0.0 };
                    (
                        rank,
                        Suggestion {
                            organisation,
                            location: Some(location),
                            distance_km: distance,
                            availability,
                        },
                    )
                })
                .min_by(|a, b| a.0.total_cmp(&b.0));
            located.extend(best);
        }
        // A stable sort keeps file order among equals.
        located.sort_by(|a, b| a.0.total_cmp(&b.0));
        located
            .into_iter()
            .map(|(_, suggestion)| suggestion)
            .chain(district_wide)
            .take(max)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::hours::rome;

    fn place(id: &str, lat: f64, lon: f64) -> Location {
        Location {
            place: id.into(),
            address: None,
            point: Point { lat, lon },
            hours: None,
        }
    }

    fn org(id: &str, locations: Vec<Location>) -> Organisation {
        Organisation {
            id: id.into(),
            name: id.into(),
            description: None,
            roles: vec![],
            needs: vec!["poverta.cibo".into()],
            languages: None,
            serves: vec![],
            contacts: Contacts::default(),
            locations,
            span: Span::default(),
        }
    }

    #[test]
    fn haversine_between_pioltello_and_segrate() {
        let pioltello = Point {
            lat: 45.499,
            lon: 9.329,
        };
        let segrate = Point {
            lat: 45.490,
            lon: 9.296,
        };
        let km = pioltello.distance_km(segrate);
        assert!((2.5..2.9).contains(&km), "{km}");
    }

    #[test]
    fn nearest_first_open_preferred_district_wide_last() {
        let mut far_but_open = place("vimodrone", 45.515, 9.286);
        let mut schedule = Schedule::default();
        schedule.weekly[1] = vec![(9 * 60, 18 * 60)];
        far_but_open.hours = Some(schedule);
        let directory = Directory {
            needs: vec![],
            organisations: vec![
                org("everywhere", vec![]),
                org("segrate", vec![place("segrate", 45.490, 9.296)]),
                org("pioltello", vec![place("pioltello", 45.499, 9.329)]),
                org("vimodrone", vec![far_but_open]),
            ],
        };
        let at_pioltello = Some(Point {
            lat: 45.499,
            lon: 9.329,
        });
        let tuesday = rome(2026, 3, 17, 10, 0);
        let ids: Vec<&str> = directory
            .nearest("poverta.cibo", at_pioltello, None, tuesday, 10)
            .iter()
            .map(|s| s.organisation.id.as_str())
            .collect();
        // Vimodrone (about 3.8 km, open) beats Segrate (2.7 km, hours unknown) by the bonus.
        assert_eq!(ids, ["pioltello", "vimodrone", "segrate", "everywhere"]);
        let sunday = rome(2026, 3, 22, 10, 0);
        let ids: Vec<&str> = directory
            .nearest("poverta.cibo", at_pioltello, None, sunday, 2)
            .iter()
            .map(|s| s.organisation.id.as_str())
            .collect();
        assert_eq!(ids, ["pioltello", "segrate"]);
    }
}
