// Package store keeps message bytes durable: one append-only log per node,
// cut into segment files, written with group commit. It knows nothing of
// AMQP: a record is a queue name and opaque bytes.
//
// Files. The log lives in one directory as segments named by their
// sequence number, 0000000000000001.seg, 0000000000000002.seg, ...; a
// segment is cut once it passes SegmentSize. A segment is deleted when
// every publish record in it has been released, unless it is the one being
// written.
//
// Records. Every record is framed as
//
//	length (4 octets, big endian: the payload's length)
//	crc    (4 octets: CRC-32C of the payload)
//	payload
//	padding (zero octets up to a multiple of 8)
//
// so a length field never straddles a torn write, and the payload is
//
//	kind (1 octet: 1 publish, 2 release)
//	queue name (2-octet length, octets)
//	publish: the data; release: the location released (segment 8 octets,
//	offset 8 octets)
//
// Writing. Append and Release queue records; one committer goroutine
// writes everything queued with one write call and one fsync, then runs
// the callbacks of the appends it made durable. Releases are written with
// the next commit and need no fsync of their own: a release lost in a
// crash means a message delivered again, never one lost.
//
// Recovery. Open reads every segment. A record whose length runs past the
// end of the file or whose checksum does not match ends its segment: the
// rest of the file is cut off and the node logs how much was dropped (a
// torn tail after a crash). Recover then yields every publish not
// released, in the order written.
package store
