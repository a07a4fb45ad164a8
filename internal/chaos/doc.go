// Package chaos is a Jepsen-style test of mirrored queues: three broker
// nodes, each in a network namespace of its own with its own address,
// clients on every node publishing with confirms and consuming with
// manual acks, and a nemesis that kills, freezes, cuts off and
// partitions nodes while they work. After the faults heal, every queue is
// drained from every node and a checker compares what was confirmed with
// what was delivered: a confirmed message never delivered is lost, a
// delivered message never published is unexpected, and a message
// delivered more than once is a duplicate.
//
// Everything is real: the nodes are processes of the built binaries,
// killed with SIGKILL and frozen with SIGSTOP; links are cut in the
// kernel. The test needs root. go test runs a short schedule of every
// fault; -chaos.duration runs random faults for as long as asked, and
// -chaos.report writes the report to a file (see make chaos).
//
// The power-cut tests put the nodes' data directories on crashfs, which
// keeps only what was fsynced, and cut the power: SIGKILL, then every
// write, creation, rename and deletion that was not made durable is
// dropped before the node starts again (see make power-cuts).
package chaos
