package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/warren-mq/warren/internal/auth"
	"github.com/warren-mq/warren/internal/broker"
	"github.com/warren-mq/warren/internal/config"
	"github.com/warren-mq/warren/internal/defs"
	"github.com/warren-mq/warren/internal/meta"
	"github.com/warren-mq/warren/internal/policy"
)

// command is one of rabbitmqctl's commands.
type command struct {
	args     string   // positional arguments, for usage
	min, max int      // positional argument count; max < 0: columns, any number
	vhost    bool     // takes -p / --vhost
	opts     []string // --name value options
	flags    []string // --name boolean options
	columns  []string // the info keys a listing knows
	defaults []string // the columns shown when none are named
	needsApp bool     // fails while the app is stopped
	hidden   bool     // between nodes only: not listed in usage
	// clusterWide listings gather the rows of every running node, as
	// rabbitmqctl's list_connections, list_channels and list_consumers do.
	clusterWide bool
	// banner is printed before the result, unless --quiet.
	banner func(node string, r *Request) string
	run    func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response
}

// Usage returns the synopsis of a command, or "" if there is none.
func Usage(name string) string {
	c, ok := allCommands()[name]
	if !ok {
		return ""
	}
	var b strings.Builder
	b.WriteString("warrenctl [--node <node>] [--quiet] " + name)
	if c.vhost {
		b.WriteString(" [--vhost <vhost>]")
	}
	for _, f := range c.flags {
		b.WriteString(" [--" + f + "]")
	}
	for _, o := range c.opts {
		b.WriteString(" [--" + o + " <" + o + ">]")
	}
	if c.args != "" {
		b.WriteString(" " + c.args)
	}
	return b.String()
}

