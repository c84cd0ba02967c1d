//go:build !linux

package reloading

// bindProbe probes nothing outside Linux: Start binds the listeners.
func bindProbe(string, string, bool) error { return nil }
