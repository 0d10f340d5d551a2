// Package migrations embeds the numbered SQL migrations: core/ for the openwaba
// database (coreapp and webapp tables) and chatd/ for the network's database,
// in MySQL's dialect, and the same versions for SQLite under sqlite/core and
// sqlite/chatd. Both sets describe one schema: a change adds a file with the
// same number to both.
//
// Each MySQL file holds one DDL statement where it can, because MySQL commits
// DDL implicitly and a half-applied multi-statement file could not roll back.
// SQLite's DDL is transactional, so its files may hold several statements
// (one ALTER TABLE per column, and the indexes, which SQLite creates apart
// from the table). SQLite types: INTEGER for every integer column (the
// AUTO_INCREMENT keys become INTEGER PRIMARY KEY AUTOINCREMENT, so a number is
// never reused after a delete, as in InnoDB), TEXT for VARCHAR/CHAR/TEXT, BLOB
// for the binary types.
package migrations

import "embed"

// Core holds the migrations of the openwaba database under "core".
//
//go:embed core/*.sql
var Core embed.FS

// Chatd holds the migrations of the chatd database under "chatd".
//
//go:embed chatd/*.sql
var Chatd embed.FS

// SQLite holds the SQLite versions under "sqlite/core" and "sqlite/chatd".
//
//go:embed sqlite/core/*.sql sqlite/chatd/*.sql
var SQLite embed.FS
