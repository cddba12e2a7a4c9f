-- Slipway: identity additions — first-admin setup links and login rate limiting.

-- One-time links that create the first admin on a fresh install. Only the
-- SHA-256 of the link's token is stored; rows are deleted when one is used.
CREATE TABLE setup_tokens (
    token_hash bytea       PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);
COMMENT ON TABLE setup_tokens IS
    'SHA-256 of one-time first-admin setup tokens; valid only while no user exists.';

-- Every login attempt, so that all server processes agree on rate limits.
-- A row is inserted as pending before the password is checked (so concurrent
-- guesses count against each other) and then marked with its outcome.
CREATE TABLE login_attempts (
    id       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    username text        NOT NULL
             CHECK (username = lower(username) AND char_length(username) <= 256),
    ip       text,
    outcome  text        NOT NULL DEFAULT 'pending'
             CHECK (outcome IN ('pending', 'failed', 'succeeded', 'refused'))
);
CREATE INDEX login_attempts_username_idx ON login_attempts (username, at DESC);
CREATE INDEX login_attempts_ip_idx ON login_attempts (ip, at DESC) WHERE ip IS NOT NULL;
CREATE INDEX login_attempts_at_idx ON login_attempts (at);
COMMENT ON COLUMN login_attempts.username IS
    'The username tried, lowercased (it need not exist). Never the password.';
COMMENT ON COLUMN login_attempts.outcome IS
    'pending and failed count as failures; refused (rate-limited) attempts do not extend a lockout.';
