// Package auth keeps the webapp's principals in the users, tokens and api_keys
// tables: API users with bcrypt passwords and the on-prem password policy,
// bearer tokens (7 days, stored as SHA-256), and per-number API keys (the
// D360-API-KEY header, stored as SHA-256 and looked up by an 8-character
// prefix).
//
// Validated tokens and keys are cached in memory for at most CacheTTL (10 s by
// default) so that a request is not a database round trip. Revoking a token or
// key, or deleting a user, evicts the entries of this process at once; other
// webapp processes notice within CacheTTL. Nothing else is kept in memory:
// logins, passwords and users are read from the database each time, so
// webapps side by side see each other's changes at once (a password change
// revokes no token).
//
// A Store is safe for concurrent use and starts no goroutine.
package auth
