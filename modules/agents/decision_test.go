package agents

import (
	"fmt"
	"net/http/httptest"
	"strconv"
	"testing"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
)

// TestGRPCBlockStatusOutOfRange: the gRPC transport carries a block's
// status as a uint32 that nothing checks (the JSON one refuses what is
// outside 100–999). A block with a status that is not a final HTTP
// status must still block, with 403, instead of panicking in
// WriteHeader (the client got a reset connection, the server a panic).
func TestGRPCBlockStatusOutOfRange(t *testing.T) {
	ag := &scripted{headers: func(ev *protocol.RequestHeaders) *protocol.Response {
		st, _ := strconv.Atoi(ev.URI[1:])
		return block(st, "no", nil)
	}}
	addr := serveGRPCAgent(t, ag, nil)
	app := testApp(t, grpcCfg("g", addr, nil))
	h := testHandler(t, app, &Filter{Agent: "g", FailureMode: "closed"})
	for status, want := range map[int]int{0: 403, 1: 403, 101: 403, 199: 403, 418: 418, 1000: 403, 70000: 403} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			defer func() {
				if v := recover(); v != nil {
					t.Errorf("block with status %d panicked: %v", status, v)
				}
			}()
			w := serve(t, h, nil, httptest.NewRequest("GET", fmt.Sprintf("/%d", status), nil))
			if w.Code != want || w.Body.String() != "no" {
				t.Errorf("block with status %d: answered %d %q, want %d", status, w.Code, w.Body.String(), want)
			}
		})
	}
}
