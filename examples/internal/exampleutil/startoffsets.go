package exampleutil

import (
	"strconv"
	"strings"

	"github.com/sluicehq/sluice/kafkasource"
)

// StartOffsets is what --start-offsets asks for: where partitions start when
// the checkpoint holds no position for them. The zero value is the
// examples' default: the group's committed offsets, else the earliest
// offset.
type StartOffsets struct {
	// Policy is "earliest" or "latest" when the flag names one: partitions
	// that Offsets does not list start at their log start or end, whatever
	// the group has committed. Empty: the group's offsets, else earliest.
	Policy string
	// Offsets are explicit starting offsets of single partitions.
	Offsets map[kafkasource.TopicPartition]int64
}

// ParseStartOffsets reads a --start-offsets value: earliest, latest, or a
// comma-separated list of topic:partition:offset, optionally with one of
// earliest or latest among them for the partitions the list leaves out.
// Topics must be topic, the one the job reads.
func ParseStartOffsets(s, topic string) (StartOffsets, error) {
	var so StartOffsets
	if strings.TrimSpace(s) == "" {
		return so, usagef("--start-offsets is empty; pass earliest, latest, or topic:partition:offset such as --start-offsets %s:0:42.", topic)
	}
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		switch item {
		case "earliest", "latest":
			if so.Policy != "" {
				return so, usagef("--start-offsets %q names both %s and %s; keep one of them.", s, so.Policy, item)
			}
			so.Policy = item
			continue
		}
		t, rest, ok1 := strings.Cut(item, ":")
		ps, os, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || t == "" {
			return so, usagef("--start-offsets %q holds %q, which is not earliest, latest or topic:partition:offset; write it as --start-offsets %s:0:42.", s, item, topic)
		}
		if t != topic {
			return so, usagef("--start-offsets %q names topic %q, but the job reads --topic %s; name partitions of %s.", s, t, topic, topic)
		}
		p, err1 := parseWhole(ps, 31)
		o, err2 := parseWhole(os, 63)
		if err1 != nil || err2 != nil {
			return so, usagef("--start-offsets %q holds %q, whose partition and offset are not whole numbers >= 0; write it as --start-offsets %s:0:42.", s, item, topic)
		}
		tp := kafkasource.TopicPartition{Topic: t, Partition: int32(p)}
		if so.Offsets == nil {
			so.Offsets = make(map[kafkasource.TopicPartition]int64)
		}
		if _, dup := so.Offsets[tp]; dup {
			return so, usagef("--start-offsets %q names %s:%d twice; keep one offset for it.", s, t, p)
		}
		so.Offsets[tp] = o
	}
	return so, nil
}

// parseWhole parses s as a whole number of ASCII digits that fits in bits
// bits: no sign, no underscores, no base prefix.
func parseWhole(s string, bits int) (int64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	v, err := strconv.ParseInt(s, 10, bits+1)
	if err != nil {
		return 0, err
	}
	return v, nil
}

// sourceOptions returns the Kafka source options --start-offsets asks for.
func (so StartOffsets) sourceOptions() []kafkasource.Option {
	opts := []kafkasource.Option{kafkasource.WithResetPolicy(kafkasource.Earliest)}
	switch so.Policy {
	case "earliest":
		opts = append(opts, kafkasource.WithGroupOffsets(false))
	case "latest":
		opts = append(opts, kafkasource.WithGroupOffsets(false), kafkasource.WithResetPolicy(kafkasource.Latest))
	}
	if len(so.Offsets) > 0 {
		opts = append(opts, kafkasource.WithStartOffsets(so.Offsets))
	}
	return opts
}
