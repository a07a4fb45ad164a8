// Package amqp is the AMQP 0-9-1 wire format as RabbitMQ speaks it: frames,
// field tables, content properties and the method structs, generated from
// spec.txt by `go generate`. It knows nothing of queues or connections.
//
// A frame on the wire is
//
//	type (1 octet) | channel (2) | size (4) | payload (size octets) | 0xCE
//
// with type 1 for a method, 2 for a content header, 3 for a body fragment
// and 8 for a heartbeat. A method payload starts with its class and method
// ids (2 octets each); its arguments follow in spec order, consecutive bit
// arguments packed into octets. Content (basic.publish, basic.deliver, ...)
// follows its method as one header frame (class id, weight, body size,
// property flags, properties) and as many body frames as it takes, each at
// most frame_max-8 octets of payload.
//
// Limits: FrameReader refuses a frame larger than the negotiated frame_max
// and one that does not end in 0xCE, and decoding a method refuses
// truncated arguments, so malformed input is an error, never a panic.
package amqp

//go:generate go run ./internal/gen -in spec.txt -out methods_gen.go
