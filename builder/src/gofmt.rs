//! Go's `fmt` renderings BuildKit writes into image history (`%q` and `%v`
//! of string slices, `time.Duration`, a quoted rune), so `created_by` reads
//! byte for byte as BuildKit's.

/// `%q` of a `[]string`: `["a" "b"]`.
pub fn quoted_list(words: &[String]) -> String {
    let quoted: Vec<String> = words.iter().map(|w| berth_grammar::go_quote(w)).collect();
    format!("[{}]", quoted.join(" "))
}

/// `%v` of a `[]string`: `[a b]`.
pub fn plain_list(words: &[String]) -> String {
    format!("[{}]", words.join(" "))
}

/// `time.Duration.String()` of a count of nanoseconds: `1m30s`, `500ms`, `0s`.
pub fn duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        // Below a second: one unit with a fraction.
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, scale));
        out.push_str(unit);
    } else {
        let secs = u / 1_000_000_000;
        let frac = u % 1_000_000_000;
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&fraction(s * 1_000_000_000 + frac, 1_000_000_000));
        out.push('s');
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// `v / scale` with the fraction's trailing zeros dropped.
fn fraction(v: u64, scale: u64) -> String {
    let whole = v / scale;
    let rest = v % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let digits = scale.to_string().len() - 1;
    let f = format!("{rest:0digits$}");
    format!("{whole}.{}", f.trim_end_matches('0'))
}

/// `%q` of an integer: Go quotes it as a rune literal (`'\x04'`, `'A'`).
pub fn quoted_rune(n: i64) -> String {
    let Some(c) = u32::try_from(n).ok().and_then(char::from_u32) else {
        return "'\u{fffd}'".into();
    };
    let body = match c {
        '\u{7}' => "\\a".to_string(),
        '\u{8}' => "\\b".to_string(),
        '\u{c}' => "\\f".to_string(),
        '\n' => "\\n".to_string(),
        '\r' => "\\r".to_string(),
        '\t' => "\\t".to_string(),
        '\u{b}' => "\\v".to_string(),
        '\\' => "\\\\".to_string(),
        '\'' => "\\'".to_string(),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => format!("\\x{:02x}", c as u32),
        c if c.is_ascii() => c.to_string(),
        c if c.is_control() || c.is_whitespace() => {
            if (c as u32) < 0x10000 {
                format!("\\u{:04x}", c as u32)
            } else {
                format!("\\U{:08x}", c as u32)
            }
        }
        c => c.to_string(),
    };
    format!("'{body}'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_as_go_prints_them() {
        let s = 1_000_000_000;
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(5 * s), "5s");
        assert_eq!(duration(90 * s), "1m30s");
        assert_eq!(duration(3600 * s), "1h0m0s");
        assert_eq!(duration(s + s / 2), "1.5s");
        assert_eq!(duration(500_000_000), "500ms");
        assert_eq!(duration(1_500), "1.5µs");
        assert_eq!(duration(42), "42ns");
    }

    #[test]
    fn runes_as_go_quotes_them() {
        assert_eq!(quoted_rune(4), "'\\x04'");
        assert_eq!(quoted_rune(0), "'\\x00'");
        assert_eq!(quoted_rune(10), "'\\n'");
        assert_eq!(quoted_rune(65), "'A'");
        assert_eq!(quoted_rune(39), "'\\''");
    }

    #[test]
    fn lists() {
        let w = vec!["/bin/sh".to_string(), "-c".to_string()];
        assert_eq!(quoted_list(&w), "[\"/bin/sh\" \"-c\"]");
        assert_eq!(plain_list(&w), "[/bin/sh -c]");
    }
}
