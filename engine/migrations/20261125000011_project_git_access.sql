-- How git reaches a project's repository: the names of the project secrets that
-- hold its credentials (never the values). At most one is set.
ALTER TABLE projects
    ADD COLUMN git_token_secret   text CHECK (git_token_secret <> ''),
    ADD COLUMN git_ssh_key_secret text CHECK (git_ssh_key_secret <> ''),
    ADD CONSTRAINT projects_one_git_credential CHECK (git_token_secret IS NULL OR git_ssh_key_secret IS NULL);

COMMENT ON COLUMN projects.git_token_secret IS
    'Project secret holding an https token for the repository (`token` or `username:token`).';
COMMENT ON COLUMN projects.git_ssh_key_secret IS
    'Project secret holding an SSH deploy key (private key) for the repository.';
