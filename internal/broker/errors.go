package broker

import (
	"fmt"

	"github.com/warren-mq/warren/internal/amqp"
)

// AMQP reply codes, as RabbitMQ uses them.
const (
	codeReplySuccess     = 200
	codeContentTooLarge  = 311
	codeNoRoute          = 312
	codeConnectionForced = 320
	codeInvalidPath      = 402
	codeAccessRefused    = 403
	codeNotFound         = 404
	codeResourceLocked   = 405
	codePreconditionFail = 406
	codeFrameError       = 501
	codeSyntaxError      = 502
	codeCommandInvalid   = 503
	codeChannelError     = 504
	codeUnexpectedFrame  = 505
	codeResourceError    = 506
	codeNotAllowed       = 530
	codeNotImplemented   = 540
	codeInternalError    = 541
)

var codeNames = map[uint16]string{
	codeContentTooLarge:  "CONTENT_TOO_LARGE",
	codeNoRoute:          "NO_ROUTE",
	codeConnectionForced: "CONNECTION_FORCED",
	codeInvalidPath:      "INVALID_PATH",
	codeAccessRefused:    "ACCESS_REFUSED",
	codeNotFound:         "NOT_FOUND",
	codeResourceLocked:   "RESOURCE_LOCKED",
	codePreconditionFail: "PRECONDITION_FAILED",
	codeFrameError:       "FRAME_ERROR",
	codeSyntaxError:      "SYNTAX_ERROR",
	codeCommandInvalid:   "COMMAND_INVALID",
	codeChannelError:     "CHANNEL_ERROR",
	codeUnexpectedFrame:  "UNEXPECTED_FRAME",
	codeResourceError:    "RESOURCE_ERROR",
	codeNotAllowed:       "NOT_ALLOWED",
	codeNotImplemented:   "NOT_IMPLEMENTED",
	codeInternalError:    "INTERNAL_ERROR",
}

// amqpError is a protocol error: a channel error closes the channel, a
// connection error (hard) closes the connection. Text is what goes on the
// wire, prefixed with the code's name as RabbitMQ does.
type amqpError struct {
	code   uint16
	text   string
	hard   bool
	method amqp.Method // the method that failed, if any
}

func (e *amqpError) Error() string { return e.text }

// newError builds an error; the codes the spec names as connection
// exceptions (320, 402 and 5xx) always close the connection, as in RabbitMQ.
func newError(hard bool, code uint16, format string, args ...any) *amqpError {
	hard = hard || code == codeConnectionForced || code == codeInvalidPath || code >= 500
	return &amqpError{code: code, hard: hard, text: codeNames[code] + " - " + fmt.Sprintf(format, args...)}
}

func chanErr(code uint16, format string, args ...any) *amqpError {
	return newError(false, code, format, args...)
}

func connErr(code uint16, format string, args ...any) *amqpError {
	return newError(true, code, format, args...)
}

func notFound(kind, vhost, name string) *amqpError {
	return chanErr(codeNotFound, "no %s '%s' in vhost '%s'", kind, name, vhost)
}
