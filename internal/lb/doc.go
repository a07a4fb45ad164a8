// Package lb runs warren-lb: an HAProxy-compatible TCP load balancer built
// from a config.Config.
//
// An LB owns listeners, frontends, backends, their servers' health checkers,
// the stats pages and the runtime socket. Every goroutine it starts is
// counted and stops on Close. Reload swaps in a new configuration: listeners
// on unchanged addresses are kept, established connections keep running on
// the objects they started with, and servers that keep their backend and
// name keep their health state and counters.
//
// Lock order: LB.mu, then Backend.mu. Server state is guarded by its
// backend's mu; counters are atomics.
package lb
