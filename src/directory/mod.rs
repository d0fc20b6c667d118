//! The directory of the district: needs, organisations, their locations and opening
//! hours, and the gazetteer of comuni and frazioni. `nearest` ranks the places that
//! offer a need for a citizen at a point and a moment.
//!
//! Pure: no I/O, no clock (the moment is an argument). Loading from YAML lives in
//! `dialogue::load`, which fills these types.

pub mod hours;

use chrono::{DateTime, NaiveDate, Utc};

use crate::matching::{self, Index, Match, Phrase, PhraseSet, Words};
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
    /// An id that services refer to (`location:`), when the organisation has several.
    pub id: Option<String>,
    /// What the place is called, when it is not the organisation's name ("Centro Lazzati").
    pub name: Option<String>,
    pub place: String,
    pub address: Option<String>,
    pub point: Point,
    /// None when nobody has told us the hours yet.
    pub hours: Option<Schedule>,
}

/// One thing an organisation does (a listening centre, a food distribution), with its
/// own hours and place when they differ from the organisation's.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub id: String,
    pub name: Option<Text>,
    pub needs: Vec<String>,
    /// The index of its location in the organisation's `locations`; None: any of them.
    pub location: Option<usize>,
    pub hours: Option<Schedule>,
    /// What to bring (documents, a card), where it is known.
    pub bring: Option<Text>,
    /// "su appuntamento", "gratis per gli iscritti".
    pub note: Option<Text>,
}

/// Where a fact of the directory was read and when: every phone, address, hour and
/// service carries one, or `sportello check` says it has none.
#[derive(Debug, Clone, PartialEq)]
pub struct Fact {
    /// What the fact is, for the operator ("the phone of caritas-vimodrone").
    pub what: String,
    /// Where it was read; None: no source written.
    pub source: Option<String>,
    pub checked: Option<NaiveDate>,
    pub span: Span,
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
    pub services: Vec<Service>,
    /// The provenance of each known fact, for `sportello check`.
    pub facts: Vec<Fact>,
    pub span: Span,
}

impl Organisation {
    /// Whether a citizen has any way to reach it: a contact or an address.
    pub fn reachable(&self) -> bool {
        self.contacts != Contacts::default()
            || self
                .locations
                .iter()
                .any(|location| location.address.is_some())
    }
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
    /// Where `phrases` sit in the gazetteer's index.
    pub phrase_set: PhraseSet,
    pub span: Span,
}

#[derive(Debug, Clone, Default)]
pub struct Gazetteer {
    pub places: Vec<Place>,
    index: Index,
}

impl PartialEq for Gazetteer {
    fn eq(&self, other: &Self) -> bool {
        self.places == other.places
    }
}

/// Where a place named by a citizen is, for the desk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// One of the district's comuni, frazioni or quartieri.
    District,
    /// A known place outside the district.
    Outside,
}

