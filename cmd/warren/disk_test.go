package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp091 "github.com/rabbitmq/amqp091-go"
)

// smallDisk mounts a tmpfs of the given size for the test and returns its
// path; it is unmounted when the test ends.
func smallDisk(t *testing.T, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test mounts a small file system and must run as root")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
	return dir
}

func startNodeWithConfig(t *testing.T, bin, dataDir, conf string) (*node, *amqp091.Connection) {
	t.Helper()
	confFile := filepath.Join(t.TempDir(), "warren.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RABBITMQ_CONFIG_FILE", confFile)
	return startNode(t, bin, dataDir)
}

// TestDiskAlarmBlocksPublishers fills a small disk with persistent
// messages: below disk_free_limit the publisher is blocked with "low on
// disk", as RabbitMQ does it.
func TestDiskAlarmBlocksPublishers(t *testing.T) {
	bin := buildWarren(t)
	disk := smallDisk(t, "48m")
	_, c := startNodeWithConfig(t, bin, disk, "disk_free_limit.absolute = 24MB\n")
	blocked := c.NotifyBlocked(make(chan amqp091.Blocking, 4))
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ch.QueueDeclare("fill", true, false, false, false, nil)
	body := make([]byte, 256<<10)
	// The publisher runs on its own: once blocked, the node stops reading
	// and the publisher's writes stall in the socket.
	// It ends when the node is killed at the end of the test.
	go func() {
		for {
			if err := ch.PublishWithContext(context.Background(), "", "fill", false, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: body}); err != nil {
				return
			}
		}
	}()
	select {
	case b := <-blocked:
		if !b.Active || b.Reason != "low on disk" {
			t.Fatalf("blocking: %+v", b)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("publisher never blocked while filling the disk")
	}
}

// TestFullDiskLosesNothingConfirmed publishes until the disk is really
// full (no alarm to stop it first): writes that fail are nacked, the node
// stays up, and after the disk grows and the node is killed and started
// again, every confirmed message is there.
func TestFullDiskLosesNothingConfirmed(t *testing.T) {
	bin := buildWarren(t)
	disk := smallDisk(t, "40m")
	n, c := startNodeWithConfig(t, bin, disk, "disk_free_limit.absolute = 1\n")
	ch, err := c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	ch.QueueDeclare("full", true, false, false, false, nil)
	ch.Confirm(false)
	confirms := ch.NotifyPublish(make(chan amqp091.Confirmation, 1))
	body := make([]byte, 128<<10)
	acked, nacked := map[string]bool{}, 0
	for i := 0; nacked == 0 && i < 1000; i++ {
		id := fmt.Sprint(i)
		copy(body, id+"|")
		if err := ch.PublishWithContext(context.Background(), "", "full", false, false, amqp091.Publishing{DeliveryMode: amqp091.Persistent, Body: body}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		select {
		case cf := <-confirms:
			if cf.Ack {
				acked[id] = true
			} else {
				nacked++
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no confirm for %d", i)
		}
	}
	if nacked == 0 {
		t.Fatal("the disk never filled")
	}
	t.Logf("%d confirmed before the disk filled", len(acked))
	// The node is still serving.
	if _, err := ch.QueueDeclarePassive("full", true, false, false, false, nil); err != nil {
		t.Fatalf("node after a full disk: %v", err)
	}
	// Space returns; the node dies without warning and starts again.
	if out, err := exec.Command("mount", "-o", "remount,size=200m", disk).CombinedOutput(); err != nil {
		t.Fatalf("grow tmpfs: %v\n%s", err, out)
	}
	n.cmd.Process.Signal(syscall.SIGKILL)
	n.cmd.Wait()
	_, c = startNodeWithConfig(t, bin, disk, "disk_free_limit.absolute = 1\n")
	ch, err = c.Channel()
	if err != nil {
		t.Fatal(err)
	}
	got := 0
	for {
		d, ok, err := ch.Get("full", true)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		id, _, _ := strings.Cut(string(d.Body), "|")
		if !acked[id] {
			t.Fatalf("message %s came back but was never confirmed", id)
		}
		got++
	}
	if got != len(acked) {
		t.Fatalf("%d of %d confirmed messages after the restart", got, len(acked))
	}
}
