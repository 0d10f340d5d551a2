//go:build race

package stack

// raceEnabled builds the stack's binaries with the race detector when the
// tests themselves run with it.
const raceEnabled = true
