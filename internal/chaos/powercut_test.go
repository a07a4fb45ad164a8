package chaos

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/warren-mq/warren/internal/crashfs"
)

var (
	powerCuts   = flag.Int("chaos.cuts", 50, "power cuts in TestPowerCutsLoseNothing (make power-cuts runs more)")
	clusterCuts = flag.Int("chaos.clustercuts", 9, "power cuts in TestPowerCutsInTheCluster (make power-cuts runs more)")
)

// The queues of the power-cut test.
var powerQueues = []string{"power.a", "power.b"}

// powerNode is one warren node whose data directory and cookie are on a
// crash file system.
type powerNode struct {
	t                   *testing.T
	fs                  *crashfs.FS
	conf, cookie        string
	amqp, mgmt, cluster string
	prometheus          string
	cmd                 *exec.Cmd
	done                chan struct{}
	log                 logBuffer
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (p *powerNode) start() {
	p.t.Helper()
	p.cmd = exec.Command(warrenBin, "--node-name", "warren@localhost:"+p.cluster[strings.LastIndexByte(p.cluster, ':')+1:],
		"--data-dir", filepath.Join(p.fs.Dir(), "data"), "--cookie-file", p.cookie, "--config", p.conf,
		"--amqp-listen", p.amqp, "--mgmt-listen", p.mgmt, "--cluster-listen", p.cluster)
	p.cmd.Stderr = &p.log
	p.cmd.Env = append(os.Environ(), "GOTRACEBACK=all")
	if err := p.cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) {
		cmd.Wait()
		close(done)
	}(p.cmd, p.done)
}

// kill ends the node with sig and waits for it.
func (p *powerNode) kill(sig syscall.Signal) {
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// await waits until the node takes AMQP connections.
func (p *powerNode) await() error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return errors.New("the node exited")
		default:
		}
		if c, err := amqp091.Dial("amqp://guest:guest@" + p.amqp + "/"); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("the node did not take AMQP connections within 60s")
}

// cut cuts the node's power: SIGKILL, then everything not made durable
// is dropped from its files.
func (p *powerNode) cut() {
	p.t.Helper()
	p.kill(syscall.SIGKILL)
	if err := p.fs.Cut(); err != nil {
		p.t.Fatal(err)
	}
}

