package httperr

import (
	"errors"
	"fmt"
	"testing"
)

func TestPublic(t *testing.T) {
	cause := errors.New("dial unix /run/agent.sock: refused")
	p := &Public{Message: "Service unavailable", Err: cause}
	wrapped := fmt.Errorf("handler: %w", p)
	if got := As(wrapped); got != p {
		t.Fatalf("As: %v", got)
	}
	if !errors.Is(wrapped, cause) {
		t.Error("the cause is not in the chain")
	}
	if p.Error() != "Service unavailable: dial unix /run/agent.sock: refused" {
		t.Errorf("Error: %q", p.Error())
	}
	if (&Public{Message: "m"}).Error() != "m" || As(cause) != nil {
		t.Error("without a cause / not public")
	}
}
