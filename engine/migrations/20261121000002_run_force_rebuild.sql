-- force_rebuild can be asked for per run (e.g. the Rebuild button), not only per spec.
ALTER TABLE build_runs ADD COLUMN force_rebuild boolean NOT NULL DEFAULT false;
