-- How the runtime's daemon isolates agent runs (issue 11): `bwrap`, `off`,
-- `unavailable` or `unknown` (a state this server does not know); NULL when the daemon
-- did not say (an older daemon, or one that is not agentd's). Written on every register.
ALTER TABLE runtimes ADD COLUMN sandbox TEXT;
