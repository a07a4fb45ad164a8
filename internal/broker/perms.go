package broker

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
