package lb

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/lb/config"
)

const runtimeHelp = `Available commands:
  help                                    : this message
  show info                               : report information about the running process
  show stat                               : report counters for each proxy and server (CSV)
  show servers state [<backend>]          : dump volatile server information
  disable server <bk>/<srv>               : put a server in maintenance mode
  enable server <bk>/<srv>                : take a server out of maintenance mode
  set server <bk>/<srv> state <st>        : set state (ready, drain, maint)
  set weight <bk>/<srv> (<w>|<w>%)        : change a server's weight
  quit                                    : close the connection
`

// startSockets opens the "stats socket" sockets (unix paths or TCP
// addresses) that are not open yet. Caller holds lb.mu.
func (lb *LB) startSockets(cfg *config.Config) error {
	if lb.socketKeys == nil {
		lb.socketKeys = map[string]bool{}
	}
	for _, ss := range cfg.Global.StatsSockets {
		key := ss.Network + " " + ss.Path
		if lb.socketKeys[key] {
			continue // already open (a reload keeps it)
		}
		lb.socketKeys[key] = true
		if ss.Network == "tcp" {
			ln, err := lb.listen(ss.Path) // SO_REUSEPORT, so -sf can take over
			if err != nil {
				return fmt.Errorf("%s: stats socket: %w", ss.Pos, err)
			}
			lb.sockets = append(lb.sockets, ln)
			lb.wg.Add(1)
			go lb.socketLoop(ln, ss.Level == "admin")
			continue
		}
		// A stale socket file from a previous run blocks bind; replace it
		// unless something still answers on it.
		if c, err := net.Dial("unix", ss.Path); err == nil {
			_ = c.Close()
			if !lb.opts.ReusePort {
				return fmt.Errorf("%s: stats socket %s is in use", ss.Pos, ss.Path)
			}
		}
		_ = os.Remove(ss.Path)
		ln, err := net.Listen("unix", ss.Path)
		if err != nil {
			return fmt.Errorf("%s: stats socket: %w", ss.Pos, err)
		}
		// A process replacing us (-sf) may already have put its own socket
		// at this path: never unlink it on close; Close removes the file
		// only while it is still ours.
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		if fi, err := os.Stat(ss.Path); err == nil {
			lb.socketFiles = append(lb.socketFiles, socketFile{path: ss.Path, info: fi})
		}
		lb.sockets = append(lb.sockets, ln)
		lb.wg.Add(1)
		go lb.socketLoop(ln, ss.Level == "admin")
	}
	return nil
}

func (lb *LB) socketLoop(ln net.Listener, admin bool) {
	defer lb.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				lb.log.Warn("stats socket accept failed", "error", err)
			}
			return
		}
		lb.mu.Lock()
		if lb.closed {
			lb.mu.Unlock()
			_ = c.Close()
			return
		}
		lb.wg.Add(1)
		lb.mu.Unlock()
		go func() {
			defer lb.wg.Done()
			lb.serveRuntime(c, admin)
		}()
	}
}

// serveRuntime reads commands (";"-separated, one line, or several lines
// in "prompt" mode) and answers each.
func (lb *LB) serveRuntime(c net.Conn, admin bool) {
	defer c.Close()
	stop := make(chan struct{})
	defer close(stop)
	lb.wg.Add(1) // safe: this goroutine is itself counted
	go func() {
		defer lb.wg.Done()
		select {
		case <-lb.ctx.Done():
			_ = c.Close()
		case <-stop:
		}
	}()
	r := bufio.NewReader(c)
	interactive := false
	for {
		_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
		line, err := r.ReadString('\n')
		if line == "" && err != nil {
			return
		}
		for _, cmd := range strings.Split(strings.TrimSpace(line), ";") {
			cmd = strings.TrimSpace(cmd)
			if cmd == "" {
				continue
			}
			if cmd == "prompt" {
				interactive = !interactive
				continue
			}
			if cmd == "quit" {
				return
			}
			_, _ = c.Write([]byte(lb.runtimeCommand(cmd, admin)))
		}
		if !interactive || err != nil {
			return
		}
		_, _ = c.Write([]byte("> "))
	}
}

// RuntimeCommand runs one runtime API command with admin rights and
// returns its answer, as the stats socket would send it.
func (lb *LB) RuntimeCommand(cmd string) string { return lb.runtimeCommand(cmd, true) }

// runtimeCommand runs cmd; commands that change servers need admin.
func (lb *LB) runtimeCommand(cmd string, admin bool) string {
	w := strings.Fields(cmd)
	if !admin && len(w) > 0 && (w[0] == "disable" || w[0] == "enable" || w[0] == "set") {
		return "Permission denied\n\n"
	}
	ok := func(err error) string {
		if err != nil {
			return err.Error() + "\n\n"
		}
		return "\n"
	}
	switch {
	case len(w) >= 2 && w[0] == "show" && w[1] == "info":
		var sb strings.Builder
		for _, kv := range lb.infoLines() {
			fmt.Fprintf(&sb, "%s: %s\n", kv[0], kv[1])
		}
		return sb.String() + "\n"
	case len(w) >= 2 && w[0] == "show" && w[1] == "stat":
		var sb strings.Builder
		_ = writeCSV(&sb, lb.statRows())
		return sb.String() + "\n"
	case len(w) >= 3 && w[0] == "show" && w[1] == "servers" && w[2] == "state":
		only := ""
		if len(w) > 3 {
			only = w[3]
			if st := lb.current(); st == nil || st.backends[only] == nil {
				return "Can't find backend.\n\n"
			}
		}
		return lb.serversState(only) + "\n"
	case len(w) == 3 && w[0] == "disable" && w[1] == "server":
		return ok(lb.SetAdminState(w[2], AdminMaint))
	case len(w) == 3 && w[0] == "enable" && w[1] == "server":
		return ok(lb.SetAdminState(w[2], AdminReady))
	case len(w) == 5 && w[0] == "set" && w[1] == "server" && w[3] == "state":
		st, found := map[string]AdminState{"ready": AdminReady, "drain": AdminDrain, "maint": AdminMaint}[w[4]]
		if !found {
			return "'set server <srv> state' expects 'ready', 'drain' and 'maint'.\n\n"
		}
		return ok(lb.SetAdminState(w[2], st))
	case len(w) == 5 && w[0] == "set" && w[1] == "server" && w[3] == "weight":
		return ok(lb.SetWeight(w[2], w[4]))
	case len(w) == 4 && w[0] == "set" && w[1] == "weight":
		return ok(lb.SetWeight(w[2], w[3]))
	case len(w) >= 1 && w[0] == "help":
		return runtimeHelp + "\n"
	}
	return "Unknown command: '" + cmd + "'\n" + runtimeHelp + "\n"
}

// socketFile remembers a stats socket file we created.
type socketFile struct {
	path string
	info os.FileInfo
}

// removeOwnSocketsLocked deletes stats socket files that are still the
// ones this process created.
func (lb *LB) removeOwnSocketsLocked() {
	for _, sf := range lb.socketFiles {
		if fi, err := os.Stat(sf.path); err == nil && os.SameFile(fi, sf.info) {
			_ = os.Remove(sf.path)
		}
	}
	lb.socketFiles = nil
}
