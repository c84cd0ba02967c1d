package agenttest_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/sentinel-proxy/sentinel/agents/protocol"
	"github.com/sentinel-proxy/sentinel/agents/sdk"
	"github.com/sentinel-proxy/sentinel/examples/agents/internal/agentrun"
	"github.com/sentinel-proxy/sentinel/examples/agents/internal/agenttest"
)

func TestAgenttestStart(t *testing.T) {
	run := func(ctx context.Context, args []string) error {
		var f agentrun.Flags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f.Bind(fs, "t")
		if err := fs.Parse(args); err != nil {
			return err
		}
		return f.Serve(ctx, sdk.Base{}, sdk.Options{})
	}
	c := agenttest.Start(t, run, protocol.Options{})
	if r, err := c.Call(agenttest.Ctx(t, 10*time.Second), agenttest.Headers("x", "", "/", nil)); err != nil || r.CorrelationID() != "x" {
		t.Fatalf("%v %+v", err, r)
	}
}
