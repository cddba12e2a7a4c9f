-- Slipway: Kubernetes clusters environments may deploy to (admin-managed).
--
-- A cluster is reached through a kubeconfig, stored encrypted with the master
-- key like secrets (AES-256-GCM, associated data `cluster|<id>|<name>`), or
-- "in-cluster" with the service account of the pod Slipway runs in.
-- Environments name a cluster in their target (`default` when they name none).

CREATE TABLE clusters (
    id             text        PRIMARY KEY
                   CHECK (id ~ '^cls_[0-7][0-9a-hjkmnp-tv-z]{25}$'),
    name           text        NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9-]{0,62}$'),
    in_cluster     boolean     NOT NULL,
    -- The API server's address from the kubeconfig: not secret, shown in lists.
    server         text        CHECK (char_length(server) <= 2048),
    ciphertext     bytea,
    nonce          bytea       CHECK (octet_length(nonce) >= 12),
    key_id         text        CHECK (key_id <> ''),
    created_by     text        REFERENCES users (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT clusters_access_check CHECK (
        (in_cluster AND ciphertext IS NULL AND nonce IS NULL AND key_id IS NULL)
        OR (NOT in_cluster AND ciphertext IS NOT NULL AND nonce IS NOT NULL AND key_id IS NOT NULL))
);
COMMENT ON TABLE clusters IS
    'Kubernetes clusters environments deploy to; kubeconfigs are encrypted and never returned by the API.';
