-- Who may call the API: tokens with a role, kept as the SHA-256 of their secret (the secret is
-- shown once, when the token is made). `pipelines` (a JSON list) limits a `submit` token to the
-- pipelines it names.
CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    pipelines  TEXT,
    hash       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Each worker's own credential (its SHA-256), given when it registers: a worker acts only on
-- its own leases. A worker registered before this column has none and registers again.
-- `artifact_root`: the directory its tasks' outputs are written beneath.
ALTER TABLE workers ADD COLUMN credential_hash TEXT;
ALTER TABLE workers ADD COLUMN artifact_root TEXT;

-- Secrets, encrypted with the server's key (AES-256-GCM; the secret's name and version are the
-- associated data). `version` grows by one at each change; cache keys name it, never the value.
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    updated_at INTEGER NOT NULL
);
