package testutil

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync/atomic"
	"testing"
)

// TestSteadyClients: the clients keep asking until Check, right answers
// count, wrong ones are kept; HTTPAnswer gives status and body.
func TestSteadyClients(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("A")) }))
	defer srv.Close()
	if got := HTTPAnswer(srv.URL); got != "200 A" {
		t.Fatalf("HTTPAnswer = %q", got)
	}
	c := NewSteadyClients(t)
	var n atomic.Int64
	c.Add(func() string { n.Add(1); return HTTPAnswer(srv.URL) }, Equals("200 A"))
	for n.Load() < 5 {
		runtime.Gosched()
	}
	if got := c.Check(t, "a test", 5); got < 5 {
		t.Errorf("Check = %d answers", got)
	}
	wrong := NewSteadyClients(t)
	var m atomic.Int64
	wrong.Add(func() string { m.Add(1); return "no" }, Equals("yes"))
	for m.Load() < 3 {
		runtime.Gosched()
	}
	wrong.halt()
	if wrong.answers == 0 || len(wrong.failures) != wrong.answers {
		t.Errorf("wrong answers: %d of %d kept", len(wrong.failures), wrong.answers)
	}
	if got := HTTPAnswer("http://127.0.0.1:1/"); got == "" || got[0] == '2' {
		t.Errorf("HTTPAnswer of a closed port = %q", got)
	}
}
