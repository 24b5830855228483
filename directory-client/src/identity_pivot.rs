//! The *identité pivot*: the six fields that name a French citizen (FranceConnect's
//! `given_name`, `family_name`, `birthdate`, `gender`, `birthplace`, `birthcountry`), and how a
//! value from FranceConnect and a value from a directory are made comparable.
//!
//! FranceConnect sends the RNIPP's spelling (civil registry): given names space-separated,
//! accents kept, presumed dates completed with `01` (`1962-08-01` when the day is unknown,
//! `1962-01-01` when only the year is), INSEE codes with `2A`/`2B` for Corsica, `99100` for
//! France and an empty birthplace for people born abroad. Directories write the same facts
//! with other conventions (capitals, no accents, hyphens, `1962-08-00`, `M`/`F`, `01/08/1962`).
//! Each field kind has one normal form; two values match when their normal forms are equal.
//! Nothing is fuzzy: a different given name, a different day, is a different person.

use serde::{Deserialize, Serialize};

use crate::{PivotField, PivotQuery};

/// How a field is compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldKind {
    /// Given or family names: accents and case do not count, and any run of separators
    /// (space, hyphen, apostrophe, dot) is one separator; letters, their order and whether
    /// there is a separator do (`LE GALL` is not `LEGALL`).
    Name,
    /// A birth date, with presumed days and months as FranceConnect completes them.
    Birthdate,
    /// `male`, `female` or `unspecified`.
    Gender,
    /// An INSEE code (birth commune or country): five characters, `2A`/`2B` for Corsica.
    InseeCode,
}

/// The normal form of `value`, or `None` when it is empty or not a value of this kind (a
/// pivot with such a field names nobody).
pub fn normalize(kind: FieldKind, value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    match kind {
        FieldKind::Name => normalize_name(value),
        FieldKind::Birthdate => normalize_birthdate(value),
        FieldKind::Gender => normalize_gender(value),
        FieldKind::InseeCode => normalize_insee_code(value),
    }
}

fn normalize_name(value: &str) -> Option<String> {
    let mut out = String::with_capacity(value.len());
    let mut pending_separator = false;
    for c in value.chars() {
        // `é` → `e`, `œ` → `oe`, `ß` → `ss`; characters without a letter form separate.
        let ascii = if c.is_ascii() {
            c.to_string()
        } else {
            deunicode::deunicode_char(c).unwrap_or(" ").to_owned()
        };
        for a in ascii.chars() {
            if a.is_ascii_alphanumeric() {
                if pending_separator && !out.is_empty() {
                    out.push(' ');
                }
                pending_separator = false;
                out.push(a.to_ascii_lowercase());
            } else {
                pending_separator = true;
            }
        }
    }
    (!out.is_empty()).then_some(out)
}

/// `YYYY-MM-DD`, `YYYY-MM`, `YYYY`, `DD/MM/YYYY`; a day or month of `00` is unknown. Unknown
/// parts become `01`, as FranceConnect writes presumed dates.
fn normalize_birthdate(value: &str) -> Option<String> {
    let (year, month, day) = if let Some((day, rest)) = value.split_once('/') {
        let (month, year) = rest.split_once('/')?;
        (year, month, day)
    } else {
        let mut parts = value.splitn(3, '-');
        let year = parts.next()?;
        (
            year,
            parts.next().unwrap_or("00"),
            parts.next().unwrap_or("00"),
        )
    };
    let number = |text: &str, digits: usize| -> Option<u32> {
        (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit()))
            .then(|| text.parse().ok())
            .flatten()
    };
    let year = number(year, 4)?;
    let month = number(month, 2)?;
    let day = number(day, 2)?;
    if !(1..=9999).contains(&year) || month > 12 || day > 31 {
        return None;
    }
    let (month, day) = match (month, day) {
        (0, 0) => (1, 1),
        // A known day in an unknown month is no date anyone writes: refused, not guessed.
        (0, _) => return None,
        (m, 0) => (m, 1),
        (m, d) => (m, d),
    };
    let valid = time::Month::try_from(month as u8)
        .ok()
        .and_then(|m| time::Date::from_calendar_date(year as i32, m, day as u8).ok());
    valid.map(|_| format!("{year:04}-{month:02}-{day:02}"))
}

