//! Check characters and code forms of the national identifiers found in case metadata.

const USCC_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Unified social credit code (GB 32100-2015): 18 characters, the last a MOD 31 check character.
pub fn uscc_problem(code: &str) -> Option<String> {
    let b = code.as_bytes();
    if b.len() != 18 {
        return Some(format!(
            "must be 18 characters, found {}",
            code.chars().count()
        ));
    }
    let mut sum = 0u32;
    for (i, c) in b.iter().enumerate() {
        let Some(v) = USCC_ALPHABET.iter().position(|a| a == c) else {
            return Some(format!(
                "character {} is not allowed (digits and upper-case letters without I, O, S, V, Z)",
                i + 1
            ));
        };
        if i < 17 {
            sum += USCC_WEIGHTS[i] * v as u32;
        }
    }
    let expected = USCC_ALPHABET[((31 - sum % 31) % 31) as usize];
    if expected != b[17] {
        return Some(format!(
            "check character is {}, expected {}",
            b[17] as char, expected as char
        ));
    }
    None
}

/// Appends the correct GB 32100 check character to 17 characters (used by fixtures and tests).
pub fn uscc_with_check(first17: &str) -> Option<String> {
    let b = first17.as_bytes();
    if b.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (i, c) in b.iter().enumerate() {
        sum += USCC_WEIGHTS[i] * USCC_ALPHABET.iter().position(|a| a == c)? as u32;
    }
    let check = USCC_ALPHABET[((31 - sum % 31) % 31) as usize] as char;
    Some(format!("{first17}{check}"))
}

/// Administrative division code (GB/T 2260): six digits, a real province prefix.
pub fn region_problem(code: &str) -> Option<String> {
    if code.len() != 6 || !code.bytes().all(|c| c.is_ascii_digit()) {
        return Some("must be 6 digits".into());
    }
    let province: u32 = code[..2].parse().unwrap_or(0);
    const PROVINCES: [u32; 34] = [
        11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46, 50, 51,
        52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
    ];
    if !PROVINCES.contains(&province) {
        return Some(format!("{:02} is not a province-level code", province));
    }
    None
}

const MOD36: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// ISO 7064 MOD 37,36 (hybrid system) check character.
pub fn iso7064_mod37_36(s: &str) -> Option<char> {
    let m = 36u32;
    let mut p = m;
    for c in s.bytes() {
        let v = MOD36.iter().position(|a| *a == c.to_ascii_uppercase())? as u32;
        let mut t = (p + v) % m;
        if t == 0 {
            t = m;
        }
        p = (t * 2) % (m + 1);
    }
    Some(MOD36[((m + 1 - p) % m) as usize] as char)
}

/// E-licence identifier (GB/T 36903):
/// `1.2.156.3005.2.{type code: 18-char code + 3 digits}.{issuer: 18-char code}.{serial}.{version}.{check}`.
/// The check character is computed over the four middle parts without their dots.
pub fn license_id_problem(id: &str, check_char: bool) -> Option<String> {
    let Some(rest) = id.strip_prefix("1.2.156.3005.2.") else {
        return Some("must start with 1.2.156.3005.2.".into());
    };
    let parts: Vec<&str> = rest.split('.').collect();
    if parts.len() != 5 {
        return Some(
            "must have type code, issuer code, serial, version and check character".into(),
        );
    }
    let (ty, issuer, serial, version, check) = (parts[0], parts[1], parts[2], parts[3], parts[4]);
    let alnum = |s: &str| {
        s.bytes()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    };
    if ty.len() != 21 || !alnum(&ty[..18]) || !ty[18..].bytes().all(|c| c.is_ascii_digit()) {
        return Some("type code must be an 18-character code followed by 3 digits".into());
    }
    if issuer.len() != 18 || !alnum(issuer) {
        return Some("issuer code must be 18 characters".into());
    }
    if serial.is_empty() || serial.len() > 32 || !alnum(serial) {
        return Some("serial must be 1–32 digits or upper-case letters".into());
    }
    if version.len() != 3 || !version.bytes().all(|c| c.is_ascii_digit()) {
        return Some("version must be 3 digits".into());
    }
    if check.len() != 1 {
        return Some("check character must be one character".into());
    }
    if check_char {
        let body = format!("{ty}{issuer}{serial}{version}");
        match iso7064_mod37_36(&body) {
            Some(c) if check.starts_with(c) => {}
            Some(c) => return Some(format!("check character is {check}, expected {c}")),
            None => return Some("contains characters outside 0-9 and A-Z".into()),
        }
    }
    None
}

