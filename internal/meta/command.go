package meta

import (
	"encoding/json"
	"fmt"
)

// CommandType is the first octet of a command on the Raft log.
type CommandType uint8

// IgnorableFlag marks command types that a node which does not know them
// may skip without diverging (see the package doc).
const IgnorableFlag CommandType = 128

// Command types. Values are stored in logs and snapshots: never renumber.
const (
	CmdPutVHost CommandType = iota + 1
	CmdDeleteVHost
	CmdPutUser
	CmdDeleteUser
	CmdSetPermission
	CmdClearPermission
	CmdDeclareExchange
	CmdDeleteExchange
	CmdDeclareQueue
	CmdDeleteQueue
	CmdBind
	CmdUnbind
	CmdSetPolicy
	CmdClearPolicy
	CmdSetGlobalParameter
	CmdClearGlobalParameter
	CmdSetTopicPermission
	CmdClearTopicPermission
	CmdSetPlacement
)

// CmdSync changes nothing: a node that has applied it has applied
// everything committed before it, which is how a member catches up.
const CmdSync CommandType = IgnorableFlag + 1

// command is the body of every command type; each uses the fields it needs.
type command struct {
	VHost      *VHost           `json:"vhost_def,omitempty"`
	User       *User            `json:"user,omitempty"`
	Permission *Permission      `json:"permission,omitempty"`
	Exchange   *Exchange        `json:"exchange,omitempty"`
	Queue      *Queue           `json:"queue,omitempty"`
	Binding    *Binding         `json:"binding,omitempty"`
	Policy     *Policy          `json:"policy,omitempty"`
	Global     *GlobalParameter `json:"global,omitempty"`
	Topic      *TopicPermission `json:"topic,omitempty"`
	Placement  *Placement       `json:"placement,omitempty"`
	// Operator selects operator policies for CmdClearPolicy.
	Operator bool `json:"operator,omitempty"`
	// Target names what a delete removes: vhost, user, exchange or queue,
	// in VHostName for the scoped ones.
	Target    string `json:"target,omitempty"`
	VHostName string `json:"vhost,omitempty"`
}

// Placement is a change of a queue's leader and mirrors, made from the
// placement of version Expect.
type Placement struct {
	VHost     string    `json:"vhost"`
	Name      string    `json:"name"`
	Expect    uint64    `json:"expect"`
	Leader    string    `json:"leader"`
	Mirroring Mirroring `json:"mirroring"`
}

func encodeCommand(t CommandType, c *command) ([]byte, error) {
	body, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encode command %d: %w", t, err)
	}
	return append([]byte{byte(t)}, body...), nil
}
