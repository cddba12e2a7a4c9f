-- Slipway: initial schema (PostgreSQL 15, core features only).
--
-- Conventions
--   * Ids are TypeIDs stored as text: '<prefix>_<26 base32 chars>', generated in
--     Rust. Every primary-key id column checks its own format; id columns that are
--     foreign keys are validated by the key they reference. Columns that must
--     outlive what they point at (audit_events) carry a format CHECK and no FK.
--   * Child rows of a project carry project_id, and references between them are
--     composite (project_id, x_id) foreign keys, so a row can never point into
--     another project.
--   * References to users that record history (created_by, requested_by,
--     approvals.user_id) are ON DELETE NO ACTION: users are disabled
--     (users.disabled_at), not deleted. NULL in created_by / requested_by means
--     "the system". Sessions, tokens and memberships cascade with their user.
--   * Deleting a project cascades to everything it owns (audit_events excepted).
--   * updated_at columns are maintained by a trigger; writers need not set them.
--   * Status values are CHECK (... IN (...)) lists rather than enum types, so a
--     later migration can add a value without ALTER TYPE, and sqlx decodes them
--     as plain text.

-- ---------------------------------------------------------------------------
-- helpers
-- ---------------------------------------------------------------------------

CREATE FUNCTION slipway_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE FUNCTION slipway_reject_audit_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Audit events can only be inserted.';
END;
$$;

-- ---------------------------------------------------------------------------
-- users, sessions
-- ---------------------------------------------------------------------------

