package mgmt

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// addrConn is one end of an in-process pipe that reports the HTTP
// client's address as its peer, so loopback_users and connection listings
// see where the request came from.
type addrConn struct {
	net.Conn
	local, remote net.Addr
}

func (c addrConn) LocalAddr() net.Addr  { return c.local }
func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// pipeAddr names the client end of the pipe.
type pipeAddr string

func (a pipeAddr) Network() string { return "pipe" }
func (a pipeAddr) String() string  { return string(a) }

// withChannel runs fn on a channel of an in-process AMQP connection to
// vhost, logged in as u. AMQP errors come back as the API errors RabbitMQ's
// plugin gives for them.
func (s *Server) withChannel(u *user, vhost string, fn func(*amqp091.Channel) error) error {
	client, server := net.Pipe()
	srvEnd := addrConn{Conn: server, local: pipeAddr("management"), remote: u.from}
	if err := s.b.ServeConn(srvEnd); err != nil {
		client.Close()
		return &apiError{http.StatusServiceUnavailable, "service_unavailable", err.Error()}
	}
	conn, err := amqp091.Open(client, amqp091.Config{
		SASL:       []amqp091.Authentication{&amqp091.PlainAuth{Username: u.name, Password: u.pass}},
		Vhost:      vhost,
		Heartbeat:  0,
		Locale:     "en_US",
		Properties: amqp091.Table{"connection_name": "management API"},
	})
	if err != nil {
		client.Close()
		return amqpToAPI(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return amqpToAPI(err)
	}
	if err := fn(ch); err != nil {
		return amqpToAPI(err)
	}
	if err := ch.Close(); err != nil {
		return amqpToAPI(err)
	}
	return nil
}

// amqpToAPI maps a broker's AMQP error to the HTTP error RabbitMQ's plugin
// answers with.
func amqpToAPI(err error) error {
	var ae *apiError
	if errors.As(err, &ae) {
		return err
	}
	var e *amqp091.Error
	if !errors.As(err, &e) {
		if errors.Is(err, amqp091.ErrVhost) {
			return errNotAuthorised("User not authorised to access virtual host")
		}
		return fmt.Errorf("management connection: %w", err)
	}
	// The wire text starts with the code's name, which the API leaves out.
	if i := strings.Index(e.Reason, " - "); i > 0 && strings.ToUpper(e.Reason[:i]) == e.Reason[:i] {
		e = &amqp091.Error{Code: e.Code, Reason: e.Reason[i+3:]}
	}
	switch e.Code {
	case amqp091.NotFound:
		return errNotFound()
	case amqp091.AccessRefused:
		return errNotAuthorised(e.Reason)
	case amqp091.NotAllowed:
		return errNotAuthorised("User not authorised to access virtual host")
	case amqp091.PreconditionFailed, amqp091.ResourceLocked, amqp091.NotImplemented, amqp091.CommandInvalid:
		return errBadRequest("%s", e.Reason)
	}
	return errBadRequest("%s", e.Reason)
}
