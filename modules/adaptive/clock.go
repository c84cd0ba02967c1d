package adaptive

import "time"

// epoch is the origin of monotime, set once when the package loads.
var epoch = time.Now()

// monotime is the default clock of the transport and the policies:
// monotonic nanoseconds since the package loaded. Tests inject their own.
func monotime() int64 { return int64(time.Since(epoch)) }
