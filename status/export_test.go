package status

import "github.com/sluicehq/sluice/engine"

// Listener returns the listener h adds to its context, for benchmarks that
// feed it batch events directly.
func Listener(h *Handler) engine.Listener { return &listener{h: h} }
