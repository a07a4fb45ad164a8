package chaos

import (
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// procs are the processes of a cluster's nodes, one per host. Each runs
// in a process group of its own, so that SIGKILL and SIGSTOP reach every
// process a node is made of.
type procs struct {
	mu     sync.Mutex
	cmds   []*exec.Cmd
	done   []chan struct{} // closed when the process has been reaped
	frozen []bool
	name   func(int) string
}

func newProcs(n int, name func(int) string) *procs {
	return &procs{cmds: make([]*exec.Cmd, n), done: make([]chan struct{}, n), frozen: make([]bool, n), name: name}
}

// start starts cmd as host i's node, unless one runs; after, if not nil,
// runs once the process has ended.
func (p *procs) start(i int, cmd *exec.Cmd, after func()) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmds[i] != nil {
		return nil
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.name(i), err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		if after != nil {
			after()
		}
		close(done)
	}()
	p.cmds[i], p.done[i], p.frozen[i] = cmd, done, false
	return nil
}

// kill ends host i's node with SIGKILL to its whole group.
func (p *procs) kill(i int) {
	p.mu.Lock()
	cmd, done := p.cmds[i], p.done[i]
	p.cmds[i], p.frozen[i] = nil, false
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// quit ends host i's node with SIGQUIT, so that a Go program writes
// every goroutine's stack to its stderr before it exits, and waits up
// to 10 seconds for it. A frozen node is let go on first.
func (p *procs) quit(i int) {
	p.mu.Lock()
	cmd, done, frozen := p.cmds[i], p.done[i], p.frozen[i]
	p.cmds[i], p.frozen[i] = nil, false
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if frozen {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT)
	}
	cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

// running reports whether host i's node has a process.
func (p *procs) running(i int) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmds[i] != nil
}

// freeze stops host i's node with SIGSTOP (true) or lets it go on.
func (p *procs) freeze(i int, on bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	cmd := p.cmds[i]
	if cmd == nil {
		return fmt.Errorf("%s is not running", p.name(i))
	}
	sig := syscall.SIGCONT
	if on {
		sig = syscall.SIGSTOP
	}
	p.frozen[i] = on
	return syscall.Kill(-cmd.Process.Pid, sig)
}

// close thaws and kills every node.
func (p *procs) close() {
	for i := range p.cmds {
		p.mu.Lock()
		frozen := p.frozen[i]
		p.mu.Unlock()
		if frozen {
			p.freeze(i, false)
		}
		p.kill(i)
	}
}
