//go:build !unix

package kdladapter

// openFlags are added when opening a configuration file (none here).
const openFlags = 0
