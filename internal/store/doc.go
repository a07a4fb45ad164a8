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
// Failed writes. A commit whose write or sync fails fails every record
// it carried and every record queued behind it; the segment it began in
// is cut back to where the commit started, and segments it began are
// deleted. Their locations stay known as never written: Release and
// MarkDelivered of one write nothing, ReadAt answers ErrNotStored at
// once, and Stored says false, so that a queue can treat the message as
// held in memory only. Each such record still counts as live in its
// segment until it is released, once, like any other: counting it off
// at the failure as well would let the segment go while confirmed
// records in it are still wanted.
//
// Release files. A write of release records that fails, or writes only
// part, is cut back to the file's length before it: a torn record would
// end the file at recovery, and take with it every release written after
// it. The releases of the failed write are lost (those messages are
// delivered again), never the later ones.
//
// Numbers. A segment number is never used twice. The file segments.next
// holds the highest number the log may use, written durably (temporary
// file, sync, rename, sync of the directory) before a segment past it is
// made, a block of numbers at a time; at Open the log starts past that
// and past every segment and release file present. So a release file
// that outlives its segment (its deletion lost in a crash) never meets a
// new segment of its number.
//
// Power loss. A process that dies leaves its writes to the kernel; a
// machine that loses power keeps only what reached the disk, and a file
// system need not keep a new file's name with its synced data. So:
//   - The store's directory is made durable (each directory created, its
//     parent synced) before anything is written in it.
//   - A new segment's name is made durable (its directory synced) when it
//     is created, before any append in it is reported durable: a synced
//     record in a segment whose name was lost would be lost with it.
//   - segments.next is replaced whole: temporary file, sync, rename, sync
//     of the directory.
//   - Release files, and the deletion of segments and release files, are
//     never synced on their own: a release or a deletion lost to a power
//     cut brings messages back, delivered again, never loses one.
//   - A write or sync that fails is never retried as if the data were
//     safe: after a failed fsync the kernel may have dropped the dirty
//     pages and cleared the error, so the commit's records are failed,
//     the file is cut back, and the log goes on in a new segment (see
//     Failed writes), with an error logged.
//
// The tests check these rules on crashfs, a file system that keeps only
// what was synced, with a test case per sync that fails without it.
//
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
