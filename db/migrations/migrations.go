// Package migrations embeds the numbered SQL migrations: core/ for the openwaba
// database (coreapp and webapp tables) and chatd/ for the network's database.
// Each file holds one DDL statement, because MySQL commits DDL implicitly and a
// half-applied multi-statement file could not roll back.
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
