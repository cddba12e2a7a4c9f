-- Slipway: releases, environments and deployments — what the release core needs
-- beyond the initial schema.

-- Releases are immutable: no column of a recorded release ever changes (tags
-- included). Deleting (with its project) stays possible.
CREATE FUNCTION slipway_reject_release_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'release % is immutable: releases and their tags never change', OLD.id
        USING ERRCODE = 'integrity_constraint_violation',
              HINT = 'Create a new release instead.';
END;
$$;
CREATE TRIGGER releases_immutable BEFORE UPDATE ON releases
    FOR EACH ROW EXECUTE FUNCTION slipway_reject_release_update();

-- The containers a deployment started, as the deploy target reported them:
-- [{"service", "name", "image", "digest", "container_id"}, ...].
ALTER TABLE deployments
    ADD COLUMN containers jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(containers) = 'array');

-- Deployments not finished yet, per environment (the board's "pending" lane,
-- and the supersede / one-at-a-time checks of a new request).
CREATE INDEX deployments_active_idx ON deployments (environment_id, created_at DESC, id DESC)
    WHERE status IN ('pending', 'awaiting_approval', 'deploying');

-- Gated deployments whose gate is satisfied and whose wait timer may have run out.
CREATE INDEX deployments_due_idx ON deployments (approved_at)
    WHERE status = 'awaiting_approval' AND approved_at IS NOT NULL;


-- Finding the image repository of a digest (deploying raw digests, image tags).
CREATE INDEX build_artifacts_digest_idx ON build_artifacts (digest);
