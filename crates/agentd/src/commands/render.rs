//! Text for people: aligned tables, relative times, durations, short ids.

use jiff::Timestamp;
use serde_json::Value;

use super::client::s;

/// The visible width of `s` (ANSI escape sequences take none).
pub fn width(s: &str) -> usize {
    let mut n = 0;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            n += 1;
        }
    }
    n
}

/// A table: the header row (bold when `colour`), then the rows, columns aligned by two
/// spaces; the last column is not padded.
pub fn table(headers: &[&str], rows: &[Vec<String>], st: crate::style::Style) -> String {
    let cols = headers.len();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, cell) in r.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(width(cell));
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(widths[i] - width(cell) + 2));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = vec![line(headers.iter().map(|h| st.bold(h)).collect())];
    for r in rows {
        out.push(line(r.clone()));
    }
    out.join("\n")
}

/// A title cut to `max` characters (with `…`).
pub fn cut(s: &str, max: usize) -> String {
    let one_line = s.lines().next().unwrap_or("");
    if one_line.chars().count() > max || one_line.len() < s.trim_end().len() {
        let head: String = one_line.chars().take(max.saturating_sub(1)).collect();
        format!("{head}…")
    } else {
        one_line.to_string()
    }
}

/// The first 8 characters of an id: enough for the server to resolve it (a unique
/// prefix) and short enough to read.
pub fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

pub fn parse_time(t: &str) -> Option<Timestamp> {
    t.parse::<Timestamp>().ok()
}

/// `1m 23s`, `12s`, `2h 5m`, `3d 4h`.
pub fn duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {s}s")
    } else {
        format!("{s}s")
    }
}

/// Seconds from `a` to `b` (RFC 3339 strings), when both parse.
pub fn between(a: &str, b: &str) -> Option<i64> {
    Some(parse_time(b)?.as_second() - parse_time(a)?.as_second())
}

/// `3m ago`, `just now`, `2d ago`; the input itself when it does not parse; "" for "".
pub fn ago(t: &str) -> String {
    if t.is_empty() {
        return String::new();
    }
    let Some(ts) = parse_time(t) else {
        return t.to_string();
    };
    let secs = Timestamp::now().as_second() - ts.as_second();
    if secs < 5 {
        return "just now".into();
    }
    let (d, h, m) = (secs / 86_400, secs / 3600, secs / 60);
    if d >= 1 {
        format!("{d}d ago")
    } else if h >= 1 {
        format!("{h}h ago")
    } else if m >= 1 {
        format!("{m}m ago")
    } else {
        format!("{secs}s ago")
    }
}

/// `v[key]`, or `none` when empty.
pub fn or(v: &Value, key: &str, none: &str) -> String {
    match s(v, key) {
        x if x.is_empty() => none.to_string(),
        x => x,
    }
}

/// Text from the server made safe for a terminal: control characters other than tab
/// (escape sequences in a patch or a path are the agent's, not ours to run) become `?`.
pub fn printable(line: &str) -> String {
    line.chars()
        .map(|c| if c.is_control() && c != '\t' { '?' } else { c })
        .collect()
}

/// Like [`printable`], keeping newlines.
pub fn printable_text(text: &str) -> String {
    text.lines().map(printable).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_visible_width() {
        let st = crate::style::Style::new(true);
        let t = table(
            &["KEY", "STATUS", "TITLE"],
            &[
                vec!["AGD-1".into(), st.green("done"), "First".into()],
                vec!["AGD-12".into(), "in_progress".into(), "Second".into()],
            ],
            crate::style::Style::new(false),
        );
        let plain: Vec<String> = t
            .lines()
            .map(|l| {
                let mut o = String::new();
                let mut skip = false;
                for c in l.chars() {
                    if c == '\u{1b}' {
                        skip = true;
                    } else if skip {
                        skip = !c.is_ascii_alphabetic();
                    } else {
                        o.push(c);
                    }
                }
                o
            })
            .collect();
        assert_eq!(
            plain,
            [
                "KEY     STATUS       TITLE",
                "AGD-1   done         First",
                "AGD-12  in_progress  Second"
            ]
        );
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(duration(12), "12s");
        assert_eq!(duration(83), "1m 23s");
        assert_eq!(duration(7500), "2h 5m");
        assert_eq!(
            between("2026-01-01T00:00:00Z", "2026-01-01T00:01:23Z"),
            Some(83)
        );
    }
}
