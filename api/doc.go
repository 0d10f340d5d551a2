// Package api is the contract every openwaba process shares: the message
// types (package message: their JSON shapes, limits, checks, protobuf
// mapping, webhook rendering and how a phone shows them), the on-prem error
// catalog (package errcode) and phone numbers (package phone). The webapp
// parses and checks requests with it, coreapp checks them again and renders
// webhooks with it, waphone shows and sends messages with it, and chatd
// checks numbers with it.
package api
