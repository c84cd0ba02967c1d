package testutil

import "time"

// releaseWait is how long CheckReleased gives a stopped server to close
// its listeners: Caddy's http app closes them in goroutines that may run
// after its Stop returns, later still on a loaded machine.
const releaseWait = 5 * time.Second
