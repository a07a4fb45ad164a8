package perf

import (
	"errors"
	"flag"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestParseFlagsPerfTestNames(t *testing.T) {
	cli, err := ParseFlags(strings.Fields(
		"-h amqp://u:p@127.0.0.1:5999/ -x 4 -y 3 -s 1024 -c 100 -f persistent -q 50 -A 25 -a -r 5000 -z 15 -C 1000 "+
			"-u bench -qa x-queue-type=classic,x-max-length=10 -qa x-single-active-consumer=true --json --id s3 "+
			"--broker rabbitmq --broker-pid 42 -ad=false --cpuprofile /tmp/p.prof"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		URI: "amqp://u:p@127.0.0.1:5999/", Label: "s3", Broker: "rabbitmq",
		Producers: 4, Consumers: 3, Size: 1024, ConfirmWindow: 100, Persistent: true,
		Prefetch: 50, MultiAckEvery: 25, AutoAck: true, Rate: 5000, Duration: 15 * time.Second, MessageCount: 1000,
		Queue: "bench", Durable: true, KeepQueue: true, BrokerPID: 42,
		QueueArgs: amqp.Table{"x-queue-type": "classic", "x-max-length": int64(10), "x-single-active-consumer": true},
	}
	if !reflect.DeepEqual(cli.Config, want) {
		t.Errorf("config\n got %+v\nwant %+v", cli.Config, want)
	}
	if !cli.JSON || cli.CPUProfile != "/tmp/p.prof" {
		t.Errorf("json %v, cpuprofile %q", cli.JSON, cli.CPUProfile)
	}
}

func TestParseFlagsLongNamesAndDefaults(t *testing.T) {
	cli, err := ParseFlags([]string{"--uri", "amqp://127.0.0.1:5999", "--producers", "2", "--time", "0.5", "--queue-args", "x-max-priority=5"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := cli.Config
	if c.URI != "amqp://127.0.0.1:5999" || c.Producers != 2 || c.Consumers != 1 || c.Size != 12 ||
		c.Duration != 500*time.Millisecond || c.Queue != "" || c.Durable || c.KeepQueue || c.Persistent ||
		c.QueueArgs["x-max-priority"] != int64(5) {
		t.Errorf("unexpected config %+v", c)
	}
	d, err := ParseFlags(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if d.Config.URI != DefaultURI || d.Config.QueueArgs != nil || d.JSON {
		t.Errorf("defaults: %+v json=%v", d.Config, d.JSON)
	}
}

func TestParseFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args string
		want string
	}{
		{"-f mandatory", `unsupported message flag "mandatory"`},
		{"-s 4", "at least 8 bytes"},
		{"-x 0 -y 0", "at least one producer or consumer"},
		{"-x -1", "producers must be >= 0"},
		{"-z -3", "non-negative number of seconds"},
		{"-q 70000", "prefetch must be in 0..65535"},
		{"-q 10 -A 20", "multi-ack-every 20 exceeds prefetch 10"},
		{"-qa novalue", `"novalue": want key=value`},
		{"-qa a=1 -qa a=2", `"a" given twice`},
		{"-h ftp://x", "uri"},
		{"-x 0 -C 10", "message count needs at least one producer"},
		{"stray", `unexpected argument "stray"`},
		{"-nosuchflag", "flag provided but not defined"},
		{"-cacert /nonexistent/ca.pem", "-cacert: CA file: open /nonexistent/ca.pem"},
		{"-cacert /etc/hostname", "no PEM certificate in it"},
	} {
		var out strings.Builder
		_, err := ParseFlags(strings.Fields(tc.args), &out)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want it to mention %q", tc.args, err, tc.want)
		}
	}
	var out strings.Builder
	if _, err := ParseFlags([]string{"-help"}, &out); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-help: %v, want flag.ErrHelp", err)
	}
	if !strings.Contains(out.String(), "usage: warren-perf") || !strings.Contains(out.String(), "-qa") {
		t.Errorf("usage text missing: %q", out.String())
	}
}

func TestParseQueueArgs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want amqp.Table
		err  string
	}{
		{"", amqp.Table{}, ""},
		{"x-queue-type=quorum", amqp.Table{"x-queue-type": "quorum"}, ""},
		{" x-max-length = 100 , x-overflow=reject-publish", amqp.Table{"x-max-length": int64(100), "x-overflow": "reject-publish"}, ""},
		{"x-message-ttl=-1,flag=false,name=", amqp.Table{"x-message-ttl": int64(-1), "flag": false, "name": ""}, ""},
		{"x-max-length=1e3", amqp.Table{"x-max-length": "1e3"}, ""},
		{"a=1,,b=2", nil, `"": want key=value`},
		{"=5", nil, "empty key"},
		{"k=1,k=2", nil, `"k" given twice`},
	} {
		got, err := ParseQueueArgs(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: error %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: got %#v, want %#v", tc.in, got, tc.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("%q: table not encodable by the client: %v", tc.in, err)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := Config{Producers: -1, Consumers: -2, Size: 3, ConfirmWindow: -1, Rate: -1}
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"uri is empty", "producers", "consumers", "at least 8 bytes", "confirm window", "rate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
