package kdladapter

import "github.com/sentinel-proxy/sentinel/internal/configfile"

// The reading of configuration files lives in internal/configfile, which
// the sentinel app also uses (to read its config file at a reload) without
// importing this package; these are its names as this package exports
// them.

// MaxConfigBytes bounds a whole configuration: the main file and every
// file it includes, together, may have at most this many bytes (16 MiB).
const MaxConfigBytes = configfile.MaxBytes

// MaxConfigEnv is the environment variable that raises (or lowers) the
// limit of a whole configuration, in MiB (1 to 4096).
const MaxConfigEnv = configfile.MaxEnv

// ConfigLimit returns the size limit of a whole configuration:
// MaxConfigBytes, or $SENTINEL_MAX_CONFIG_MIB MiB when it is set.
func ConfigLimit(lookupEnv func(string) (string, bool)) (int64, error) {
	return configfile.Limit(lookupEnv)
}

// Files gives the adapter the files a configuration includes.
type Files = configfile.Files

// BoundedFiles is implemented by Files that can stop reading a file at a
// limit (see configfile.BoundedFiles).
type BoundedFiles = configfile.BoundedFiles

// ErrConfigTooLarge is wrapped by the errors of files larger than the
// bytes a configuration has left (see MaxConfigBytes).
var ErrConfigTooLarge = configfile.ErrTooLarge

// OSFiles reads regular files of the operating system, at most
// MaxConfigBytes of each (see configfile.OSFiles).
type OSFiles = configfile.OSFiles
