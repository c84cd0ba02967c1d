package agents

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/sentinel-proxy/sentinel/agents/sdk"
)

// TestClaimedListenerWaitsForStart: a registration listener claimed by a
// config that has not started (Provision claims it when the config would
// replace a running one) refuses registrations, saying why in the log;
// once the config's settings apply (Start), an agent registers.
func TestClaimedListenerWaitsForStart(t *testing.T) {
	const token = "claim-test-token"
	sock := sockPath(t, "claim.sock")
	rs, err := (&RegistrationConfig{UnixSocket: sock, Tokens: []string{token}}).resolve()
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.DebugLevel)
	key, ln, err := claimListener(rs, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.listeners.Delete(key)
	// A second claim of the same address shares the listener.
	key2, ln2, err := claimListener(rs, zap.NewNop())
	if err != nil || key2 != key || ln2 != ln {
		t.Fatalf("second claim: %v %s %p %p", err, key2, ln, ln2)
	}
	reg.listeners.Delete(key2)

	err = sdk.Register(context.Background(), sock, token, &scripted{}, sdk.Options{AgentID: "early", HandshakeTimeout: 2 * time.Second})
	if err == nil {
		t.Fatal("an agent registered on the listener of a config that has not started")
	}
	waitFor(t, func() bool {
		return logs.FilterMessage("agent registration refused").Len() > 0 &&
			strings.Contains(logs.FilterMessage("agent registration refused").All()[0].ContextMap()["error"].(string), "has not started")
	})

	ln.use(rs)
	actx, acancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = sdk.Register(actx, sock, token, &scripted{}, sdk.Options{AgentID: "late"})
	}()
	waitFor(t, func() bool { return reg.livePool("late") != nil && reg.livePool("late").connected() == 1 })
	acancel()
	<-done
}
