// Package auth keeps the webapp's principals in the users, tokens and api_keys
// tables: API users with bcrypt passwords and the on-prem password policy,
// bearer tokens (7 days, stored as SHA-256), and per-number API keys (the
// D360-API-KEY header, stored as SHA-256 and looked up by an 8-character
// prefix).
//
// Validated tokens and keys are cached in memory for at most CacheTTL (10 s by
// default) so that a request is not a database round trip. Revoking a token or
// key, changing a password (which revokes the user's other tokens), or
// deleting a user evicts the entries of this process at once; other webapp
// processes notice within CacheTTL. Logins, passwords and users are read
// from the database each time, so webapps side by side see each other's
// changes at once; the login throttle (throttle.go) counts failures in the
// database too, and remembers only blocks it has seen, which cannot end
// early.
//
// A Store is safe for concurrent use and starts no goroutine.
package auth
