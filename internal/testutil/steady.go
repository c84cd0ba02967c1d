package testutil

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// SteadyClients asks the same questions over and over, each client on a
// goroutine of its own, until Check, and keeps the answers that are not
// right: the traffic of a test that checks that a running configuration
// answers every request while something else happens to the process (a
// failed reload, a drain).
type SteadyClients struct {
	mu       sync.Mutex
	answers  int
	failures []string
	stop     chan struct{}
	wg       sync.WaitGroup
}

// NewSteadyClients returns clients to start with Add; t's cleanup stops
// those still running when the test ends early.
func NewSteadyClients(t testing.TB) *SteadyClients {
	c := &SteadyClients{stop: make(chan struct{})}
	t.Cleanup(c.halt)
	return c
}

// Add starts a client that calls ask in a loop; an answer for which right
// is false is kept as a failure.
func (c *SteadyClients) Add(ask func() string, right func(string) bool) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			select {
			case <-c.stop:
				return
			default:
			}
			got := ask()
			c.mu.Lock()
			c.answers++
			if !right(got) {
				c.failures = append(c.failures, got)
			}
			c.mu.Unlock()
		}
	}()
}

// halt stops the clients and waits for them (once).
func (c *SteadyClients) halt() {
	select {
	case <-c.stop:
	default:
		close(c.stop)
	}
	c.wg.Wait()
}

// Check lets the requests sent during the last change be answered (50
// ms), stops the clients, and fails t when an answer was not right or
// fewer than minAnswers were given; during names what happened meanwhile
// in the message. It returns the number of answers.
func (c *SteadyClients) Check(t testing.TB, during string, minAnswers int) int {
	t.Helper()
	time.Sleep(50 * time.Millisecond)
	c.halt()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.failures) > 0 {
		t.Errorf("%d of %d answers not from the running config during %s, e.g. %q", len(c.failures), c.answers, during, c.failures[:min(len(c.failures), 5)])
	}
	if c.answers < minAnswers {
		t.Errorf("only %d answers during %s, want at least %d", c.answers, during, minAnswers)
	}
	t.Logf("%d answers during %s", c.answers, during)
	return c.answers
}

// Equals is a right answer of SteadyClients.Add: exactly want.
func Equals(want string) func(string) bool {
	return func(got string) bool { return got == want }
}

// HTTPAnswer is GET url on a new connection (10 s at most), as
// "<status> <body>" (the body's first 4 KiB), or the error's text.
func HTTPAnswer(url string) string {
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	return fmt.Sprintf("%d %s", res.StatusCode, b)
}
