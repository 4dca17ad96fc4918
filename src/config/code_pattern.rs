//! Archival codes (档号, DA/T 22 / DA/T 13): a configurable pattern such as
//! `{fonds}-{category}·{year}-{retention}-{org}-{item:04}`. Everything but the item number names
//! the class; the item number runs 1, 2, 3 … within its class without gaps.

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Field(Field),
    Item(usize),
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Field {
    Fonds,
    Category,
    Year,
    Retention,
    Org,
    TaskType,
}

/// A parsed archival-code pattern; configuration holds it parsed, so a bad pattern stops the
/// server at start and nothing parses it again.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct Pattern {
    parts: Vec<Part>,
    source: String,
}

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(s: String) -> Result<Pattern, String> {
        Pattern::parse(&s)
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

/// The values a case gives the pattern's fields.
pub struct Values<'a> {
    pub fonds: &'a str,
    pub category: &'a str,
    pub year: i64,
    pub retention: &'a str,
    pub org: &'a str,
    pub task_type: &'a str,
}

impl Pattern {
    pub fn parse(s: &str) -> Result<Pattern, String> {
        let mut parts = vec![];
        let mut rest = s;
        let mut items = 0;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| format!("unclosed {{ in {s:?}"))?
                + open;
            let name = &rest[open + 1..close];
            parts.push(match name {
                "fonds" => Part::Field(Field::Fonds),
                "category" => Part::Field(Field::Category),
                "year" => Part::Field(Field::Year),
                "retention" => Part::Field(Field::Retention),
                "org" => Part::Field(Field::Org),
                "task_type" => Part::Field(Field::TaskType),
                "item" => {
                    items += 1;
                    Part::Item(4)
                }
                n if n.starts_with("item:") => {
                    items += 1;
                    let w: usize = n[5..]
                        .parse()
                        .map_err(|_| format!("{{{n}}}: the width must be a number"))?;
                    if !(1..=9).contains(&w) {
                        return Err(format!("{{{n}}}: the width must be 1 to 9"));
                    }
                    Part::Item(w)
                }
                n => return Err(format!("unknown placeholder {{{n}}}")),
            });
            rest = &rest[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        if items != 1 {
            return Err("the pattern needs exactly one {item} or {item:NN}".into());
        }
        Ok(Pattern {
            parts,
            source: s.to_string(),
        })
    }

    fn render(&self, v: &Values<'_>, item: Option<i64>) -> String {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Field(f) => out.push_str(&match f {
                    Field::Fonds => v.fonds.to_string(),
                    Field::Category => v.category.to_string(),
                    Field::Year => format!("{:04}", v.year),
                    Field::Retention => v.retention.to_string(),
                    Field::Org => v.org.to_string(),
                    Field::TaskType => v.task_type.to_string(),
                }),
                Part::Item(w) => match item {
                    Some(n) => out.push_str(&format!("{n:0w$}", w = *w)),
                    None => out.push_str("{item}"),
                },
            }
        }
        out
    }

    /// The class a case's item number counts within.
    pub fn class(&self, v: &Values<'_>) -> String {
        self.render(v, None)
    }

    pub fn code(&self, v: &Values<'_>, item: i64) -> String {
        self.render(v, Some(item))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_example_form() {
        let p = Pattern::parse("{fonds}-{category}·{year}-{retention}-{org}-{item:04}").unwrap();
        let v = Values {
            fonds: "Z109",
            category: "WS",
            year: 2011,
            retention: "Y",
            org: "BGS",
            task_type: "XK",
        };
        assert_eq!(p.code(&v, 1), "Z109-WS·2011-Y-BGS-0001");
        assert_eq!(p.class(&v), "Z109-WS·2011-Y-BGS-{item}");
        assert!(Pattern::parse("{fonds}-{year}").is_err());
        assert!(Pattern::parse("{fonds}-{item}-{item}").is_err());
        assert!(Pattern::parse("{fonds}-{nope}-{item}").is_err());
    }
}
