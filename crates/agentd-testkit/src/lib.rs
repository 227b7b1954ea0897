//! Dev-only test support: fakes for the peers agentd does not control.
//!
//! - [`agent_clis`]: the real agent CLIs the tests run, one row each (install location,
//!   how each is pointed at the mock model, what its runs look like).
//! - [`fake_server`]: a scriptable daemon-API server (HTTP + WebSocket) on 127.0.0.1:0.
//! - [`fake_forge`]: a fake GitHub / Gitea REST API (pull requests, statuses, checks) on
//!   127.0.0.1:0 that also builds signed webhook deliveries.
//! - [`mock_model`]: a mock of the model provider APIs (Anthropic Messages, OpenAI
//!   Responses/Chat Completions, Gemini) that plays scripted conversations for real CLIs.
//! - [`pg`]: a throwaway PostgreSQL cluster (initdb/pg_ctl) with a database per test.

pub mod agent_clis;
pub mod fake_forge;
pub mod fake_server;
pub mod fault_proxy;
pub mod mock_model;
pub mod pg;
