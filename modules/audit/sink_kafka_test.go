package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sentinel-proxy/sentinel/internal/testutil"
)

// TestKafkaSink: events reach a Kafka topic (franz-go's kfake cluster,
// SCRAM-SHA-256 with the password from {env.*}) although the cluster
// came up only after they were emitted; each record's key is its event
// id.
func TestKafkaSink(t *testing.T) {
	port := testutil.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	t.Setenv("TEST_AUDIT_KAFKA_PASSWORD", "kpass-123")
	a, ctx, _ := startApp(t, fmt.Sprintf(`{"spool_dir":%q,"sinks":[{"min_backoff":"50ms","max_backoff":"200ms","timeout":"2s","sink":{"type":"kafka","brokers":[%q],"topic":"audit",
		"sasl":{"mechanism":"scram-sha-256","username":"sentinel","password":"{env.TEST_AUDIT_KAFKA_PASSWORD}"}}}]}`, t.TempDir(), addr))
	const n = 300
	for i := range n {
		_ = a.Emit(Event{Kind: KindAgentDecision, Action: "block", Path: fmt.Sprintf("/%d", i)})
	}
	time.Sleep(500 * time.Millisecond) // the cluster is down
	c, err := kfake.NewCluster(kfake.Ports(port), kfake.SeedTopics(2, "audit"), kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "sentinel", "kpass-123"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	cons, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics("audit"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SASL(scram.Auth{User: "sentinel", Pass: "kpass-123"}.AsSha256Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	got := map[string]bool{}
	deadline := time.Now().Add(20 * time.Second)
	for len(got) < n && time.Now().Before(deadline) {
		pctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cons.PollFetches(pctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			var e Event
			if err := json.Unmarshal(r.Value, &e); err != nil || e.ID != string(r.Key) {
				t.Errorf("record key %q, value %s", r.Key, r.Value)
			}
			got[e.Path] = true
		})
	}
	if len(got) != n {
		t.Fatalf("%d of %d events in the topic", len(got), n)
	}
	waitFor(t, 5*time.Second, "delivered counter", func() bool {
		return metric(t, ctx, MetricEvents, map[string]string{"sink": "kafka", "result": "delivered"}) >= n
	})
}
