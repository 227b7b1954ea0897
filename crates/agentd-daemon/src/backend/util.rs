//! Helpers the parsers share: usage tallies, tolerant JSON access, custom-arg filtering.

use std::collections::BTreeMap;

use agentd_proto::UsageEntry;
use serde_json::Value;

use super::{AgentEvent, MessageDraft};

/// Sums usage per model; the parsers' shared bookkeeping.
#[derive(Debug, Clone, Default)]
pub(crate) struct UsageTally {
    by_model: BTreeMap<String, UsageEntry>,
}

impl UsageTally {
    pub(crate) fn add(&mut self, provider: &str, model: &str, add: Tokens) {
        let entry = self
            .by_model
            .entry(model.to_string())
            .or_insert_with(|| UsageEntry {
                provider: provider.to_string(),
                model: model.to_string(),
                ..UsageEntry::default()
            });
        entry.input_tokens = entry.input_tokens.saturating_add(add.input);
        entry.output_tokens = entry.output_tokens.saturating_add(add.output);
        entry.cache_read_tokens = entry.cache_read_tokens.saturating_add(add.cache_read);
        entry.cache_write_tokens = entry.cache_write_tokens.saturating_add(add.cache_write);
    }

    pub(crate) fn clear(&mut self) {
        self.by_model.clear();
    }

    /// Entries with any non-zero counter, ordered by model name.
    pub(crate) fn entries(&self) -> Vec<UsageEntry> {
        self.by_model
            .values()
            .filter(|u| {
                u.input_tokens != 0
                    || u.output_tokens != 0
                    || u.cache_read_tokens != 0
                    || u.cache_write_tokens != 0
            })
            .cloned()
            .collect()
    }
}

/// Token counts to add to a [`UsageTally`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Tokens {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
}

/// Records a session id seen in the stream; emits an event when it is new or changed.
pub(crate) fn note_session(
    current: &mut Option<String>,
    id: Option<&Value>,
    out: &mut Vec<AgentEvent>,
) {
    let Some(id) = id.and_then(Value::as_str).filter(|s| !s.is_empty()) else {
        return;
    };
    if current.as_deref() != Some(id) {
        *current = Some(id.to_string());
        out.push(AgentEvent::SessionId(id.to_string()));
    }
}

/// The event for a stdout line that is not JSON (or not the JSON we expect at all).
pub(crate) fn unparseable(provider: &str, line: &str) -> AgentEvent {
    AgentEvent::Message(MessageDraft::error(format!(
        "unparseable {provider} output: {}",
        truncate(line, 2000)
    )))
}

/// `s` cut to at most `max` bytes on a char boundary, with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Parses a line as a JSON object; `None` for blank lines; `Err` for anything else.
pub(crate) fn parse_object(line: &str) -> Result<Option<serde_json::Map<String, Value>>, ()> {
    let trimmed = line.trim();
    if trimmed.is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<Value>(trimmed) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        _ => Err(()),
    }
}

/// `v` as a string: strings as they are, everything else as compact JSON; `None` for null.
pub(crate) fn value_to_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A JSON number as i64 (also from floats and numeric strings); 0 otherwise.
pub(crate) fn int(v: Option<&Value>) -> i64 {
    match v {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|u| i64::try_from(u).unwrap_or(i64::MAX)))
            .or_else(|| n.as_f64().map(|f| f as i64))
            .unwrap_or(0),
        Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// Drops flags the backend sets itself from `custom_args`. `blocked` lists
/// `(flag, takes_value)`; a blocked value-taking flag also drops its next argument unless
/// written `--flag=value`.
pub(crate) fn filter_args(
    provider: &str,
    custom: &[String],
    blocked: &[(&str, bool)],
) -> Vec<String> {
    let mut out = Vec::with_capacity(custom.len());
    let mut iter = custom.iter();
    while let Some(arg) = iter.next() {
        let (name, inline_value) = match arg.split_once('=') {
            Some((name, _)) if name.starts_with('-') => (name, true),
            _ => (arg.as_str(), false),
        };
        match blocked.iter().find(|(flag, _)| *flag == name) {
            Some((flag, takes_value)) => {
                tracing::warn!(provider, flag, "custom_args: blocked flag dropped");
                if *takes_value && !inline_value {
                    iter.next();
                }
            }
            None => out.push(arg.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_args_drops_blocked_flags_and_their_values() {
        let custom: Vec<String> = [
            "--output-format",
            "text",
            "--foo",
            "--permission-mode=ask",
            "-p",
            "x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let out = filter_args(
            "claude",
            &custom,
            &[
                ("--output-format", true),
                ("--permission-mode", true),
                ("-p", false),
            ],
        );
        assert_eq!(out, vec!["--foo".to_string(), "x".to_string()]);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(truncate("abc", 3), "abc");
    }

    #[test]
    fn usage_tally_skips_all_zero_models() {
        let mut t = UsageTally::default();
        t.add("gemini", "a", Tokens::default());
        t.add(
            "gemini",
            "b",
            Tokens {
                input: 1,
                ..Tokens::default()
            },
        );
        t.add(
            "gemini",
            "b",
            Tokens {
                output: 2,
                ..Tokens::default()
            },
        );
        let e = t.entries();
        assert_eq!(e.len(), 1);
        assert_eq!(
            (e[0].model.as_str(), e[0].input_tokens, e[0].output_tokens),
            ("b", 1, 2)
        );
    }
}