// TestPowerCutsLoseNothing runs a node with its data directory on a file
// system that keeps only what was fsynced, while clients publish
// persistent messages with confirms to durable queues, consume them and
// change definitions, and cuts the power again and again: at random
// moments, just after the message store starts a new segment file,
// while the queues hold more than memory allows (paging), just after a
// definitions change, and while the node is still recovering. Then it
// drains the queues and checks that no confirmed message was lost and
// none appeared that was not published.
func TestPowerCutsLoseNothing(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the power-cut test mounts a FUSE file system and needs root")
	}
	dir := t.TempDir()
	fsys, err := crashfs.Mount(filepath.Join(dir, "fs"), filepath.Join(dir, "mnt"))
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	p := &powerNode{t: t, fs: fsys, conf: filepath.Join(dir, "warren.conf"), cookie: filepath.Join(fsys.Dir(), "cookie"),
		amqp: freeAddr(t), mgmt: freeAddr(t), cluster: freeAddr(t), prometheus: freeAddr(t)}
	// Small segments, so that the store starts new ones often; queues
	// page out past about 400 kB.
	conf := "msg_store_file_size_limit = 262144\n" +
		"vm_memory_high_watermark.absolute = 2GB\n" +
		"vm_memory_high_watermark_paging_ratio = 0.0002\n" +
		"prometheus.tcp.ip = 127.0.0.1\n" +
		"prometheus.tcp.port = " + p.prometheus[len("127.0.0.1:"):] + "\n"
	if err := os.WriteFile(p.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	defer func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			out := p.log.String()
			t.Logf("node log, last 8000 octets:\n%s", out[max(0, len(out)-8000):])
		}
	}()
	p.start()
	if err := p.await(); err != nil {
		t.Fatal(err)
	}
	cookie, err := os.ReadFile(p.cookie)
	if err != nil {
		t.Fatal(err)
	}
	declare(t, p.amqp, powerQueues)

	client := Client{Name: "c", Dial: net.Dial, URL: "amqp://guest:guest@" + p.amqp + "/", Pad: 2048}
	h := NewHistory()
	var hold atomic.Bool
	pubCtx, stopPub := context.WithCancel(context.Background())
	conCtx, stopCon := context.WithCancel(context.Background())
	defCtx, stopDefs := context.WithCancel(context.Background())
	var pubs, cons, defs sync.WaitGroup
	for _, q := range powerQueues {
		pubs.Add(1)
		go func() {
			defer pubs.Done()
			Publish(pubCtx, client, q, 150, 20, h)
		}()
		cons.Add(1)
		go func() {
			defer cons.Done()
			Consume(conCtx, client, q, hold.Load, h)
		}()
	}
	changed := make(chan struct{}, 1)
	defs.Add(1)
	go func() {
		defer defs.Done()
		changeDefinitions(defCtx, client, changed)
	}()
	defer func() {
		stopPub()
		stopCon()
		stopDefs()
		pubs.Wait()
		cons.Wait()
		defs.Wait()
	}()

	segs := filepath.Join(dir, "fs", "live", "data", "msgs")
	kinds := map[string]int{}
	for i := range *powerCuts {
		var kind string
		switch i % 5 {
		case 0:
			kind = "at a random moment"
			time.Sleep(time.Duration(200+rand.IntN(1500)) * time.Millisecond)
		case 1:
			kind = "just after a new segment"
			if !newSegment(segs, 10*time.Second) {
				t.Fatalf("cut %d: the store started no new segment within 10s", i)
			}
		case 2:
			kind = "while the queues page"
			hold.Store(true)
			if !paging(p.prometheus, 20*time.Second) {
				t.Fatalf("cut %d: the queues did not page within 20s", i)
			}
			time.Sleep(time.Duration(rand.IntN(500)) * time.Millisecond)
		case 3:
			kind = "just after a definitions change"
			drain := time.After(10 * time.Second)
			select {
			case <-changed:
			case <-drain:
				t.Fatalf("cut %d: no definitions change within 10s", i)
			}
			select {
			case <-changed:
			case <-drain:
				t.Fatalf("cut %d: no definitions change within 10s", i)
			}
		case 4:
			kind = "during recovery"
			time.Sleep(time.Duration(200+rand.IntN(800)) * time.Millisecond)
			p.cut()
			p.start()
			// Cut again before it has recovered, or just after.
			time.Sleep(time.Duration(rand.IntN(400)) * time.Millisecond)
		}
		kinds[kind]++
		p.cut()
		hold.Store(false)
		p.start()
		if err := p.await(); err != nil {
			t.Fatalf("after cut %d (%s): %v", i, kind, err)
		}
		if got, err := os.ReadFile(p.cookie); err != nil || !bytes.Equal(got, cookie) {
			t.Fatalf("after cut %d (%s): the cookie is %q (%v), was %q", i, kind, got, err, cookie)
		}
		if _, err := depth(p.amqp, powerQueues); err != nil {
			t.Fatalf("after cut %d (%s): a durable queue is gone: %v", i, kind, err)
		}
	}

	stopDefs()
	defs.Wait()
	stopPub()
	pubs.Wait()
	hold.Store(false)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		if n, err := depth(p.amqp, powerQueues); err == nil && n == 0 && time.Since(h.LastDelivery()) > 2*time.Second {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the queues did not drain within 60s")
		}
	}
	stopCon()
	cons.Wait()

	r := Check(h)
	st := fsys.Stats()
	t.Logf("%d power cuts %v; the cuts dropped unsynced writes to %d files and undid %d directory changes; %d file and %d directory fsyncs\n%s",
		*powerCuts, kinds, st.LostWrites, st.LostEntries, st.FileSyncs, st.DirSyncs, r)
	checkResult(t, r)
	checkDropped(t, st)
}

// checkDropped fails t if the power cuts dropped nothing, so that a test
// that would pass without a single fsync cannot pass unnoticed.
func checkDropped(t *testing.T, st crashfs.Stats) {
	t.Helper()
	if st.LostWrites == 0 {
		t.Error("no cut dropped anything: the file system did not test durability")
	}
}

// paging waits up to timeout for the node's Prometheus metrics to show
// messages paged out.
func paging(addr string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, line := range strings.Split(string(body), "\n") {
			if v, ok := strings.CutPrefix(line, "rabbitmq_queue_messages_paged_out "); ok {
				if n, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil && n > 0 {
					return true
				}
			}
		}
	}
	return false
}

// withChannel runs fn on a channel of a new connection to addr as guest.
func withChannel(addr string, fn func(ch *amqp091.Channel) error) error {
	c, err := amqp091.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		return err
	}
	defer c.Close()
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	return fn(ch)
}

