package exampleutil

import (
	"path/filepath"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluicehq/sluice/kafkasource"
)

// DefaultSessionTimeout is the default --session-timeout, kgo's and
// Kafka's: how long the group waits for a member it stopped hearing before
// moving its tasks to the others.
const DefaultSessionTimeout = 45 * time.Second

// DefaultRebalanceTimeout is the default --rebalance-timeout, kgo's: how
// long a rebalance waits for every member to rejoin the group.
const DefaultRebalanceTimeout = time.Minute

// memberFlags registers group mode: the job as one of several processes
// sharing the topic's partitions through the consumer group --group.
func (p *parser) memberFlags() {
	p.fs.StringVar(&p.cfg.Member, "member", "", "run as member `NAME` of --group, one of several processes sharing the job (group mode; needs --brokers of a shared broker); NAME must be unique among them and the same when one restarts")
	p.fs.DurationVar(&p.cfg.SessionTimeout, "session-timeout", DefaultSessionTimeout, "with --member: how long the group waits for a member it stopped hearing (killed, paused, cut off) before moving its tasks to the others")
	p.fs.DurationVar(&p.cfg.RebalanceTimeout, "rebalance-timeout", DefaultRebalanceTimeout, "with --member: how long a rebalance waits for every member to rejoin, each after finishing its batch in flight, before it goes on without the late ones")
}

// checkMember checks group mode against the other flags, once they are
// checked: it makes --checkpoint the member's local state dir, drops the
// default SQL sink and refuses what cannot work in group mode.
func (p *parser) checkMember() error {
	cfg, spec := p.cfg, p.spec
	if cfg.Member == "" {
		if p.set["member"] {
			return usagef("--member is empty; name this process, such as --member a, or drop the flag.")
		}
		for _, f := range []string{"session-timeout", "rebalance-timeout"} {
			if p.set[f] {
				return usagef("--%s applies to group mode; add --member NAME or drop the flag.", f)
			}
		}
		return nil
	}
	if strings.Trim(cfg.Member, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
		return usagef("--member %q holds characters other than letters, digits, '.', '_' and '-'; name this process such as --member a.", cfg.Member)
	}
	switch {
	case cfg.Embedded():
		return usagef("--member needs a broker that every member shares, and the embedded broker lives in one process; start one with go run ./cmd/sluice-broker and pass its address with --brokers.")
	case cfg.SessionTimeout <= 0 || cfg.SessionTimeout%time.Millisecond != 0:
		return usagef("--session-timeout %v is not a positive whole number of milliseconds; pass a duration such as --session-timeout 10s.", cfg.SessionTimeout)
	case cfg.RebalanceTimeout <= 0 || cfg.RebalanceTimeout%time.Millisecond != 0:
		return usagef("--rebalance-timeout %v is not a positive whole number of milliseconds; pass a duration such as --rebalance-timeout 30s.", cfg.RebalanceTimeout)
	case p.set["start-offsets"]:
		return usagef("--start-offsets does not apply with --member, where a task starts at the group's committed offsets, else at the partition's start; drop it (or set the group's offsets with kafka-consumer-groups).")
	case cfg.RollbackOnCorrupt:
		return usagef("--rollback-on-corrupt concerns checkpoints, and with --member offsets live in the group and there is no checkpoint; drop the flag.")
	}
	// Offsets live in the group, state in changelogs: --checkpoint names
	// the member's local state dir instead, its own by default.
	cfg.StateDir, cfg.Checkpoint = cfg.Checkpoint, ""
	if !p.set["checkpoint"] {
		cfg.StateDir = filepath.Join(DataRoot, spec.Name, "member-"+cfg.Member)
	}
	if !p.set["sink"] {
		cfg.Sink = "" // the default SQL sink cannot join the member's transaction
	}
	if cfg.Sink != "" && !strings.HasPrefix(cfg.Sink, "kafka:") {
		return usagef("--sink %s cannot join the member's Kafka transaction, which commits each batch's results with its offsets in group mode; with --member pass --sink kafka:TOPIC or no --sink.", cfg.Sink)
	}
	if cfg.Save != "" {
		// Members cut the same batch times: each needs files of its own.
		cfg.Save += "-" + cfg.Member
	}
	return nil
}

// memberOptions returns the source options of group mode, none without
// --member.
func (c Config) memberOptions() []kafkasource.Option {
	if c.Member == "" {
		return nil
	}
	opts := []kafkasource.Option{kafkasource.AsMember(c.Member), kafkasource.WithMemberOptions(
		kgo.SessionTimeout(c.SessionTimeout), kgo.HeartbeatInterval(min(3*time.Second, c.SessionTimeout/3)), kgo.RebalanceTimeout(c.RebalanceTimeout))}
	if c.StateDir != "" {
		opts = append(opts, kafkasource.WithStateDir(c.StateDir))
	}
	return opts
}
