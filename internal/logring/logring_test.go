package logring

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestRingBounded(t *testing.T) {
	r := New(3)
	for _, s := range []string{"a\n", "b", "c", "d", "e"} {
		r.Add([]byte(s))
	}
	got, last := r.After(0, 10)
	if last != 5 || len(got) != 3 || got[0].Text != "c" || got[2].Text != "e" || got[2].Seq != 5 {
		t.Fatalf("After(0) = %v, %d", got, last)
	}
	if got, _ := r.After(4, 10); len(got) != 1 || got[0].Text != "e" {
		t.Errorf("After(4) = %v", got)
	}
	if got, _ := r.After(0, 2); len(got) != 2 || got[0].Text != "d" {
		t.Errorf("After(0, 2) = %v", got)
	}
	if got, last := r.After(5, 10); len(got) != 0 || last != 5 {
		t.Errorf("After(5) = %v %d", got, last)
	}
	r.Add([]byte(strings.Repeat("x", MaxLine+10)))
	if got, _ := r.After(5, 1); len(got[0].Text) != MaxLine+len("…") {
		t.Errorf("long line kept %d bytes", len(got[0].Text))
	}
}

func TestCore(t *testing.T) {
	r := New(10)
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	log := zap.New(r.Core(enc, zapcore.InfoLevel)).With(zap.String("who", "root"))
	log.Debug("dropped")
	log.Info("control-plane change", zap.String("path", "/api/v1/routes/x/enabled"))
	_ = log.Sync()
	got, _ := r.After(0, 10)
	if len(got) != 1 || !strings.Contains(got[0].Text, `"who":"root"`) || !strings.Contains(got[0].Text, `"path":"/api/v1/routes/x/enabled"`) {
		t.Fatalf("lines %v", got)
	}
}
