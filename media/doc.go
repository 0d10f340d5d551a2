// Package media holds what the business side and the phones share about
// attachments: encrypt (WhatsApp's media encryption: HKDF-derived keys,
// AES-256-CBC, a truncated HMAC, both hashes) and volume (the
// content-addressed store on the shared media volume).
package media
