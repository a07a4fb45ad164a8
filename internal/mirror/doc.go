// Package mirror holds the rules of mirrored queues: which nodes keep a
// copy of a queue (its policy's ha-mode), which copies are in sync, and
// which copy leads after a failure or a policy change. Its functions are
// plain functions of (placement, event): no sockets, no disks, no
// goroutines. The broker owns the replication stream and the meta Raft
// group commits every placement the functions return.
//
// # Terms
//
// A mirrored queue has one leader (the node its meta record names) and
// mirrors, oldest first. The in-sync set is the mirrors that hold every
// message the leader has confirmed. A Placement is the leader, the
// mirrors, the in-sync set, the leader's epoch and the placement's
// version, as the meta group last committed them.
//
// # Invariants
//
// These are what make "no confirmed message is lost while one in-sync
// copy survives" true. The broker's replication keeps them; the nemesis
// tests check them.
//
//  1. Every placement change is a meta command that names the version it
//     replaces; the state machine refuses it if another change came first.
//     So two deciders (a leader shrinking its in-sync set, the meta
//     leader failing the queue over) never both win.
//  2. The epoch grows by one with every change of leader, and only then.
//     A mirror takes appends only from the leader of the newest epoch it
//     has applied, and answers an older leader with its newer epoch.
//  3. A leader confirms a message only when every member of the in-sync
//     set it last saw committed, and every mirror it has asked to add to
//     that set, has acknowledged the message in the leader's epoch.
//  4. A mirror leaves the in-sync set only through a committed placement.
//     Until the change commits the leader keeps waiting for it, so a
//     leader cut off from the meta majority cannot confirm without it.
//  5. A mirror joins the in-sync set only once it holds everything the
//     leader holds; from the moment the leader asks, it counts the mirror
//     for confirms (invariant 3), so nothing confirmed in between is
//     missing from it.
//  6. A new leader is chosen from the in-sync set, oldest first. Promoting
//     a mirror that is not in sync needs the policy's explicit consent
//     (ha-promote-on-failure or ha-promote-on-shutdown "always"), and the
//     broker logs what it dropped.
//
// From 3, 4 and 6: every confirmed message is on every in-sync member of
// the epoch that confirmed it, and the next leader is one of them.
package mirror
