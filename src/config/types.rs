//! Typed configuration values. Each is checked when the configuration is read, so a mistake stops
//! the server at start with its name, and nothing re-parses strings while it runs.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// What the format policy does with a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Accept,
    /// Accepted with a "not fixed-layout" warning.
    Warn,
    ProprietaryFormat,
    ArchiveContainer,
    UnknownFormat,
}

/// Retention (保管期限): `Y` (permanent), `D30` or `D10`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Retention {
    Y,
    D30,
    D10,
}

impl Retention {
    pub fn parse(s: &str) -> Option<Retention> {
        match s {
            "Y" => Some(Retention::Y),
            "D30" => Some(Retention::D30),
            "D10" => Some(Retention::D10),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Retention::Y => "Y",
            Retention::D30 => "D30",
            Retention::D10 => "D10",
        }
    }
    /// Years kept; `None` for permanent.
    pub fn years(self) -> Option<i64> {
        match self {
            Retention::Y => None,
            Retention::D30 => Some(30),
            Retention::D10 => Some(10),
        }
    }
    pub(crate) fn rank(self) -> i64 {
        self.years().unwrap_or(i64::MAX)
    }
    /// The shortest retention that keeps a case at least `years`.
    pub fn at_least(self, years: i64) -> Retention {
        [Retention::D10, Retention::D30, Retention::Y]
            .into_iter()
            .find(|r| r.rank() >= self.rank() && r.rank() >= years)
            .unwrap_or(Retention::Y)
    }
}

impl TryFrom<String> for Retention {
    type Error = String;
    fn try_from(s: String) -> Result<Retention, String> {
        Retention::parse(&s).ok_or_else(|| format!("{s:?} is not a retention: use Y, D30 or D10"))
    }
}

/// A day of the year, written `MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct MonthDay {
    pub month: u32,
    pub day: u32,
}

impl MonthDay {
    pub fn parse(s: &str) -> Option<MonthDay> {
        let (m, d) = s.split_once('-')?;
        let (month, day): (u32, u32) = (m.parse().ok()?, d.parse().ok()?);
        // 2024 is a leap year: 29 February is a valid configured day.
        NaiveDate::from_ymd_opt(2024, month, day).map(|_| MonthDay { month, day })
    }

    /// This day in `year`; 29 February in a common year is 1 March.
    pub fn in_year(self, year: i64) -> Option<NaiveDate> {
        NaiveDate::from_ymd_opt(year as i32, self.month, self.day)
            .or_else(|| NaiveDate::from_ymd_opt(year as i32, self.month, self.day - 1)?.succ_opt())
    }
}

impl TryFrom<String> for MonthDay {
    type Error = String;
    fn try_from(s: String) -> Result<MonthDay, String> {
        MonthDay::parse(&s).ok_or_else(|| format!("{s:?} is not MM-DD"))
    }
}

impl std::fmt::Display for MonthDay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02}-{:02}", self.month, self.day)
    }
}

/// An optional day: `""` means never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(try_from = "String")]
pub struct OptionalDay(pub Option<MonthDay>);

impl TryFrom<String> for OptionalDay {
    type Error = String;
    fn try_from(s: String) -> Result<OptionalDay, String> {
        if s.trim().is_empty() {
            return Ok(OptionalDay(None));
        }
        MonthDay::try_from(s).map(|d| OptionalDay(Some(d)))
    }
}

/// An IANA time zone such as `Asia/Shanghai`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TimeZone(pub chrono_tz::Tz);

impl TryFrom<String> for TimeZone {
    type Error = String;
    fn try_from(s: String) -> Result<TimeZone, String> {
        s.parse::<chrono_tz::Tz>()
            .map(TimeZone)
            .map_err(|_| format!("{s:?} is not an IANA time zone"))
    }
}

impl std::fmt::Display for TimeZone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name())
    }
}

/// How much of a package the filing re-checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckDepth {
    /// Tag manifest digest against the database and the Ed25519 signature.
    Seal,
    /// The seal, and every payload byte re-hashed.
    Full,
}

impl CheckDepth {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckDepth::Seal => "seal",
            CheckDepth::Full => "full",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Text,
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_when_read() {
        assert_eq!(
            MonthDay::parse("02-29").unwrap().in_year(2025),
            NaiveDate::from_ymd_opt(2025, 3, 1)
        );
        assert!(MonthDay::parse("13-01").is_none());
        assert!(TimeZone::try_from("Mars/Olympus".to_string()).is_err());
        assert_eq!(OptionalDay::try_from(String::new()), Ok(OptionalDay(None)));
        assert!(Retention::try_from("D20".to_string()).is_err());
    }
}
