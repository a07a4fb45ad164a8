package amqp

import "fmt"

// Method is one AMQP method with its arguments. The concrete types are the
// generated structs (ConnectionStart, BasicPublish, ...); switch on them.
type Method interface {
	// ID returns the class and method ids.
	ID() (class, method uint16)
	// Name returns the method's name as the spec writes it, "basic.publish".
	Name() string
	// HasContent reports whether a content header and body follow.
	HasContent() bool

	// read and write take and return their decoder and buffer by value,
	// so that decoding or encoding a method allocates nothing for them: a
	// pointer passed through an interface method always escapes.
	read(decoder) decoder
	write([]byte) []byte
}

// UnknownMethodError is returned by DecodeMethod for class and method ids
// that AMQP 0-9-1 does not define.
type UnknownMethodError struct {
	Class, Method uint16
}

func (e *UnknownMethodError) Error() string {
	return fmt.Sprintf("amqp: unknown method %d.%d", e.Class, e.Method)
}

// DecodeMethod decodes a method frame payload. Strings and tables in the
// result are copies: the method stays valid after the payload is reused.
func DecodeMethod(p []byte) (Method, error) {
	d := decoder{buf: p}
	class, id := d.short(), d.short()
	if d.err != nil {
		return nil, fmt.Errorf("decode method: %w", d.err)
	}
	m := newMethod(class, id)
	if m == nil {
		return nil, &UnknownMethodError{Class: class, Method: id}
	}
	d = m.read(d)
	if d.err != nil {
		return nil, fmt.Errorf("decode %s: %w", m.Name(), d.err)
	}
	return m, nil
}

// DecodeMethodInto decodes the method frame payload p into m if p holds
// the method m is, and reports whether it did; it leaves m alone for any
// other method. A caller that receives the same method over and over,
// basic.publish above all, can so reuse one value rather than allocate
// one per frame, and strings that repeat (an exchange, a routing key)
// keep the ones m already holds.
func DecodeMethodInto(p []byte, m Method) (bool, error) {
	d := decoder{buf: p}
	class, id := d.short(), d.short()
	if d.err != nil {
		return false, nil // DecodeMethod reports it
	}
	if c, i := m.ID(); c != class || i != id {
		return false, nil
	}
	d = m.read(d)
	if d.err != nil {
		return true, fmt.Errorf("decode %s: %w", m.Name(), d.err)
	}
	return true, nil
}
