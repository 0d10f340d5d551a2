-- +goose Up
-- The network's own keys, created by the first chatd that starts and shared by
-- every chatd on this database: root_key (the Ed25519 root private key),
-- server_static (the servers' Noise static key pair), server_cert (its
-- certificate from the root key, renewed before it expires) and tls (the
-- self-signed certificate and key of the TLS mode, PEM). Secrets: keep this
-- table out of reach of anything but chatd.
CREATE TABLE server_keys (
  name TEXT NOT NULL PRIMARY KEY,
  value BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL
);

-- +goose Down
DROP TABLE server_keys;