// declare declares the durable queues.
func declare(t *testing.T, addr string, queues []string) {
	t.Helper()
	err := withChannel(addr, func(ch *amqp091.Channel) error {
		for _, q := range queues {
			if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// depth is the number of messages in queues, ready or not.
func depth(addr string, queues []string) (int, error) {
	n := 0
	err := withChannel(addr, func(ch *amqp091.Channel) error {
		for _, q := range queues {
			st, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
			if err != nil {
				return err
			}
			n += st.Messages
		}
		return nil
	})
	return n, err
}

// changeDefinitions declares and deletes durable exchanges, queues and
// bindings until ctx ends, telling changed after each change.
func changeDefinitions(ctx context.Context, c Client, changed chan<- struct{}) {
	for i := 0; ctx.Err() == nil; {
		conn := c.connect(ctx)
		if conn == nil {
			return
		}
		ch, err := conn.Channel()
		for err == nil && ctx.Err() == nil {
			i++
			name := "defs." + strconv.Itoa(i%4)
			switch i % 4 {
			case 0:
				_, err = ch.QueueDeclare(name, true, false, false, false, nil)
			case 1:
				err = ch.ExchangeDeclare(name, "topic", true, false, false, false, nil)
			case 2:
				err = ch.QueueBind("defs.0", "k."+name, "defs.1", false, nil)
			case 3:
				_, err = ch.QueueDelete("defs.0", false, false, false)
				if err == nil {
					err = ch.ExchangeDelete("defs.1", false, false)
				}
			}
			if err == nil {
				select {
				case changed <- struct{}{}:
				default:
				}
				sleep(ctx, 20*time.Millisecond)
			}
		}
		conn.Close()
		sleep(ctx, 100*time.Millisecond)
	}
}

// newSegment waits up to timeout for a segment file in dir newer than
// those there when it was called.
func newSegment(dir string, timeout time.Duration) bool {
	highest := func() string {
		ents, _ := os.ReadDir(dir)
		top := ""
		for _, e := range ents {
			if strings.HasSuffix(e.Name(), ".seg") && e.Name() > top {
				top = e.Name()
			}
		}
		return top
	}
	was := highest()
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if highest() > was {
			return true
		}
	}
	return false
}

// TestPowerCutsInTheCluster runs the mirrored-queue workload on a 3-node
// cluster in network namespaces, each node's data directory on a crash
// file system of its own, and cuts the power of a queue's leader, of a
// node that holds only mirrors of one queue, and of the whole cluster at
// once; then it drains every queue and checks that no confirmed message
// was lost and none appeared that was not published.
func TestPowerCutsInTheCluster(t *testing.T) {
	lab, err := NewLab(3)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	w, err := NewWarren(lab, warrenBin, warrenctlBin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fss := make([]*crashfs.FS, len(lab.Hosts))
	for i := range lab.Hosts {
		fss[i] = crashfs.ForTest(t)
		w.PlaceData(i, filepath.Join(fss[i].Dir(), "data"))
	}
	defer w.Close()
	defer dumpLogs(t, w, lab)
	r := runChaos(t, w, lab, func(n *Nemesis, step func(string, func() error)) {
		cut := func(why string, hosts ...int) func() error {
			return func() error {
				var names []string
				for _, i := range hosts {
					names = append(names, w.Node(i))
					w.Kill(i)
				}
				n.logf("power cut: %s (%s); back after 2s", strings.Join(names, ", "), why)
				began := time.Now()
				for _, i := range hosts {
					if err := fss[i].Cut(); err != nil {
						return err
					}
				}
				n.logf("unsynced state dropped in %v", time.Since(began).Round(time.Millisecond))
				time.Sleep(2 * time.Second)
				return nil // Heal starts them again
			}
		}
		for i := range *clusterCuts {
			switch i % 3 {
			case 0:
				step("power cut of a leader", cut("leader of all.q", n.leader("all.q")))
			case 1:
				l := n.leader("two.q")
				step("power cut of a mirror", cut("not the leader of two.q", n.other(l)))
			case 2:
				step("power cut of the cluster", cut("every node at once", 0, 1, 2))
			}
		}
	})
	var lost crashfs.Stats
	for _, f := range fss {
		st := f.Stats()
		lost.LostWrites += st.LostWrites
		lost.LostEntries += st.LostEntries
	}
	t.Logf("the cuts dropped unsynced writes to %d files and undid %d directory changes", lost.LostWrites, lost.LostEntries)
	checkResult(t, r)
	checkDropped(t, lost)
}
