// Package graph is the one home of what the Cloud API (Meta's Graph API
// for WhatsApp) adds to the on-prem contract: the numeric ids of numbers,
// business accounts and templates (ids.go), the Graph error envelope and
// the mapping of on-prem error codes to Graph's (errors.go), and the
// bytes of a Cloud webhook: ASCII-only JSON signed with the app secret
// (webhook.go). The webapp's Cloud routes and coreapp's Cloud-format
// webhooks both use it, so a code or an id means the same on every surface.
//
// Sources: developers.facebook.com/documentation/business-messaging/
// whatsapp/support/error-codes/ (codes, titles, HTTP statuses), the
// project's ../shared/api/cloud-reference.md and Meta's OpenAPI
// description of the routes (business-messaging-api_v23.0.yaml).
package graph
