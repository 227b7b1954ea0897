//! WebSocket frames of `/api/daemon/ws`: a `{"type": "...", "payload": {...}}` envelope.
//! [`WsMessage::decode`] never fails on an unknown type (it yields `Unknown`), only on
//! text that is not a JSON envelope or a known type whose payload does not decode.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rest::{HeartbeatRequest, HeartbeatResponse};

pub const TYPE_HEARTBEAT: &str = "daemon:heartbeat";
pub const TYPE_HEARTBEAT_ACK: &str = "daemon:heartbeat_ack";
pub const TYPE_TASK_AVAILABLE: &str = "daemon:task_available";
pub const TYPE_TASK_CANCELLED: &str = "daemon:task_cancelled";
pub const TYPE_TASK_PUSH: &str = "daemon:task_push";

/// The raw envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Frame {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub payload: Value,
}

/// `daemon:task_available` payload: a task was queued; wake the pollers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskAvailable {
    pub runtime_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
}

/// `daemon:task_cancelled` payload (agentd-server): stop the agent running this task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskCancelled {
    pub task_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
}

/// `daemon:task_push` payload (agentd-server): push this finished task's branch again
/// (after `push_failed`); the daemon answers with `POST /api/daemon/tasks/{id}/pushed`,
/// or with a progress message saying why the push failed again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct TaskPush {
    pub task_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runtime_id: Option<String>,
}

/// A decoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum WsMessage {
    Heartbeat(HeartbeatRequest),
    HeartbeatAck(HeartbeatResponse),
    TaskAvailable(TaskAvailable),
    TaskCancelled(TaskCancelled),
    TaskPush(TaskPush),
    /// A frame type this version does not know; ignored by receivers.
    Unknown(Frame),
}

#[derive(Debug)]
pub struct FrameError(pub String);

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FrameError {}

fn payload<T: for<'de> Deserialize<'de> + Default>(kind: &str, v: Value) -> Result<T, FrameError> {
    if v.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(v).map_err(|e| FrameError(format!("bad {kind} payload: {e}")))
}

impl WsMessage {
    /// Decodes one text frame.
    pub fn decode(text: &str) -> Result<WsMessage, FrameError> {
        let frame: Frame = serde_json::from_str(text)
            .map_err(|e| FrameError(format!("frame is not a JSON envelope: {e}")))?;
        Ok(match frame.kind.as_str() {
            TYPE_HEARTBEAT => WsMessage::Heartbeat(payload(TYPE_HEARTBEAT, frame.payload)?),
            TYPE_HEARTBEAT_ACK => {
                WsMessage::HeartbeatAck(payload(TYPE_HEARTBEAT_ACK, frame.payload)?)
            }
            TYPE_TASK_AVAILABLE => {
                WsMessage::TaskAvailable(payload(TYPE_TASK_AVAILABLE, frame.payload)?)
            }
            TYPE_TASK_CANCELLED => {
                WsMessage::TaskCancelled(payload(TYPE_TASK_CANCELLED, frame.payload)?)
            }
            TYPE_TASK_PUSH => WsMessage::TaskPush(payload(TYPE_TASK_PUSH, frame.payload)?),
            _ => WsMessage::Unknown(frame),
        })
    }

    /// Encodes as one text frame.
    pub fn encode(&self) -> String {
        let (kind, payload) = match self {
            WsMessage::Heartbeat(p) => (TYPE_HEARTBEAT, serde_json::to_value(p)),
            WsMessage::HeartbeatAck(p) => (TYPE_HEARTBEAT_ACK, serde_json::to_value(p)),
            WsMessage::TaskAvailable(p) => (TYPE_TASK_AVAILABLE, serde_json::to_value(p)),
            WsMessage::TaskCancelled(p) => (TYPE_TASK_CANCELLED, serde_json::to_value(p)),
            WsMessage::TaskPush(p) => (TYPE_TASK_PUSH, serde_json::to_value(p)),
            WsMessage::Unknown(f) => (f.kind.as_str(), Ok(f.payload.clone())),
        };
        let frame = Frame {
            kind: kind.to_string(),
            payload: payload.unwrap_or(Value::Null),
        };
        serde_json::to_string(&frame).unwrap_or_default()
    }
}
