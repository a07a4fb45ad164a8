// Package config reads haproxy.cfg files into a Config that warren-lb runs.
//
// The parser knows the keywords a TCP load balancer needs (global, defaults,
// frontend, backend and listen sections; bind, server, balance, timeouts,
// health checks, stats, logging) and accepts, without effect, the keywords
// that only matter to HAProxy's process model or HTTP mode. Any other keyword
// is an error that names file, line and keyword: a misspelt option must never
// be dropped silently.
//
// Parse collects every problem it finds, not only the first, and returns them
// together as an *Errors value whose entries each carry file:line.
package config