/// Masks a personal ID number for roles that do not need it: keeps the first 4 and last 2 characters.
pub fn mask_id(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= 6 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..4].iter().collect();
    out.push_str(&"*".repeat(chars.len() - 6));
    out.extend(&chars[chars.len() - 2..]);
    out
}

/// The PRONOM identifier (PUID) of an identified format, as siegfried and DROID report it, where
/// the bytes determine one: `None` for formats PRONOM does not list (OFD) and where PRONOM tells
/// versions apart that the content does not declare (PNG, JPEG, RTF, ODF without a version).
pub fn pronom(format: &str, version: Option<&str>, note: Option<&str>) -> Option<&'static str> {
    if format == "pdf"
        && let Some(part) = note.and_then(|n| n.strip_prefix("PDF/A-"))
    {
        return match part.to_ascii_lowercase().as_str() {
            "1a" => Some("fmt/95"),
            "1b" => Some("fmt/354"),
            "2a" => Some("fmt/476"),
            "2b" => Some("fmt/477"),
            "2u" => Some("fmt/478"),
            "3a" => Some("fmt/479"),
            "3b" => Some("fmt/480"),
            "3u" => Some("fmt/481"),
            _ => None,
        };
    }
    Some(match (format, version) {
        ("pdf", Some("1.0")) => "fmt/14",
        ("pdf", Some("1.1")) => "fmt/15",
        ("pdf", Some("1.2")) => "fmt/16",
        ("pdf", Some("1.3")) => "fmt/17",
        ("pdf", Some("1.4")) => "fmt/18",
        ("pdf", Some("1.5")) => "fmt/19",
        ("pdf", Some("1.6")) => "fmt/20",
        ("pdf", Some("1.7")) => "fmt/276",
        ("pdf", Some("2.0")) => "fmt/1129",
        ("xml", _) => "fmt/101",
        ("txt", _) => "x-fmt/111",
        ("tiff", _) => "fmt/353",
        ("jp2", _) => "x-fmt/392",
        ("wav", _) => "fmt/141",
        ("mp3", _) => "fmt/134",
        ("mp4", _) => "fmt/199",
        ("docx", _) => "fmt/412",
        ("xlsx", _) => "fmt/214",
        ("pptx", _) => "fmt/215",
        ("doc", _) => "fmt/40",
        ("xls", _) => "fmt/61",
        ("ppt", _) => "fmt/126",
        ("zip", _) => "x-fmt/263",
        ("rar", _) => "x-fmt/264",
        ("7z", _) => "fmt/484",
        ("gzip", _) => "x-fmt/266",
        ("tar", _) => "x-fmt/265",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uscc_check_character() {
        // A code built with the published algorithm validates; one changed character does not.
        let code = uscc_with_check("91370100MA3C5XY7").map(|_| ());
        assert!(code.is_none(), "16 characters are refused");
        let code = uscc_with_check("91370102MA3C5XY7K").unwrap();
        assert_eq!(uscc_problem(&code), None);
        let mut bad = code.clone();
        bad.replace_range(5..6, "9");
        assert!(uscc_problem(&bad).is_some());
        assert!(
            uscc_problem("91370102MA3C5XY7KO").is_some(),
            "O is not in the alphabet"
        );
    }

    #[test]
    fn license_identifier_example_from_the_standard() {
        let ex = "1.2.156.3005.2.11100000000013338W011.11430000006122244L.20230000403.001.U";
        assert_eq!(license_id_problem(ex, true), None);
        let wrong = ex.replace(".U", ".V");
        assert!(
            license_id_problem(&wrong, true)
                .unwrap()
                .contains("expected U")
        );
        assert_eq!(license_id_problem(&wrong, false), None);
    }

    #[test]
    fn region_codes() {
        assert_eq!(region_problem("370102"), None);
        assert!(region_problem("990102").is_some());
        assert!(region_problem("37010").is_some());
    }

    #[test]
    fn masking() {
        assert_eq!(mask_id("370102199001011234"), "3701************34");
    }
}
