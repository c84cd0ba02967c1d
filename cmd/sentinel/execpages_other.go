//go:build !linux

package main

import "errors"

// adviseExec is Linux's alone (/proc/self/maps is too).
func adviseExec(execMapping) error {
	return errors.New("not supported on this system")
}
