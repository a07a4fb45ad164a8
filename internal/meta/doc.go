// Package meta is the definitions state machine: vhosts, users,
// permissions, exchanges, queues and bindings. Every change is a Command
// applied through hashicorp/raft, even on a node that is a cluster of one,
// so that adding members never changes how the broker writes definitions.
// Reads come from the local copy, under a read lock.
//
// A command on the Raft log is one type octet followed by a JSON body. Types
// at or above IgnorableFlag may be skipped by a node that does not know them;
// any other unknown type stops the node, because carrying on would let its
// state diverge from the other members'.
//
// Observers learn of every applied change through Observer.Changed, called
// on the FSM goroutine in log order; they must not call back into Apply.
package meta
