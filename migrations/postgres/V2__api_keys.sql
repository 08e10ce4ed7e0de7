-- API keys for the HTTP API. Only the SHA-256 of a token is stored; the token
-- is shown once, when the key is created.
CREATE TABLE api_keys (
    id               TEXT    PRIMARY KEY,
    organization_id  TEXT    NOT NULL,
    label            TEXT    NOT NULL,
    token_hash       BYTEA   NOT NULL UNIQUE,
    created_at       BIGINT  NOT NULL,
    revoked_at       BIGINT
);
CREATE INDEX api_keys_by_org ON api_keys (organization_id, created_at);
