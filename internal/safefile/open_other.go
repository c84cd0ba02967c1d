//go:build !unix

package safefile

// openFlags are added when opening a file (none here).
const openFlags = 0
