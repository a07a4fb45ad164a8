package broker

import (
	"math/rand/v2"

	"github.com/warren-mq/warren/internal/amqp"
	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/policy"
)

// Queue master locators, as RabbitMQ names them: where a new queue lives.
const (
	locateClientLocal = "client-local" // the node the declaring client is on
	locateMinMasters  = "min-masters"  // the running node with the fewest queues
	locateRandom      = "random"       // any running node
)

func validLocator(s string) bool {
	return s == locateClientLocal || s == locateMinMasters || s == locateRandom
}

// homeFor chooses the node a new queue lives on: its
// x-queue-master-locator argument, else its policy's
// queue-master-locator, else the node's default; exclusive queues always
// live with their connection.
func (s *Server) homeFor(vhost, name string, exclusive bool, args amqp.Table) string {
	if exclusive {
		return s.cfg.NodeName
	}
	how, _ := args["x-queue-master-locator"].(string)
	if how == "" {
		pol, op := policy.Match(s.policies(vhost), policy.Queues, name)
		how, _ = policy.Definition(pol, op)["queue-master-locator"].(string)
	}
	if how == "" {
		how = s.cfg.QueueMasterLocator
	}
	if how != locateMinMasters && how != locateRandom {
		return s.cfg.NodeName
	}
	nodes := []string{s.cfg.NodeName}
	for _, m := range s.meta.Members() {
		if m.ID == s.cfg.NodeName {
			continue
		}
		if _, err := s.peerLink(m.ID); err == nil {
			nodes = append(nodes, m.ID)
		}
	}
	if how == locateRandom {
		return nodes[rand.IntN(len(nodes))]
	}
	counts := map[string]int{}
	for _, q := range s.meta.Snapshot().Queues {
		counts[s.nodeOf(q)]++
	}
	best := nodes[0]
	for _, n := range nodes[1:] {
		if counts[n] < counts[best] {
			best = n
		}
	}
	return best
}

// nodeOf is the node a queue lives on.
func (s *Server) nodeOf(q meta.Queue) string {
	if q.Node == "" {
		return s.cfg.NodeName
	}
	return q.Node
}
