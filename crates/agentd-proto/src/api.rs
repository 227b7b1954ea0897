//! The user-facing HTTP API of `agentd server` (`/api/v1/*`): workspaces, tokens,
//! runtimes, agents, issues, comments and tasks. The CLI, the web board and agents
//! (with a task token) speak it.
