//go:build !linux

package reloading

// bindProbe probes nothing outside Linux: Start binds the listeners.
func bindProbe(string, string, bool) (int, error) { return -1, nil }

// closeFD is not reached outside Linux.
func closeFD(int) {}
