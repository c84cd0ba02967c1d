//go:build race

package ratelimit

// raceEnabled: the race detector slows and instruments every access, so
// the cost figures are not checked.
const raceEnabled = true
