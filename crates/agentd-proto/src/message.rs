//! Task messages streamed from a running agent to the server, and token usage.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a task message carries. Unknown kinds from a newer peer decode as `Unknown`
/// instead of failing the whole batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    #[default]
    Text,
    Thinking,
    ToolUse,
    ToolResult,
    Error,
    #[serde(other)]
    Unknown,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Text => "text",
            MessageKind::Thinking => "thinking",
            MessageKind::ToolUse => "tool_use",
            MessageKind::ToolResult => "tool_result",
            MessageKind::Error => "error",
            MessageKind::Unknown => "unknown",
        }
    }
}

/// One message of a task's transcript. `seq` numbers messages per task from 1; the
/// server upserts on `(task, seq)`, so a replayed batch never doubles anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskMessage {
    pub seq: i64,
    #[serde(rename = "type")]
    pub kind: MessageKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// When the server first stored the message (RFC 3339): set in the user API's
    /// `MessagesPage`, never sent by a daemon (and ignored if one did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

/// Token usage of one model during one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct UsageEntry {
    pub provider: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
}
