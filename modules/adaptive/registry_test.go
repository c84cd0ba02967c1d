package adaptive

import (
	"context"

	"github.com/caddyserver/caddy/v2"

	"github.com/sentinel-proxy/sentinel/registry"
)

// The tests' registry, feedback store and provisioning context: the
// policies provisioned with testCtx read testReg, as those of a config
// read the sentinel app's registry.
var (
	testReg      = registry.New()
	testCtx      = registry.WithRegistry(caddy.Context{Context: context.Background()}, testReg)
	testFeedback = feedbackOf(testReg)
)
