package broker

import (
	"regexp"
	"strings"
)

type permKind uint8

const (
	permConfigure permKind = iota
	permWrite
	permRead
)

type permKey struct {
	kind permKind
	name string
}

// checkPerm enforces the user's configure, write or read pattern on a
// resource, as RabbitMQ does (the default exchange is checked as
// "amq.default"). Results are cached per channel until a user or
// permission changes anywhere.
func (ch *channel) checkPerm(kind permKind, resource, name string) error {
	if name == "" && resource == "exchange" {
		name = "amq.default"
	}
	gen := ch.c.s.permGen.Load()
	if ch.permCache == nil || ch.permGen != gen {
		ch.permCache = map[permKey]bool{}
		ch.permGen = gen
	}
	k := permKey{kind, name}
	ok, cached := ch.permCache[k]
	if !cached {
		p, found := ch.c.s.meta.Permission(ch.c.user, ch.c.vhostName)
		if found {
			pattern := p.Read
			switch kind {
			case permConfigure:
				pattern = p.Configure
			case permWrite:
				pattern = p.Write
			}
			ok = ch.c.s.matcher.Match(pattern, name)
		}
		if len(ch.permCache) > 1024 {
			clear(ch.permCache)
		}
		ch.permCache[k] = ok
	}
	if !ok {
		return chanErr(codeAccessRefused, "access to %s '%s' in vhost '%s' refused for user '%s'", resource, name, ch.c.vhostName, ch.c.user)
	}
	return nil
}

// checkTopic enforces the user's topic permission, if there is one, on a
// routing key used with a topic exchange: write for publishing, read for
// binding. As in RabbitMQ, {username} and {vhost} in the pattern stand
// for the user and vhost, and an empty pattern allows nothing. Results are
// cached per channel like checkPerm's.
func (ch *channel) checkTopic(kind permKind, x *exchange, key string) error {
	if x.def.Type != "topic" {
		return nil
	}
	gen := ch.c.s.permGen.Load()
	if ch.topicCache == nil || ch.topicGen != gen {
		ch.topicCache = map[topicKey]bool{}
		ch.topicGen = gen
	}
	k := topicKey{kind, x.def.Name, key}
	ok, cached := ch.topicCache[k]
	if !cached {
		ok = true
		if p, found := ch.c.s.meta.TopicPermission(ch.c.user, ch.c.vhostName, x.def.Name); found {
			pattern := p.Read
			if kind == permWrite {
				pattern = p.Write
			}
			pattern = strings.NewReplacer("{username}", regexp.QuoteMeta(ch.c.user), "{vhost}", regexp.QuoteMeta(ch.c.vhostName)).Replace(pattern)
			ok = ch.c.s.matcher.Match(pattern, key)
		}
		if len(ch.topicCache) > 1024 {
			clear(ch.topicCache)
		}
		ch.topicCache[k] = ok
	}
	if !ok {
		return chanErr(codeAccessRefused, "access to topic '%s' in exchange '%s' in vhost '%s' refused for user '%s'", key, x.def.Name, ch.c.vhostName, ch.c.user)
	}
	return nil
}

type topicKey struct {
	kind     permKind
	exchange string
	key      string
}
