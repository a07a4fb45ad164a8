package chaos

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	stack "github.com/warren-mq/warren/internal/lab"
)

// RabbitMQ is a RabbitMQ cluster from Debian's package on a lab, the
// reference the same test runs against: one node on each host, named
// rabbit@nodeN, on the standard ports of its host, clustered through
// classic_config peer discovery with pause_minority, as the runbooks set
// it up.
type RabbitMQ struct {
	lab   *Lab
	dir   string
	procs *procs
}

// NewRabbitMQ prepares a RabbitMQ cluster on lab with its files under
// dir. It needs the rabbitmq-server package.
func NewRabbitMQ(lab *Lab, dir string) (*RabbitMQ, error) {
	if _, err := os.Stat(filepath.Join(stack.RabbitBin, "rabbitmq-server")); err != nil {
		return nil, fmt.Errorf("the RabbitMQ reference needs Debian's rabbitmq-server package: %w", err)
	}
	r := &RabbitMQ{lab: lab, dir: dir}
	r.procs = newProcs(len(lab.Hosts), r.Node)
	var conf strings.Builder
	conf.WriteString("listeners.tcp.default = 5672\nloopback_users = none\n")
	conf.WriteString("cluster_formation.peer_discovery_backend = classic_config\n")
	for i, h := range lab.Hosts {
		fmt.Fprintf(&conf, "cluster_formation.classic_config.nodes.%d = rabbit@%s\n", i+1, h.Name)
	}
	conf.WriteString("cluster_partition_handling = pause_minority\n")
	for i := range lab.Hosts {
		d := r.nodeDir(i)
		for _, sub := range []string{"home", "mnesia", "log"} {
			if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
				return nil, err
			}
		}
		if err := os.WriteFile(filepath.Join(d, "home", ".erlang.cookie"), []byte("CHAOSCOOKIE"), 0o400); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(d, "rabbitmq.conf"), []byte(conf.String()), 0o644); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(d, "enabled_plugins"), []byte("[].\n"), 0o644); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *RabbitMQ) nodeDir(i int) string { return filepath.Join(r.dir, r.lab.Hosts[i].Name) }

// env is the environment of host i's node and of the tools that talk to
// it.
func (r *RabbitMQ) env(i int) []string { return stack.RabbitEnv(r.nodeDir(i), r.Node(i)) }

// Node implements Cluster.
func (r *RabbitMQ) Node(i int) string { return "rabbit@" + r.lab.Hosts[i].Name }

// Start implements Cluster.
func (r *RabbitMQ) Start(i int) error {
	if r.procs.running(i) {
		return nil
	}
	out, err := os.OpenFile(filepath.Join(r.nodeDir(i), "server.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := r.lab.Hosts[i].Command("env", append(r.env(i), filepath.Join(stack.RabbitBin, "rabbitmq-server"))...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := r.procs.start(i, cmd, func() { out.Close() }); err != nil {
		out.Close()
		return err
	}
	return nil
}

// Kill implements Cluster.
func (r *RabbitMQ) Kill(i int) { r.procs.kill(i) }

// Running implements Cluster.
func (r *RabbitMQ) Running(i int) bool { return r.procs.running(i) }

// Freeze implements Cluster.
func (r *RabbitMQ) Freeze(i int, on bool) error { return r.procs.freeze(i, on) }

// ctl runs a RabbitMQ CLI tool on host i against its node.
func (r *RabbitMQ) ctl(i int, tool string, args ...string) (string, error) {
	cmd := r.lab.Hosts[i].Command("env", append(r.env(i), append([]string{"timeout", "60", filepath.Join(stack.RabbitBin, tool), "-n", r.Node(i)}, args...)...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s on %s: %v: %s%s", tool, strings.Join(args, " "), r.lab.Hosts[i].Name, err, out.String(), errb.String())
	}
	return out.String(), nil
}

// Await implements Cluster.
func (r *RabbitMQ) Await(i int, timeout time.Duration) error {
	return awaitFull(r.Node(i), len(r.lab.Hosts), timeout, func() (string, error) {
		return r.ctl(i, "rabbitmqctl", "-q", "cluster_status", "--formatter", "json")
	}, func() error {
		// Running is not yet serving: wait for the app.
		_, err := r.ctl(i, "rabbitmqctl", "-q", "await_startup")
		return err
	})
}

// Ready implements Cluster.
func (r *RabbitMQ) Ready(i int) bool {
	_, err := r.ctl(i, "rabbitmqctl", "-q", "status")
	return err == nil
}

// Leader implements Cluster.
func (r *RabbitMQ) Leader(queue string) (int, error) {
	return leaderFrom(queue, len(r.lab.Hosts), r.Running, r.Node, func(i int) (string, error) {
		return r.ctl(i, "rabbitmqctl", "-q", "list_queues", "--formatter", "json", "name", "pid")
	})
}

// SetPolicy implements Cluster.
func (r *RabbitMQ) SetPolicy(name, pattern, definition string) error {
	_, err := r.ctl(0, "rabbitmqctl", "set_policy", "--apply-to", "queues", name, pattern, definition)
	return err
}

// Synced implements Cluster.
func (r *RabbitMQ) Synced() bool {
	out, err := r.ctl(0, "rabbitmqctl", "-q", "list_queues", "--formatter", "json", "name", "slave_pids", "synchronised_slave_pids")
	return err == nil && allSynced(out)
}

// Depths implements Cluster.
func (r *RabbitMQ) Depths(i int) (map[string]int, error) {
	out, err := r.ctl(i, "rabbitmqctl", "-q", "list_queues", "--no-table-headers", "name", "messages")
	if err != nil {
		return nil, err
	}
	return parseDepths(out), nil
}

// Drain implements Cluster.
func (r *RabbitMQ) Drain(i int) error {
	_, err := r.ctl(i, "rabbitmq-upgrade", "drain")
	return err
}

// Revive implements Cluster.
func (r *RabbitMQ) Revive(i int) error {
	_, err := r.ctl(i, "rabbitmq-upgrade", "revive")
	return err
}

// Log implements Cluster.
func (r *RabbitMQ) Log(i int) string {
	b, _ := os.ReadFile(filepath.Join(r.nodeDir(i), "log", r.Node(i)+".log"))
	return string(b)
}

// Close implements Cluster: every process in the lab's namespaces ends,
// epmd's included.
func (r *RabbitMQ) Close() {
	r.procs.close()
	for _, h := range r.lab.Hosts {
		out, _ := exec.Command("ip", "netns", "pids", h.NS).Output()
		for _, f := range strings.Fields(string(out)) {
			var pid int
			if _, err := fmt.Sscan(f, &pid); err == nil {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}