CREATE TABLE users (
    id            text        PRIMARY KEY
                  CHECK (id ~ '^usr_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    username      text        NOT NULL
                  CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    display_name  text,
    password_hash text        NOT NULL
                  CHECK (password_hash LIKE '$argon2id$%'),
    is_admin      boolean     NOT NULL DEFAULT false,
    disabled_at   timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE TRIGGER users_touch BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION slipway_touch_updated_at();

CREATE TABLE sessions (
    id           text        PRIMARY KEY
                 CHECK (id ~ '^ses_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    user_id      text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    token_hash   bytea       NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    last_seen_at timestamptz,
    ip           text,
    user_agent   text,
    CHECK (expires_at > created_at)
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);
COMMENT ON COLUMN sessions.token_hash IS
    'SHA-256 of the session cookie value; the cookie itself is never stored.';

-- ---------------------------------------------------------------------------
-- projects, membership, tokens
-- ---------------------------------------------------------------------------

CREATE TABLE projects (
    id             text        PRIMARY KEY
                   CHECK (id ~ '^prj_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    name           text        NOT NULL
                   CHECK (name = btrim(name) AND char_length(name) BETWEEN 1 AND 100),
    slug           text        NOT NULL UNIQUE
                   CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    repo_url       text        NOT NULL CHECK (btrim(repo_url) <> ''),
    default_branch text        NOT NULL DEFAULT 'main'
                   CHECK (default_branch ~ '^[^\s]+$'),
    description    text,
    auto_release   boolean     NOT NULL DEFAULT false,
    settings       jsonb       NOT NULL DEFAULT '{}'
                   CHECK (jsonb_typeof(settings) = 'object'),
    created_by     text        REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX projects_name_lower_key ON projects (lower(name));
CREATE TRIGGER projects_touch BEFORE UPDATE ON projects
    FOR EACH ROW EXECUTE FUNCTION slipway_touch_updated_at();
COMMENT ON COLUMN projects.auto_release IS
    'Convox behaviour: every completed build run creates a release.';

CREATE TABLE project_members (
    project_id text        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id    text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text        NOT NULL
               CHECK (role IN ('viewer', 'developer', 'approver', 'admin')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_user_idx ON project_members (user_id);

CREATE TABLE api_tokens (
    id           text        PRIMARY KEY
                 CHECK (id ~ '^tok_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    user_id      text        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         text        NOT NULL
                 CHECK (name = btrim(name) AND char_length(name) BETWEEN 1 AND 100),
    token_hash   bytea       NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    project_id   text        REFERENCES projects (id) ON DELETE CASCADE,
    expires_at   timestamptz,
    last_used_at timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);
CREATE INDEX api_tokens_project_idx ON api_tokens (project_id) WHERE project_id IS NOT NULL;
COMMENT ON COLUMN api_tokens.project_id IS
    'NULL: the token acts with all of its user''s rights; set: limited to this project.';

-- ---------------------------------------------------------------------------
-- environments (before secrets and deployments, which reference them)
-- ---------------------------------------------------------------------------

CREATE TABLE environments (
    id                 text        PRIMARY KEY
                       CHECK (id ~ '^env_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    project_id         text        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name               text        NOT NULL CHECK (name ~ '^[a-z][a-z0-9-]{0,62}$'),
    position           integer     NOT NULL CHECK (position >= 0),
    approval_required  integer     NOT NULL DEFAULT 0 CHECK (approval_required >= 0),
    approvers          text[]      NOT NULL DEFAULT '{}'
                       CHECK (array_position(approvers, NULL) IS NULL),
    wait_timer_seconds integer     NOT NULL DEFAULT 0 CHECK (wait_timer_seconds >= 0),
    deploy_target      jsonb       NOT NULL DEFAULT '{"kind":"docker"}'
                       CHECK (jsonb_typeof(deploy_target) = 'object'
                              AND jsonb_typeof(deploy_target -> 'kind') = 'string'),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT environments_project_name_key UNIQUE (project_id, name),
    CONSTRAINT environments_project_position_key UNIQUE (project_id, position)
        DEFERRABLE INITIALLY DEFERRED,
    CONSTRAINT environments_project_id_key UNIQUE (project_id, id)
);
CREATE TRIGGER environments_touch BEFORE UPDATE ON environments
    FOR EACH ROW EXECUTE FUNCTION slipway_touch_updated_at();
COMMENT ON TABLE environments IS
    'Ordered promotion path of a project (position ascending: test, staging, production).';
COMMENT ON COLUMN environments.approvers IS
    'Usernames allowed to approve (compare on lower(username)); empty: any project approver or admin.';

-- ---------------------------------------------------------------------------
-- secrets
-- ---------------------------------------------------------------------------

CREATE TABLE secrets (
    id             text        PRIMARY KEY
                   CHECK (id ~ '^sec_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    project_id     text        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    environment_id text,
    name           text        NOT NULL CHECK (name ~ '^[A-Z_][A-Z0-9_]*$' AND char_length(name) <= 128),
    ciphertext     bytea       NOT NULL,
    nonce          bytea       NOT NULL CHECK (octet_length(nonce) >= 12),
    key_id         text        NOT NULL CHECK (key_id <> ''),
    created_by     text        REFERENCES users (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT secrets_environment_fk FOREIGN KEY (project_id, environment_id)
        REFERENCES environments (project_id, id) ON DELETE CASCADE,
    -- one project-wide value (environment_id NULL) and one per environment
    CONSTRAINT secrets_scope_name_key UNIQUE NULLS NOT DISTINCT (project_id, environment_id, name)
);
CREATE INDEX secrets_environment_idx ON secrets (environment_id) WHERE environment_id IS NOT NULL;
CREATE TRIGGER secrets_touch BEFORE UPDATE ON secrets
    FOR EACH ROW EXECUTE FUNCTION slipway_touch_updated_at();

-- ---------------------------------------------------------------------------
-- manifests, builds
-- ---------------------------------------------------------------------------

CREATE TABLE manifests (
    id         text        PRIMARY KEY
               CHECK (id ~ '^man_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    project_id text        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    git_sha    text        NOT NULL CHECK (git_sha ~ '^[0-9a-f]{40}$'),
    hash       text        NOT NULL CHECK (hash ~ '^[0-9a-f]{64}$'),
    content    text        NOT NULL,
    parsed     jsonb       NOT NULL CHECK (jsonb_typeof(parsed) = 'object'),
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT manifests_project_sha_key UNIQUE (project_id, git_sha),
    -- target of build_specs' foreign key: the spec's manifest_hash must be the
    -- hash of the manifest recorded for that commit
    CONSTRAINT manifests_project_sha_hash_key UNIQUE (project_id, git_sha, hash)
);
COMMENT ON TABLE manifests IS
    'The manifest as read at a commit: raw text, its hash, and the parsed form.';

CREATE TABLE build_specs (
    id              text        PRIMARY KEY
                    CHECK (id ~ '^bld_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    project_id      text        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    git_sha         text        NOT NULL CHECK (git_sha ~ '^[0-9a-f]{40}$'),
    manifest_hash   text        NOT NULL CHECK (manifest_hash ~ '^[0-9a-f]{64}$'),
    services        text[]
                    CHECK (services IS NULL
                           OR (cardinality(services) > 0
                               AND array_position(services, NULL) IS NULL)),
    inputs          jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(inputs) = 'object'),
    registry        jsonb       CHECK (registry IS NULL OR jsonb_typeof(registry) IN ('object', 'string')),
    cache           jsonb       CHECK (cache IS NULL OR jsonb_typeof(cache) = 'object'),
    build_args      jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(build_args) = 'object'),
    force_rebuild   boolean     NOT NULL DEFAULT false,
    idempotency_key text        CHECK (idempotency_key IS NULL OR char_length(idempotency_key) BETWEEN 1 AND 200),
    created_by      text        REFERENCES users (id),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT build_specs_manifest_fk FOREIGN KEY (project_id, git_sha, manifest_hash)
        REFERENCES manifests (project_id, git_sha, hash),
    -- NULLs are distinct, so this only constrains specs that carry a key
    CONSTRAINT build_specs_idempotency_key UNIQUE (project_id, idempotency_key),
    -- target of releases' foreign key (same project, same commit, same manifest)
    CONSTRAINT build_specs_release_target_key UNIQUE (project_id, id, git_sha, manifest_hash)
);
CREATE INDEX build_specs_project_list_idx ON build_specs (project_id, created_at DESC, id DESC);
CREATE INDEX build_specs_reuse_idx ON build_specs (project_id, git_sha, manifest_hash, created_at DESC);
COMMENT ON TABLE build_specs IS
    'Immutable build inputs (bld_). Executions are build_runs; never update a spec.';
COMMENT ON COLUMN build_specs.services IS
    'Service names to build, sorted and deduplicated; NULL means all services (never empty).';

CREATE TABLE build_runs (
    id                 text        PRIMARY KEY
                       CHECK (id ~ '^run_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    build_id           text        NOT NULL REFERENCES build_specs (id) ON DELETE CASCADE,
    seq                integer     NOT NULL CHECK (seq >= 1),
    status             text        NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'building', 'completed', 'failed', 'cancelled')),
    backend            text,
    runner_ref         text,
    logs_ref           text,
    error_message      text,
    error_code         text
                       CHECK (error_code IN ('auth_error', 'clone_error', 'build_error', 'timeout_error',
                                             'resource_error', 'registry_error', 'unknown')),
    failed_step        text,
    reused_from_run_id text        REFERENCES build_runs (id) ON DELETE SET NULL,
    cancel_requested   boolean     NOT NULL DEFAULT false,
    lease_owner        text,
    lease_expires_at   timestamptz,
    heartbeat_at       timestamptz,
    attempt            integer     NOT NULL DEFAULT 0 CHECK (attempt >= 0),
    timeout_seconds    integer     CHECK (timeout_seconds > 0),
    queued_at          timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    completed_at       timestamptz,
    CONSTRAINT build_runs_build_seq_key UNIQUE (build_id, seq),
    -- target of build_artifacts' (build_id, run_id) foreign key
    CONSTRAINT build_runs_build_id_key UNIQUE (build_id, id),
    -- finished exactly when completed_at is set
    CONSTRAINT build_runs_completed_at_check
        CHECK ((status IN ('completed', 'failed', 'cancelled')) = (completed_at IS NOT NULL)),
    -- a building run always has a start time and a lease (so it can be recovered)
    CONSTRAINT build_runs_building_check
        CHECK (status <> 'building' OR (started_at IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT build_runs_lease_check
        CHECK ((lease_owner IS NULL) = (lease_expires_at IS NULL)),
    CONSTRAINT build_runs_error_code_status_check
        CHECK (error_code IS NULL OR status = 'failed'),
    CONSTRAINT build_runs_not_self_reuse CHECK (reused_from_run_id <> id)
);
-- at most one pending or building run per build spec
CREATE UNIQUE INDEX build_runs_one_active_idx ON build_runs (build_id)
    WHERE status IN ('pending', 'building');
-- the queue: SELECT ... WHERE status = 'pending' ORDER BY queued_at, id FOR NO KEY UPDATE SKIP LOCKED
CREATE INDEX build_runs_queue_idx ON build_runs (queued_at, id) WHERE status = 'pending';
-- the lease sweeper: building runs whose lease has expired
CREATE INDEX build_runs_lease_idx ON build_runs (lease_expires_at) WHERE status = 'building';
CREATE INDEX build_runs_reused_from_idx ON build_runs (reused_from_run_id)
    WHERE reused_from_run_id IS NOT NULL;
COMMENT ON TABLE build_runs IS
    'One execution of a build spec: pending -> building -> completed | failed | cancelled.';
COMMENT ON COLUMN build_runs.seq IS 'Run number within its build, from 1.';
COMMENT ON COLUMN build_runs.reused_from_run_id IS
    'Set when this run completed by reusing the artifacts of an earlier successful run.';

CREATE TABLE build_artifacts (
    id           text        PRIMARY KEY
                 CHECK (id ~ '^art_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    run_id       text        NOT NULL,
    build_id     text        NOT NULL,
    service_name text        NOT NULL CHECK (service_name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    image_ref    text        NOT NULL CHECK (btrim(image_ref) <> ''),
    digest       text        NOT NULL CHECK (digest ~ '^sha256:[0-9a-f]{64}$'),
    platforms    text[]      CHECK (platforms IS NULL OR array_position(platforms, NULL) IS NULL),
    size_bytes   bigint      CHECK (size_bytes >= 0),
    created_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT build_artifacts_run_fk FOREIGN KEY (build_id, run_id)
        REFERENCES build_runs (build_id, id) ON DELETE CASCADE,
    CONSTRAINT build_artifacts_run_service_key UNIQUE (run_id, service_name)
);
CREATE INDEX build_artifacts_build_idx ON build_artifacts (build_id);

CREATE TABLE build_logs (
    run_id text        NOT NULL REFERENCES build_runs (id) ON DELETE CASCADE,
    seq    bigint      NOT NULL CHECK (seq >= 0),
    ts     timestamptz NOT NULL DEFAULT clock_timestamp(),
    phase  text        NOT NULL
           CHECK (phase IN ('clone', 'checkout', 'workspace', 'build', 'push', 'record', 'system')),
    step   text,
    stream text        NOT NULL CHECK (stream IN ('stdout', 'stderr', 'system')),
    line   text        NOT NULL,
    PRIMARY KEY (run_id, seq)
);
COMMENT ON TABLE build_logs IS
    'Build output, one row per line. High volume: the primary key is the only index; '
    'read by (run_id, seq) ranges. seq is assigned by the single writer of a run.';

-- ---------------------------------------------------------------------------
-- releases
-- ---------------------------------------------------------------------------

CREATE TABLE releases (
    id            text        PRIMARY KEY
                  CHECK (id ~ '^rel_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    project_id    text        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    build_id      text        NOT NULL,
    git_sha       text        NOT NULL CHECK (git_sha ~ '^[0-9a-f]{40}$'),
    manifest_hash text        NOT NULL CHECK (manifest_hash ~ '^[0-9a-f]{64}$'),
    image_digests jsonb       NOT NULL
                  CHECK (jsonb_typeof(image_digests) = 'object'
                         AND image_digests <> '{}'::jsonb
                         AND NOT jsonb_path_exists(image_digests,
                               '$.* ? (@.type() != "string" || !(@ like_regex "^sha256:[0-9a-f]{64}$"))')),
    version       text        CHECK (version IS NULL OR char_length(version) BETWEEN 1 AND 128),
    tag           text        CHECK (tag IS NULL OR tag ~ '^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$'),
    notes         text,
    created_by    text        REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    -- the release's sha and manifest hash are those of its build
    CONSTRAINT releases_build_fk FOREIGN KEY (project_id, build_id, git_sha, manifest_hash)
        REFERENCES build_specs (project_id, id, git_sha, manifest_hash),
    CONSTRAINT releases_project_tag_key UNIQUE (project_id, tag),
    CONSTRAINT releases_project_id_key UNIQUE (project_id, id)
);
CREATE INDEX releases_project_list_idx ON releases (project_id, created_at DESC, id DESC);
CREATE INDEX releases_build_idx ON releases (build_id);
COMMENT ON TABLE releases IS
    'Immutable deployable snapshot (rel_): git sha, manifest hash, service -> sha256 digest.';

-- ---------------------------------------------------------------------------
-- pipelines, deployments, approvals
-- ---------------------------------------------------------------------------

CREATE TABLE pipeline_runs (
    id            text        PRIMARY KEY
                  CHECK (id ~ '^pip_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    project_id    text        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    pipeline      text        NOT NULL CHECK (pipeline ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
    git_sha       text        CHECK (git_sha ~ '^[0-9a-f]{40}$'),
    manifest_hash text        CHECK (manifest_hash ~ '^[0-9a-f]{64}$'),
    inputs        jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(inputs) = 'object'),
    status        text        NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'succeeded', 'failed', 'cancelled')),
    steps         jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(steps) = 'object'),
    created_by    text        REFERENCES users (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    completed_at  timestamptz,
    CONSTRAINT pipeline_runs_completed_at_check
        CHECK ((status IN ('succeeded', 'failed', 'cancelled')) = (completed_at IS NOT NULL)),
    CONSTRAINT pipeline_runs_project_id_key UNIQUE (project_id, id)
);
CREATE INDEX pipeline_runs_project_list_idx ON pipeline_runs (project_id, created_at DESC, id DESC);
CREATE INDEX pipeline_runs_active_idx ON pipeline_runs (created_at)
    WHERE status IN ('pending', 'running');
COMMENT ON COLUMN pipeline_runs.steps IS
    'Keyed by step name: {"build": {"status": ..., "outputs": {"build_id": ..., "image_digests": {...}}}, ...}.';

CREATE TABLE deployments (
    id                           text        PRIMARY KEY
                                 CHECK (id ~ '^dep_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    project_id                   text        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    environment_id               text        NOT NULL,
    release_id                   text,
    pipeline_run_id              text,
    image_digests                jsonb       NOT NULL
                                 CHECK (jsonb_typeof(image_digests) = 'object'
                                        AND NOT jsonb_path_exists(image_digests,
                                              '$.* ? (@.type() != "string" || !(@ like_regex "^sha256:[0-9a-f]{64}$"))')),
    git_sha                      text        CHECK (git_sha ~ '^[0-9a-f]{40}$'),
    status                       text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'awaiting_approval', 'deploying', 'succeeded',
                                                   'failed', 'rejected', 'cancelled', 'superseded')),
    kind                         text        NOT NULL DEFAULT 'deploy'
                                 CHECK (kind IN ('deploy', 'promote', 'rollback')),
    promoted_from_environment_id text,
    requested_by                 text        REFERENCES users (id),
    inputs                       jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(inputs) = 'object'),
    direct                       boolean     NOT NULL DEFAULT false,
    error_message                text,
    created_at                   timestamptz NOT NULL DEFAULT now(),
    approved_at                  timestamptz,
    started_at                   timestamptz,
    completed_at                 timestamptz,
    CONSTRAINT deployments_environment_fk FOREIGN KEY (project_id, environment_id)
        REFERENCES environments (project_id, id) ON DELETE CASCADE,
    CONSTRAINT deployments_release_fk FOREIGN KEY (project_id, release_id)
        REFERENCES releases (project_id, id),
    CONSTRAINT deployments_pipeline_run_fk FOREIGN KEY (project_id, pipeline_run_id)
        REFERENCES pipeline_runs (project_id, id) ON DELETE SET NULL (pipeline_run_id),
    CONSTRAINT deployments_promoted_from_fk FOREIGN KEY (project_id, promoted_from_environment_id)
        REFERENCES environments (project_id, id) ON DELETE SET NULL (promoted_from_environment_id),
    CONSTRAINT deployments_promoted_from_check
        CHECK (promoted_from_environment_id IS NULL
               OR (kind = 'promote' AND promoted_from_environment_id <> environment_id)),
    CONSTRAINT deployments_completed_at_check
        CHECK ((status IN ('succeeded', 'failed', 'rejected', 'cancelled', 'superseded'))
               = (completed_at IS NOT NULL)),
    CONSTRAINT deployments_deploying_check
        CHECK (status <> 'deploying' OR started_at IS NOT NULL)
);
-- at most one deployment per environment is rolling out at a time
CREATE UNIQUE INDEX deployments_one_deploying_idx ON deployments (environment_id)
    WHERE status = 'deploying';
CREATE INDEX deployments_environment_list_idx ON deployments (environment_id, created_at DESC, id DESC);
CREATE INDEX deployments_project_list_idx ON deployments (project_id, created_at DESC, id DESC);
-- what is live in an environment: its newest succeeded deployment
CREATE INDEX deployments_current_idx ON deployments (environment_id, completed_at DESC, id DESC)
    WHERE status = 'succeeded';
CREATE INDEX deployments_release_idx ON deployments (release_id) WHERE release_id IS NOT NULL;
CREATE INDEX deployments_pipeline_run_idx ON deployments (pipeline_run_id) WHERE pipeline_run_id IS NOT NULL;
CREATE INDEX deployments_promoted_from_idx ON deployments (promoted_from_environment_id)
    WHERE promoted_from_environment_id IS NOT NULL;
COMMENT ON COLUMN deployments.image_digests IS
    'Service -> sha256 digest actually applied; copied from the release when there is one.';

CREATE TABLE approvals (
    id            text        PRIMARY KEY
                  CHECK (id ~ '^apv_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    deployment_id text        NOT NULL REFERENCES deployments (id) ON DELETE CASCADE,
    user_id       text        NOT NULL REFERENCES users (id),
    decision      text        NOT NULL CHECK (decision IN ('approved', 'rejected')),
    digests_hash  text        NOT NULL CHECK (digests_hash ~ '^[0-9a-f]{64}$'),
    comment       text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT approvals_deployment_user_key UNIQUE (deployment_id, user_id)
);
CREATE INDEX approvals_user_idx ON approvals (user_id);
COMMENT ON COLUMN approvals.digests_hash IS
    'SHA-256 (hex) of the deployment''s canonical image_digests at decision time; '
    'an approval only counts while it matches.';

-- ---------------------------------------------------------------------------
-- audit
-- ---------------------------------------------------------------------------

CREATE TABLE audit_events (
    id             text        PRIMARY KEY
                   CHECK (id ~ '^aud_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    at             timestamptz NOT NULL DEFAULT now(),
    actor_user_id  text        CHECK (actor_user_id ~ '^usr_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    actor_token_id text        CHECK (actor_token_id ~ '^tok_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    actor_label    text        NOT NULL CHECK (actor_label <> ''),
    action         text        NOT NULL CHECK (action ~ '^[a-z][a-z0-9_.-]{0,99}$'),
    project_id     text        CHECK (project_id ~ '^prj_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    target_type    text,
    target_id      text,
    detail         jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(detail) = 'object'),
    ip             text,
    user_agent     text
);
CREATE INDEX audit_events_at_idx ON audit_events (at DESC, id DESC);
CREATE INDEX audit_events_project_idx ON audit_events (project_id, at DESC, id DESC)
    WHERE project_id IS NOT NULL;
CREATE INDEX audit_events_target_idx ON audit_events (target_type, target_id, at DESC)
    WHERE target_id IS NOT NULL;
CREATE TRIGGER audit_events_no_update_delete BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION slipway_reject_audit_change();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION slipway_reject_audit_change();
COMMENT ON TABLE audit_events IS
    'Append-only record of who did what. No foreign keys on purpose: events outlive '
    'the users, tokens and projects they name. UPDATE, DELETE and TRUNCATE raise.';