fn normalize_gender(value: &str) -> Option<String> {
    let gender = match value.to_lowercase().as_str() {
        // FranceConnect's values, the letters directories use (H for "homme"), INSEE's 1 and 2.
        "male" | "m" | "h" | "homme" | "masculin" | "1" => "male",
        "female" | "f" | "femme" | "feminin" | "féminin" | "2" => "female",
        "unspecified" | "i" | "indetermine" | "indéterminé" => "unspecified",
        _ => return None,
    };
    Some(gender.to_owned())
}

fn normalize_insee_code(value: &str) -> Option<String> {
    let code = value.to_ascii_uppercase();
    let bytes = code.as_bytes();
    let corsica = bytes.len() == 5 && bytes[0] == b'2' && matches!(bytes[1], b'A' | b'B');
    let digits = bytes.len() == 5 && bytes.iter().all(u8::is_ascii_digit);
    let tail_digits = bytes.len() == 5 && bytes[2..].iter().all(u8::is_ascii_digit);
    (digits || (corsica && tail_digits)).then_some(code)
}

/// France's INSEE country code: people born in France have a birthplace, others have none.
pub const FRANCE: &str = "99100";

/// The six claims in FranceConnect's names, with how each is compared, in the order
/// [`query`] takes their directory attributes.
pub const CLAIMS: [(&str, FieldKind); 6] = [
    ("given_name", FieldKind::Name),
    ("family_name", FieldKind::Name),
    ("birthdate", FieldKind::Birthdate),
    ("gender", FieldKind::Gender),
    ("birthplace", FieldKind::InseeCode),
    ("birthcountry", FieldKind::InseeCode),
];

/// A login whose identité pivot cannot be built: it is refused, never linked on fewer fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IncompletePivot {
    #[error("birthcountry missing or not an INSEE code")]
    Country,
    #[error("{0} missing or malformed")]
    Field(&'static str),
}

/// The composite pivot of a login: its six claims (read by `claim`, by FranceConnect name)
/// compared with the directory attributes `directory_attributes` (same order as [`CLAIMS`]).
/// A missing or malformed claim is an error naming it: such a login is refused, never linked
/// to someone on five fields. The birthplace of a person born abroad is empty and not compared.
pub fn query(
    directory_attributes: &[String; 6],
    claim: impl Fn(&str) -> Option<String>,
) -> Result<PivotQuery, IncompletePivot> {
    let country = claim("birthcountry")
        .and_then(|value| normalize(FieldKind::InseeCode, &value))
        .ok_or(IncompletePivot::Country)?;
    let mut fields = Vec::with_capacity(CLAIMS.len());
    for ((name, kind), attribute) in CLAIMS.iter().zip(directory_attributes) {
        let value = if *name == "birthplace" && country != FRANCE {
            String::new()
        } else {
            claim(name)
                .and_then(|value| normalize(*kind, &value))
                .ok_or(IncompletePivot::Field(name))?
        };
        fields.push(PivotField {
            directory_attribute: attribute.clone(),
            kind: *kind,
            value,
        });
    }
    Ok(PivotQuery::composite(fields))
}

#[cfg(test)]
mod tests {
    use super::*;
    use FieldKind::*;

    fn attributes() -> [String; 6] {
        [
            "givenName",
            "familyName",
            "birthDate",
            "gender",
            "birthPlace",
            "birthCountry",
        ]
        .map(str::to_owned)
    }

    fn claims<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    const ANGELA: [(&str, &str); 6] = [
        ("given_name", "Angela Claire Louise"),
        ("family_name", "DUBOIS"),
        ("birthdate", "1962-08-01"),
        ("gender", "female"),
        ("birthplace", "75107"),
        ("birthcountry", "99100"),
    ];

