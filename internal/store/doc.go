// Package store keeps message bytes durable: one append-only log per node,
// cut into segment files, written with group commit. It knows nothing of
// AMQP: a record is a queue name and opaque bytes.
//
// Files. The log lives in one directory as segments named by their
// sequence number, 0000000000000001.seg, 0000000000000002.seg, ...; a
// segment is cut once it passes SegmentSize. Beside each segment, an .ack
// file of the same number holds the release and delivery records about
// that segment's publishes, wherever in time they were made. A segment is
// deleted, with its .ack file, when every publish in it has been
// released, unless it is the one being written: nothing else refers to
// it, so nothing has to be copied anywhere first.
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
//	kind (1 octet: 1 publish, 2 release, 3 delivered)
//	queue name (2-octet length, octets)
//	publish: the data; release and delivered: the location of the publish
//	(segment 8 octets, offset 8 octets)
//
// Writing. Append, Release and MarkDelivered queue records; one committer
// goroutine writes everything queued with one write call per file and one
// fsync of the segment, then runs the callbacks of the appends it made
// durable. Releases and delivery marks are never synced on their own: one
// lost in a crash means a message delivered again, never one lost. After
// a restart, or a failed write, the log continues in a new segment: a
// location whose publish did not reach the disk is never used again, so a
// release of it that did reach the disk cannot drop a later message.
// ReadAt reads a publish back (a queue longer than memory reads its tail
// back this way), waiting for the committer if the record is not written
// yet.
//
// Recovery. Recover reads each segment once, after its small .ack file,
// a record at a time, and yields every publish not released, in the order
// written, saying whether it was marked delivered. A record whose length
// runs past the end of the file or whose checksum does not match ends its
// file: the rest is cut off and the node logs how much was dropped (a
// torn tail after a crash).
package store