/// A point further than this from every comune of the district is outside it.
pub const DISTRICT_RADIUS_KM: f64 = 6.0;

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

    /// Prepares the names and aliases for matching; called once after loading.
    pub fn build_index(&mut self) {
        let mut index = Index::default();
        for place in &mut self.places {
            place.phrase_set = index.add(&place.phrases);
        }
        self.index = index;
    }

    pub fn with_places(places: Vec<Place>) -> Gazetteer {
        let mut gazetteer = Gazetteer {
            places,
            index: Index::default(),
        };
        gazetteer.build_index();
        gazetteer
    }

    /// Finds the place a citizen wrote: a CAP, a name or an alias, typos tolerated. A CAP
    /// two comuni share (the old 20090 of Segrate and Vimodrone) is a question of two.
    pub fn resolve(&self, text: &str) -> Match<&Place> {
        let digits: String = text.chars().filter(char::is_ascii_digit).collect();
        if digits.len() == 5 {
            let comuni: Vec<&Place> = self
                .places
                .iter()
                .filter(|place| place.kind == PlaceKind::Comune && place.caps.contains(&digits))
                .collect();
            match comuni.as_slice() {
                [one] => return Match::One(one),
                [first, second, ..] => return Match::Two(first, second),
                [] => {}
            }
            if let Some(place) = self
                .places
                .iter()
                .find(|place| place.caps.contains(&digits))
            {
                return Match::One(place);
            }
        }
        let words = Words::new(text, &[matching::Lang::Ar, matching::Lang::Uk]);
        let hits = self.index.hits(&words);
        match self.index.best_match(
            &hits,
            self.places
                .iter()
                .map(|place| (place.id.as_str(), place.phrase_set)),
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

    /// A place named in passing in a longer message ("affitto a Pioltello"): only a whole
    /// name or alias, or a close typo of a long one, so that "limite" is not Limito.
    /// The words are read in Italian, Arabic and Ukrainian whatever the conversation's
    /// language ("ساتيليت", "Сеграте").
    pub fn mentioned(&self, words: &Words) -> Option<&Place> {
        let words = words.in_langs(&[matching::Lang::Ar, matching::Lang::Uk]);
        let hits = self.index.hits(&words);
        let mut best: Option<(f32, &Place)> = None;
        for place in &self.places {
            let Some(scored) = hits.best(&self.index, place.phrase_set) else {
                continue;
            };
            let strict = place.phrases.iter().any(|phrase| {
                phrase.words.iter().all(|wanted| {
                    words.words.iter().any(|given| {
                        given.plain == wanted.plain
                            || (wanted.chars() >= 8
                                && matching::word_similarity(wanted, given) >= 0.85)
                    })
                })
            });
            if strict && best.is_none_or(|(score, _)| scored.score > score) {
                best = Some((scored.score, place));
            }
        }
        best.map(|(_, place)| place)
    }

    /// Whether a place is in the district.
    pub fn reach(&self, place: &Place) -> Reach {
        if self.comune_of(place).in_district {
            Reach::District
        } else {
            Reach::Outside
        }
    }

    /// Whether a shared location is in the district: near one of its comuni.
    pub fn point_in_district(&self, point: Point) -> bool {
        self.places
            .iter()
            .filter(|place| place.kind == PlaceKind::Comune && place.in_district)
            .any(|place| place.point.distance_km(point) <= DISTRICT_RADIUS_KM)
    }

    /// The names of the district's comuni, in file order.
    pub fn district_names(&self) -> Vec<&str> {
        self.places
            .iter()
            .filter(|place| place.kind == PlaceKind::Comune && place.in_district)
            .map(|place| place.name.as_str())
            .collect()
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
    /// The service that meets the need, when the organisation describes its services.
    pub service: Option<&'d Service>,
    /// None for an organisation that serves the whole district from no particular place.
    pub location: Option<&'d Location>,
    pub distance_km: Option<f64>,
    /// None when the hours are unknown.
    pub availability: Option<Availability>,
    /// The hours the availability was read from (the service's, else the location's).
    pub hours: Option<&'d Schedule>,
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

    /// Whether any organisation offers the need (for anyone, or for this comune).
    pub fn offers(&self, need: &str, comune: Option<&str>) -> bool {
        self.organisations
            .iter()
            .any(|org| Self::offers_to(org, need, comune))
    }

    fn offers_to(org: &Organisation, need: &str, comune: Option<&str>) -> bool {
        (org.needs.iter().any(|offered| offered == need)
            || org
                .services
                .iter()
                .any(|service| service.needs.iter().any(|offered| offered == need)))
            && (org.serves.is_empty()
                || comune.is_none_or(|comune| org.serves.iter().any(|id| id == comune)))
    }

    /// The organisations offering `need`, nearest first (one location each, its best),
    /// open-now preferred among close ones, then those with no location. `comune` (a
    /// place id) filters out offices that serve other comuni only; `point` absent, the
    /// located ones come in file order. A service's own hours and place count first.
    pub fn nearest(
        &self,
        need: &str,
        point: Option<Point>,
        comune: Option<&str>,
        now: DateTime<Utc>,
        max: usize,
    ) -> Vec<Suggestion<'_>> {
        let offering = self
            .organisations
            .iter()
            .filter(|org| Self::offers_to(org, need, comune));
        let mut located: Vec<(f64, Suggestion<'_>)> = Vec::new();
        let mut district_wide: Vec<Suggestion<'_>> = Vec::new();
        for organisation in offering {
            let services: Vec<Option<&Service>> = {
                let matching: Vec<Option<&Service>> = organisation
                    .services
                    .iter()
                    .filter(|service| service.needs.iter().any(|offered| offered == need))
                    .map(Some)
                    .collect();
                if matching.is_empty() {
                    vec![None]
                } else {
                    matching
                }
            };
            if organisation.locations.is_empty() {
                let service = services[0];
                let hours = service.and_then(|service| service.hours.as_ref());
                district_wide.push(Suggestion {
                    organisation,
                    service,
                    location: None,
                    distance_km: None,
                    availability: hours.map(|hours| hours.availability(now)),
                    hours,
                });
                continue;
            }
            let best = services
                .iter()
                .flat_map(|service| {
                    organisation
                        .locations
                        .iter()
                        .enumerate()
                        .filter(move |(index, _)| {
                            service
                                .and_then(|service| service.location)
                                .is_none_or(|wanted| wanted == *index)
                        })
                        .map(move |(_, location)| (*service, location))
                })
                .map(|(service, location)| {
                    let distance = point.map(|point| point.distance_km(location.point));
                    let hours = service
                        .and_then(|service| service.hours.as_ref())
                        .or(location.hours.as_ref());
                    let availability = hours.map(|hours| hours.availability(now));
                    let open = matches!(availability, Some(Availability::OpenUntil(_)));
                    let rank = distance.unwrap_or(0.0) - if open { OPEN_NOW_BONUS_KM } else { 0.0 };
                    (
                        rank,
                        Suggestion {
                            organisation,
                            service,
                            location: Some(location),
                            distance_km: distance,
                            availability,
                            hours,
                        },
                    )
                })
                .min_by(|a, b| a.0.total_cmp(&b.0));
            located.extend(best);
        }
        // A stable sort keeps file order among equals.
        located.sort_by(|a, b| a.0.total_cmp(&b.0));
        // Online services first among those of the whole district; and one of them is
        // always shown when there is one, even when near places fill the list: the
        // online way is often the quickest (changing doctor).
        district_wide.sort_by_key(|suggestion| {
            !suggestion
                .organisation
                .roles
                .iter()
                .any(|role| role == "servizio-online")
        });
        let keep_located = if district_wide.is_empty() {
            max
        } else {
            max.saturating_sub(1).max(1)
        };
        let mut list: Vec<Suggestion<'_>> = located
            .into_iter()
            .map(|(_, suggestion)| suggestion)
            .take(keep_located)
            .collect();
        let room = max.saturating_sub(list.len());
        list.extend(district_wide.into_iter().take(room));
        list
    }

    /// The organisations that serve the whole district from no particular place and
    /// offer `need` (for a citizen outside the district, or who gave no place).
    pub fn district_wide(&self, need: &str, now: DateTime<Utc>, max: usize) -> Vec<Suggestion<'_>> {
        self.nearest(need, None, None, now, usize::MAX)
            .into_iter()
            .filter(|suggestion| suggestion.location.is_none())
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
            id: None,
            name: None,
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
            services: vec![],
            facts: vec![],
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
        // Two places asked for: the nearest, and the one for the whole district, which is
        // always kept when there is one.
        assert_eq!(ids, ["pioltello", "everywhere"]);
    }
}
