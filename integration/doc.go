// Package integration holds tests that run whole Sentinel configurations
// through the real proxy, in-process (caddytest) with real backends on
// loopback, and later the load harness.
package integration
