package kdladapter_test

import (
	"runtime"
	"testing"

	"github.com/sentinel-proxy/sentinel/kdladapter"
)

// allocated returns the heap allocations (count and bytes) of f.
func allocated(f func()) (count, bytes uint64) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs, after.TotalAlloc - before.TotalAlloc
}

// TestValidateAllocationsLinear: adapting and validating (provisioning) a
// config of ten times the routes allocates about ten times as much, not a
// hundred (issue 13.8: route flags were copied per new route, so that
// validating 10,000 routes took 17 s and 100,000 over 300 s). Allocations,
// not wall time, so that a loaded machine does not make it flaky.
func TestValidateAllocationsLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("adapts and provisions 3,300 routes")
	}
	run := func(n int) (uint64, uint64) {
		src := kdladapter.GeneratedConfig(n)
		return allocated(func() {
			out, _, err := kdladapter.Adapt("gen.kdl", src, func(string) (string, bool) { return "", false }, kdladapter.OSFiles{})
			if err != nil {
				t.Fatal(err)
			}
			if err := validateJSON(out); err != nil {
				t.Fatal(err)
			}
		})
	}
	run(10) // load what is loaded once (modules, templates)
	smallN, smallB := run(300)
	bigN, bigB := run(3000)
	t.Logf("300 routes: %d allocations, %d KiB; 3,000 routes: %d allocations, %d KiB", smallN, smallB>>10, bigN, bigB>>10)
	// Linear growth gives 10 (less, with fixed costs); quadratic 100.
	if r := float64(bigN) / float64(smallN); r > 13 {
		t.Errorf("allocations grow %.1f× for 10× the routes: not linear", r)
	}
	if r := float64(bigB) / float64(smallB); r > 13 {
		t.Errorf("allocated bytes grow %.1f× for 10× the routes: not linear", r)
	}
}

// TestAdaptAllocationsLinear is TestValidateAllocationsLinear for the
// adapter alone, on more routes.
func TestAdaptAllocationsLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("adapts 11,000 routes")
	}
	run := func(n int) (uint64, uint64) {
		src := kdladapter.GeneratedConfig(n)
		return allocated(func() {
			if _, _, err := kdladapter.Adapt("gen.kdl", src, func(string) (string, bool) { return "", false }, kdladapter.OSFiles{}); err != nil {
				t.Fatal(err)
			}
		})
	}
	run(10)
	smallN, smallB := run(1000)
	bigN, bigB := run(10000)
	t.Logf("1,000 routes: %d allocations, %d KiB; 10,000 routes: %d allocations, %d KiB", smallN, smallB>>10, bigN, bigB>>10)
	if r := float64(bigN) / float64(smallN); r > 13 {
		t.Errorf("allocations grow %.1f× for 10× the routes: not linear", r)
	}
	if r := float64(bigB) / float64(smallB); r > 13 {
		t.Errorf("allocated bytes grow %.1f× for 10× the routes: not linear", r)
	}
}
