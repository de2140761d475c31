//! docker's human-readable sizes and durations (go-units), as the daemon
//! writes them in `ps` and the CLI in its tables.

/// `units.HumanSizeWithPrecision(size, 3)`: decimal units, 3 significant digits.
pub fn human_size(size: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut v = size as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{v:.digits$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
}

/// `units.HumanDuration` followed by " ago", as `docker images` shows it.
pub fn since(created: Option<&str>) -> String {
    match created.and_then(parse_time) {
        Some(t) => since_unix(t),
        None => "N/A".into(),
    }
}

/// `since` of a time in seconds since the epoch.
pub fn since_unix(t: i64) -> String {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let secs = (now - t).max(0);
    let d = |n: i64, unit: &str| format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
    match secs {
        0 => "Less than a second ago".into(),
        s if s < 60 => d(s, "second"),
        s if s < 120 => "About a minute ago".into(),
        s if s < 3600 => d(s / 60, "minute"),
        s if s < 2 * 3600 => "About an hour ago".into(),
        s if s < 48 * 3600 => d(s / 3600, "hour"),
        s if s < 14 * 86400 => d(s / 86400, "day"),
        s if s < 60 * 86400 => d(s / (7 * 86400), "week"),
        s if s < 730 * 86400 => d(s / (30 * 86400), "month"),
        s => d(s / (365 * 86400), "year"),
    }
}

pub fn parse_time(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

/// docker's `CreatedAt`: `2024-01-02 03:04:05 +0000 UTC`.
pub fn created_at(created: Option<&str>) -> String {
    let Some(t) = created.and_then(parse_time) else {
        return String::new();
    };
    let t =
        time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second] +0000 UTC"
    );
    t.format(&f).unwrap_or_default()
}

/// docker's `RAMInBytes`: a number with an optional b, k, m, g or t
/// (binary units), optionally followed by `b`.
pub fn ram_in_bytes(s: &str) -> Result<i64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let t = lower
        .strip_suffix('b')
        .filter(|t| !t.is_empty() && !t.ends_with(|c: char| c.is_ascii_digit()))
        .unwrap_or(&lower);
    let (num, unit) = match t.find(|c: char| !(c.is_ascii_digit() || c == '.')) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let mult: f64 = match unit {
        "" | "b" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        "t" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("invalid size: {s:?}")),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid size: {s:?}"))?;
    Ok((n * mult) as i64)
}

/// docker's `--since`/`--until` values: seconds since the epoch (with a
/// fraction), an RFC 3339 time or date, or a Go duration before now
/// (`10m`, `1h30m`, `90s`). In nanoseconds since the epoch.
pub fn timestamp(value: &str, now_nanos: i64) -> Result<i64, String> {
    let bad = || {
        format!("invalid time {value:?}: use seconds since the epoch, an RFC 3339 time or a duration such as 10m")
    };
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    if let (Ok(secs), true) = (
        whole.parse::<i64>(),
        frac.len() <= 9 && frac.chars().all(|c| c.is_ascii_digit()),
    ) {
        let frac: i64 = format!("{frac:0<9}").parse().unwrap_or(0);
        return Ok(secs * 1_000_000_000 + frac);
    }
    if let Ok(t) =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
    {
        return Ok(t.unix_timestamp_nanos() as i64);
    }
    if let Ok(d) = time::Date::parse(
        value,
        time::macros::format_description!("[year]-[month]-[day]"),
    ) {
        return Ok(d.midnight().assume_utc().unix_timestamp_nanos() as i64);
    }
    Ok(now_nanos - duration(value).map_err(|_| bad())?)
}

/// A Go duration (`1h30m`, `90s`, `500ms`, `2.5s`) in nanoseconds.
pub fn duration(value: &str) -> Result<i64, String> {
    let bad =
        || format!("invalid duration {value:?}: use a number and a unit, as 30s, 1m30s or 500ms");
    let mut total = 0f64;
    let mut num = String::new();
    let mut chars = value.trim().chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if matches!(c, 'm' | 'u' | 'n' | 'µ') && chars.peek() == Some(&'s') {
            unit.push(chars.next().unwrap_or('s'));
        }
        let n: f64 = num.parse().map_err(|_| bad())?;
        num.clear();
        total += n * match unit.as_str() {
            "h" => 3600e9,
            "m" => 60e9,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return Err(bad()),
        };
        any = true;
    }
    if !num.is_empty() && num.chars().all(|c| c == '0') && !any {
        return Ok(0);
    }
    if !any || !num.is_empty() {
        return Err(bad());
    }
    Ok(total as i64)
}

/// A time in nanoseconds as docker's CLI prints event times (RFC 3339 with
/// nine decimals, UTC).
pub fn rfc3339_nano(nanos: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(nanos as i128)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let f = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:9]Z"
    );
    t.format(&f).unwrap_or_default()
}

/// docker's tables: columns padded to their widest cell and three spaces
/// apart, the last one as it is; `rows` holds the header first.
pub fn table(rows: &[Vec<String>]) -> String {
    let cols = rows.first().map(|r| r.len()).unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map(|x| x.chars().count()).unwrap_or(0))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn docker_times() {
        use super::{rfc3339_nano, timestamp};
        let now = 1_700_000_000_000_000_000;
        assert_eq!(timestamp("1700000000", now), Ok(now));
        assert_eq!(timestamp("10m", now), Ok(now - 600_000_000_000));
        assert_eq!(timestamp("1h30m", now), Ok(now - 5_400_000_000_000));
        assert_eq!(timestamp("2023-11-14T22:13:20Z", now), Ok(now));
        assert!(timestamp("soon", now).is_err());
        assert_eq!(rfc3339_nano(now + 5), "2023-11-14T22:13:20.000000005Z");
    }

    #[test]
    fn sizes_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1234), "1.23kB");
        assert_eq!(human_size(4_100), "4.1kB");
        assert_eq!(human_size(138_000), "138kB");
        assert_eq!(human_size(1_200_000), "1.2MB");
    }
}
