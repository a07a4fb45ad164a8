package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	duration  = flag.Duration("chaos.duration", 0, "after the fixed schedule, inject random faults for this long")
	reportTo  = flag.String("chaos.report", "", "also write the report to this file")
	reference = flag.Bool("chaos.rabbitmq", false, "run the same test against a RabbitMQ 3.10 cluster from Debian's package (make chaos-rabbitmq)")
	logsTo    = flag.String("chaos.logs", "", "write each node's whole log to this directory when the test fails")
)

// The binaries under test, built once by TestMain.
var warrenBin, warrenctlBin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "chaos-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	warrenBin, warrenctlBin = filepath.Join(dir, "warren"), filepath.Join(dir, "warrenctl")
	for bin, pkg := range map[string]string{warrenBin: "../../cmd/warren", warrenctlBin: "../../cmd/warrenctl"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", pkg, err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// The mirrored queues under test, with the runbooks' policies.
var chaosQueues = []struct{ name, policy, pattern, definition string }{
	{"all.q", "ha-all", `^all\.`, `{"ha-mode":"all","ha-sync-mode":"automatic"}`},
	{"two.q", "ha-two", `^two\.`, `{"ha-mode":"exactly","ha-params":2,"ha-sync-mode":"automatic"}`},
}

// TestMirroredQueuesLoseNothing runs clients on every node of a 3-node
// warren cluster in network namespaces against queues under ha-mode all
// and ha-mode exactly 2 while the nemesis kills, freezes, cuts off,
// partitions and drains nodes; then it drains every queue and checks that
// no confirmed message was lost and none appeared that was not published.
func TestMirroredQueuesLoseNothing(t *testing.T) {
	lab, err := NewLab(3)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	w, err := NewWarren(lab, warrenBin, warrenctlBin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	defer dumpLogs(t, w, lab)
	checkResult(t, runChaos(t, w, lab, mirrorFaults))
}

// checkResult fails t if the workload did nothing, or lost or made up a
// message.
func checkResult(t *testing.T, r Result) {
	t.Helper()
	if r.Acked == 0 || r.Delivered == 0 {
		t.Fatal("the workload did nothing")
	}
	if !r.OK() {
		t.Errorf("%d confirmed messages lost, %d unexpected", len(r.Lost), len(r.Unexpected))
	}
}

// TestRabbitMQMirroredQueues runs the same workload, faults and checker
// against a 3-node RabbitMQ cluster with the runbooks' policies, for the
// README's side-by-side table. It needs Debian's rabbitmq-server and runs
// only when asked for (make chaos-rabbitmq).
func TestRabbitMQMirroredQueues(t *testing.T) {
	if !*reference {
		t.Skip("the RabbitMQ reference runs with -chaos.rabbitmq (make chaos-rabbitmq)")
	}
	lab, err := NewLab(3)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	r, err := NewRabbitMQ(lab, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer dumpLogs(t, r, lab)
	res := runChaos(t, r, lab, mirrorFaults)
	// The reference's losses are what it is measured for, not a failure.
	t.Logf("RabbitMQ: %d confirmed messages lost, %d unexpected", len(res.Lost), len(res.Unexpected))
}

// runChaos runs the workload against c while schedule has the nemesis
// inject faults, each through step, which heals the fault and waits for
// the full cluster after it; then it returns what the checker found.
func runChaos(t *testing.T, c Cluster, lab *Lab, schedule func(n *Nemesis, step func(name string, fault func() error))) Result {
	t.Helper()
	w := c
	for i := range lab.Hosts {
		if err := w.Start(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range lab.Hosts {
		if err := w.Await(i, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range chaosQueues {
		if err := w.SetPolicy(q.policy, q.pattern, q.definition); err != nil {
			t.Fatal(err)
		}
	}
	clients := make([]Client, len(lab.Hosts))
	for i, h := range lab.Hosts {
		clients[i] = Client{Name: h.Name, Dial: h.Dial, URL: "amqp://guest:guest@localhost:5672/"}
	}
	// Each queue is declared through a different node, so that they have
	// different leaders.
	for i, q := range chaosQueues {
		conn := clients[i].connect(context.Background())
		ch, err := conn.Channel()
		if err == nil {
			_, err = ch.QueueDeclare(q.name, true, false, false, false, nil)
		}
		conn.Close()
		if err != nil {
			t.Fatalf("declare %s: %v", q.name, err)
		}
	}
	waitSynced(t, w, 30*time.Second)

	n := NewNemesis(w, lab)
	h := NewHistory()
	pubCtx, stopPub := context.WithCancel(context.Background())
	conCtx, stopCon := context.WithCancel(context.Background())
	var pubs, cons sync.WaitGroup
	for _, c := range clients {
		for _, q := range chaosQueues {
			pubs.Add(1)
			go func() {
				defer pubs.Done()
				Publish(pubCtx, c, q.name, 60, 10, h)
			}()
			cons.Add(1)
			go func() {
				defer cons.Done()
				Consume(conCtx, c, q.name, func() bool { return n.Hold(q.name) }, h)
			}()
		}
	}
	defer func() {
		stopPub()
		stopCon()
		pubs.Wait()
		cons.Wait()
	}()

	step := func(name string, fault func() error) {
		t.Helper()
		if err := fault(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := n.Heal(90 * time.Second); err != nil {
			t.Fatalf("heal after %s: %v", name, err)
		}
		n.logf("healed: all nodes back in the cluster")
		time.Sleep(2 * time.Second)
	}
	time.Sleep(3 * time.Second)
	schedule(n, step)

	n.logf("stop publishing; drain every queue from every node")
	stopPub()
	pubs.Wait()
	drain(t, w, lab, h, 90*time.Second)
	stopCon()
	cons.Wait()
	n.logf("drained")

	r := Check(h)
	report := "Faults:\n" + n.Report() + "\nResult:\n" + r.String()
	t.Log("\n" + report)
	if *reportTo != "" {
		if err := os.WriteFile(*reportTo, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
	return r
}

// mirrorFaults is the fixed schedule of every fault, then random faults
// for -chaos.duration.
func mirrorFaults(n *Nemesis, step func(name string, fault func() error)) {
	step("kill", func() error {
		l := n.leader("all.q")
		return n.KillRestart(l, 4*time.Second, "leader of all.q")
	})
	step("freeze", func() error {
		l := n.leader("two.q")
		return n.Freeze(l, 7*time.Second, "leader of two.q")
	})
	step("cut off", func() error {
		l := n.leader("all.q")
		return n.Isolate(n.other(l), 8*time.Second, "not a leader of all.q")
	})
	step("minority", func() error {
		l := n.leader("two.q")
		return n.Isolate(l, 8*time.Second, "leader of two.q, in a minority of one")
	})
	step("bridge", func() error {
		l := n.leader("all.q")
		a := n.other(l)
		c := 3 - l - a
		return n.Bridge(a, c, 8*time.Second)
	})
	step("kill during sync", func() error { return n.KillDuringSync("all.q", 4*time.Second) })
	step("drain", func() error { return n.Drain(n.leader("two.q"), 5*time.Second, "leader of two.q") })
	step("kill the leader while a mirror is frozen", func() error { return n.KillLeaderWhileMirrorFrozen("all.q", 2*time.Second) })
	step("kill the leader while cut off from a mirror", func() error { return n.KillLeaderWhileMirrorCut("two.q", 2*time.Second) })
	step("kill the leader while cut off from a mirror", func() error { return n.KillLeaderWhileMirrorCut("all.q", 2*time.Second) })
	for end := time.Now().Add(*duration); time.Now().Before(end); {
		faults := []func() error{
			func() error { return n.KillRestart(rand.IntN(3), time.Duration(1+rand.IntN(5))*time.Second, "random") },
			func() error {
				return n.Freeze(n.leader(chaosQueues[rand.IntN(2)].name), time.Duration(2+rand.IntN(8))*time.Second, "a leader")
			},
			func() error { return n.Isolate(rand.IntN(3), time.Duration(2+rand.IntN(10))*time.Second, "random") },
			func() error {
				a := rand.IntN(3)
				return n.Bridge(a, n.other(a), time.Duration(2+rand.IntN(10))*time.Second)
			},
			func() error { return n.KillDuringSync(chaosQueues[rand.IntN(2)].name, 3*time.Second) },
			func() error {
				return n.KillLeaderWhileMirrorFrozen(chaosQueues[rand.IntN(2)].name, time.Duration(1+rand.IntN(4))*time.Second)
			},
			func() error { return n.Drain(rand.IntN(3), time.Duration(2+rand.IntN(8))*time.Second, "random") },
			func() error {
				return n.KillLeaderWhileMirrorCut(chaosQueues[rand.IntN(2)].name, time.Duration(1+rand.IntN(4))*time.Second)
			},
		}
		step("random", faults[rand.IntN(len(faults))])
	}

}

// dumpLogs logs the end of each node's log if the test failed, without
// the lines of CLI commands, which the test's polling makes many of, and
// writes the whole logs to -chaos.logs or a new directory under the
// system's temporary one. A node that can say where its goroutines are
// (warren's, on SIGQUIT) does so first, into its whole log: a node that
// did not come back is often stuck somewhere.
func dumpLogs(t *testing.T, c Cluster, lab *Lab) {
	if !t.Failed() {
		return
	}
	if d, ok := c.(interface{ DumpStacks(int) }); ok {
		for i := range lab.Hosts {
			if c.Running(i) {
				d.DumpStacks(i)
			}
		}
	}
	dir := *logsTo
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "chaos-logs-"); err != nil {
			t.Log(err)
		}
	} else {
		os.MkdirAll(dir, 0o755)
	}
	for i := range lab.Hosts {
		out := c.Log(i)
		if dir != "" {
			f := filepath.Join(dir, c.Node(i)+".log")
			if err := os.WriteFile(f, []byte(out), 0o644); err == nil {
				t.Logf("%s's whole log: %s", c.Node(i), f)
			}
		}
		if at := strings.Index(out, "\nSIGQUIT: quit"); at >= 0 {
			out = out[:at+1]
		}
		var kept []string
		for _, line := range strings.SplitAfter(out, "\n") {
			if !strings.Contains(line, `msg="ctl command"`) {
				kept = append(kept, line)
			}
		}
		tail := strings.Join(kept, "")
		t.Logf("%s log without CLI commands, last 6000 octets:\n%s", c.Node(i), tail[max(0, len(tail)-6000):])
	}
}

// waitSynced waits until every chaos queue has all its mirrors in sync.
func waitSynced(t *testing.T, w Cluster, timeout time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !w.Synced(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the queues' mirrors are not in sync after %v", timeout)
		}
	}
}

// drain waits until every queue is empty, as every node reports, and no
// delivery came for a few seconds.
func drain(t *testing.T, w Cluster, lab *Lab, h *History, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var state strings.Builder
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		if time.Since(time.Unix(0, h.lastDelivery.Load())) < 3*time.Second {
			continue
		}
		state.Reset()
		empty := true
		for i := range lab.Hosts {
			d, err := w.Depths(i)
			fmt.Fprintf(&state, "%s: %v %v\n", w.Node(i), d, err)
			if err != nil {
				empty = false
			}
			for _, n := range d {
				if n != 0 {
					empty = false
				}
			}
		}
		if empty {
			return
		}
	}
	t.Errorf("the queues did not drain within %v:\n%s", timeout, state.String())
}
