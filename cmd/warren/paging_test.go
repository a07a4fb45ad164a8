package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// peakRSS returns the most resident memory a process has had, in octets.
func peakRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmHWM for %d", pid)
}

// pagingBytes is how much the paging test queues: 512 MiB unless
// WARREN_PAGING_BYTES says otherwise (make bench-paging queues 20 GiB).
func pagingBytes(t *testing.T) int64 {
	v := os.Getenv("WARREN_PAGING_BYTES")
	if v == "" {
		return 512 << 20
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("WARREN_PAGING_BYTES=%q: want a number of octets", v)
	}
	return n
}

// TestQueueLongerThanMemory queues several times the memory high
// watermark in one durable queue and checks the node's resident memory
// stays near the watermark while it publishes, recovers after SIGKILL and
// delivers every message in order.
func TestQueueLongerThanMemory(t *testing.T) {
	bin := buildWarren(t)
	dir := t.TempDir()
	const watermark = 200 << 20
	const bodySize = 16 << 10
	total := pagingBytes(t)
	count := int(total / bodySize)
	conf := fmt.Sprintf("vm_memory_high_watermark.absolute = %d\n", watermark)
	// The bound allows for what is not message bodies: the runtime, buffers
	// in flight, the collector's headroom.
	const bound = watermark + watermark/4

	n, c := startNodeWithConfig(t, bin, dir, conf)
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("long", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 512))
	body := make([]byte, bodySize)
	start := time.Now()
	const window = 256
	acked := 0
	for i := range count {
		binary.BigEndian.PutUint64(body, uint64(i))
		if err := ch.PublishWithContext(context.Background(), "", "long", false, false,
			amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: body}); err != nil {
			t.Fatal(err)
		}
		for i+1-acked > window {
			if cf := <-confirms; !cf.Ack {
				t.Fatalf("nack for %d", cf.DeliveryTag)
			}
			acked++
		}
	}
	for acked < count {
		if cf := <-confirms; !cf.Ack {
			t.Fatalf("nack for %d", cf.DeliveryTag)
		}
		acked++
	}
	elapsed := time.Since(start)
	peak, err := peakRSS(n.cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("published %d MiB in %d messages in %v (%.0f MiB/s); peak RSS %d MiB, watermark %d MiB",
		total>>20, count, elapsed.Round(time.Millisecond), float64(total>>20)/elapsed.Seconds(), peak>>20, watermark>>20)
	if peak > bound {
		t.Fatalf("peak RSS %d MiB while publishing, want under %d MiB", peak>>20, bound>>20)
	}
	// The management API tells what is on disk only.
	var info struct {
		Ready    int   `json:"messages_ready"`
		RAM      int   `json:"messages_ram"`
		PagedOut int   `json:"messages_paged_out"`
		Bytes    int64 `json:"message_bytes_paged_out"`
	}
	req, _ := http.NewRequest("GET", "http://"+n.mgmt+"/api/queues/%2F/long", nil)
	req.SetBasicAuth("guest", "guest")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || info.Ready != count || info.PagedOut < count/2 || info.RAM+info.PagedOut != count || info.Bytes != int64(info.PagedOut)*bodySize {
		t.Fatalf("queue as the management API shows it: %+v %v", info, err)
	}
	t.Logf("paged out: %d of %d messages", info.PagedOut, count)

	n.cmd.Process.Signal(syscall.SIGKILL)
	n.cmd.Wait()
	restarted := time.Now()
	confFile := filepath.Join(t.TempDir(), "warren.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RABBITMQ_CONFIG_FILE", confFile)
	// Recovery reads the whole store: allow a minute per GiB.
	n, c = startNodeWithin(t, bin, dir, 10*time.Second+time.Duration(total>>30)*time.Minute)
	t.Logf("restarted after SIGKILL, accepting connections after %v", time.Since(restarted).Round(time.Millisecond))
	ch, err = c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclarePassive("long", true, false, false, false, nil)
	if err != nil || q.Messages != count {
		t.Fatalf("after restart: %+v %v, want %d messages", q, err, count)
	}
	if err := ch.Qos(200, 0, false); err != nil {
		t.Fatal(err)
	}
	ds, err := ch.Consume("long", "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for i := range count {
		d := <-ds
		if len(d.Body) != bodySize || binary.BigEndian.Uint64(d.Body) != uint64(i) {
			t.Fatalf("delivery %d: %d octets, sequence %d", i, len(d.Body), binary.BigEndian.Uint64(d.Body))
		}
		if d.Redelivered {
			t.Fatalf("delivery %d flagged redelivered; it was never delivered before", i)
		}
		if i%100 == 99 {
			d.Ack(true)
		}
		if i == 0 {
			t.Logf("first delivery %v after the restart", time.Since(restarted).Round(time.Millisecond))
		}
	}
	elapsed = time.Since(start)
	if peak, err = peakRSS(n.cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	t.Logf("consumed %d messages in %v (%.0f MiB/s); peak RSS %d MiB", count, elapsed.Round(time.Millisecond), float64(total>>20)/elapsed.Seconds(), peak>>20)
	if peak > bound {
		t.Fatalf("peak RSS %d MiB while recovering and consuming, want under %d MiB", peak>>20, bound>>20)
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	n.cmd.Wait()
	if strings.Contains(n.stderr.String(), "memory alarm set") {
		t.Errorf("the memory alarm went off:\n%s", n.stderr.String())
	}
}

// TestRestartKeepsDeliveryStateAndTTL: a message delivered but not acked
// before a SIGKILL comes back flagged redelivered, one never delivered
// does not, and a message TTL keeps counting from the publish, not from
// the restart.
func TestRestartKeepsDeliveryStateAndTTL(t *testing.T) {
	bin := buildWarren(t)
	dir := t.TempDir()
	n, c := startNode(t, bin, dir)
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("flags", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare("ttl", true, false, false, false, amqp091.Table{"x-message-ttl": int32(3000)}); err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 10))
	for _, p := range []struct{ queue, body string }{{"flags", "seen"}, {"flags", "unseen"}, {"ttl", "short-lived"}} {
		if err := ch.PublishWithContext(context.Background(), "", p.queue, false, false,
			amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: []byte(p.body)}); err != nil {
			t.Fatal(err)
		}
	}
	published := time.Now()
	for range 3 {
		if cf := <-confirms; !cf.Ack {
			t.Fatal("nack")
		}
	}
	d, ok, err := ch.Get("flags", false)
	if err != nil || !ok || string(d.Body) != "seen" || d.Redelivered {
		t.Fatalf("get: %q redelivered %v, %v %v", d.Body, d.Redelivered, ok, err)
	}
	// The delivery mark rides on the next commit; give it time to land.
	time.Sleep(300 * time.Millisecond)
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.cmd.Wait()
	// Down a while: a TTL counted afresh from the restart would still be
	// running at the check below.
	time.Sleep(time.Second)

	_, c = startNode(t, bin, dir)
	ch, err = c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		body        string
		redelivered bool
	}{{"seen", true}, {"unseen", false}} {
		d, ok, err := ch.Get("flags", true)
		if err != nil || !ok || string(d.Body) != want.body || d.Redelivered != want.redelivered {
			t.Fatalf("after restart: %q redelivered %v (%v %v), want %q redelivered %v", d.Body, d.Redelivered, ok, err, want.body, want.redelivered)
		}
	}
	q, err := ch.QueueDeclarePassive("ttl", true, false, false, false, amqp091.Table{"x-message-ttl": int32(3000)})
	if err != nil || q.Messages != 1 {
		t.Fatalf("ttl queue after restart: %+v %v", q, err)
	}
	// 3 s after the publish it is gone, however late the restart was.
	time.Sleep(time.Until(published.Add(3200 * time.Millisecond)))
	q, err = ch.QueueDeclarePassive("ttl", true, false, false, false, amqp091.Table{"x-message-ttl": int32(3000)})
	if err != nil || q.Messages != 0 {
		t.Fatalf("ttl queue 3.2 s after the publish: %+v %v, want it expired", q, err)
	}
}
