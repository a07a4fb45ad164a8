package vrrp

import (
	"bufio"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata/machine/*.txt")

// TestMachineScripts walks testdata/machine/*.txt. Each block is one command,
// a "----" line and the expected output, ended by a blank line:
//
//	config vrid=51 prio=100 int=1s version=2 addr=10.0.0.1 [nopreempt] [delay=5s] [sync]
//	<time> start|tick|stop|fault|fault-clear|sync-master|sync-backup
//	<time> advert from=ADDR prio=N [int=D]
//	<time> priority N
//	<time> reconfigure [prio=N] [int=D] [nopreempt] [delay=D] [effective=N]
//
// The output lists the actions, then the state and the running timer.
func TestMachineScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/machine/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) { runMachineScript(t, f) })
	}
}

func runMachineScript(t *testing.T, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m *Machine
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	line := 0
	for sc.Scan() {
		line++
		cmd := sc.Text()
		if strings.TrimSpace(cmd) == "" || strings.HasPrefix(cmd, "#") {
			out.WriteString(cmd + "\n")
			continue
		}
		var want strings.Builder
		if !sc.Scan() || sc.Text() != "----" {
			t.Fatalf("%s:%d: command without ----", path, line)
		}
		line++
		for sc.Scan() {
			line++
			if sc.Text() == "" {
				break
			}
			want.WriteString(sc.Text() + "\n")
		}
		got, err := machineCommand(&m, cmd)
		if err != nil {
			t.Fatalf("%s:%d: %v", path, line, err)
		}
		out.WriteString(cmd + "\n----\n" + got + "\n")
		if !*rewrite && got != want.String() {
			t.Errorf("%s: %q\ngot:\n%swant:\n%s", path, cmd, got, want.String())
		}
	}
	if *rewrite {
		if err := os.WriteFile(path, []byte(strings.TrimRight(out.String(), "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func machineCommand(mp **Machine, cmd string) (string, error) {
	f := strings.Fields(cmd)
	args := map[string]string{}
	for _, kv := range f[1:] {
		k, v, _ := strings.Cut(kv, "=")
		args[k] = v
	}
	if f[0] == "config" {
		c := MachineConfig{VRID: 51, Version: 2, Priority: 100, Interval: time.Second,
			LocalAddr: netip.MustParseAddr("10.0.0.1")}
		for k, v := range args {
			var err error
			switch k {
			case "vrid":
				var n int
				n, err = strconv.Atoi(v)
				c.VRID = uint8(n)
			case "prio":
				var n int
				n, err = strconv.Atoi(v)
				c.Priority = uint8(n)
			case "int":
				c.Interval, err = time.ParseDuration(v)
			case "version":
				c.Version, err = strconv.Atoi(v)
			case "addr":
				c.LocalAddr, err = netip.ParseAddr(v)
			case "nopreempt":
				c.NoPreempt = true
			case "sync":
				c.Sync = true
			case "delay":
				c.PreemptDelay, err = time.ParseDuration(v)
			default:
				err = fmt.Errorf("unknown config key %q", k)
			}
			if err != nil {
				return "", err
			}
		}
		*mp = NewMachine(c)
		return "ok\n", nil
	}
	m := *mp
	if m == nil {
		return "", fmt.Errorf("no config yet")
	}
	now, err := time.ParseDuration(f[0])
	if err != nil {
		return "", err
	}
	if f[1] == "reconfigure" {
		c := m.cfg
		c.NoPreempt = false
		eff := -1
		for k, v := range args {
			var err error
			switch k {
			case "reconfigure":
			case "prio":
				var n int
				n, err = strconv.Atoi(v)
				c.Priority = uint8(n)
			case "int":
				c.Interval, err = time.ParseDuration(v)
			case "nopreempt":
				c.NoPreempt = true
			case "delay":
				c.PreemptDelay, err = time.ParseDuration(v)
			case "effective":
				eff, err = strconv.Atoi(v)
			default:
				err = fmt.Errorf("unknown reconfigure key %q", k)
			}
			if err != nil {
				return "", err
			}
		}
		if eff < 0 {
			eff = int(c.Priority)
		}
		return describe(m, m.Reconfigure(now, c, uint8(eff))), nil
	}
	var ev Event
	switch f[1] {
	case "start":
		ev.Kind = EventStart
	case "tick":
		ev.Kind = EventTick
	case "stop":
		ev.Kind = EventStop
	case "fault":
		ev.Kind = EventFault
	case "fault-clear":
		ev.Kind = EventFaultClear
	case "sync-master":
		ev.Kind = EventSyncMaster
	case "sync-backup":
		ev.Kind = EventSyncBackup
	case "priority":
		n, err := strconv.Atoi(f[2])
		if err != nil {
			return "", err
		}
		ev = Event{Kind: EventPriority, Priority: uint8(n)}
	case "advert":
		ev.Kind = EventAdvert
		ev.From, err = netip.ParseAddr(args["from"])
		if err != nil {
			return "", err
		}
		n, err := strconv.Atoi(args["prio"])
		if err != nil {
			return "", err
		}
		ev.Priority = uint8(n)
		if v, ok := args["int"]; ok {
			if ev.Interval, err = time.ParseDuration(v); err != nil {
				return "", err
			}
		}
	default:
		return "", fmt.Errorf("unknown event %q", f[1])
	}
	return describe(m, m.Step(now, ev)), nil
}

// describe renders actions and then the machine's state, as the scripts
// expect them.
func describe(m *Machine, acts []Action) string {
	var sb strings.Builder
	sb.WriteString(FormatActions(acts))
	fmt.Fprintf(&sb, "state=%s prio=%d", m.State(), m.Priority())
	if d, ok := m.Deadline(); ok {
		fmt.Fprintf(&sb, " timer=%s", d)
	}
	if a, p := m.Master(); a.IsValid() {
		fmt.Fprintf(&sb, " master=%s/%d", a, p)
	}
	if m.WantMaster() {
		sb.WriteString(" want-master")
	}
	sb.WriteByte('\n')
	return sb.String()
}
