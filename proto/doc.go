// Package proto holds the protobuf sources of openwaba and their generated Go
// code under gen/: core/v1 (the webapp ⇄ coreapp gRPC API), chatd/v1 (the
// network's wire stanzas) and message/v1 (the end-to-end message content).
// Regenerate with `make proto`.
package proto
