-- The admin-managed list of allowed images (issue 18): base images builds may
-- use, and repositories of Slipway's registry a project may pull. An entry
-- with no project applies to every project.
CREATE TABLE allowed_images (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pattern     text        NOT NULL CHECK (char_length(pattern) BETWEEN 1 AND 512),
    project_id  text        REFERENCES projects (id) ON DELETE CASCADE,
    created_by  text        REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (pattern, project_id)
);

-- The embedded base image is allowed everywhere by default.
INSERT INTO allowed_images (pattern) VALUES ('docker.io/slipway/busybox:1');
