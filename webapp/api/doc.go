// Package api is the webapp's REST surface: an echo server that speaks the
// WhatsApp Business API on-premises routes and envelope, authenticates every
// request (bearer tokens, D360-API-KEY keys, the WA_API_KEY monitoring key),
// validates bodies, and forwards the work to the coreapps over gRPC: a call
// that fails with Unavailable, or with the error codes 1017 Not Primary
// Master or 1018 Not Primary Coreapp, is tried again on another coreapp with
// the same request and request id (see package coreconn for the routing).
//
// Every response is JSON with a "meta" object; every failure, whatever its
// origin (echo routing, validation, auth, a coreapp gRPC status), is rendered
// once, by the server's HTTPErrorHandler, as the on-prem error envelope.
// Internal causes are logged, never sent to the client.
//
// A Server holds no global state and starts no goroutine; it is safe for
// concurrent use.
package api