// Commands lists the command names.
func Commands() []string {
	var out []string
	for n, c := range allCommands() {
		if !c.hidden {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Banner is the line rabbitmqctl prints before running a command.
func Banner(node string, r *Request) string {
	c, ok := allCommands()[r.Command]
	if !ok || c.banner == nil {
		return ""
	}
	shown := *r
	if shown.VHost == "" {
		shown.VHost = "/"
	}
	return c.banner(node, &shown)
}

// Check validates a request's arguments, options and columns as
// rabbitmqctl does before contacting the node; "" means valid.
func Check(r *Request) string {
	c, ok := allCommands()[r.Command]
	if !ok {
		return fmt.Sprintf("Command '%s' not found.", r.Command)
	}
	return c.check(r)
}

func (c *command) check(r *Request) string {
	n := len(r.Args)
	if c.max >= 0 {
		if n < c.min {
			return "not enough arguments."
		}
		if n > c.max {
			return "too many arguments."
		}
	}
	if r.VHost != "" && !c.vhost {
		return "unrecognised option --vhost"
	}
	for k := range r.Options {
		// --timeout is global: every command takes it.
		if k != "timeout" && !slices.Contains(c.opts, k) && !slices.Contains(c.flags, k) {
			return fmt.Sprintf("unrecognised option --%s", k)
		}
	}
	if c.max < 0 {
		var bad []string
		for _, a := range r.Args {
			if !slices.Contains(c.columns, a) {
				bad = append(bad, a)
			}
		}
		if len(bad) > 0 {
			return fmt.Sprintf("Info key(s) %s are not supported", strings.Join(bad, ","))
		}
	}
	return ""
}

func q(s string) string { return strconv.Quote(s) }

// allCommands returns rabbitmqctl's command set; names, arguments and
// banners are rabbitmqctl's.
func allCommands() map[string]*command {
	return map[string]*command{
		"status": {needsApp: false, run: runStatus,
			banner: func(node string, r *Request) string { return "Status of node " + node + " ..." }},
		"cluster_status": {run: runClusterStatus,
			banner: func(node string, r *Request) string { return "Cluster status of node " + node + " ..." }},
		"ping": {run: func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
			return ok("Ping succeeded")
		},
			banner: func(node string, r *Request) string {
				return "Will ping " + node + ". This only checks if the OS process is running and accepts commands."
			}},
		"await_startup": {opts: []string{"timeout"}, run: runAwaitStartup},
		"stop": {run: func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
			return Response{after: s.app.Stop}
		},
			banner: func(node string, r *Request) string { return "Stopping and halting node " + node + " ..." }},
		"stop_app": {run: func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
			if err := s.app.StopApp(ctx); err != nil {
				return failf(ExitSoftware, "%v", err)
			}
			return ok("")
		}, banner: func(node string, r *Request) string { return "Stopping rabbit application on node " + node + " ..." }},
		"start_app": {run: func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
			if err := s.app.StartApp(ctx); err != nil {
				return failf(ExitSoftware, "%v", err)
			}
			return ok("")
		}, banner: func(node string, r *Request) string { return "Starting node " + node + " ..." }},
		"reset":       {run: runReset(false), banner: func(node string, r *Request) string { return "Resetting node " + node + " ..." }},
		"force_reset": {run: runReset(true), banner: func(node string, r *Request) string { return "Forcefully resetting node " + node + " ..." }},
		"join_cluster": {args: "[--disc|--ram] <existing_cluster_member_node>", min: 1, max: 1, flags: []string{"disc", "ram"}, run: runJoinCluster,
			banner: func(node string, r *Request) string { return "Clustering node " + node + " with " + r.Args[0] }},
		"forget_cluster_node": {args: "[--offline] <existing_cluster_member_node>", min: 1, max: 1, flags: []string{"offline"}, run: runForgetClusterNode,
			banner: func(node string, r *Request) string { return "Removing node " + r.Args[0] + " from the cluster" }},
		"change_cluster_node_type": {args: "<disc|ram>", min: 1, max: 1, run: runChangeNodeType,
			banner: func(node string, r *Request) string { return "Turning " + node + " into a " + r.Args[0] + " node" }},
		"update_cluster_nodes": {args: "<seed_node>", min: 1, max: 1, run: runUpdateClusterNodes,
			banner: func(node string, r *Request) string {
				return "Will seed " + node + " from " + r.Args[0] + " on next start"
			}},
		"force_boot": {run: runForceBoot,
			banner: func(node string, r *Request) string { return "Forcing boot for Mnesia dir " + node + " ..." }},
		"await_online_nodes": {args: "<count>", min: 1, max: 1, opts: []string{"timeout"}, run: runAwaitOnlineNodes,
			banner: func(node string, r *Request) string {
				return "Will wait for at least " + r.Args[0] + " nodes to join the cluster of " + node + ". Timeout: 300 seconds."
			}},
		"check_if_node_is_mirror_sync_critical": {needsApp: true, run: runMirrorSyncCritical,
			banner: func(node string, r *Request) string {
				return "Checking if node " + node + " is critical for data safety of any classic mirrored queues ..."
			}},
		"node_status":     {hidden: true, run: runNodeStatus},
		"cluster_members": {hidden: true, needsApp: true, run: runClusterMembers},

		"add_user": {args: "<username> <password>", min: 2, max: 2, needsApp: true, run: runAddUser,
			banner: func(node string, r *Request) string { return "Adding user " + q(r.Args[0]) + " ..." }},
		"delete_user": {args: "<username>", min: 1, max: 1, needsApp: true, run: runDeleteUser,
			banner: func(node string, r *Request) string { return "Deleting user " + q(r.Args[0]) + " ..." }},
		"change_password": {args: "<username> <password>", min: 2, max: 2, needsApp: true, run: runChangePassword,
			banner: func(node string, r *Request) string { return "Changing password for user " + q(r.Args[0]) + " ..." }},
		"authenticate_user": {args: "<username> <password>", min: 2, max: 2, needsApp: true, run: runAuthenticate,
			banner: func(node string, r *Request) string { return "Authenticating user " + q(r.Args[0]) + " ..." }},
		"set_user_tags": {args: "<username> <tag> [...]", min: 1, max: 64, needsApp: true, run: runSetUserTags,
			banner: func(node string, r *Request) string {
				return "Setting tags for user " + q(r.Args[0]) + " to [" + strings.Join(r.Args[1:], ", ") + "] ..."
			}},
		"list_users": {max: 0, needsApp: true, run: runListUsers,
			banner: func(node string, r *Request) string { return "Listing users ..." }},
		"add_vhost": {args: "<vhost>", min: 1, max: 1, opts: []string{"description", "tags"}, needsApp: true, run: runAddVHost,
			banner: func(node string, r *Request) string { return "Adding vhost " + q(r.Args[0]) + " ..." }},
		"delete_vhost": {args: "<vhost>", min: 1, max: 1, needsApp: true, run: runDeleteVHost,
			banner: func(node string, r *Request) string { return "Deleting vhost " + q(r.Args[0]) + " ..." }},
		"list_vhosts": {max: -1, columns: []string{"name", "description", "tags", "tracing", "cluster_state"}, defaults: []string{"name"}, needsApp: true, run: runListVHosts,
			banner: func(node string, r *Request) string { return "Listing vhosts ..." }},
		"set_permissions": {args: "<username> <conf> <write> <read>", min: 4, max: 4, vhost: true, needsApp: true, run: runSetPermissions,
			banner: func(node string, r *Request) string {
				return "Setting permissions for user " + q(r.Args[0]) + " in vhost " + q(r.VHost) + " ..."
			}},
		"clear_permissions": {args: "<username>", min: 1, max: 1, vhost: true, needsApp: true, run: runClearPermissions,
			banner: func(node string, r *Request) string {
				return "Clearing permissions for user " + q(r.Args[0]) + " in vhost " + q(r.VHost) + " ..."
			}},
		"list_permissions": {max: 0, vhost: true, needsApp: true, run: runListPermissions,
			banner: func(node string, r *Request) string { return "Listing permissions for vhost " + q(r.VHost) + " ..." }},
		"list_user_permissions": {args: "<username>", min: 1, max: 1, needsApp: true, run: runListUserPermissions,
			banner: func(node string, r *Request) string { return "Listing permissions for user " + q(r.Args[0]) + " ..." }},

		"list_queues": {max: -1, vhost: true, flags: []string{"online", "offline", "local", "no-table-headers"}, opts: []string{"timeout"},
			columns: queueColumns, defaults: []string{"name", "messages"}, needsApp: true, run: runListQueues,
			banner: func(node string, r *Request) string {
				return "Timeout: 60.0 seconds ...\nListing queues for vhost " + r.VHost + " ..."
			}},
		"list_exchanges": {max: -1, vhost: true, flags: []string{"no-table-headers"}, opts: []string{"timeout"},
			columns: []string{"name", "type", "durable", "auto_delete", "internal", "arguments", "policy"}, defaults: []string{"name", "type"}, needsApp: true, run: runListExchanges,
			banner: func(node string, r *Request) string { return "Listing exchanges for vhost " + r.VHost + " ..." }},
		"list_bindings": {max: -1, vhost: true, flags: []string{"no-table-headers"}, opts: []string{"timeout"},
			columns:  []string{"source_name", "source_kind", "destination_name", "destination_kind", "routing_key", "arguments"},
			defaults: []string{"source_name", "source_kind", "destination_name", "destination_kind", "routing_key", "arguments"}, needsApp: true, run: runListBindings,
			banner: func(node string, r *Request) string { return "Listing bindings for vhost " + r.VHost + "..." }},
		"list_connections": {clusterWide: true, max: -1, flags: []string{"no-table-headers"}, opts: []string{"timeout"},
			columns: connectionColumns, defaults: []string{"user", "peer_host", "peer_port", "state"}, needsApp: true, run: runListConnections,
			banner: func(node string, r *Request) string { return "Listing connections ..." }},
		"list_channels": {clusterWide: true, max: -1, flags: []string{"no-table-headers"}, opts: []string{"timeout"},
			columns: channelColumns, defaults: []string{"pid", "user", "consumer_count", "messages_unacknowledged"}, needsApp: true, run: runListChannels,
			banner: func(node string, r *Request) string { return "Listing channels ..." }},
		"list_consumers": {clusterWide: true, max: -1, vhost: true, flags: []string{"no-table-headers"}, opts: []string{"timeout"},
			columns:  []string{"queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count", "active", "activity_status", "arguments", "exclusive"},
			defaults: []string{"queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count", "active", "activity_status", "arguments"}, needsApp: true, run: runListConsumers,
			banner: func(node string, r *Request) string { return "Listing consumers in vhost " + r.VHost + " ..." }},
		"purge_queue": {args: "<queue>", min: 1, max: 1, vhost: true, needsApp: true, run: runPurgeQueue,
			banner: func(node string, r *Request) string {
				return "Purging queue '" + r.Args[0] + "' in vhost '" + r.VHost + "' ..."
			}},
		"drain": {run: runDrain,
			banner: func(node string, r *Request) string {
				return "Will put node " + node + " into maintenance mode. The node will no longer serve any client traffic!"
			}},
		"revive": {run: runRevive,
			banner: func(node string, r *Request) string {
				return "Will put node " + node + " back into regular operating mode. The node will again serve client traffic and host primary queue replicas."
			}},
		"sync_queue": {args: "<queue>", min: 1, max: 1, vhost: true, needsApp: true, run: runSyncQueue,
			banner: func(node string, r *Request) string {
				return "Synchronising queue '" + r.Args[0] + "' in vhost '" + r.VHost + "' ..."
			}},
		"cancel_sync_queue": {args: "<queue>", min: 1, max: 1, vhost: true, needsApp: true, run: runSyncQueue,
			banner: func(node string, r *Request) string {
				return "Stopping synchronising queue '" + r.Args[0] + "' in vhost '" + r.VHost + "' ..."
			}},
		"delete_queue": {args: "<queue>", min: 1, max: 1, vhost: true, flags: []string{"if-empty", "if-unused"}, needsApp: true, run: runDeleteQueue,
			banner: func(node string, r *Request) string {
				return "Deleting queue '" + r.Args[0] + "' on vhost '" + r.VHost + "' ..."
			}},
		"close_connection": {args: "<connection pid or name> <explanation>", min: 2, max: 2, needsApp: true, run: runCloseConnection,
			banner: func(node string, r *Request) string {
				return "Closing connection " + r.Args[0] + ", reason: " + r.Args[1] + "..."
			}},
		"export_definitions": {args: "<file or ->", min: 1, max: 1, needsApp: true, run: runExport,
			banner: func(node string, r *Request) string {
				if r.Args[0] == "-" {
					return ""
				}
				return "Exporting definitions in JSON to a file at \"" + r.Args[0] + "\" ..."
			}},
		"import_definitions": {args: "<file or ->", min: 1, max: 1, needsApp: true, run: runImport,
			banner: func(node string, r *Request) string {
				return "Importing definitions in JSON from a file at \"" + r.Args[0] + "\" ..."
			}},
		"set_vm_memory_high_watermark": {args: "<fraction> | absolute <value>", min: 1, max: 2, needsApp: true, run: runSetWatermark,
			banner: func(node string, r *Request) string {
				return "Setting memory threshold on " + node + " to " + strings.Join(r.Args, " ") + " ..."
			}},
		"set_disk_free_limit": {args: "<limit> | mem_relative <fraction>", min: 1, max: 2, needsApp: true, run: runSetDiskFreeLimit,
			banner: func(node string, r *Request) string {
				return "Setting disk free limit on " + node + " to " + strings.Join(r.Args, " ") + " bytes ..."
			}},
		"environment": {run: runEnvironment,
			banner: func(node string, r *Request) string { return "Application environment of node " + node + " ..." }},
		"report": {needsApp: true, run: runReport,
			banner: func(node string, r *Request) string { return "Reporting server status of node " + node + " ..." }},

		"set_policy": {args: "<name> <pattern> <definition>", min: 3, max: 3, vhost: true, opts: []string{"priority", "apply-to"}, needsApp: true,
			run: setPolicy(false),
			banner: func(node string, r *Request) string {
				return "Setting policy " + q(r.Args[0]) + " for pattern " + q(r.Args[1]) + " to " + q(r.Args[2]) + " with priority " + q(orDefault(r.Options["priority"], "0")) + " for vhost " + q(r.VHost) + " ..."
			}},
		"set_operator_policy": {args: "<name> <pattern> <definition>", min: 3, max: 3, vhost: true, opts: []string{"priority", "apply-to"}, needsApp: true,
			run: setPolicy(true),
			banner: func(node string, r *Request) string {
				return "Setting operator policy override " + q(r.Args[0]) + " for pattern " + q(r.Args[1]) + " to " + q(r.Args[2]) + " with priority " + q(orDefault(r.Options["priority"], "0")) + " for vhost " + q(r.VHost) + " ..."
			}},
		"clear_policy": {args: "<name>", min: 1, max: 1, vhost: true, needsApp: true, run: clearPolicy(false),
			banner: func(node string, r *Request) string {
				return "Clearing policy " + q(r.Args[0]) + " on vhost " + q(r.VHost) + " ..."
			}},
		"clear_operator_policy": {args: "<name>", min: 1, max: 1, vhost: true, needsApp: true, run: clearPolicy(true),
			banner: func(node string, r *Request) string {
				return "Clearing operator policy " + q(r.Args[0]) + " on vhost " + q(r.VHost) + " ..."
			}},
		"list_policies": {max: 0, vhost: true, needsApp: true, run: listPolicies(false),
			banner: func(node string, r *Request) string { return "Listing policies for vhost " + q(r.VHost) + " ..." }},
		"set_topic_permissions": {args: "<username> <exchange> <write> <read>", min: 4, max: 4, vhost: true, needsApp: true, run: runSetTopicPermissions,
			banner: func(node string, r *Request) string {
				return "Setting topic permissions on " + q(r.Args[1]) + " for user " + q(r.Args[0]) + " in vhost " + q(r.VHost) + " ..."
			}},
		"clear_topic_permissions": {args: "<username> [<exchange>]", min: 1, max: 2, vhost: true, needsApp: true, run: runClearTopicPermissions,
			banner: func(node string, r *Request) string {
				return "Clearing topic permissions for user " + q(r.Args[0]) + " in vhost " + q(r.VHost) + " ..."
			}},
		"list_topic_permissions": {max: 0, vhost: true, needsApp: true, run: runListTopicPermissions(false),
			banner: func(node string, r *Request) string {
				return "Listing topic permissions for vhost " + q(r.VHost) + " ..."
			}},
		"list_user_topic_permissions": {args: "<username>", min: 1, max: 1, needsApp: true, run: runListTopicPermissions(true),
			banner: func(node string, r *Request) string {
				return "Listing topic permissions for user " + q(r.Args[0]) + " ..."
			}},
		"set_vhost_limits": {args: "<definition>", min: 1, max: 1, vhost: true, needsApp: true, run: runSetLimits(false),
			banner: func(node string, r *Request) string {
				return "Applying limits to vhost " + q(r.VHost) + ": " + r.Args[0] + " ..."
			}},
		"clear_vhost_limits": {max: 0, vhost: true, needsApp: true, run: runClearLimits(false),
			banner: func(node string, r *Request) string { return "Clearing vhost " + q(r.VHost) + " limits ..." }},
		"list_vhost_limits": {max: 0, vhost: true, flags: []string{"global"}, needsApp: true, run: runListLimits(false),
			banner: func(node string, r *Request) string { return "Listing limits for vhost " + q(r.VHost) + " ..." }},
		"set_user_limits": {args: "<username> <definition>", min: 2, max: 2, needsApp: true, run: runSetLimits(true),
			banner: func(node string, r *Request) string {
				return "Setting user limits to " + r.Args[1] + " for user " + q(r.Args[0]) + " ..."
			}},
		"clear_user_limits": {args: "<username> <limit> | all", min: 2, max: 2, needsApp: true, run: runClearLimits(true),
			banner: func(node string, r *Request) string {
				return "Clearing " + r.Args[1] + " limits for user " + q(r.Args[0]) + " ..."
			}},
		"list_user_limits": {args: "[<username>]", max: 1, needsApp: true, run: runListLimits(true),
			banner: func(node string, r *Request) string { return "Listing user limits ..." }},
		"set_cluster_name": {args: "<name>", min: 1, max: 1, needsApp: true, run: runSetGlobal("cluster_name", true),
			banner: func(node string, r *Request) string { return "Setting cluster name to " + r.Args[0] + " ..." }},
		"set_global_parameter": {args: "<name> <value>", min: 2, max: 2, needsApp: true, run: runSetGlobal("", false),
			banner: func(node string, r *Request) string {
				return "Setting global runtime parameter " + q(r.Args[0]) + " to " + q(r.Args[1]) + " ..."
			}},
		"clear_global_parameter": {args: "<name>", min: 1, max: 1, needsApp: true, run: runClearGlobal,
			banner: func(node string, r *Request) string {
				return "Clearing global runtime parameter " + q(r.Args[0]) + " ..."
			}},
		"list_global_parameters": {max: 0, needsApp: true, run: runListGlobals,
			banner: func(node string, r *Request) string { return "Listing global runtime parameters ..." }},
		"list_operator_policies": {max: 0, vhost: true, needsApp: true, run: listPolicies(true),
			banner: func(node string, r *Request) string {
				return "Listing operator policy overrides for vhost " + q(r.VHost) + " ..."
			}},
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func runStatus(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
	info := s.app.Info()
	var b strings.Builder
	fmt.Fprintf(&b, "Runtime\n\nOS PID: %d\nOS: Linux\nUptime (seconds): %d\nwarren version: %s\nNode name: %s\n", info.PID, int(time.Since(info.Started).Seconds()), info.Version, info.Name)
	br := s.app.Broker()
	fmt.Fprintf(&b, "Application running: %v\n", br != nil)
	fmt.Fprintf(&b, "\nData directory\n\nNode data directory: %s\n", info.DataDir)
	b.WriteString("\nConfig files\n\n")
	for _, f := range info.ConfigFiles {
		fmt.Fprintf(&b, " * %s\n", f)
	}
	if br != nil {
		res := br.Resources()
		b.WriteString("\nAlarms\n\n")
		if !res.MemAlarm && !res.DiskAlarm {
			b.WriteString("(none)\n")
		}
		if res.MemAlarm {
			b.WriteString("Memory alarm on node " + info.Name + "\n")
		}
		if res.DiskAlarm {
			b.WriteString("Free disk space alarm on node " + info.Name + "\n")
		}
		fmt.Fprintf(&b, "\nMemory\n\nTotal memory used: %.4f gb\nCalculation strategy: rss\nMemory high watermark: %.4f gb\n", gb(res.MemUsed), gb(res.MemLimit))
		fmt.Fprintf(&b, "\nFree Disk Space\n\nLow free disk space watermark: %.4f gb\nFree disk space: %.4f gb\n", gb(res.DiskFreeLimit), gb(res.DiskFree))
		fmt.Fprintf(&b, "\nTotals\n\nConnection count: %d\nQueue count: %d\nVirtual host count: %d\n", len(br.Connections()), len(br.Queues("")), len(br.Meta().Snapshot().VHosts))
	}
	b.WriteString("\nListeners\n\n")
	for _, l := range info.Listeners {
		fmt.Fprintf(&b, "Interface: %s, protocol: %s\n", l.Addr, l.Protocol)
	}
	return ok(strings.TrimRight(b.String(), "\n"))
}

func gb(n uint64) float64 { return float64(n) / 1e9 }

// waitTimeout is a waiting command's --timeout in seconds, 300 unless
// given; a malformed one is answered with the returned Response.
func waitTimeout(r *Request) (time.Duration, *Response) {
	t := r.Options["timeout"]
	if t == "" {
		return 300 * time.Second, nil
	}
	n, err := strconv.Atoi(t)
	if err != nil || n < 0 {
		resp := failf(ExitUsage, "invalid --timeout %q: seconds expected", t)
		return 0, &resp
	}
	return time.Duration(n) * time.Second, nil
}

func runAwaitStartup(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
	timeout, bad := waitTimeout(r)
	if bad != nil {
		return *bad
	}
	deadline := time.Now().Add(timeout)
	for s.app.Broker() == nil {
		if time.Now().After(deadline) {
			return failf(ExitTempFail, "node %s did not start within %s", s.app.Info().Name, timeout)
		}
		select {
		case <-ctx.Done():
			return failf(ExitTempFail, "%v", ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return ok("")
}

func runAddUser(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	m := b.Meta()
	name := r.Args[0]
	if _, exists := m.User(name); exists {
		return failf(ExitSoftware, "User %s already exists", q(name))
	}
	hash, err := auth.HashPassword(auth.SHA256, r.Args[1])
	if err != nil {
		return failf(ExitSoftware, "%v", err)
	}
	if err := m.PutUser(ctx, meta.User{Name: name, PasswordHash: hash, HashingAlgorithm: auth.SHA256}); err != nil {
		return failf(ExitSoftware, "%v", err)
	}
	return ok("Done. Don't forget to grant the user permissions to some virtual hosts! See 'warrenctl help set_permissions' to learn more.")
}

func runDeleteUser(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if err := b.Meta().DeleteUser(ctx, r.Args[0]); err != nil {
		return metaFail(err, "User "+q(r.Args[0])+" does not exist", ExitNoUser)
	}
	return ok("")
}

func runChangePassword(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	m := b.Meta()
	u, exists := m.User(r.Args[0])
	if !exists {
		return failf(ExitNoUser, "User %s does not exist", q(r.Args[0]))
	}
	hash, err := auth.HashPassword(auth.SHA256, r.Args[1])
	if err != nil {
		return failf(ExitSoftware, "%v", err)
	}
	u.PasswordHash, u.HashingAlgorithm = hash, auth.SHA256
	if err := m.PutUser(ctx, u); err != nil {
		return failf(ExitSoftware, "%v", err)
	}
	return ok("")
}

func runAuthenticate(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	// The node checks the password itself; loopback_users does not apply
	// to an operator's check.
	u, exists := b.Meta().User(r.Args[0])
	if !exists || !auth.CheckPassword(u.HashingAlgorithm, u.PasswordHash, r.Args[1]) {
		return failf(ExitDataErr, "Error: failed to authenticate user %s\nuser '%s' - invalid credentials", q(r.Args[0]), r.Args[0])
	}
	return ok("Success")
}

func runSetUserTags(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	m := b.Meta()
	u, exists := m.User(r.Args[0])
	if !exists {
		return failf(ExitNoUser, "User %s does not exist", q(r.Args[0]))
	}
	u.Tags = append([]string(nil), r.Args[1:]...)
	if err := m.PutUser(ctx, u); err != nil {
		return failf(ExitSoftware, "%v", err)
	}
	return ok("")
}

func runListUsers(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	resp := Response{Columns: []string{"user", "tags"}}
	for _, u := range b.Meta().Snapshot().Users {
		resp.Rows = append(resp.Rows, []any{u.Name, orEmpty(u.Tags)})
	}
	return resp
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func runAddVHost(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	v := meta.VHost{Name: r.Args[0], Description: r.Options["description"], Tags: defs.Tags(r.Options["tags"])}
	if err := b.Meta().PutVHost(ctx, v); err != nil {
		return failf(ExitSoftware, "%v", err)
	}
	return ok("")
}

func runDeleteVHost(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if err := b.Meta().DeleteVHost(ctx, r.Args[0]); err != nil {
		return metaFail(err, "Virtual host '"+r.Args[0]+"' does not exist", ExitDataErr)
	}
	return ok("")
}

func runListVHosts(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	rows := []map[string]any{}
	for _, v := range b.Meta().Snapshot().VHosts {
		rows = append(rows, map[string]any{"name": v.Name, "description": v.Description, "tags": orEmpty(v.Tags), "tracing": false,
			"cluster_state": "[{" + b.NodeName() + ",running}]"})
	}
	return table(r, c, rows)
}

func vhostMissing(b Broker, v string) *Response {
	if !b.Meta().VHostExists(v) {
		resp := failf(ExitDataErr, "Virtual host %s does not exist", v)
		return &resp
	}
	return nil
}

// checkGrant checks what granting permissions needs: the vhost, the
// user and patterns that compile.
func checkGrant(b Broker, r *Request, patterns []string) *Response {
	if resp := vhostMissing(b, r.VHost); resp != nil {
		return resp
	}
	if _, exists := b.Meta().User(r.Args[0]); !exists {
		resp := failf(ExitNoUser, "User %s does not exist", q(r.Args[0]))
		return &resp
	}
	for _, p := range patterns {
		if err := auth.ValidPattern(p); err != nil {
			resp := failf(ExitDataErr, "%v", err)
			return &resp
		}
	}
	return nil
}

func runSetPermissions(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if resp := checkGrant(b, r, r.Args[1:]); resp != nil {
		return *resp
	}
	p := meta.Permission{User: r.Args[0], VHost: r.VHost, Configure: r.Args[1], Write: r.Args[2], Read: r.Args[3]}
	if err := b.Meta().SetPermission(ctx, p); err != nil {
		return failf(ExitSoftware, "%v", err)
	}
	return ok("")
}

func runClearPermissions(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if resp := vhostMissing(b, r.VHost); resp != nil {
		return *resp
	}
	if _, exists := b.Meta().User(r.Args[0]); !exists {
		return failf(ExitNoUser, "User %s does not exist", q(r.Args[0]))
	}
	if err := b.Meta().ClearPermission(ctx, r.Args[0], r.VHost); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return failf(ExitSoftware, "%v", err)
	}
	return ok("")
}

func runListPermissions(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if resp := vhostMissing(b, r.VHost); resp != nil {
		return *resp
	}
	resp := Response{Columns: []string{"user", "configure", "write", "read"}}
	for _, p := range b.Meta().Snapshot().Permissions {
		if p.VHost == r.VHost {
			resp.Rows = append(resp.Rows, []any{p.User, p.Configure, p.Write, p.Read})
		}
	}
	return resp
}

func runListUserPermissions(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if _, exists := b.Meta().User(r.Args[0]); !exists {
		return failf(ExitNoUser, "User %s does not exist", q(r.Args[0]))
	}
	resp := Response{Columns: []string{"vhost", "configure", "write", "read"}}
	for _, p := range b.Meta().Snapshot().Permissions {
		if p.User == r.Args[0] {
			resp.Rows = append(resp.Rows, []any{p.VHost, p.Configure, p.Write, p.Read})
		}
	}
	return resp
}

// table picks the requested columns (or the defaults) from rows of named
// values.
func table(r *Request, c *command, rows []map[string]any) Response {
	cols := r.Args
	if len(cols) == 0 {
		cols = c.defaults
	}
	resp := Response{Columns: cols}
	for _, row := range rows {
		out := make([]any, len(cols))
		for i, col := range cols {
			out[i] = row[col]
		}
		resp.Rows = append(resp.Rows, out)
	}
	return resp
}

var queueColumns = []string{"name", "durable", "auto_delete", "arguments", "policy", "operator_policy", "effective_policy_definition", "pid", "owner_pid", "exclusive",
	"exclusive_consumer_pid", "exclusive_consumer_tag", "messages_ready", "messages_unacknowledged", "messages",
	"messages_ready_ram", "messages_unacknowledged_ram", "messages_ram", "message_bytes", "message_bytes_ready",
	"consumers", "consumer_utilisation", "consumer_capacity", "state", "type", "leader", "members", "online", "slave_pids",
	"synchronised_slave_pids", "vhost", "node"}

func runListQueues(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if resp := vhostMissing(b, r.VHost); resp != nil {
		return *resp
	}
	rows := []map[string]any{}
	cons := b.Consumers(r.VHost)
	for _, qi := range b.ClusterQueues(r.VHost) {
		d, st := qi.Def, qi.Stats
		node := d.Node
		if node == "" {
			node = b.NodeName()
		}
		state, online := "running", []string{node}
		if qi.Down {
			state, online = "down", []string{}
		}
		exclTag := ""
		for _, c := range cons {
			if c.Queue == d.Name && c.Exclusive {
				exclTag = c.Tag
			}
		}
		capacity := 0.0
		if st.Consumers > 0 {
			capacity = 1
		}
		// Like RabbitMQ's: "" for a queue never mirrored, a list otherwise.
		var slaves, synced any = "", ""
		if m := d.Mirroring; m != nil {
			slaves, synced = mirrorPids(m.Mirrors, d.Name), mirrorPids(m.InSync, d.Name)
		}
		rows = append(rows, map[string]any{
			"name": d.Name, "vhost": d.VHost, "durable": d.Durable, "auto_delete": d.AutoDelete, "exclusive": d.Exclusive,
			"arguments": d.Arguments.Table, "policy": qi.Policy, "operator_policy": qi.OperatorPolicy, "effective_policy_definition": qi.Effective, "pid": "<" + node + ".queue." + d.Name + ">", "owner_pid": qi.ExclusiveOwner,
			"exclusive_consumer_pid": "", "exclusive_consumer_tag": exclTag,
			"messages_ready": st.Ready, "messages_unacknowledged": st.Unacked, "messages": st.Ready + st.Unacked,
			"messages_ready_ram": st.Ready, "messages_unacknowledged_ram": st.Unacked, "messages_ram": st.Ready + st.Unacked,
			"message_bytes": st.ReadyBytes, "message_bytes_ready": st.ReadyBytes,
			"consumers": st.Consumers, "consumer_utilisation": capacity, "consumer_capacity": capacity,
			"state": state, "type": "classic", "leader": node, "members": []string{node}, "online": online,
			"slave_pids": slaves, "synchronised_slave_pids": synced, "node": node,
		})
	}
	return table(r, c, rows)
}

// mirrorPids names a queue's mirrors on nodes as pids, in the form the
// pid column uses for its leader.
func mirrorPids(nodes []string, queue string) []string {
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		out = append(out, "<"+n+".mirror."+queue+">")
	}
	return out
}

func runListExchanges(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if resp := vhostMissing(b, r.VHost); resp != nil {
		return *resp
	}
	rows := []map[string]any{}
	for _, x := range b.Meta().Snapshot().Exchanges {
		if x.VHost != r.VHost {
			continue
		}
		rows = append(rows, map[string]any{"name": x.Name, "type": x.Type, "durable": x.Durable, "auto_delete": x.AutoDelete,
			"internal": x.Internal, "arguments": x.Arguments.Table, "policy": ""})
	}
	return table(r, c, rows)
}

func runListBindings(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if resp := vhostMissing(b, r.VHost); resp != nil {
		return *resp
	}
	d := b.Meta().Snapshot()
	rows := []map[string]any{}
	add := func(src, dst, dstKind, key string, args any) {
		rows = append(rows, map[string]any{"source_name": src, "source_kind": "exchange", "destination_name": dst,
			"destination_kind": dstKind, "routing_key": key, "arguments": args})
	}
	for _, qd := range d.Queues {
		if qd.VHost == r.VHost {
			add("", qd.Name, "queue", qd.Name, nil)
		}
	}
	for _, bd := range d.Bindings {
		if bd.VHost == r.VHost {
			add(bd.Source, bd.Destination, bd.DestinationType, bd.RoutingKey, bd.Arguments.Table)
		}
	}
	return table(r, c, rows)
}

var connectionColumns = []string{"pid", "name", "port", "host", "peer_port", "peer_host", "ssl", "ssl_protocol", "ssl_cipher",
	"peer_cert_subject", "peer_cert_issuer", "peer_cert_validity", "user", "vhost", "timeout",
	"frame_max", "channel_max", "client_properties", "connected_at", "recv_oct", "recv_cnt", "send_oct", "send_cnt",
	"send_pend", "state", "channels", "protocol", "auth_mechanism", "type", "node"}

// pid names a connection the way rabbitmqctl shows process ids; it is
// what close_connection takes.
func pid(node, id string) string { return "<" + node + "." + id + ">" }

func hostPort(a net.Addr) (string, int) {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String(), ta.Port
	}
	if a == nil {
		return "", 0
	}
	return a.String(), 0
}

func runListConnections(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	rows := []map[string]any{}
	node := b.NodeName()
	for _, c := range b.Connections() {
		if c.Direct {
			continue
		}
		host, port := hostPort(c.Local)
		peerHost, peerPort := hostPort(c.Peer)
		state := "running"
		if c.Blocked {
			state = "blocked"
		}
		row := map[string]any{"pid": pid(node, c.ID), "name": c.Name, "port": port, "host": host,
			"peer_port": peerPort, "peer_host": peerHost, "ssl": c.TLS != nil, "user": c.User, "vhost": c.VHost,
			"timeout": int(c.Heartbeat / time.Second), "frame_max": c.FrameMax, "channel_max": c.ChannelMax,
			"client_properties": c.ClientProperties, "connected_at": c.ConnectedAt.UnixMilli(),
			"recv_oct": c.RecvOct, "recv_cnt": c.RecvCnt, "send_oct": c.SendOct, "send_cnt": c.SendCnt, "send_pend": 0,
			"state": state, "channels": c.Channels, "protocol": "{0,9,1}", "auth_mechanism": c.AuthMechanism, "type": "network", "node": node,
			"ssl_protocol": "", "ssl_cipher": "", "peer_cert_subject": "", "peer_cert_issuer": "", "peer_cert_validity": ""}
		if t := c.TLS; t != nil {
			row["ssl_protocol"], row["ssl_cipher"] = t.Protocol, t.Cipher
			if t.PeerCert {
				row["peer_cert_subject"], row["peer_cert_issuer"] = t.Subject, t.Issuer
				row["peer_cert_validity"] = t.Validity()
			}
		}
		rows = append(rows, row)
	}
	return table(r, c, rows)
}

var channelColumns = []string{"pid", "connection", "name", "number", "user", "vhost", "transactional", "confirm",
	"consumer_count", "messages_unacknowledged", "messages_uncommitted", "acks_uncommitted", "messages_unconfirmed",
	"prefetch_count", "global_prefetch_count"}

func channelPid(node, conn string, n uint16) string {
	return "<" + node + "." + conn + "." + strconv.Itoa(int(n)) + ">"
}

func runListChannels(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	rows := []map[string]any{}
	node := b.NodeName()
	ids := map[string]string{}
	for _, c := range b.Connections() {
		if !c.Direct {
			ids[c.Name] = c.ID
		}
	}
	for _, c := range b.Channels() {
		id, ok := ids[c.Connection]
		if !ok {
			continue
		}
		rows = append(rows, map[string]any{"pid": channelPid(node, id, c.Number), "connection": pid(node, id),
			"name": broker.ChannelName(c.Connection, c.Number), "number": c.Number, "user": c.User, "vhost": c.VHost,
			"transactional": c.Transactional, "confirm": c.Confirm, "consumer_count": c.Consumers,
			"messages_unacknowledged": c.Unacked, "messages_uncommitted": 0, "acks_uncommitted": 0,
			"messages_unconfirmed": c.Unconfirmed, "prefetch_count": c.Prefetch, "global_prefetch_count": c.GlobalPrefetch})
	}
	return table(r, c, rows)
}

func runListConsumers(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if resp := vhostMissing(b, r.VHost); resp != nil {
		return *resp
	}
	rows := []map[string]any{}
	for _, c := range b.Consumers(r.VHost) {
		rows = append(rows, map[string]any{"queue_name": c.Queue, "channel_pid": channelPid(c.Node, c.ConnectionID, c.Channel),
			"consumer_tag": c.Tag, "ack_required": c.AckRequired, "prefetch_count": c.Prefetch, "active": c.Active,
			"activity_status": map[bool]string{true: "up", false: "waiting"}[c.Active], "arguments": c.Arguments, "exclusive": c.Exclusive})
	}
	return table(r, c, rows)
}

func runPurgeQueue(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if _, err := b.PurgeQueue(r.VHost, r.Args[0]); err != nil {
		if errors.Is(err, broker.ErrNoQueue) {
			return failf(ExitUnavailable, "not_found")
		}
		return failf(ExitSoftware, "%v", err)
	}
	return ok("")
}

// runDrain serves drain: maintenance mode, as rabbitmq-upgrade drain.
func runDrain(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	kept, err := s.app.Drain(ctx)
	if err != nil {
		return failf(ExitSoftware, "%v", err)
	}
	lines := make([]string, 0, len(kept))
	for _, q := range kept {
		lines = append(lines, fmt.Sprintf("queue '%s' in vhost '%s' has no in-sync mirror to take over: it is still led from this node", q.Name, q.VHost))
	}
	return ok(strings.Join(lines, "\n"))
}

// runRevive serves revive, as rabbitmq-upgrade revive.
func runRevive(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if err := s.app.Revive(ctx); err != nil {
		return failf(ExitSoftware, "%v", err)
	}
	return ok("")
}

// runSyncQueue serves sync_queue, which waits until every mirror of the
// queue is in sync, and cancel_sync_queue.
func runSyncQueue(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	err := b.SyncQueue(ctx, r.VHost, r.Args[0], r.Command == "cancel_sync_queue")
	switch {
	case errors.Is(err, broker.ErrNoQueue):
		return failf(ExitDataErr, "queue '%s' in vhost '%s' not found", r.Args[0], r.VHost)
	case errors.Is(err, broker.ErrNotMirrored):
		return failf(ExitSoftware, "{not_mirrored,{resource,<<\"%s\">>,queue,<<\"%s\">>}}", r.VHost, r.Args[0])
	case err != nil:
		return failf(ExitSoftware, "%v", err)
	}
	return ok("")
}

func runDeleteQueue(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	_, ifEmpty := r.Options["if-empty"]
	_, ifUnused := r.Options["if-unused"]
	n, err := b.DeleteQueue(ctx, r.VHost, r.Args[0], ifUnused, ifEmpty)
	switch {
	case errors.Is(err, broker.ErrNoQueue):
		return failf(ExitDataErr, "Queue not found")
	case errors.Is(err, broker.ErrQueueInUse):
		return failf(ExitDataErr, "Queue is in use")
	case errors.Is(err, broker.ErrQueueNotEmpty):
		return failf(ExitDataErr, "Queue is not empty")
	case err != nil:
		return failf(ExitSoftware, "%v", err)
	}
	return ok(fmt.Sprintf("Queue was successfully deleted with %d ready messages", n))
}

func runCloseConnection(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	target := r.Args[0]
	for _, c := range b.ClusterConnections() {
		if !c.Direct && (target == pid(c.Node, c.ID) || target == c.Name) {
			if b.CloseConnectionOn(c.Node, c.ID, r.Args[1]) {
				return ok("")
			}
		}
	}
	return failf(ExitDataErr, "no connection %s in the cluster (see warrenctl list_connections pid name)", r.Args[0])
}

func runExport(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	cfg := b.Config()
	f := defs.Export(b.Meta(), defs.Source{Product: cfg.Product, Version: broker.Version}, "")
	out, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return failf(ExitSoftware, "%v", err)
	}
	return Response{Text: string(out)}
}

func runImport(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	f, err := defs.Decode(r.Input)
	if err != nil {
		return failf(ExitDataErr, "%v", err)
	}
	if err := defs.Import(ctx, b.Meta(), b.NodeName(), f, ""); err != nil {
		return failf(ExitDataErr, "%v", err)
	}
	return ok("Successfully started definition import. This process is asynchronous and can take some time.")
}

func runSetWatermark(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if r.Args[0] == "absolute" {
		if len(r.Args) != 2 {
			return failf(ExitUsage, "not enough arguments.")
		}
		n, err := config.ParseBytes(r.Args[1])
		if err != nil || n == 0 {
			return failf(ExitUsage, "invalid absolute memory limit %q", r.Args[1])
		}
		if err := b.SetMemoryHighWatermark(0, n); err != nil {
			return failf(ExitSoftware, "%v", err)
		}
		return ok("")
	}
	if len(r.Args) != 1 {
		return failf(ExitUsage, "too many arguments.")
	}
	f, err := strconv.ParseFloat(r.Args[0], 64)
	if err != nil || f < 0 {
		return failf(ExitUsage, "The threshold should be a fraction between 0.0 and 1.0")
	}
	if err := b.SetMemoryHighWatermark(f, 0); err != nil {
		return failf(ExitSoftware, "%v", err)
	}
	return ok("")
}

func runSetDiskFreeLimit(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if r.Args[0] == "mem_relative" {
		if len(r.Args) != 2 {
			return failf(ExitUsage, "not enough arguments.")
		}
		f, err := strconv.ParseFloat(r.Args[1], 64)
		if err != nil || f < 0 {
			return failf(ExitUsage, "invalid fraction %q", r.Args[1])
		}
		total, err := totalMemory()
		if err != nil {
			return failf(ExitSoftware, "%v", err)
		}
		b.SetDiskFreeLimit(uint64(f * float64(total)))
		return ok("")
	}
	if len(r.Args) != 1 {
		return failf(ExitUsage, "too many arguments.")
	}
	n, err := config.ParseBytes(r.Args[0])
	if err != nil {
		return failf(ExitUsage, "invalid disk free limit %q", r.Args[0])
	}
	b.SetDiskFreeLimit(n)
	return ok("")
}

// totalMemory reads the machine's memory from /proc/meminfo.
func totalMemory() (uint64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, fmt.Errorf("read memory size: %w", err)
	}
	m := regexp.MustCompile(`MemTotal:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		return 0, errors.New("read memory size: no MemTotal in /proc/meminfo")
	}
	kb, _ := strconv.ParseUint(string(m[1]), 10, 64)
	return kb * 1024, nil
}

func runEnvironment(ctx context.Context, s *Server, _ Broker, r *Request, c *command) Response {
	info := s.app.Info()
	keys := make([]string, 0, len(info.Settings))
	for k := range info.Settings {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("[{warren,\n  [")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",\n   ")
		}
		fmt.Fprintf(&b, "{%s,%s}", k, formatValue(info.Settings[k]))
	}
	b.WriteString("]}]")
	return ok(b.String())
}

func runReport(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	var out strings.Builder
	for _, part := range []struct {
		title string
		req   Request
	}{
		{"Status of node", Request{Command: "status"}},
		{"Cluster status of node", Request{Command: "cluster_status"}},
		{"Connections", Request{Command: "list_connections", Args: connectionColumns}},
		{"Channels", Request{Command: "list_channels", Args: channelColumns}},
	} {
		resp := s.Run(ctx, &part.req)
		fmt.Fprintf(&out, "%s\n\n", part.title)
		out.WriteString(Render(resp, Format{}))
		out.WriteString("\n")
	}
	for _, v := range b.Meta().Snapshot().VHosts {
		for _, cmd := range []string{"list_queues", "list_exchanges", "list_bindings", "list_consumers", "list_permissions"} {
			req := Request{Command: cmd, VHost: v.Name}
			if lc := s.cmds[cmd]; lc.max < 0 {
				req.Args = lc.columns
			}
			fmt.Fprintf(&out, "%s\n\n", Banner(s.app.Info().Name, &req))
			out.WriteString(Render(s.Run(ctx, &req), Format{}))
			out.WriteString("\n")
		}
	}
	return ok(strings.TrimRight(out.String(), "\n"))
}

func setPolicy(operator bool) func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	return func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
		if resp := vhostMissing(b, r.VHost); resp != nil {
			return *resp
		}
		dec := json.NewDecoder(strings.NewReader(r.Args[2]))
		dec.UseNumber()
		var def map[string]any
		if err := dec.Decode(&def); err != nil {
			return failf(ExitDataErr, "the definition is not a JSON object: %v", err)
		}
		prio := 0
		if p := r.Options["priority"]; p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return failf(ExitUsage, "invalid --priority %q: an integer expected", p)
			}
			prio = n
		}
		p := meta.Policy{VHost: r.VHost, Name: r.Args[0], Pattern: r.Args[1], ApplyTo: orDefault(r.Options["apply-to"], policy.All),
			Definition: defs.NumbersAsFloat(def), Priority: prio, Operator: operator}
		if err := policy.Validate(p); err != nil {
			return failf(ExitDataErr, "%v", err)
		}
		if err := b.Meta().SetPolicy(ctx, p); err != nil {
			return failf(ExitSoftware, "%v", err)
		}
		return ok("")
	}
}

func clearPolicy(operator bool) func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	return func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
		if err := b.Meta().ClearPolicy(ctx, r.VHost, r.Args[0], operator); err != nil {
			return metaFail(err, "Parameter does not exist", ExitDataErr)
		}
		return ok("")
	}
}

func listPolicies(operator bool) func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	return func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
		if resp := vhostMissing(b, r.VHost); resp != nil {
			return *resp
		}
		resp := Response{Columns: []string{"vhost", "name", "pattern", "apply-to", "definition", "priority"}}
		for _, p := range b.Meta().Policies(r.VHost) {
			if p.Operator != operator {
				continue
			}
			js, _ := json.Marshal(p.Definition)
			resp.Rows = append(resp.Rows, []any{p.VHost, p.Name, p.Pattern, p.ApplyTo, string(js), p.Priority})
		}
		return resp
	}
}

// runSetGlobal sets a global parameter: fixed to name with the argument as
// a string (set_cluster_name), or named by the first argument with a JSON
// value (set_global_parameter).
func runSetGlobal(name string, plain bool) func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	return func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
		var value json.RawMessage
		if plain {
			value, _ = json.Marshal(r.Args[0])
		} else {
			name = r.Args[0]
			if !json.Valid([]byte(r.Args[1])) {
				return failf(ExitDataErr, "the value is not JSON: %s", r.Args[1])
			}
			value = json.RawMessage(r.Args[1])
		}
		if err := b.Meta().SetGlobalParameter(ctx, meta.GlobalParameter{Name: name, Value: value}); err != nil {
			return failf(ExitSoftware, "%v", err)
		}
		return ok("")
	}
}

func runClearGlobal(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if err := b.Meta().ClearGlobalParameter(ctx, r.Args[0]); err != nil {
		return metaFail(err, "Parameter does not exist", ExitDataErr)
	}
	return ok("")
}

func runListGlobals(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	resp := Response{Columns: []string{"name", "value"}}
	for _, g := range b.Meta().Snapshot().Global {
		resp.Rows = append(resp.Rows, []any{g.Name, string(g.Value)})
	}
	return resp
}

func runSetTopicPermissions(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	if resp := checkGrant(b, r, r.Args[2:]); resp != nil {
		return *resp
	}
	p := meta.TopicPermission{User: r.Args[0], VHost: r.VHost, Exchange: r.Args[1], Write: r.Args[2], Read: r.Args[3]}
	if err := b.Meta().SetTopicPermission(ctx, p); err != nil {
		return failf(ExitSoftware, "%v", err)
	}
	return ok("")
}

func runClearTopicPermissions(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	exchange := ""
	if len(r.Args) == 2 {
		exchange = r.Args[1]
	}
	if err := b.Meta().ClearTopicPermissions(ctx, r.Args[0], r.VHost, exchange); err != nil && !errors.Is(err, meta.ErrNotFound) {
		return failf(ExitSoftware, "%v", err)
	}
	return ok("")
}

func runListTopicPermissions(byUser bool) func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	return func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
		resp := Response{Columns: []string{"user", "exchange", "write", "read"}}
		if byUser {
			resp.Columns = []string{"vhost", "exchange", "write", "read"}
		}
		for _, p := range b.Meta().Snapshot().Topics {
			switch {
			case byUser && p.User == r.Args[0]:
				resp.Rows = append(resp.Rows, []any{p.VHost, p.Exchange, p.Write, p.Read})
			case !byUser && p.VHost == r.VHost:
				resp.Rows = append(resp.Rows, []any{p.User, p.Exchange, p.Write, p.Read})
			}
		}
		return resp
	}
}

// limitNames are the limits vhosts and users take.
func limitNames(user bool) []string {
	if user {
		return []string{"max-connections", "max-channels"}
	}
	return []string{"max-connections", "max-queues"}
}

// runSetLimits merges a JSON object of limits into a vhost's (-p) or a
// user's limits.
func runSetLimits(user bool) func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	return func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
		def := r.Args[len(r.Args)-1]
		var set map[string]int64
		if err := json.Unmarshal([]byte(def), &set); err != nil {
			return failf(ExitDataErr, "the limits are not a JSON object of integers: %v", err)
		}
		for k := range set {
			if !slices.Contains(limitNames(user), k) {
				return failf(ExitDataErr, "unknown limit %q (known: %s)", k, strings.Join(limitNames(user), ", "))
			}
		}
		merge := func(cur map[string]int64) map[string]int64 {
			out := map[string]int64{}
			for k, v := range cur {
				out[k] = v
			}
			for k, v := range set {
				out[k] = v
			}
			return out
		}
		if user {
			u, found := b.Meta().User(r.Args[0])
			if !found {
				return failf(ExitNoUser, "User %s does not exist", q(r.Args[0]))
			}
			u.Limits = merge(u.Limits)
			if err := b.Meta().PutUser(ctx, u); err != nil {
				return failf(ExitSoftware, "%v", err)
			}
			return ok("")
		}
		v, found := b.Meta().VHost(r.VHost)
		if !found {
			return failf(ExitDataErr, "Virtual host %s does not exist", r.VHost)
		}
		v.Limits = merge(v.Limits)
		if err := b.Meta().PutVHost(ctx, v); err != nil {
			return failf(ExitSoftware, "%v", err)
		}
		return ok("")
	}
}

func runClearLimits(user bool) func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	return func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
		if user {
			u, found := b.Meta().User(r.Args[0])
			if !found {
				return failf(ExitNoUser, "User %s does not exist", q(r.Args[0]))
			}
			if r.Args[1] == "all" {
				u.Limits = nil
			} else {
				delete(u.Limits, r.Args[1])
			}
			if err := b.Meta().PutUser(ctx, u); err != nil {
				return failf(ExitSoftware, "%v", err)
			}
			return ok("")
		}
		v, found := b.Meta().VHost(r.VHost)
		if !found {
			return failf(ExitDataErr, "Virtual host %s does not exist", r.VHost)
		}
		v.Limits = nil
		if err := b.Meta().PutVHost(ctx, v); err != nil {
			return failf(ExitSoftware, "%v", err)
		}
		return ok("")
	}
}

func runListLimits(user bool) func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	return func(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
		d := b.Meta().Snapshot()
		if user {
			resp := Response{Columns: []string{"user", "limits"}}
			for _, u := range d.Users {
				if (len(r.Args) == 0 || u.Name == r.Args[0]) && len(u.Limits) > 0 {
					js, _ := json.Marshal(u.Limits)
					resp.Rows = append(resp.Rows, []any{u.Name, string(js)})
				}
			}
			return resp
		}
		_, global := r.Options["global"]
		resp := Response{Columns: []string{"vhost", "limits"}}
		for _, v := range d.VHosts {
			if (global || v.Name == r.VHost) && len(v.Limits) > 0 {
				js, _ := json.Marshal(v.Limits)
				resp.Rows = append(resp.Rows, []any{v.Name, string(js)})
			}
		}
		return resp
	}
}

// runMirrorSyncCritical is rabbitmq-queues check_if_node_is_mirror_sync_critical:
// exit 69 with a line per mirrored queue whose only in-sync copy this node
// holds.
func runMirrorSyncCritical(ctx context.Context, s *Server, b Broker, r *Request, c *command) Response {
	node := b.NodeName()
	if len(b.Meta().Members()) < 2 {
		return Response{Text: "Node " + node + " seems to be the only one in a single node cluster, the check does not apply", JSON: map[string]any{"result": "ok"}}
	}
	qs := b.MirrorSyncCritical()
	if len(qs) == 0 {
		return Response{Text: "Node " + node + " reported no classic mirrored queues without online synchronised mirrors", JSON: map[string]any{"result": "ok"}}
	}
	lines := make([]string, 0, len(qs))
	for _, q := range qs {
		lines = append(lines, fmt.Sprintf("queue '%s' in vhost '%s' would lose its only synchronised replica (master) if node %s is stopped", q.Name, q.VHost, node))
	}
	return failf(ExitUnavailable, "%s", strings.Join(lines, "\n"))
}
