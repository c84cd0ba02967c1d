package audit

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

func init() {
	caddy.RegisterModule(new(KafkaSink))
}

// KafkaSink produces each event as a record of a Kafka topic (franz-go):
// key = the event id (a compacted topic keeps one copy; consumers
// de-duplicate by key), value = the event's JSON. The producer is
// idempotent and waits for all in-sync replicas.
type KafkaSink struct {
	// Brokers are the seed brokers (`host:port`), required.
	Brokers []string `json:"brokers"`
	// Topic is the topic, required.
	Topic string `json:"topic"`
	// TLS connects with TLS (system roots).
	TLS bool `json:"tls,omitempty"`
	// SASL authenticates: mechanism `plain`, `scram-sha-256` or
	// `scram-sha-512`; the password may be a placeholder such as
	// {env.KAFKA_PASSWORD}.
	SASL *KafkaSASL `json:"sasl,omitempty"`

	client *kgo.Client
}

// KafkaSASL is the SASL authentication of a Kafka sink.
type KafkaSASL struct {
	Mechanism string `json:"mechanism"`
	Username  string `json:"username"`
	Password  string `json:"password"`
}

// CaddyModule returns the Caddy module information.
func (*KafkaSink) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "sentinel.audit.sinks.kafka", New: func() caddy.Module { return new(KafkaSink) }}
}

// Provision builds the producer (it connects lazily).
func (k *KafkaSink) Provision(caddy.Context) error {
	if len(k.Brokers) == 0 || k.Topic == "" {
		return fmt.Errorf("audit kafka sink: brokers and topic are required")
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(k.Brokers...),
		kgo.DefaultProduceTopic(k.Topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordRetries(3),
	}
	if k.TLS {
		opts = append(opts, kgo.DialTLSConfig(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	if s := k.SASL; s != nil {
		repl := caddy.NewReplacer()
		user, pass := repl.ReplaceAll(s.Username, ""), repl.ReplaceAll(s.Password, "")
		switch strings.ToLower(s.Mechanism) {
		case "plain":
			opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
		case "scram-sha-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		case "scram-sha-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		default:
			return fmt.Errorf("audit kafka sink: sasl mechanism %q: must be plain, scram-sha-256 or scram-sha-512", s.Mechanism)
		}
	}
	c, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("audit kafka sink: %w", err)
	}
	k.client = c
	return nil
}

// Deliver produces the batch and waits until every record is
// acknowledged.
func (k *KafkaSink) Deliver(ctx context.Context, batch [][]byte) error {
	recs := make([]*kgo.Record, len(batch))
	for i, l := range batch {
		recs[i] = &kgo.Record{Key: eventID(l), Value: l, Timestamp: time.Now()}
	}
	if err := k.client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("kafka produce to %s: %w", k.Topic, err)
	}
	return nil
}

// eventID returns the id of an event line without decoding it all: the
// encoder writes `{"schema_version":N,"id":"…"` first.
func eventID(line []byte) []byte {
	const key = `"id":"`
	i := strings.Index(string(line), key)
	if i < 0 {
		return nil
	}
	rest := line[i+len(key):]
	j := strings.IndexByte(string(rest), '"')
	if j < 0 {
		return nil
	}
	return rest[:j]
}

// Cleanup closes the producer.
func (k *KafkaSink) Cleanup() error {
	if k.client != nil {
		k.client.Close()
	}
	return nil
}

// Interface guards.
var (
	_ Sink               = (*KafkaSink)(nil)
	_ caddy.Provisioner  = (*KafkaSink)(nil)
	_ caddy.CleanerUpper = (*KafkaSink)(nil)
)