    #[test]
    fn a_composite_pivot_matches_every_field_under_its_normal_form() {
        let pivot = query(&attributes(), claims(&ANGELA)).unwrap();
        assert!(pivot.is_composite());
        let directory = |name: &str| -> Vec<String> {
            match name {
                "givenName" => vec!["ANGELA-CLAIRE-LOUISE".into()],
                "familyName" => vec!["Dubois".into()],
                "birthDate" => vec!["1962-08-00".into()],
                "gender" => vec!["F".into()],
                "birthPlace" => vec!["75107".into()],
                "birthCountry" => vec!["99100".into()],
                _ => vec![],
            }
        };
        assert!(pivot.matches_all(directory));
        // One field off (another day): somebody else.
        let other_day = |name: &str| match name {
            "birthDate" => vec!["1962-08-02".to_owned()],
            other => directory(other),
        };
        assert!(!pivot.matches_all(other_day));
        // A field the directory lacks: no match.
        let no_gender = |name: &str| match name {
            "gender" => vec![],
            other => directory(other),
        };
        assert!(!pivot.matches_all(no_gender));
    }

    #[test]
    fn born_abroad_has_no_birthplace_and_a_missing_field_is_named() {
        let abroad = [
            ("given_name", "Ana"),
            ("family_name", "Silva"),
            ("birthdate", "1980-02-29"),
            ("gender", "female"),
            ("birthplace", ""),
            ("birthcountry", "99139"),
        ];
        let pivot = query(&attributes(), claims(&abroad)).unwrap();
        assert_eq!(pivot.fields[4].value, "");
        for missing in ["given_name", "birthdate", "birthcountry", "birthplace"] {
            let partial: Vec<_> = ANGELA
                .iter()
                .copied()
                .filter(|(n, _)| *n != missing)
                .collect();
            let error = query(&attributes(), claims(&partial))
                .unwrap_err()
                .to_string();
            assert!(error.starts_with(missing), "{missing}: {error}");
        }
        let bad_date: Vec<_> = ANGELA
            .iter()
            .map(|&(n, v)| {
                if n == "birthdate" {
                    (n, "1962-02-30")
                } else {
                    (n, v)
                }
            })
            .collect();
        assert!(query(&attributes(), claims(&bad_date)).is_err());
    }

    fn same(kind: FieldKind, a: &str, b: &str) -> bool {
        normalize(kind, a).is_some() && normalize(kind, a) == normalize(kind, b)
    }

    #[test]
    fn names_ignore_accents_case_and_separators_not_letters() {
        assert!(same(Name, "Grégory", "GREGORY"));
        assert!(same(Name, "Françoise", "francoise"));
        assert!(same(Name, "Jean-Pierre", "JEAN PIERRE"));
        assert!(same(Name, "D'Artagnan", "d artagnan"));
        assert!(same(Name, "  Éloïse  Marie ", "eloise-marie"));
        assert!(same(Name, "Lætitia", "Laetitia"));
        assert!(!same(Name, "Angela Claire Louise", "Angela"));
        assert!(!same(Name, "Jean-Pierre", "Pierre Jean"));
        assert_eq!(normalize(Name, " - ' "), None);
    }

    #[test]
    fn birthdates_follow_franceconnect_presumed_dates() {
        assert_eq!(
            normalize(Birthdate, "1962-08-24").as_deref(),
            Some("1962-08-24")
        );
        assert!(same(Birthdate, "1962-08-01", "1962-08-00"));
        assert!(same(Birthdate, "1962-08-01", "1962-08"));
        assert!(same(Birthdate, "1962-01-01", "1962-00-00"));
        assert!(same(Birthdate, "1962-01-01", "1962"));
        assert!(same(Birthdate, "24/08/1962", "1962-08-24"));
        assert!(!same(Birthdate, "1962-08-24", "1962-08-25"));
        for bad in [
            "1962-13-01",
            "1962-02-30",
            "62-08-24",
            "1962-8-24",
            "x",
            "1962-08-24T00",
        ] {
            assert_eq!(normalize(Birthdate, bad), None, "{bad}");
        }
    }

    #[test]
    fn genders_and_insee_codes() {
        assert!(same(Gender, "female", "F"));
        assert!(same(Gender, "male", "H"));
        assert!(same(Gender, "male", "1"));
        assert!(!same(Gender, "male", "female"));
        assert_eq!(normalize(Gender, "x"), None);
        assert!(same(InseeCode, "2a004", "2A004"));
        assert!(same(InseeCode, "75107", " 75107 "));
        assert_eq!(normalize(InseeCode, "2C004"), None);
        assert_eq!(normalize(InseeCode, "7510"), None);
        assert_eq!(normalize(InseeCode, "99100").as_deref(), Some(FRANCE));
    }
}
