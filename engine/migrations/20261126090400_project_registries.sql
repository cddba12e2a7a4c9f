-- Slipway: the registries a project's builds may push to and send credentials to.
--
-- A build's manifest or registry override may only name a registry listed
-- here (the built-in registry and `none` need no listing), and only the two
-- secrets listed with it are ever sent to it. Project admins manage the list.

CREATE TABLE project_registries (
    id              text        PRIMARY KEY
                    CHECK (id ~ '^reg_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    project_id      text        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    host            text        NOT NULL
                    CHECK (host = lower(host) AND host <> '' AND char_length(host) <= 253 AND host !~ '://'),
    username_secret text        CHECK (username_secret ~ '^[A-Z_][A-Z0-9_]*$' AND char_length(username_secret) <= 128),
    token_secret    text        CHECK (token_secret ~ '^[A-Z_][A-Z0-9_]*$' AND char_length(token_secret) <= 128),
    auth_hosts      text[]      NOT NULL DEFAULT '{}'
                    CHECK (array_position(auth_hosts, NULL) IS NULL AND cardinality(auth_hosts) <= 8),
    created_by      text        REFERENCES users (id) ON DELETE SET NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT project_registries_host_key UNIQUE (project_id, host),
    CONSTRAINT project_registries_credentials_check
        CHECK ((username_secret IS NULL) = (token_secret IS NULL))
);
COMMENT ON TABLE project_registries IS
    'Registries a project may push to; only the listed secrets are sent to each as credentials.';
COMMENT ON COLUMN project_registries.auth_hosts IS
    'Extra https hosts the registry''s token service (WWW-Authenticate realm) may be on.';
