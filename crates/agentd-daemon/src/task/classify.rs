//! Which failure reason an agent's own error gets: most are the agent's
//! (`agent_error`, never retried), but a model API that was overloaded or rate-limited
//! (HTTP 429, 503, 529) is transient (`model_unavailable`): the server retries the task,
//! on another runtime of the agent's pool when it has one.
//!
//! The CLIs say it in their own words (Claude Code: `API Error: 529 …` after its own
//! retries; others print the HTTP status or the API's error type), so this reads the
//! error text: a status code of 429, 503 or 529 standing as a word, or one of the
//! phrases the model APIs use for it. Anything else stays `agent_error`.

use agentd_proto::FailureReason;

/// HTTP statuses of a model API that is busy, not wrong.
const BUSY_STATUSES: [&str; 3] = ["429", "503", "529"];

/// Phrases the model APIs (Anthropic, OpenAI, Gemini) use for the same.
const BUSY_PHRASES: [&str; 7] = [
    "overloaded",
    "rate limit",
    "rate_limit",
    "ratelimit",
    "too many requests",
    "service unavailable",
    "resource_exhausted",
];

/// The failure reason of an agent run that reported `error`.
pub fn agent_failure(error: &str) -> FailureReason {
    let lower = error.to_ascii_lowercase();
    let status = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| BUSY_STATUSES.contains(&w));
    if status || BUSY_PHRASES.iter().any(|p| lower.contains(p)) {
        FailureReason::ModelUnavailable
    } else {
        FailureReason::AgentError
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_model_api_is_transient_and_everything_else_is_the_agents() {
        let busy = [
            // Claude Code 2.1.330, recorded against the mock answering 529.
            "API Error: 529 mock 529. This is a server-side issue, usually temporary — try again in a moment.",
            "API Error: 429 {\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\"}}",
            "stream error: unexpected status 429 Too Many Requests",
            "{\"error\":{\"code\":503,\"status\":\"UNAVAILABLE\"}}",
            "Overloaded",
            "RESOURCE_EXHAUSTED: quota",
        ];
        for e in busy {
            assert_eq!(agent_failure(e), FailureReason::ModelUnavailable, "{e}");
        }
        let agents = [
            "API Error: 400 {\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\"}}",
            "agent exited with exit status: 1",
            "the tool failed after 5290 ms",
            "file 429.txt not found",
            "",
        ];
        for e in agents {
            let want = if e.contains("429") {
                // A status code standing as a word is read as the API's, even in a file
                // name: the cost is one retry, never a lost failure.
                FailureReason::ModelUnavailable
            } else {
                FailureReason::AgentError
            };
            assert_eq!(agent_failure(e), want, "{e}");
        }
    }
}
