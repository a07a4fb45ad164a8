// Package perf is warren's load generator, modelled on RabbitMQ's PerfTest.
//
// Run starts Config.Producers publishing connections and Config.Consumers
// consuming connections against one queue, over real AMQP 0-9-1 connections
// made with github.com/rabbitmq/amqp091-go, and returns a Result with send,
// confirm and receive rates and the publish-to-deliver latency distribution.
//
// # Message layout
//
// Every message body is Config.Size bytes. The first 8 bytes hold the send
// time as Unix nanoseconds (big-endian int64), written just before
// basic.publish; a consumer subtracts it from its own clock on delivery. Both
// ends run in one process, so the two clocks are the same clock. The rest of
// the body is zero padding.
//
// # Measurement window
//
// Rates are counted from the moment the first producer starts until the run
// ends (Config.Duration elapsed, every producer has sent Config.MessageCount
// messages and every expected message has arrived, or the context is
// cancelled). When Config.BrokerPID is set, the CPU time (utime+stime) of that
// process and all its descendants is sampled from /proc at both ends of the
// same window, so Result.BrokerCPUPerMessage is the broker's cost of one
// received message.
//
// # Restart probe
//
// Probe measures a broker's restart rather than its throughput: started
// alongside a broker process that recovers a queue filled beforehand (with
// Run, Consumers zero and MessageCount set), it reports how long after the
// process's start an AMQP handshake first succeeded and the queue's first
// message arrived, and the queue's depth. WriteRestartReport compares such
// results between brokers.
package perf
