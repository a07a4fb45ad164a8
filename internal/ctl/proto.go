// Package ctl is the command set behind warrenctl: rabbitmqctl's commands,
// arguments, output and exit codes. The client side parses a command line
// and prints the node's answer; the server side runs commands on the node.
// They talk over the node's cluster port, authenticated with the cookie.
package ctl

// Request is one command sent to a node.
type Request struct {
	Command string            `json:"command"`
	Args    []string          `json:"args,omitempty"`
	VHost   string            `json:"vhost,omitempty"`
	Options map[string]string `json:"options,omitempty"`
	// Input is data the command reads, such as a definitions file.
	Input []byte `json:"input,omitempty"`
}

// Response is a node's answer to a Request.
type Response struct {
	// Columns and Rows are a listing's table.
	Columns []string `json:"columns,omitempty"`
	Rows    [][]any  `json:"rows,omitempty"`
	// Text is free-form output: status reports, confirmations.
	Text string `json:"text,omitempty"`
	// JSON, when set, is what --formatter json prints instead of Text.
	JSON any `json:"json,omitempty"`
	// Error, when set, is printed after "Error:" and the exit code is
	// Code.
	Error string `json:"error,omitempty"`
	Code  int    `json:"code,omitempty"`

	// after runs on the node once the answer is sent: stop must answer
	// before the node closes the connection.
	after func()
}

// Exit codes, as rabbitmqctl uses them (BSD sysexits).
const (
	ExitOK          = 0
	ExitUsage       = 64
	ExitDataErr     = 65
	ExitNoUser      = 67
	ExitUnavailable = 69
	ExitSoftware    = 70
	ExitTempFail    = 75
	ExitConfig      = 78 // a configuration or certificate file is unusable
)
